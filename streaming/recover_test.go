package streaming

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/starling-io/starling/proto/stanpb"
	"github.com/starling-io/starling/raftlog"
	"github.com/starling-io/starling/stores"
	"github.com/starling-io/starling/stores/memstore"
)

// memChannel returns a memory store initialised as a previous run left it, holding the
// channel foo (ID 1).
func memChannel(t *testing.T) (stores.Store, *stores.Channel) {
	t.Helper()
	st, err := memstore.New(memstore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := st.Init(stores.ServerInfo{ClusterID: DefaultClusterID, NodeID: "node"}); err != nil {
		t.Fatal(err)
	}
	ch, err := st.CreateChannel("foo", 1)
	if err != nil {
		t.Fatal(err)
	}
	return st, ch
}

// restoredEngine builds a server over a store prepared by fill (as a previous run left
// it) and restores from it.
func restoredEngine(t *testing.T, clean bool, fill func(st stores.Store, ch *stores.Channel)) *Server {
	t.Helper()
	st, ch := memChannel(t)
	msgs := make([]stores.Msg, 10)
	for i := range msgs {
		msgs[i] = stores.Msg{Seq: uint64(i + 1), Time: int64(i + 1), Data: []byte("x")}
	}
	if err := ch.Msgs.Append(msgs); err != nil {
		t.Fatal(err)
	}
	fill(st, ch)
	s, err := New(&fakeBus{}, &cleanStore{Store: st, clean: clean}, raftlog.Standalone, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.recover(); err != nil {
		t.Fatal(err)
	}
	return s
}

// cleanStore reports Clean as told (the memory store never survives a restart).
type cleanStore struct {
	stores.Store
	clean bool
}

func (c *cleanStore) Recover() (*stores.RecoveredState, error) {
	rs, err := c.Store.Recover()
	if rs != nil {
		rs.Clean = c.clean
	}
	return rs, err
}

func record(t *testing.T, ch *stores.Channel, id uint64, sent ...uint64) {
	t.Helper()
	var evs []stores.SubEvent
	for _, seq := range sent {
		evs = append(evs, stores.SubEvent{SubID: id, Seq: seq})
	}
	if err := ch.Subs.Record(evs); err != nil {
		t.Fatal(err)
	}
}

// A durable queue group stored with several members whose clients are gone comes back as
// one offline shadow holding every member's pending messages (not only the last one's),
// and the move is recorded in the store; the next member to join gets them all.
func TestRestoreMergesOfflineQueueMembers(t *testing.T) {
	s := restoredEngine(t, true, func(st stores.Store, ch *stores.Channel) {
		for id, sent := range map[uint64][]uint64{1: {1, 3, 5}, 2: {2, 4, 6}, 3: {7}} {
			sub := stores.SubState{ID: id, ClientID: "gone", QGroup: "grp", DurableName: "dq", IsDurable: true,
				Inbox: "in", MaxInFlight: 100, AckWaitSecs: 30}
			if err := ch.Subs.CreateSub(&sub); err != nil {
				t.Fatal(err)
			}
			record(t, ch, id, sent...)
		}
	})
	ch := s.channels["foo"]
	g := ch.queues[queueID{key: "dq:grp"}]
	if g == nil || g.shadow == nil || len(g.members) != 0 {
		t.Fatalf("group after restore: %+v", g)
	}
	got := sortedPending(g.shadow)
	if !slices.Equal(got, []uint64{1, 2, 3, 4, 5, 6, 7}) || g.lastSent != 7 {
		t.Fatalf("shadow pending %v, group position %d", got, g.lastSent)
	}
	subs, _ := ch.store.Subs.Subs()
	if len(subs) != 1 || !slices.Equal(subs[0].Pending, got) || !subs[0].State.IsClosed {
		t.Fatalf("store after restore: %+v", subs)
	}
}

// A queue member whose client is gone hands its pending messages to the members whose
// client is there, and the store says so.
func TestRestoreHandsOrphanedPendingToMembers(t *testing.T) {
	s := restoredEngine(t, true, func(st stores.Store, ch *stores.Channel) {
		if err := st.AddClient(stores.ClientInfo{ID: "here", HbInbox: "hb"}); err != nil {
			t.Fatal(err)
		}
		for id, client := range map[uint64]string{1: "here", 2: "gone"} {
			sub := stores.SubState{ID: id, ClientID: client, QGroup: "grp", Inbox: "in", MaxInFlight: 100, AckWaitSecs: 30}
			if err := ch.Subs.CreateSub(&sub); err != nil {
				t.Fatal(err)
			}
		}
		record(t, ch, 1, 1, 3)
		record(t, ch, 2, 2, 4)
	})
	g := s.channels["foo"].queues[queueID{key: "grp"}]
	if g == nil || len(g.members) != 1 {
		t.Fatalf("group after restore: %+v", g)
	}
	if got := sortedPending(g.members[0]); !slices.Equal(got, []uint64{1, 2, 3, 4}) {
		t.Fatalf("member pending %v", got)
	}
	subs, _ := s.channels["foo"].store.Subs.Subs()
	if len(subs) != 1 || subs[0].State.ID != 1 || !slices.Equal(subs[0].Pending, []uint64{1, 2, 3, 4}) {
		t.Fatalf("store after restore: %+v", subs)
	}
}

// After a crash, every message past a subscription's recovered position is flagged when
// first sent (its "sent" record may have been lost); after a clean stop, none is.
func TestRestoreFlagsUncertainDeliveriesAfterCrash(t *testing.T) {
	for _, clean := range []bool{false, true} {
		s := restoredEngine(t, clean, func(st stores.Store, ch *stores.Channel) {
			if err := st.AddClient(stores.ClientInfo{ID: "c", HbInbox: "hb"}); err != nil {
				t.Fatal(err)
			}
			sub := stores.SubState{ID: 1, ClientID: "c", DurableName: "d", IsDurable: true, Inbox: "in", MaxInFlight: 100, AckWaitSecs: 30}
			if err := ch.Subs.CreateSub(&sub); err != nil {
				t.Fatal(err)
			}
			record(t, ch, 1, 1, 2, 3)
			if err := ch.Subs.Record([]stores.SubEvent{{SubID: 1, Seq: 1, Acked: true}, {SubID: 1, Seq: 2, Acked: true}, {SubID: 1, Seq: 3, Acked: true}}); err != nil {
				t.Fatal(err)
			}
		})
		var sub *subState
		for sb := range s.channels["foo"].subs {
			sub = sb
		}
		s.sendAvailable(sub)
		for seq := uint64(4); seq <= 10; seq++ {
			p, ok := sub.pending.Get(seq)
			if !ok || (p.count > 0) == clean {
				t.Fatalf("clean=%v: seq %d sent %v with count %d", clean, seq, ok, p.count)
			}
		}
	}
}

// TestRestoredForeignAckInboxes: subscriptions restored with ack inboxes another server
// handed out keep working — the server listens under another Starling's prefix with a
// wildcard, and on a single-token inbox of nats-streaming-server's (a migrated store)
// exactly, never on "_INBOX.*", which would take in every delivery to such inboxes.
func TestRestoredForeignAckInboxes(t *testing.T) {
	nssInbox := "_INBOX.ABCDEFGHIJKLMNOPQRSTUV"
	otherInbox := "_INBOX.otherserver.abcdefghijklmnopqrstuv"
	bus := &dataBus{}
	s := restoredEngine(t, true, func(st stores.Store, ch *stores.Channel) {
		if err := st.AddClient(stores.ClientInfo{ID: "c1", HbInbox: "hb"}); err != nil {
			t.Fatal(err)
		}
		for id, ack := range map[uint64]string{1: nssInbox, 2: otherInbox} {
			sub := stores.SubState{ID: id, ClientID: "c1", Inbox: "in", AckInbox: ack, DurableName: "d" + ack[len(ack)-1:],
				IsDurable: true, MaxInFlight: 100, AckWaitSecs: 30, LastSent: 2}
			if err := ch.Subs.CreateSub(&sub); err != nil {
				t.Fatal(err)
			}
			record(t, ch, id, 1, 2)
		}
	})
	s.bus = bus
	if err := s.serve(true); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{nssInbox, "_INBOX.otherserver.*", s.ackPrefix + ".*"} {
		if !slices.Contains(bus.subscribed, want) {
			t.Errorf("not subscribed to %q: %q", want, bus.subscribed)
		}
	}
	if slices.Contains(bus.subscribed, "_INBOX.*") {
		t.Fatalf("subscribed to _INBOX.*: %q", bus.subscribed)
	}
	for _, inbox := range []string{nssInbox, otherInbox} {
		key, ok := parseAckKey([]byte(inbox))
		sub := s.byAckID[key]
		if !ok || sub == nil || sub.ackInbox != inbox {
			t.Fatalf("no subscription found by the ack inbox %q", inbox)
		}
		s.step(op{kind: opAck, ack: key, seq: 1, from: 1})
		if sub.pending.Has(1) {
			t.Errorf("an ack on %q did not count", inbox)
		}
	}
}

// agedStore is a memory store holding n messages on channel foo that passed its MaxAge (an
// hour) an hour ago, with those limits set as Start sets them.
func agedStore(t *testing.T, n int) (stores.Store, *stores.LimitsSet) {
	t.Helper()
	st, ch := memChannel(t)
	old := time.Now().Add(-2 * time.Hour).UnixNano()
	var msgs []stores.Msg
	for i := range n {
		msgs = append(msgs, stores.Msg{Seq: uint64(i + 1), Time: old + int64(i), Data: []byte("old")})
	}
	if err := ch.Msgs.Append(msgs); err != nil {
		t.Fatal(err)
	}
	limits := &stores.LimitsSet{Global: stores.DefaultLimits()}
	limits.Global.MaxAge = time.Hour
	if err := st.SetLimits(limits); err != nil {
		t.Fatal(err)
	}
	return st, limits
}

// TestRestoreExpiresAgedMessages: messages that passed MaxAge while the server was down are
// removed once it runs, without waiting for a publish to arm the age timer.
func TestRestoreExpiresAgedMessages(t *testing.T) {
	st, limits := agedStore(t, 2)
	s, err := New(&fakeBus{}, st, raftlog.Standalone, Options{Limits: limits})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.recover(); err != nil {
		t.Fatal(err)
	}
	pumpUntil(t, s, "messages older than MaxAge still held after the restart", func() bool {
		return s.channels["foo"].store.Msgs.State().Msgs == 0
	})
}

// TestRestoreSendsNothingAged: messages that passed MaxAge while the server was down are
// never sent after the restart — neither by the first deliveries Start makes before the
// engine runs (a subscription whose client is still connected, through an external NATS
// server or another node of a cluster, and whose position is behind after a crash) nor as
// redeliveries of what was pending. Before, restore only armed the age timer, so Start's
// deliverAll sent them, and a pending message's redelivery could run before the expiry.
func TestRestoreSendsNothingAged(t *testing.T) {
	st, limits := agedStore(t, 10)
	if err := st.AddClient(stores.ClientInfo{ID: "c", HbInbox: "hb"}); err != nil {
		t.Fatal(err)
	}
	rs, err := st.Recover()
	if err != nil {
		t.Fatal(err)
	}
	ch := rs.Channels[0].Channel
	sub := stores.SubState{ID: 1, ClientID: "c", DurableName: "d", IsDurable: true, Inbox: "in", MaxInFlight: 100, AckWaitSecs: 1}
	if err := ch.Subs.CreateSub(&sub); err != nil {
		t.Fatal(err)
	}
	record(t, ch, 1, 1, 2, 3) // 1 to 3 sent, not acknowledged; 4 to 10 never sent
	bus := &fakeBus{}
	s, err := New(bus, &cleanStore{Store: st, clean: false}, raftlog.Standalone, Options{Limits: limits})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.recover(); err != nil {
		t.Fatal(err)
	}
	s.deliverAll() // as Start does, before the engine runs
	var rsub *subState
	for sb := range s.channels["foo"].subs {
		rsub = sb
	}
	pumpUntil(t, s, "messages older than MaxAge still pending after the restart", func() bool {
		return rsub.pending.Len() == 0
	})
	if bus.published != 0 {
		t.Fatalf("%d messages older than MaxAge sent after the restart", bus.published)
	}
}

// pumpUntil runs the ops s's timers queue, on this goroutine, until done holds; it fails
// with what after 5 s.
func pumpUntil(t *testing.T, s *Server, what string, done func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !done() {
		select {
		case <-s.q.Ready():
			for _, o := range s.q.Pop(nil) {
				s.step(o)
			}
		case <-time.After(time.Until(deadline)):
			t.Fatal(what)
		}
	}
}

// refuseLog is a Local that refuses the first n proposals holding a command that match
// selects, as a replica that lost its majority for a moment would.
type refuseLog struct {
	*raftlog.Local
	n     int
	match func(cmd any) bool
}

func (l *refuseLog) refuse(cs []raftlog.Command) bool {
	for _, c := range cs {
		if l.match(c.Value) && l.n > 0 {
			l.n--
			return true
		}
	}
	return false
}

func (l *refuseLog) Propose(ctx context.Context, c raftlog.Command) raftlog.Future {
	if l.refuse([]raftlog.Command{c}) {
		return raftlog.Refused(raftlog.ErrTimeout)
	}
	return l.Local.Propose(ctx, c)
}

func (l *refuseLog) ProposeBatch(ctx context.Context, cs []raftlog.Command) raftlog.Future {
	if l.refuse(cs) {
		return raftlog.Refused(raftlog.ErrTimeout)
	}
	return l.Local.ProposeBatch(ctx, cs)
}

// TestRefusedExpiryIsTriedAgain: an expiry whose proposal fails is tried again
// limitRetryWait later; before, nothing but the next publish on the channel armed it again.
func TestRefusedExpiryIsTriedAgain(t *testing.T) {
	st, limits := agedStore(t, 1)
	rl := &refuseLog{n: 1, match: func(c any) bool { _, ok := c.(*cmdExpire); return ok }}
	s, err := New(&fakeBus{}, st, func(sm raftlog.StateMachine) (raftlog.Log, error) {
		rl.Local = raftlog.NewLocal(sm)
		return rl, nil
	}, Options{Limits: limits})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.recover(); err != nil {
		t.Fatal(err)
	}
	pumpUntil(t, s, "the refused expiry was not tried again", func() bool {
		return s.channels["foo"].store.Msgs.State().Msgs == 0
	})
	if rl.n != 0 {
		t.Fatal("no expiry was refused")
	}
}

// TestRefusedStartTrimIsTriedAgain: the trim at start of a channel over MaxMsgs, whose
// proposal fails, is tried again limitRetryWait later also without MaxAge; before, the
// retry was armed on the age timer, which a channel without MaxAge never runs, so the
// channel kept what the limits dropped until its next publish.
func TestRefusedStartTrimIsTriedAgain(t *testing.T) {
	st, limits := agedStore(t, 10)
	limits.Global.MaxAge, limits.Global.MaxMsgs = 0, 3
	if err := st.SetLimits(limits); err != nil {
		t.Fatal(err)
	}
	rl := &refuseLog{n: 1, match: func(c any) bool { _, ok := c.(*cmdExpire); return ok }}
	s, err := New(&fakeBus{}, st, func(sm raftlog.StateMachine) (raftlog.Log, error) {
		rl.Local = raftlog.NewLocal(sm)
		return rl, nil
	}, Options{Limits: limits})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.recover(); err != nil {
		t.Fatal(err)
	}
	pumpUntil(t, s, "the refused trim at start was not tried again", func() bool {
		return s.channels["foo"].store.Msgs.State().Msgs == 3
	})
	if rl.n != 0 {
		t.Fatal("no trim was refused")
	}
}

// TestRefusedIdleDeletionIsTriedAgain: an inactive channel whose deletion's proposal fails
// is deleted limitRetryWait later; before, only new activity armed its timer again.
func TestRefusedIdleDeletionIsTriedAgain(t *testing.T) {
	st, err := memstore.New(memstore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	limits := &stores.LimitsSet{Global: stores.DefaultLimits()}
	limits.Global.MaxInactivity = 100 * time.Millisecond
	if err := st.SetLimits(limits); err != nil {
		t.Fatal(err)
	}
	rl := &refuseLog{n: 1, match: func(c any) bool { _, ok := c.(*cmdDeleteChannel); return ok }}
	s, err := New(&fakeBus{}, st, func(sm raftlog.StateMachine) (raftlog.Log, error) {
		rl.Local = raftlog.NewLocal(sm)
		return rl, nil
	}, Options{Limits: limits})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.recover(); err != nil {
		t.Fatal(err)
	}
	s.step(op{kind: opConnect, reply: "r", data: marshal(&stanpb.ConnectRequest{ClientID: "c1", HeartbeatInbox: "hb", Protocol: 1, ConnID: []byte("conn")})})
	publish(s, 1)
	if s.channels["foo"] == nil {
		t.Fatal("no channel")
	}
	pumpUntil(t, s, "the inactive channel whose deletion was refused was not deleted", func() bool {
		return s.channels["foo"] == nil
	})
	if rl.n != 0 {
		t.Fatal("no deletion was refused")
	}
}

// TestRestoreEnforcesCountLimits: a channel holding more messages or bytes than MaxMsgs or
// MaxBytes allow (limits lowered while the server was down, or a store imported from nss)
// is trimmed once the server runs, not only at the next publish: until then a new
// subscriber would be sent messages the limits dropped.
func TestRestoreEnforcesCountLimits(t *testing.T) {
	for name, set := range map[string]func(l *stores.Limits){
		"MaxMsgs":  func(l *stores.Limits) { l.MaxMsgs = 3 },
		"MaxBytes": func(l *stores.Limits) { l.MaxMsgs, l.MaxBytes = 0, 1 },
	} {
		t.Run(name, func(t *testing.T) {
			st, limits := agedStore(t, 10)
			limits.Global.MaxAge = 0
			set(&limits.Global)
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
			pumpUntil(t, s, "messages over the limits still held after the restart", func() bool {
				state := s.channels["foo"].store.Msgs.State()
				return state.Msgs == uint64(max(limits.Global.MaxMsgs, 1)) && state.Last == 10
			})
		})
	}
}
