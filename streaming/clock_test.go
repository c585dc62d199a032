package streaming

import (
	"slices"
	"testing"
	"time"

	"github.com/starling-io/starling/proto/stanpb"
	"github.com/starling-io/starling/raftlog"
	"github.com/starling-io/starling/stores"
	"github.com/starling-io/starling/stores/memstore"
)

// clockEngine is an engine with client c1 and a subscriber on foo (inbox "in", max in
// flight 1) whose ack wait is ackWait, over a store with limits.
func clockEngine(t *testing.T, limits *stores.LimitsSet, ackWait time.Duration) (*Server, *recBus, *subState) {
	t.Helper()
	st, err := memstore.New(memstore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	bus := &recBus{}
	s, err := New(bus, st, raftlog.Standalone, Options{Limits: limits})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.recover(); err != nil {
		t.Fatal(err)
	}
	s.step(op{kind: opConnect, reply: "r", data: marshal(&stanpb.ConnectRequest{ClientID: "c1", HeartbeatInbox: "hb", Protocol: 1, ConnID: []byte("conn")})})
	s.step(op{kind: opSubscribe, reply: "r", data: marshal(&stanpb.SubscriptionRequest{ClientID: "c1", Subject: "foo", Inbox: "in",
		MaxInFlight: 1, AckWaitInSecs: 1, StartPosition: stanpb.StartPosition_NewOnly})})
	sub := s.findByInbox(s.channels["foo"], "in")
	if sub == nil || !sub.ready {
		t.Fatal("setup: not subscribed")
	}
	sub.ackWait = ackWait // below the protocol's second, to keep the test short
	t.Cleanup(func() { stopTimers(sub) })
	return s, bus, sub
}

// TestClockStepBackRedeliversOnTime: a message sent, then the system clock stepped back an
// hour, is redelivered when its ack wait runs out, and once acked the next message flows.
// Before (deadlines compared with time.Now), it waited for the clock to come back: an hour
// more, the subscriber at max in flight getting nothing meanwhile.
func TestClockStepBackRedeliversOnTime(t *testing.T) {
	const ackWait = 300 * time.Millisecond
	s, bus, sub := clockEngine(t, nil, ackWait)
	publishTo(s, "foo", 1)
	sent := time.Now()
	publishTo(s, "foo", 2) // waits: max in flight reached
	if n := bus.count("in"); n != 1 {
		t.Fatalf("setup: %d deliveries, want 1", n)
	}
	StepClock(s, -time.Hour)
	pumpUntil(t, s, "not redelivered after the clock stepped back", func() bool { return bus.count("in") == 2 })
	if took := time.Since(sent); took > 3*ackWait {
		t.Fatalf("redelivered %v after the send, want about the ack wait (%v)", took, ackWait)
	}
	s.step(op{kind: opAck, ack: sub.ack, seq: 1})
	if n := bus.count("in"); n != 3 || !sub.pending.Has(2) {
		t.Fatalf("after the ack: %d deliveries, seq 2 pending %v; want the next message sent", n, sub.pending.Has(2))
	}
}

// TestClockStepForwardKeepsAckWait: of two messages sent half an ack wait apart, then the
// system clock stepped an hour forward, each is redelivered one ack wait after its send.
// Before (deadlines were engine wall times), the pass for the first message found the
// second an hour overdue and resent it too, half an ack wait after its send. An ack wait of
// 1 s: the first pass may run up to half of it, less redeliverSlack, late (a loaded machine
// under -race) before the second is due in it.
func TestClockStepForwardKeepsAckWait(t *testing.T) {
	const ackWait = time.Second
	s, bus, sub := clockEngine(t, nil, ackWait)
	sub.maxInFlight = 2
	publishTo(s, "foo", 1)
	time.Sleep(ackWait / 2)
	publishTo(s, "foo", 2)
	sent := time.Now()
	StepClock(s, time.Hour)
	if n := bus.count("in"); n != 2 {
		t.Fatalf("setup: %d deliveries, want 2", n)
	}
	pumpUntil(t, s, "seq 1 not redelivered", func() bool { return bus.count("in") >= 3 })
	if p, _ := sub.pending.Get(2); p.count != 0 {
		t.Fatalf("seq 2 redelivered %v after its send, with seq 1; want one ack wait (%v) after", time.Since(sent), ackWait)
	}
	pumpUntil(t, s, "seq 2 not redelivered", func() bool { return bus.count("in") == 4 })
	if took := time.Since(sent); took < ackWait-redeliverSlack {
		t.Fatalf("seq 2 redelivered %v after its send, want the ack wait (%v)", took, ackWait)
	}
}

// TestClockStepBackExpiresOnTime: MaxAge keeps expiring messages when the system clock
// steps back. Before, the expiry pass compared message times with the stepped clock, and
// removed nothing for an hour more.
func TestClockStepBackExpiresOnTime(t *testing.T) {
	const maxAge = 300 * time.Millisecond
	limits := &stores.LimitsSet{Global: stores.DefaultLimits()}
	limits.Global.MaxAge = maxAge
	s, _, _ := clockEngine(t, limits, time.Second)
	ch := s.channels["foo"]
	publishTo(s, "foo", 1)
	stored := time.Now()
	StepClock(s, -time.Hour)
	pumpUntil(t, s, "not expired after the clock stepped back", func() bool { return ch.store.Msgs.State().Msgs == 0 })
	if took := time.Since(stored); took > 3*maxAge {
		t.Fatalf("expired %v after the publish, want about MaxAge (%v)", took, maxAge)
	}
	if ch.ageTimer != nil {
		ch.ageTimer.Stop()
	}
}

// TestRestoredDeadlineAheadIsDueWithinAckWait: a restored pending message stamped by a
// clock an hour ahead of this node's (a former leader's, or this node's own before its
// clock stepped back while it was down) is redelivered one ack wait after the restart, not
// an hour later, as it was before.
func TestRestoredDeadlineAheadIsDueWithinAckWait(t *testing.T) {
	st, ch := memChannel(t)
	ahead := time.Now().Add(time.Hour).UnixNano()
	if err := ch.Msgs.Append([]stores.Msg{{Seq: 1, Time: ahead, Data: []byte("x")}}); err != nil {
		t.Fatal(err)
	}
	if err := st.AddClient(stores.ClientInfo{ID: "c1", HbInbox: "hb"}); err != nil {
		t.Fatal(err)
	}
	ss := stores.SubState{ID: 1, ClientID: "c1", DurableName: "d", IsDurable: true, Inbox: "in", MaxInFlight: 1, AckWaitSecs: 1, LastSent: 1}
	if err := ch.Subs.CreateSub(&ss); err != nil {
		t.Fatal(err)
	}
	record(t, ch, 1, 1)
	bus := &recBus{}
	s, err := New(bus, st, raftlog.Standalone, Options{})
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	if err := s.recover(); err != nil {
		t.Fatal(err)
	}
	var sub *subState
	for sb := range s.channels["foo"].subs {
		sub = sb
	}
	if sub == nil || !sub.pending.Has(1) {
		t.Fatal("setup: seq 1 not pending after the restart")
	}
	t.Cleanup(func() { stopTimers(sub) })
	pumpUntil(t, s, "a restored message stamped an hour ahead was not redelivered", func() bool { return bus.count("in") == 1 })
	if took := time.Since(start); took > 2*sub.ackWait {
		t.Fatalf("redelivered %v after the restart, want within the ack wait (%v)", took, sub.ackWait)
	}
}

// TestClockStepForwardAndBackStampsNearWall: after the system clock stepped an hour forward
// and back again, a channel stamped meanwhile keeps its timestamps in order, and any other
// is stamped with the wall time. Before, the engine's one never-back clock stamped every
// message an hour ahead until real time caught up.
func TestClockStepForwardAndBackStampsNearWall(t *testing.T) {
	s, _, _ := clockEngine(t, nil, time.Second)
	StepClock(s, time.Hour)
	publishTo(s, "bar", 1)
	StepClock(s, -time.Hour)
	publishTo(s, "foo", 2)
	publishTo(s, "bar", 3)
	stamp := func(channel string, seq uint64) time.Time {
		var m stores.Msg
		if err := s.channels[channel].store.Msgs.Load(seq, &m); err != nil {
			t.Fatalf("%s seq %d: %v", channel, seq, err)
		}
		return time.Unix(0, m.Time)
	}
	if d := time.Since(stamp("foo", 1)); d < -time.Second || d > time.Second {
		t.Fatalf("foo stamped %v from now, want the wall time", -d)
	}
	if b1, b2 := stamp("bar", 1), stamp("bar", 2); b2.Before(b1) {
		t.Fatalf("bar's timestamps went back by %v", b1.Sub(b2))
	}
}

// TestRestoredStampAheadExpiresOnTime: messages stamped an hour ahead of this node's clock
// (by a former leader's) expire MaxAge after the restart or takeover, on the channel's
// clock raised to their timestamps, and a new message is stamped after them. Before, they
// expired an hour late: MaxAge was measured from this node's wall time.
func TestRestoredStampAheadExpiresOnTime(t *testing.T) {
	const maxAge = 300 * time.Millisecond
	st, ch := memChannel(t)
	ahead := time.Now().Add(time.Hour).UnixNano()
	if err := ch.Msgs.Append([]stores.Msg{{Seq: 1, Time: ahead, Data: []byte("x")}}); err != nil {
		t.Fatal(err)
	}
	limits := &stores.LimitsSet{Global: stores.DefaultLimits()}
	limits.Global.MaxAge = maxAge
	s, err := New(&recBus{}, st, raftlog.Standalone, Options{Limits: limits})
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	if err := s.recover(); err != nil {
		t.Fatal(err)
	}
	s.step(op{kind: opConnect, reply: "r", data: marshal(&stanpb.ConnectRequest{ClientID: "c1", HeartbeatInbox: "hb", Protocol: 1, ConnID: []byte("conn")})})
	publishTo(s, "foo", 1)
	var m stores.Msg
	if err := ch.Msgs.Load(2, &m); err != nil || m.Time < ahead {
		t.Fatalf("the new message stamped %v before the restored one (%v)", time.Duration(ahead-m.Time), err)
	}
	fc := s.channels["foo"]
	t.Cleanup(func() {
		if fc.ageTimer != nil {
			fc.ageTimer.Stop()
		}
	})
	pumpUntil(t, s, "messages stamped an hour ahead did not expire", func() bool { return ch.Msgs.State().Msgs == 0 })
	if took := time.Since(start); took > 3*maxAge {
		t.Fatalf("expired %v after the restart, want about MaxAge (%v)", took, maxAge)
	}
}

// clampExpiries keeps the deadlines up to at, makes the later ones of pending messages due
// at at in their order, and drops the entries of acked or re-queued messages.
func TestClampExpiries(t *testing.T) {
	sub := &subState{}
	for seq, at := range map[uint64]int64{1: 10, 2: 50, 3: 60, 4: 70} {
		sub.pending.Set(seq, pendingMsg{expiry: at})
	}
	for _, e := range []expiry{{1, 10}, {2, 20}, {2, 50}, {5, 55}, {3, 60}, {4, 70}} { // {2 20} re-queued, 5 acked
		sub.expPush(e)
	}
	sub.expPop() // seq 1 handled
	sub.clampExpiries(30)
	want := []expiry{{2, 20}, {2, 30}, {3, 30}, {4, 30}}
	if got := sub.expiries[sub.expHead:]; !slices.Equal(got, want) {
		t.Fatalf("deadlines %v, want %v", got, want)
	}
	for seq := uint64(2); seq <= 4; seq++ {
		if p, _ := sub.pending.Get(seq); p.expiry != 30 {
			t.Fatalf("seq %d due at %d, want 30", seq, p.expiry)
		}
	}
}

// A deaf subscription just restored is looked at again after half the time since the
// restore: a reconnecting client waits at most half again its own delay, and the passes
// over the grace period stay near a dozen (one every 100 ms was a hundred).
func TestRestoredLookAgainBacksOff(t *testing.T) {
	passes := 0
	for since := time.Duration(0); since < restoredGrace; since += restoredLookAgain(since, time.Minute) {
		passes++
	}
	if passes > 16 {
		t.Fatalf("%d passes in the grace period, want a dozen or so", passes)
	}
	for _, c := range []struct{ since, ackWait, want time.Duration }{
		{0, time.Minute, restoredRetry},
		{-time.Second, time.Minute, restoredRetry}, // before restoredDue
		{time.Second, time.Minute, 500 * time.Millisecond},
		{8 * time.Second, time.Second, time.Second}, // never past an ack wait
		{0, 10 * time.Millisecond, restoredRetry},
	} {
		if got := restoredLookAgain(c.since, c.ackWait); got != c.want {
			t.Errorf("restoredLookAgain(%v, %v) = %v, want %v", c.since, c.ackWait, got, c.want)
		}
	}
}
