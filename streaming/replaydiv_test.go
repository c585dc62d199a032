package streaming

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/starling-io/starling/proto/stanpb"
	"github.com/starling-io/starling/raftlog"
	"github.com/starling-io/starling/stores"
	"github.com/starling-io/starling/stores/boltstore"
	"github.com/starling-io/starling/stores/filestore"
)

// Replay divergences: a node that restarts replays its raft log (the entries after its last
// snapshot) onto a store that is durable on its own and may already reflect later entries.
// Every command whose outcome depends on state the store holds from a later command could
// then end otherwise on that node than on the others. Each test below applies a log to two
// replicas, restarts one of them (its store closed and opened again, as a clean stop
// leaves it; or the same memory store), replays the whole log, or a snapshot and the rest,
// and requires the two stores to be the same.

// replayStore opens a store of one kind, and opens it again at a restart.
type replayStore struct {
	kind string
	dir  string
	st   stores.Store
}

func openReplayStore(t *testing.T, kind string) *replayStore {
	t.Helper()
	r := &replayStore{kind: kind, dir: t.TempDir()}
	r.open(t)
	if err := r.st.Init(stores.ServerInfo{ClusterID: "replay"}); err != nil {
		t.Fatal(err)
	}
	return r
}

func (r *replayStore) open(t *testing.T) {
	t.Helper()
	var err error
	switch r.kind {
	case "memory":
		r.st = newMemStore(t)
	case "file":
		r.st, err = filestore.Open(r.dir, filestore.Options{})
	case "bolt":
		r.st, err = boltstore.Open(filepath.Join(r.dir, "bolt.db"), boltstore.Options{})
	default:
		t.Fatalf("store kind %q", r.kind)
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = r.st.Close() })
}

// restart closes and opens the store again (memory: the same store, which a memory
// store's node never has after a restart, but which holds what a durable one would).
func (r *replayStore) restart(t *testing.T) {
	t.Helper()
	if r.kind == "memory" {
		return
	}
	if err := r.st.Close(); err != nil {
		t.Fatal(err)
	}
	r.open(t)
}

var replayStoreKinds = []string{"memory", "file", "bolt"}

// checkReplay applies log (one entry per element, each a batch of commands) to a replica
// that never restarts and to one that restarts after the whole log, then — its store holding
// all of it — restores its snapshot taken after entry k (none for k < 0) and replays the
// entries after it. The two must hold the same state.
func checkReplay(t *testing.T, kind string, k int, log [][]any) {
	t.Helper()
	ref := openReplayStore(t, "memory")
	other := newStateMachine(ref.st)
	node := openReplayStore(t, kind)
	first := newStateMachine(node.st)
	var snap []byte
	for i, entry := range log {
		applyCmds(t, other, entry...)
		applyCmds(t, first, entry...)
		if i == k {
			snap = persist(t, first)
		}
	}
	if l, r := storeDigest(t, ref.st), storeDigest(t, node.st); l != r {
		t.Fatalf("before the restart the replicas differ\nother:\n%s\nnode:\n%s", l, r)
	}
	node.restart(t)
	restarted := newStateMachine(node.st)
	if _, err := restarted.recover(); err != nil {
		t.Fatal(err)
	}
	if snap != nil {
		if err := restarted.Restore(bytes.NewReader(snap)); err != nil {
			t.Fatal(err)
		}
	}
	for _, entry := range log[k+1:] {
		applyCmds(t, restarted, entry...)
	}
	if l, r := storeDigest(t, ref.st), storeDigest(t, node.st); l != r {
		t.Fatalf("after the replay the restarted replica differs\nother:\n%s\nrestarted:\n%s", l, r)
	}
}

// forEachReplay runs checkReplay for every store kind, replaying the whole log and from a
// snapshot after each of the entries in snaps.
func forEachReplay(t *testing.T, log [][]any, snaps ...int) {
	for _, kind := range replayStoreKinds {
		for _, k := range append([]int{-1}, snaps...) {
			t.Run(fmt.Sprintf("%s/snapshot_after_%d", kind, k), func(t *testing.T) { checkReplay(t, kind, k, log) })
		}
	}
}

func limitsCmd(l stores.Limits) *cmdSetLimits {
	return &cmdSetLimits{limits: &stores.LimitsSet{Global: l}}
}

func entries(cmds ...any) [][]any {
	out := make([][]any, len(cmds))
	for i, c := range cmds {
		out[i] = []any{c}
	}
	return out
}

func pubAt(ref chanRef, from, n uint64, t0 int64) *cmdPublish {
	msgs := make([]stores.Msg, n)
	for i := range n {
		msgs[i] = stores.Msg{Seq: from + i, Time: t0 + int64(from+i), Data: fmt.Appendf(nil, "m%d", from+i)}
	}
	return &cmdPublish{chanRef: ref, msgs: msgs}
}

// A channel refused for max_channels must stay refused on a node that replays its log onto
// a store holding the channels created later: those fill the store early in the replay, so
// a creation every replica made (S) is refused there, and once another channel (T) is
// deleted, the creation every replica refused (R) finds room. The leader follows the
// refusal with R's deletion (buryRefusedChannel, TestReplayRefusedChannelBuried), which
// every other replica finds missing; without it (log[:6] then S's deletion) the replaying
// node kept R for good.
func TestReplayRefusedChannelNotRevived(t *testing.T) {
	l := stores.DefaultLimits()
	l.MaxChannels = 2
	T, S, E, R := chanRef{"T", 1}, chanRef{"S", 2}, chanRef{"E", 3}, chanRef{"R", 4}
	log := entries(
		limitsCmd(l),
		&cmdCreateChannel{name: T.channel, id: T.chanID},
		&cmdCreateChannel{name: S.channel, id: S.chanID},
		&cmdDeleteChannel{T},
		&cmdCreateChannel{name: E.channel, id: E.chanID},
		&cmdCreateChannel{name: R.channel, id: R.chanID}, // refused: S and E
		&cmdDeleteChannel{R},                             // buryRefusedChannel
		&cmdDeleteChannel{S},
	)
	forEachReplay(t, log, 2, 5)
}

// An expiry pass made under lower MaxMsgs (or MaxBytes) than the channel's later messages
// were appended under removes nothing more on a node that replays it onto a store holding
// those messages. Before, that node trimmed them to the pass's MaxMsgs: it kept 2 messages
// of the 5 every other node holds. The pass names the channel's last sequence when it was
// proposed (2): the store holding 5 holds what it left.
func TestReplayExpiryUnderRaisedLimits(t *testing.T) {
	lo, hi := stores.DefaultLimits(), stores.DefaultLimits()
	lo.MaxMsgs, lo.MaxAge = 2, time.Hour
	hi.MaxMsgs, hi.MaxAge = 5, time.Hour
	A := chanRef{"A", 1}
	t0 := time.Now().UnixNano()
	log := entries(
		limitsCmd(lo),
		&cmdCreateChannel{name: A.channel, id: A.chanID},
		pubAt(A, 1, 2, t0),
		&cmdExpire{chanRef: A, now: t0 + 10, last: 2},
		limitsCmd(hi),
		pubAt(A, 3, 3, t0),
	)
	forEachReplay(t, log, 2)
}

// newLimitedRecordedEngine is newRecordedEngine with limits.
func newLimitedRecordedEngine(t *testing.T, l stores.Limits) (*Server, *recordingLog) {
	t.Helper()
	store := newMemStore(t)
	var rec *recordingLog
	s, err := New(&fakeBus{}, store, func(sm raftlog.StateMachine) (raftlog.Log, error) {
		rec = &recordingLog{Local: raftlog.NewLocal(sm), t: t}
		return rec, nil
	}, Options{Limits: &stores.LimitsSet{Global: l}})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.recover(); err != nil {
		t.Fatal(err)
	}
	return s, rec
}

// replayRecorded replays what leader's log recorded onto leader's store, as a node restarted
// with no snapshot does, and requires the store to end as it was.
func replayRecorded(t *testing.T, leader *Server, rec *recordingLog) {
	t.Helper()
	want := storeDigest(t, leader.store)
	// A restart installs the configured limits (New), and the log the replicated ones.
	if err := leader.store.SetLimits(leader.opts.Limits); err != nil {
		t.Fatal(err)
	}
	restarted := newStateMachine(leader.store)
	if _, err := restarted.recover(); err != nil {
		t.Fatal(err)
	}
	for i, e := range rec.entries {
		cmd, err := restarted.Decode(e.data)
		if err != nil {
			t.Fatal(err)
		}
		restarted.Apply(uint64(i+1), []raftlog.Command{cmd})
	}
	if got := storeDigest(t, leader.store); got != want {
		t.Fatalf("the node that replayed its log differs\nothers:\n%s\nreplayed:\n%s", want, got)
	}
}

// The engine's side of TestReplayRefusedChannelNotRevived: a creation refused for
// max_channels is followed in the log by the refused channel's deletion, so that the node
// replaying its log onto its store removes it again.
func TestReplayRefusedChannelBuried(t *testing.T) {
	l := stores.DefaultLimits()
	l.MaxChannels, l.MaxInactivity = 2, time.Hour
	s, rec := newLimitedRecordedEngine(t, l)
	req := func(kind opKind, m proto.Message) op { return op{kind: kind, data: marshal(m), reply: "r", from: 1} }
	pub := func(ch string) {
		s.step(req(opPublish, &stanpb.PubMsg{ClientID: "c1", Guid: "g" + ch, Subject: ch, Data: []byte(ch)}))
	}
	idle := func(name string) {
		ch := s.channels[name]
		if ch == nil {
			t.Fatalf("no channel %q", name)
		}
		ch.active -= int64(2 * time.Hour)
		s.step(op{kind: opIdle, ch: ch})
		if s.channels[name] != nil {
			t.Fatalf("channel %q not deleted", name)
		}
	}
	s.step(req(opConnect, &stanpb.ConnectRequest{ClientID: "c1", HeartbeatInbox: "hb.c1", Protocol: 1, ConnID: []byte("x")}))
	pub("T")
	pub("S")
	idle("T")
	pub("E")
	n := len(rec.entries)
	pub("R") // refused: S and E
	if s.channels["R"] != nil || len(rec.entries) == n || !rec.entries[n].refused {
		t.Fatal("R not refused for max_channels")
	}
	idle("S")
	replayRecorded(t, s, rec)
}

// The engine's side of TestReplayExpiryUnderRaisedLimits: the expiry pass it proposes names
// the channel's last sequence, and the log replays onto its store without a change after
// the limits were raised and more messages appended.
func TestReplayEngineExpiryUnderRaisedLimits(t *testing.T) {
	lo := stores.DefaultLimits()
	lo.MaxMsgs, lo.MaxAge = 2, time.Hour
	s, rec := newLimitedRecordedEngine(t, lo)
	req := func(kind opKind, m proto.Message) op { return op{kind: kind, data: marshal(m), reply: "r", from: 1} }
	pub := func(i int) {
		s.step(req(opPublish, &stanpb.PubMsg{ClientID: "c1", Guid: fmt.Sprint("g", i), Subject: "A", Data: []byte(fmt.Sprint("m", i))}))
	}
	s.step(req(opConnect, &stanpb.ConnectRequest{ClientID: "c1", HeartbeatInbox: "hb.c1", Protocol: 1, ConnID: []byte("x")}))
	pub(1)
	pub(2)
	s.step(op{kind: opExpire, ch: s.channels["A"]})
	hi := lo
	hi.MaxMsgs = 5
	if _, err := s.proposeAsync(&cmdSetLimits{limits: &stores.LimitsSet{Global: hi}}).Wait(); err != nil {
		t.Fatal(err)
	}
	for i := 3; i <= 5; i++ {
		pub(i)
	}
	if st := s.channels["A"].store.Msgs.State(); st.Msgs != 5 {
		t.Fatalf("A holds %+v, want 5 messages", st)
	}
	replayRecorded(t, s, rec)
}

// The replays below end as the other replicas: kept as evidence that these commands do not
// depend on what the store holds from later ones (each checked at several snapshot points,
// on every store kind).

func storedSub(id uint64, client, inbox string) stores.SubState {
	return stores.SubState{ID: id, ClientID: client, Inbox: inbox, AckInbox: inbox + ".ack", MaxInFlight: 10, AckWaitSecs: 30}
}

func sentAck(ref chanRef, events ...stores.SubEvent) *cmdSentAck {
	return &cmdSentAck{chanRef: ref, events: events}
}

func sent(sub, seq uint64) stores.SubEvent { return stores.SubEvent{SubID: sub, Seq: seq} }
func acked(sub, seq uint64) stores.SubEvent {
	return stores.SubEvent{SubID: sub, Seq: seq, Acked: true}
}

func connectCmd(id, hb string) *cmdConnect {
	return &cmdConnect{info: stores.ClientInfo{ID: id, HbInbox: hb, ConnID: []byte(hb), Protocol: 1}}
}

// A durable subscribed, closed, resumed with another inbox, unsubscribed and subscribed again
// under the same name: the store's later record of it changes nothing in the replay.
func TestReplayDurableResumedClosedUnsubscribed(t *testing.T) {
	A := chanRef{"A", 1}
	t0 := time.Now().UnixNano()
	d1 := storedSub(1, "c", "in1")
	d1.DurableName, d1.IsDurable = "d", true
	closed := d1
	closed.IsClosed, closed.LastSent = true, 3
	resumed := d1
	resumed.Inbox, resumed.AckInbox, resumed.LastSent = "in2", "in2.ack", 3
	d2 := storedSub(2, "c", "in3")
	d2.DurableName, d2.IsDurable = "d", true
	d2closed := d2
	d2closed.IsClosed, d2closed.LastSent = true, 2
	log := entries(
		&cmdCreateChannel{name: A.channel, id: A.chanID},
		connectCmd("c", "hb1"),
		pubAt(A, 1, 5, t0),
		&cmdSubscribe{chanRef: A, state: d1},
		sentAck(A, sent(1, 1), sent(1, 2), sent(1, 3), acked(1, 1)),
		&cmdUpdateSub{chanRef: A, state: closed},
		&cmdDisconnect{clientID: "c"},
		connectCmd("c", "hb2"),
		&cmdUpdateSub{chanRef: A, state: resumed},
		sentAck(A, sent(1, 4), sent(1, 5), acked(1, 2), acked(1, 3), acked(1, 4)),
		&cmdDeleteSub{chanRef: A, id: 1},
		&cmdSubscribe{chanRef: A, state: d2},
		sentAck(A, sent(2, 1), sent(2, 2), acked(2, 1)),
		&cmdUpdateSub{chanRef: A, state: d2closed},
	)
	forEachReplay(t, log, 3, 6, 9, 12)
}

// A client that closes and connects again with the same ID, one replaced by a new connect
// with its ID, and one that goes for good.
func TestReplayClientsReconnectedUnderTheSameID(t *testing.T) {
	log := entries(
		connectCmd("c", "hb1"),
		connectCmd("d", "hb.d"),
		&cmdDisconnect{clientID: "c"},
		connectCmd("c", "hb2"),
		connectCmd("e", "hb.e1"),
		connectCmd("e", "hb.e2"),
		&cmdDisconnect{clientID: "d"},
		&cmdDisconnect{clientID: "c"},
		connectCmd("c", "hb3"),
	)
	forEachReplay(t, log, 1, 3, 5)
}

// Queue members joining and leaving, a durable queue group left to its shadow and joined
// again, under a max_subs that the store's later members would exceed early in the replay
// were any membership refused.
func TestReplayQueueMembershipChanges(t *testing.T) {
	l := stores.DefaultLimits()
	l.MaxSubs = 3
	A := chanRef{"A", 1}
	t0 := time.Now().UnixNano()
	member := func(id uint64, group, inbox string) stores.SubState {
		s := storedSub(id, "c", inbox)
		s.QGroup = group
		if group == "dq:q" {
			s.DurableName, s.IsDurable = "dq", true
		}
		return s
	}
	shadow := member(4, "dq:q", "dq1")
	shadow.IsClosed, shadow.LastSent = true, 2
	log := entries(
		limitsCmd(l),
		&cmdCreateChannel{name: A.channel, id: A.chanID},
		connectCmd("c", "hb"),
		pubAt(A, 1, 4, t0),
		&cmdSubscribe{chanRef: A, state: member(1, "q", "q1")},
		&cmdSubscribe{chanRef: A, state: member(2, "q", "q2")},
		sentAck(A, sent(1, 1), sent(2, 2), acked(1, 1)),
		&cmdDeleteSub{chanRef: A, id: 1},
		sentAck(A, sent(2, 3)),
		&cmdSubscribe{chanRef: A, state: member(3, "q", "q3")},
		&cmdDeleteSub{chanRef: A, id: 2},
		&cmdSubscribe{chanRef: A, state: member(4, "dq:q", "dq1")},
		sentAck(A, sent(4, 1), sent(4, 2)),
		&cmdUpdateSub{chanRef: A, state: shadow},
		&cmdSubscribe{chanRef: A, state: member(5, "dq:q", "dq2")},
		&cmdDeleteSub{chanRef: A, id: 4},
		sentAck(A, sent(5, 1), sent(5, 2), acked(5, 1)),
		&cmdDeleteSub{chanRef: A, id: 3},
		&cmdSubscribe{chanRef: A, state: member(6, "q", "q4")},
	)
	forEachReplay(t, log, 4, 8, 12, 15)
}

// A channel deleted and created again, twice, with messages and subscriptions each time, and
// another deleted for good: every incarnation continues after the last one's sequence on the
// replaying node as on the others, though its store remembers the later deletions.
func TestReplayChannelDeletedAndCreatedAgain(t *testing.T) {
	A1, A2, A3, B := chanRef{"A", 1}, chanRef{"A", 2}, chanRef{"A", 3}, chanRef{"B", 4}
	t0 := time.Now().UnixNano()
	log := entries(
		connectCmd("c", "hb"),
		&cmdCreateChannel{name: "A", id: 1},
		pubAt(A1, 1, 5, t0),
		&cmdSubscribe{chanRef: A1, state: storedSub(1, "c", "a1")},
		sentAck(A1, sent(1, 5)),
		&cmdDeleteChannel{A1},
		&cmdCreateChannel{name: "A", id: 2},
		pubAt(A2, 6, 3, t0),
		&cmdSubscribe{chanRef: A2, state: storedSub(1, "c", "a2")},
		sentAck(A2, sent(1, 6), acked(1, 6), sent(1, 7)),
		&cmdDeleteChannel{A2},
		&cmdCreateChannel{name: "A", id: 3},
		pubAt(A3, 9, 2, t0),
		&cmdSubscribe{chanRef: A3, state: storedSub(1, "c", "a3")},
		sentAck(A3, sent(1, 9)),
		&cmdCreateChannel{name: "B", id: 4},
		pubAt(B, 1, 2, t0),
		&cmdDeleteChannel{B},
	)
	forEachReplay(t, log, 2, 6, 10, 13)
}

// Publishes trimmed by MaxMsgs, then MaxBytes, with the limits raised and lowered between
// them, and an expiry pass under each: the replay appends nothing it holds and trims nothing
// more.
func TestReplayPublishesTrimmedByLimits(t *testing.T) {
	A := chanRef{"A", 1}
	t0 := time.Now().UnixNano()
	msgs3, msgs10, bytes60 := stores.DefaultLimits(), stores.DefaultLimits(), stores.DefaultLimits()
	msgs3.MaxMsgs, msgs10.MaxMsgs, bytes60.MaxBytes = 3, 10, 60
	log := entries(
		limitsCmd(msgs3),
		&cmdCreateChannel{name: A.channel, id: A.chanID},
		pubAt(A, 1, 5, t0),
		&cmdExpire{chanRef: A, now: t0 + 5, last: 5},
		limitsCmd(msgs10),
		pubAt(A, 6, 4, t0),
		&cmdExpire{chanRef: A, now: t0 + 9, last: 9},
		limitsCmd(bytes60),
		pubAt(A, 10, 1, t0),
		&cmdExpire{chanRef: A, now: t0 + 10, last: 10},
		limitsCmd(msgs10),
		pubAt(A, 11, 3, t0),
	)
	forEachReplay(t, log, 2, 5, 8, 10)
}

// TestSkippedExpiryKeepsAgeTimer: an expiry pass the state machine skips (the store holds a
// message past the pass's last sequence) still re-arms the channel's age timer for its
// oldest message, as a pass that ran does. Before, the skipped pass returned no deadline,
// so the channel's MaxAge expiry was no longer scheduled until its next publish.
func TestSkippedExpiryKeepsAgeTimer(t *testing.T) {
	st, ch := memChannel(t)
	t0 := time.Now().UnixNano()
	if err := ch.Msgs.Append([]stores.Msg{{Seq: 1, Time: t0, Data: []byte("a")}}); err != nil {
		t.Fatal(err)
	}
	limits := &stores.LimitsSet{Global: stores.DefaultLimits()}
	limits.Global.MaxAge = time.Hour
	if err := st.SetLimits(limits); err != nil {
		t.Fatal(err)
	}
	s, err := New(&fakeBus{}, st, raftlog.Standalone, Options{Limits: limits})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.recover(); err != nil {
		t.Fatal(err)
	}
	c := s.channels["foo"]
	want := limits.Global.ExpiresAt(t0)
	if c.ageAt != want {
		t.Fatalf("age timer at %d after the restore, want %d", c.ageAt, want)
	}
	// A message the engine did not assign: the pass it proposes now names an earlier last
	// sequence, and Apply skips it.
	if err := ch.Msgs.Append([]stores.Msg{{Seq: 2, Time: t0 + 1, Data: []byte("b")}}); err != nil {
		t.Fatal(err)
	}
	s.step(op{kind: opExpire, ch: c})
	if n := ch.Msgs.State().Msgs; n != 2 {
		t.Fatalf("%d messages after the skipped pass, want 2", n)
	}
	if c.ageAt != want {
		t.Fatalf("age timer at %d after a skipped pass, want %d (the oldest message's expiry)", c.ageAt, want)
	}
}

// expireCountLog is a Local (the engine then runs as replicated: commands travel encoded)
// that counts the expiry passes proposed.
type expireCountLog struct {
	*raftlog.Local
	expires int
}

func (l *expireCountLog) Propose(ctx context.Context, c raftlog.Command) raftlog.Future {
	if _, ok := c.Value.(*cmdExpire); ok {
		l.expires++
	}
	return l.Local.Propose(ctx, c)
}

// TestSkippedExpiryResyncsTheView: a pass skipped because the store holds a message past
// its last sequence — a publish whose proposal failed (a timeout) but that was applied
// after heal had set the channel's view (ch.assigned) from the store — means the engine's
// view is behind: it is resynced from the store as heal does, and the next pass, a
// limitRetryWait later, applies and expires the due messages; then nothing is proposed
// again. Before (218b733), every pass was skipped, re-armed a second later, forever: one
// cmdExpire a second on a channel that got no more publishes, and MaxAge never enforced.
// The same for a trim pass (MaxAge 0, limits lowered under MaxMsgs), which before was not
// even re-armed.
func TestSkippedExpiryResyncsTheView(t *testing.T) {
	for _, tc := range []struct {
		name      string
		maxAge    time.Duration
		maxMsgs   int
		wantLeft  uint64
		wantPass  int
		stepClock bool
	}{
		{name: "MaxAge", maxAge: time.Hour, wantLeft: 0, wantPass: 2, stepClock: true},
		{name: "MaxMsgs", maxMsgs: 1, wantLeft: 1, wantPass: 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			st, ch := memChannel(t)
			t0 := time.Now().UnixNano()
			if err := ch.Msgs.Append([]stores.Msg{{Seq: 1, Time: t0, Data: []byte("a")}}); err != nil {
				t.Fatal(err)
			}
			limits := &stores.LimitsSet{Global: stores.DefaultLimits()}
			limits.Global.MaxAge = tc.maxAge
			if err := st.SetLimits(limits); err != nil {
				t.Fatal(err)
			}
			var cl *expireCountLog
			var logs bytes.Buffer
			s, err := New(&fakeBus{}, st, func(sm raftlog.StateMachine) (raftlog.Log, error) {
				cl = &expireCountLog{Local: raftlog.NewLocal(sm)}
				return cl, nil
			}, Options{Limits: limits, Logger: slog.New(slog.NewTextHandler(&logs, nil))})
			if err != nil {
				t.Fatal(err)
			}
			if err := s.recover(); err != nil {
				t.Fatal(err)
			}
			c := s.channels["foo"]
			defer func() {
				if c.ageTimer != nil {
					c.ageTimer.Stop()
				}
			}()
			if c.assigned != 1 {
				t.Fatalf("assigned %d after the restore, want 1", c.assigned)
			}
			// Applied behind the engine's back: the store is ahead of its view.
			if err := ch.Msgs.Append([]stores.Msg{{Seq: 2, Time: t0 + 1, Data: []byte("b")}, {Seq: 3, Time: t0 + 2, Data: []byte("c")}}); err != nil {
				t.Fatal(err)
			}
			if tc.maxMsgs > 0 { // limits lowered: a trim pass is due
				limits.Global.MaxMsgs = tc.maxMsgs
				if err := st.SetLimits(limits); err != nil {
					t.Fatal(err)
				}
				c.limits.MaxMsgs = tc.maxMsgs
			}
			if tc.stepClock {
				s.clock.step.Add(int64(2 * tc.maxAge)) // every message is due
			}
			before := cl.expires
			s.step(op{kind: opExpire, ch: c}) // skipped: its last (1) is behind the store (3)
			if n := ch.Msgs.State().Msgs; n != 3 {
				t.Fatalf("%d messages after the first pass, want 3 (skipped)", n)
			}
			// The timer fires as long as the channel is armed (at most 5 times here).
			for i := 0; i < 5 && c.ageAt != 0; i++ {
				if wait := time.Duration(c.ageAt - s.clock.chanNow(&c.clock)); wait > limitRetryWait {
					t.Fatalf("pass %d armed %v ahead, want at most %v", i+2, wait, limitRetryWait)
				}
				s.step(op{kind: opExpire, ch: c})
			}
			if n := ch.Msgs.State().Msgs; n != tc.wantLeft {
				t.Fatalf("%d messages left after the passes, want %d", n, tc.wantLeft)
			}
			if n := cl.expires - before; n != tc.wantPass || c.ageAt != 0 {
				t.Fatalf("%d passes proposed, armed at %d; want %d and nothing armed", n, c.ageAt, tc.wantPass)
			}
			if c.assigned != 3 {
				t.Fatalf("assigned %d, want 3 (the store's last)", c.assigned)
			}
			if got := strings.Count(logs.String(), "behind its store"); got != 1 {
				t.Fatalf("%d lines about the view behind the store, want 1:\n%s", got, logs.String())
			}
		})
	}
}
