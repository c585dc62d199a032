package streaming

import (
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
