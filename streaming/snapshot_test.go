package streaming

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/starling-io/starling/proto/stanpb"
	"github.com/starling-io/starling/raftlog"
	"github.com/starling-io/starling/stores"
)

// newReplica is a bare state machine over a fresh memory store, as a follower has.
func newReplica(t *testing.T) (*stateMachine, stores.Store) {
	t.Helper()
	store := newMemStore(t)
	if err := store.Init(stores.ServerInfo{ClusterID: "replica"}); err != nil {
		t.Fatal(err)
	}
	return newStateMachine(store), store
}

func applyEntries(t *testing.T, m *stateMachine, entries []recorded, keep func(any) bool) {
	t.Helper()
	for i, e := range entries {
		cmd, err := m.Decode(e.data)
		if err != nil {
			t.Fatalf("entry %d: %v", i, err)
		}
		if keep(cmd.Value) {
			m.Apply(uint64(i+1), []raftlog.Command{cmd})
		}
	}
}

func persist(t *testing.T, m *stateMachine) []byte {
	t.Helper()
	sn, err := m.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	defer sn.Release()
	var b bytes.Buffer
	if err := sn.Persist(&b); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// TestSnapshotRestore: a replica that applied the first half of the leader's log, then
// only the messages of the rest, ends equal to the leader once it restores the leader's
// snapshot — clients and subscriptions that went away meanwhile are removed, new ones
// created, pending sets replaced — and a snapshot of it is the leader's, byte for byte.
func TestSnapshotRestore(t *testing.T) {
	leader, rec := newRecordedEngine(t)
	runScenario(t, leader, rec)
	snap := persist(t, leader.sm)

	replica, store := newReplica(t)
	half := len(rec.entries) / 2
	applyEntries(t, replica, rec.entries[:half], func(any) bool { return true })
	applyEntries(t, replica, rec.entries[half:], func(v any) bool {
		switch v.(type) {
		case *cmdCreateChannel, *cmdPublish:
			return true
		}
		return false
	})
	if storeDigest(t, store) == storeDigest(t, leader.store) {
		t.Fatal("the replica equals the leader before the restore: the test proves nothing")
	}
	if err := replica.Restore(bytes.NewReader(snap)); err != nil {
		t.Fatal(err)
	}
	if l, r := storeDigest(t, leader.store), storeDigest(t, store); l != r {
		t.Fatalf("restored replica differs from the leader\nleader:\n%s\nreplica:\n%s", l, r)
	}
	if !bytes.Equal(persist(t, replica), snap) {
		t.Fatal("a snapshot of the restored replica differs from the leader's")
	}
	// The log goes on after the snapshot on both alike: the replica's next channel ID is the
	// leader's.
	if replica.nextChanID != leader.sm.nextChanID {
		t.Fatalf("next channel ID %d, leader %d", replica.nextChanID, leader.sm.nextChanID)
	}
}

// TestRestoreRefusesWhatItCannotTrust: a snapshot that does not decode, or that names
// messages the store lacks, is refused and changes nothing.
func TestRestoreRefusesWhatItCannotTrust(t *testing.T) {
	leader, rec := newRecordedEngine(t)
	runScenario(t, leader, rec)
	snap := persist(t, leader.sm)

	replica, store := newReplica(t)
	applyEntries(t, replica, rec.entries[:3], func(any) bool { return true })
	before := storeDigest(t, store)
	if err := replica.Restore(bytes.NewReader(snap)); !errors.Is(err, errMissingMsgs) {
		t.Fatalf("restore without the messages: %v, want errMissingMsgs", err)
	}
	if err := replica.Restore(bytes.NewReader([]byte{0x12, 0x05, 0x0a})); !errors.Is(err, errBadSnapshot) {
		t.Fatalf("restore of a torn snapshot: %v, want errBadSnapshot", err)
	}
	if after := storeDigest(t, store); after != before {
		t.Fatalf("a refused restore changed the store\nbefore:\n%s\nafter:\n%s", before, after)
	}
}

// viewOf renders an engine's view as its monitoring shows it, sorted.
func viewOf(t *testing.T, sn *snapshot) string {
	t.Helper()
	var lines []string
	for _, c := range sn.clients {
		lines = append(lines, fmt.Sprintf("client %s hb=%s subs=%d", c.ID, c.HBInbox, c.SubsCount))
	}
	for _, ch := range sn.channels {
		lines = append(lines, fmt.Sprintf("channel %s msgs=%d first=%d last=%d subs=%d", ch.Name, ch.Msgs, ch.FirstSeq, ch.LastSeq, ch.SubsCount))
		for _, z := range ch.Subscriptions {
			lines = append(lines, fmt.Sprintf("  sub %+v", *z))
		}
	}
	sort.Strings(lines)
	return strings.Join(lines, "\n")
}

func monitoringView(t *testing.T, s *Server) (string, *snapshot) {
	t.Helper()
	ch := make(chan *snapshot, 1)
	s.processSnapshot(&op{kind: opSnapshot, snap: ch, subsToo: true})
	sn := <-ch
	return viewOf(t, sn), sn
}

// TestFollowerTakesOver: a follower's engine holds no view and serves nothing; its state
// machine applies the leader's log. When it becomes leader it builds the same view as the
// old leader's (clients, channels, subscriptions with positions and pending messages) and
// serves: a new publish continues the channel's sequence and reaches the durable that
// waited for it. When it loses leadership it drops the view again.
func TestFollowerTakesOver(t *testing.T) {
	leader, rec := newRecordedEngine(t)
	runScenario(t, leader, rec)
	want, _ := monitoringView(t, leader)

	var sl *switchLog
	bus := &dataBus{}
	f, err := New(bus, newMemStore(t), func(sm raftlog.StateMachine) (raftlog.Log, error) {
		sl = newSwitchLog(sm)
		return sl, nil
	}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := f.recover(); err != nil {
		t.Fatal(err)
	}
	applyEntries(t, f.sm, rec.entries, func(any) bool { return true })
	// Its monitoring shows the replicated state, as the leader's engine sees it.
	if got, sn := monitoringView(t, f); sn.viewChans != 0 || got != want {
		t.Fatalf("a follower's engine holds a view of %d channels, or its monitoring differs from the leader's\nleader:\n%s\nfollower:\n%s", sn.viewChans, want, got)
	}
	runEngine(f)
	defer func() { close(f.stop); <-f.done }()
	sl.set(true)
	deadline := time.Now().Add(5 * time.Second)
	for sn := f.takeSnapshot(true); !sn.leader; sn = f.takeSnapshot(true) {
		if time.Now().After(deadline) {
			t.Fatal("the follower never took over")
		}
		time.Sleep(time.Millisecond)
	}
	if got := viewOf(t, f.takeSnapshot(true)); got != want {
		t.Fatalf("new leader's view differs from the old leader's\nold:\n%s\nnew:\n%s", want, got)
	}
	// The subscriptions' ack inboxes were handed out by the old leader: the new one listens
	// under that prefix too, and their acks count.
	if leader.ackPrefix == f.ackPrefix || !slices.Contains(bus.subscribed, leader.ackPrefix+".*") {
		t.Fatalf("new leader subscribed to %q, not to the old leader's ack prefix %q", bus.subscribed, leader.ackPrefix)
	}
	var plain *subState
	for _, sb := range leader.byAckID {
		if sb.inbox == "in.plain" {
			plain = sb
		}
	}
	f.push(op{kind: opAck, ack: plain.ack, seq: sortedPending(plain)[0], from: 1})
	if got := viewOf(t, f.takeSnapshot(true)); got == want {
		t.Fatal("an ack under the old leader's prefix did not count")
	}
	f.push(op{kind: opPublish, reply: "ack.new", from: 1, data: marshal(&stanpb.PubMsg{ClientID: "c1", Guid: "g-new",
		Subject: "foo", Data: []byte("after"), ConnID: []byte("x")})})
	f.takeSnapshot(false)
	var got []uint64
	for _, m := range bus.to("in.dur2") {
		var mp stanpb.MsgProto
		if err := proto.Unmarshal(m.data, &mp); err == nil {
			got = append(got, mp.Sequence)
		}
	}
	if len(got) != 1 || got[0] != 21 {
		t.Fatalf("the durable got %v from the new leader, want [21]", got)
	}
	sl.set(false)
	deadline = time.Now().Add(5 * time.Second)
	for sn := f.takeSnapshot(true); sn.leader || sn.viewChans > 0; sn = f.takeSnapshot(true) {
		if time.Now().After(deadline) {
			t.Fatal("the old leader kept its view")
		}
		time.Sleep(time.Millisecond)
	}
}

// TestReplayIsIdempotent: a node restarts on a store that holds more than its last snapshot
// (the store was synced past it), restores the snapshot and replays the log after it: every
// command it already applied is applied again without effect, and it ends equal to the
// leader. A repeated message with other content is still refused.
func TestReplayIsIdempotent(t *testing.T) {
	leader, rec := newRecordedEngine(t)
	runScenario(t, leader, rec)
	// k < 0: no snapshot yet, the whole log replays onto what the store kept.
	for _, k := range []int{-1, 0, len(rec.entries) / 3, len(rec.entries) / 2, len(rec.entries) - 1} {
		t.Run(fmt.Sprint("snapshot at ", k), func(t *testing.T) {
			first, store := newReplica(t)
			applyEntries(t, first, rec.entries[:max(k, 0)], func(any) bool { return true })
			snap := persist(t, first)
			applyEntries(t, first, rec.entries[max(k, 0):], func(any) bool { return true })

			restarted := newStateMachine(store) // same store: what the first run left
			if _, err := restarted.recover(); err != nil {
				t.Fatal(err)
			}
			if k >= 0 {
				if err := restarted.Restore(bytes.NewReader(snap)); err != nil {
					t.Fatal(err)
				}
			}
			k = max(k, 0)
			for i, e := range rec.entries[k:] {
				cmd, err := restarted.Decode(e.data)
				if err != nil {
					t.Fatal(err)
				}
				res := restarted.Apply(uint64(k+i+1), []raftlog.Command{cmd})
				if err, _ := res[0].(error); err != nil && !e.refused && !errors.Is(err, errNoChannel) {
					t.Fatalf("replayed entry %d (%T): %v", k+i, cmd.Value, err)
				}
			}
			if l, r := storeDigest(t, leader.store), storeDigest(t, store); l != r {
				t.Fatalf("after replay the node differs from the leader\nleader:\n%s\nnode:\n%s", l, r)
			}
			// The next channel gets the same ID on both (the proposer's choice).
			if l, r := leader.sm.nextChannelID(), restarted.nextChannelID(); l != r {
				t.Fatalf("next channel ID: leader %d, replayed node %d", l, r)
			}
		})
	}
}

// applyCmds encodes cmds as the log would, decodes them on m and applies them as one entry.
func applyCmds(t *testing.T, m *stateMachine, cmds ...any) []any {
	t.Helper()
	var cs []raftlog.Command
	for _, c := range cmds {
		data, err := encodeCommand(c)
		if err != nil {
			t.Fatal(err)
		}
		d, err := m.Decode(data)
		if err != nil {
			t.Fatal(err)
		}
		cs = append(cs, d)
	}
	return slices.Clone(m.Apply(1, cs))
}

func msgRun(from, n uint64) []stores.Msg {
	var out []stores.Msg
	for i := range n {
		out = append(out, stores.Msg{Seq: from + i, Time: int64(from + i), Data: []byte("x")})
	}
	return out
}

// A channel deleted before a snapshot and created again after it continues its sequence on
// a replica restored from that snapshot as on the others: the deleted channels' last
// sequences are replicated state. Before, the restored replica created it at 0, refused
// the next publish as discontinuous (a refusal taken as shared, so it went on without the
// channel's messages), and, leading later, numbered from 1 again — messages the others
// took as expired and skipped, acknowledged yet stored on one node only.
func TestDeletedChannelsTravelInSnapshots(t *testing.T) {
	leader, _ := newReplica(t)
	applyCmds(t, leader, &cmdCreateChannel{name: "x", id: 1})
	applyCmds(t, leader, &cmdPublish{chanRef: chanRef{"x", 1}, msgs: msgRun(1, 5)})
	applyCmds(t, leader, &cmdDeleteChannel{chanRef{"x", 1}})
	snap := persist(t, leader)

	follower, _ := newReplica(t)
	if err := follower.Restore(bytes.NewReader(snap)); err != nil {
		t.Fatal(err)
	}
	for _, m := range []*stateMachine{leader, follower} {
		if r := applyCmds(t, m, &cmdCreateChannel{name: "x", id: 2}); r[0] == nil {
			t.Fatal("not created")
		} else if _, ok := r[0].(error); ok {
			t.Fatal(r[0])
		}
		if r := applyCmds(t, m, &cmdPublish{chanRef: chanRef{"x", 2}, msgs: msgRun(6, 2)}); r[0] != nil {
			t.Fatalf("publish 6..7: %v", r[0])
		}
		if st := m.chans["x"].Msgs.State(); st != (stores.ChannelState{First: 6, Last: 7, Msgs: 2, Bytes: st.Bytes}) {
			t.Fatalf("x holds %+v, want 6..7", st)
		}
	}
	if !bytes.Equal(persist(t, leader), persist(t, follower)) {
		t.Fatal("the snapshots differ")
	}
}

// A snapshot naming a channel that holds no message but continues after a sequence (every
// message expired) restores on a replica that lacks the channel: it is created after that
// sequence, with nothing to fetch. Before, the restore asked for from > to, got nothing and
// refused the snapshot as naming messages the store lacks — for good, so the follower never
// caught up.
func TestEmptyChannelRestores(t *testing.T) {
	leader, _ := newReplica(t)
	applyCmds(t, leader, &cmdCreateChannel{name: "x", id: 1})
	applyCmds(t, leader, &cmdPublish{chanRef: chanRef{"x", 1}, msgs: msgRun(1, 5)})
	leader.chans["x"].Msgs.SetLimits(stores.Limits{MaxAge: time.Second})
	applyCmds(t, leader, &cmdExpire{chanRef: chanRef{"x", 1}, now: int64(time.Hour)})
	if st := leader.chans["x"].Msgs.State(); st.Msgs != 0 || st.Last != 5 {
		t.Fatalf("leader's x: %+v", st)
	}
	snap := persist(t, leader)

	for _, held := range []uint64{0, 2} { // a replica without the channel, one with an older part
		follower, _ := newReplica(t)
		if held > 0 {
			applyCmds(t, follower, &cmdCreateChannel{name: "x", id: 1})
			applyCmds(t, follower, &cmdPublish{chanRef: chanRef{"x", 1}, msgs: msgRun(1, held)})
		}
		fetched := 0
		follower.fetch = func(_ context.Context, _ string, _, _, _ uint64, _ func(uint64, []stores.Msg) error) error {
			fetched++
			return nil
		}
		if err := follower.Restore(bytes.NewReader(snap)); err != nil {
			t.Fatalf("holding %d: %v", held, err)
		}
		if fetched != 0 {
			t.Fatalf("holding %d: fetched %d times for a channel with no message", held, fetched)
		}
		if st := follower.chans["x"].Msgs.State(); st != (stores.ChannelState{First: 6, Last: 5}) {
			t.Fatalf("holding %d: x restored as %+v, want empty after 5", held, st)
		}
		if r := applyCmds(t, follower, &cmdPublish{chanRef: chanRef{"x", 1}, msgs: msgRun(6, 1)}); r[0] != nil {
			t.Fatalf("holding %d: publish 6: %v", held, r[0])
		}
	}
}

// A node restarts on its own last snapshot after the channel it names was deleted (an
// inactivity limit) — and, in the second case, created again with messages: the store made
// both durable at once, and the log after the snapshot replays them. The restore must not
// fetch the deleted incarnation's messages, which no other node holds any more, nor put it
// in place of the newer incarnation. Before, it deleted the newer one and created the
// snapshot's after its last sequence; the replay then created the newer one after that
// sequence again and took its messages for expired: acknowledged messages lost on the node.
func TestRestartAfterChannelDeletedSinceSnapshot(t *testing.T) {
	for _, again := range []bool{false, true} {
		t.Run(fmt.Sprint("created again ", again), func(t *testing.T) {
			first, store := newReplica(t)
			applyCmds(t, first, &cmdCreateChannel{name: "x", id: 1})
			applyCmds(t, first, &cmdPublish{chanRef: chanRef{"x", 1}, msgs: msgRun(1, 5)})
			snap := persist(t, first)
			after := []any{&cmdDeleteChannel{chanRef{"x", 1}}}
			if again {
				after = append(after, &cmdCreateChannel{name: "x", id: 2},
					&cmdPublish{chanRef: chanRef{"x", 2}, msgs: msgRun(6, 2)})
			}
			for _, c := range after {
				if r := applyCmds(t, first, c); r[0] != nil {
					if err, ok := r[0].(error); ok {
						t.Fatal(err)
					}
				}
			}
			want := storeDigest(t, store)

			restarted := newStateMachine(store)
			if _, err := restarted.recover(); err != nil {
				t.Fatal(err)
			}
			restarted.fetch = func(_ context.Context, ch string, _, from, to uint64, _ func(uint64, []stores.Msg) error) error {
				if from > to {
					return nil
				}
				return fmt.Errorf("%w: no node answered for %q from %d", errFetch, ch, from) // the others deleted it
			}
			if err := restarted.Restore(bytes.NewReader(snap)); err != nil {
				t.Fatal(err)
			}
			for _, c := range after { // the log after the snapshot
				r := applyCmds(t, restarted, c)
				if err, _ := r[0].(error); err != nil && !errors.Is(err, errNoChannel) {
					t.Fatalf("replaying %T: %v", c, err)
				}
			}
			if got := storeDigest(t, store); got != want {
				t.Fatalf("after restore and replay the node holds\n%s\nwant\n%s", got, want)
			}
		})
	}
}

// A replica at max_subs restores a snapshot in which one of its subscriptions was replaced
// by another: the one gone is removed before the new one is created, so the count never
// passes the limit. Before, the creation came first and was refused as one too many, and so
// was the whole snapshot (at a restart on the node's own snapshot: the node did not start).
func TestRestoreReplacesSubscriptionsAtMaxSubs(t *testing.T) {
	limits := &stores.LimitsSet{Global: stores.DefaultLimits()}
	limits.Global.MaxSubs = 2
	sub := func(id uint64) *cmdSubscribe {
		return &cmdSubscribe{chanRef: chanRef{"x", 1}, state: stores.SubState{ID: id, ClientID: "c", Inbox: fmt.Sprint("in.", id),
			AckInbox: fmt.Sprint("ack.", id), MaxInFlight: 1, AckWaitSecs: 30}}
	}
	leader, leaderStore := newReplica(t)
	follower, store := newReplica(t)
	for _, m := range []*stateMachine{leader, follower} {
		for _, c := range []any{&cmdSetLimits{limits: limits}, &cmdCreateChannel{name: "x", id: 1}, sub(1), sub(2)} {
			if r := applyCmds(t, m, c); r[0] != nil {
				if err, ok := r[0].(error); ok {
					t.Fatal(err)
				}
			}
		}
	}
	for _, c := range []any{&cmdDeleteSub{chanRef: chanRef{"x", 1}, id: 1}, sub(3)} {
		if r := applyCmds(t, leader, c); r[0] != nil {
			t.Fatal(r[0])
		}
	}
	if err := follower.Restore(bytes.NewReader(persist(t, leader))); err != nil {
		t.Fatal(err)
	}
	if l, r := storeDigest(t, leaderStore), storeDigest(t, store); l != r {
		t.Fatalf("restored replica differs from the leader\nleader:\n%s\nreplica:\n%s", l, r)
	}
}

// A replica at max_channels restores a snapshot in which one of its channels was deleted and
// another, holding messages, created: the channel gone is deleted before the new one is
// created for its messages to be fetched. Before, the creation came first and was refused as
// one too many, before anything changed, so every retry failed alike: the follower never
// caught up.
func TestRestoreReplacesChannelsAtMaxChannels(t *testing.T) {
	limits := &stores.LimitsSet{Global: stores.DefaultLimits()}
	limits.Global.MaxChannels = 2
	leader, leaderStore := newReplica(t)
	follower, store := newReplica(t)
	for _, m := range []*stateMachine{leader, follower} {
		for _, c := range []any{&cmdSetLimits{limits: limits}, &cmdCreateChannel{name: "a", id: 1}, &cmdCreateChannel{name: "b", id: 2}} {
			if r, ok := applyCmds(t, m, c)[0].(error); ok {
				t.Fatal(r)
			}
		}
	}
	for _, c := range []any{&cmdDeleteChannel{chanRef{"a", 1}}, &cmdCreateChannel{name: "c", id: 3},
		&cmdPublish{chanRef: chanRef{"c", 3}, msgs: msgRun(1, 3)}} {
		if r, ok := applyCmds(t, leader, c)[0].(error); ok {
			t.Fatal(r)
		}
	}
	follower.fetch = func(_ context.Context, ch string, _, from, to uint64, got func(uint64, []stores.Msg) error) error {
		var msgs []stores.Msg
		for seq := from; seq <= to; seq++ {
			var m stores.Msg
			if err := leader.chans[ch].Msgs.Load(seq, &m); err != nil {
				return err
			}
			msgs = append(msgs, m)
		}
		return got(from, msgs)
	}
	if err := follower.Restore(bytes.NewReader(persist(t, leader))); err != nil {
		t.Fatal(err)
	}
	if l, r := storeDigest(t, leaderStore), storeDigest(t, store); l != r {
		t.Fatalf("restored replica differs from the leader\nleader:\n%s\nreplica:\n%s", l, r)
	}
}

// A restore that fails part way — its fetch of a channel's messages — may be followed by the
// log the replica already had, which a new leader that kept it sends instead of the snapshot.
// What the restore changed before it failed must then agree with that log: a channel it
// deleted early (gone from the snapshot) is remembered as ending where the snapshot says, so
// that one created again with the name continues after the same sequence as on the others.
func TestFailedRestoreThenTheOldLog(t *testing.T) {
	leader, leaderStore := newReplica(t)
	follower, store := newReplica(t)
	common := []any{&cmdCreateChannel{name: "a", id: 1}, &cmdPublish{chanRef: chanRef{"a", 1}, msgs: msgRun(1, 3)}}
	missed := []any{&cmdPublish{chanRef: chanRef{"a", 1}, msgs: msgRun(4, 2)}, &cmdDeleteChannel{chanRef{"a", 1}},
		&cmdCreateChannel{name: "b", id: 2}, &cmdPublish{chanRef: chanRef{"b", 2}, msgs: msgRun(1, 2)}}
	after := []any{&cmdCreateChannel{name: "a", id: 3}, &cmdPublish{chanRef: chanRef{"a", 3}, msgs: msgRun(6, 2)}}
	for _, c := range common {
		applyCmds(t, follower, c)
	}
	var snap []byte
	for i, c := range append(append(common, missed...), after...) {
		if i == len(common)+len(missed) {
			snap = persist(t, leader)
		}
		if r, ok := applyCmds(t, leader, c)[0].(error); ok {
			t.Fatal(r)
		}
	}
	follower.fetch = func(_ context.Context, ch string, _, from, _ uint64, _ func(uint64, []stores.Msg) error) error {
		return fmt.Errorf("%w: no node answered for %q from %d", errFetch, ch, from)
	}
	if err := follower.Restore(bytes.NewReader(snap)); !errors.Is(err, errFetch) {
		t.Fatalf("restore: %v, want errFetch", err)
	}
	for _, c := range append(missed, after...) {
		r := applyCmds(t, follower, c)
		if err, _ := r[0].(error); err != nil && !errors.Is(err, errNoChannel) {
			t.Fatalf("applying %T after the failed restore: %v", c, err)
		}
	}
	if l, r := storeDigest(t, leaderStore), storeDigest(t, store); l != r {
		t.Fatalf("replica differs from the leader\nleader:\n%s\nreplica:\n%s", l, r)
	}
}

// A replica that holds every message of a channel restores a snapshot taken after the
// others removed the oldest (max_age here): it drops them too, so that it holds what the
// snapshot says — some, or none. Before, it kept them: its state differed from the others'
// until the channel's next expiry, if any came.
func TestRestoreDropsWhatTheOthersRemoved(t *testing.T) {
	limits := &stores.LimitsSet{Global: stores.DefaultLimits()}
	limits.Global.MaxAge = 5 // ns: msgRun's messages are stored at their sequence
	for _, now := range []int64{13, 100} {
		t.Run(fmt.Sprint("expired at ", now), func(t *testing.T) {
			leader, leaderStore := newReplica(t)
			follower, store := newReplica(t)
			for _, m := range []*stateMachine{leader, follower} {
				for _, c := range []any{&cmdCreateChannel{name: "x", id: 1},
					&cmdPublish{chanRef: chanRef{"x", 1}, msgs: msgRun(1, 10)}} {
					if r, ok := applyCmds(t, m, c)[0].(error); ok {
						t.Fatal(r)
					}
				}
			}
			// Limits replicated since: the follower has none but its configured ones.
			if r, ok := applyCmds(t, leader, &cmdSetLimits{limits: limits})[0].(error); ok {
				t.Fatal(r)
			}
			if r, ok := applyCmds(t, leader, &cmdExpire{chanRef: chanRef{"x", 1}, now: now})[0].(expireResult); !ok || r.removed == 0 {
				t.Fatalf("expiry: %+v", r)
			}
			follower.fetch = func(context.Context, string, uint64, uint64, uint64, func(uint64, []stores.Msg) error) error {
				t.Fatal("fetched: the replica holds every message")
				return nil
			}
			if err := follower.Restore(bytes.NewReader(persist(t, leader))); err != nil {
				t.Fatal(err)
			}
			if l, r := storeDigest(t, leaderStore), storeDigest(t, store); l != r {
				t.Fatalf("restored replica differs from the leader\nleader:\n%s\nreplica:\n%s", l, r)
			}
			// It applies what follows alike.
			for _, m := range []*stateMachine{leader, follower} {
				if r, ok := applyCmds(t, m, &cmdPublish{chanRef: chanRef{"x", 1}, msgs: msgRun(11, 1)})[0].(error); ok {
					t.Fatal(r)
				}
			}
			if l, r := storeDigest(t, leaderStore), storeDigest(t, store); l != r {
				t.Fatalf("replica differs from the leader after a publish\nleader:\n%s\nreplica:\n%s", l, r)
			}
		})
	}
}

// Limits lowered below what exists (a leader configured with fewer max_subs and
// max_channels) remove nothing: the replicas keep the channels and subscriptions they hold.
// A replica restoring a snapshot of that state restores all of them, and counts new ones by
// the lowered limits after. Before, it counted the snapshot's own against them: the
// restore was refused, every time, and the replica never caught up.
func TestRestoreKeepsWhatLoweredLimitsKept(t *testing.T) {
	before := &stores.LimitsSet{Global: stores.DefaultLimits()}
	before.Global.MaxChannels, before.Global.MaxSubs = 10, 10
	lowered := before.Clone()
	lowered.Global.MaxChannels, lowered.Global.MaxSubs = 1, 5
	lowered.Channels = map[string]stores.Limits{"x": {MaxSubs: 1}} // a per-channel entry counts too
	sub := func(ch string, chID, id uint64) *cmdSubscribe {
		return &cmdSubscribe{chanRef: chanRef{ch, chID}, state: stores.SubState{ID: id, ClientID: "c", Inbox: fmt.Sprint("in.", id),
			AckInbox: fmt.Sprint("ack.", id), MaxInFlight: 1, AckWaitSecs: 30}}
	}
	leader, leaderStore := newReplica(t)
	for _, c := range []any{&cmdSetLimits{limits: before}, &cmdCreateChannel{name: "x", id: 1}, &cmdCreateChannel{name: "y", id: 2},
		sub("x", 1, 1), sub("x", 1, 2), &cmdSetLimits{limits: lowered}} {
		if r, ok := applyCmds(t, leader, c)[0].(error); ok {
			t.Fatal(r)
		}
	}
	follower, store := newReplica(t)
	if err := follower.Restore(bytes.NewReader(persist(t, leader))); err != nil {
		t.Fatal(err)
	}
	if l, r := storeDigest(t, leaderStore), storeDigest(t, store); l != r {
		t.Fatalf("restored replica differs from the leader\nleader:\n%s\nreplica:\n%s", l, r)
	}
	for _, m := range []*stateMachine{leader, follower} { // the lowered limits count from now on
		if r := applyCmds(t, m, sub("x", 1, 3), &cmdCreateChannel{name: "z", id: 3}); !errors.Is(r[0].(error), stores.ErrTooManySubs) ||
			!errors.Is(r[1].(error), stores.ErrTooManyChannels) {
			t.Fatalf("a subscription and a channel past the lowered limits: %v", r)
		}
	}
}
