package streaming

import (
	"testing"
	"time"

	"github.com/starling-io/starling/proto/stanpb"
)

// A subscription whose destination is backlogged (Bus.Backlogged) is sent at most
// backlogBytes more — the rest of its messages wait in the channel — until opRetryHeld finds
// the backlog read; then it gets them all, in order.
func TestBackloggedDestinationHoldsDeliveries(t *testing.T) {
	s, bus, _ := newPipelinedEngine(t, nil)
	bus.backlog = map[string]bool{"in": true}
	data := make([]byte, 16<<10)
	for i := 1; i <= 50; i++ {
		publishData(s, i, data)
	}
	s.waitCommits(0)
	if n, most := bus.count("in")-1, backlogBytes/len(data)+1; n > most {
		t.Fatalf("%d deliveries after the destination was backlogged, want at most %d (backlogBytes)", n, most)
	}
	if len(s.held) != 1 || s.heldTimer == nil {
		t.Fatalf("held %d subscriptions, timer %v", len(s.held), s.heldTimer != nil)
	}
	before := bus.count("in")
	s.step(op{kind: opRetryHeld}) // still backlogged: held again at once
	if n := bus.count("in"); n != before || len(s.held) != 1 {
		t.Fatalf("%d deliveries, %d held while still backlogged", n-before, len(s.held))
	}
	bus.backlog["in"] = false
	s.heldTimer.Stop()
	s.step(op{kind: opRetryHeld})
	if n := bus.count("in"); n != 51 || len(s.held) != 0 {
		t.Fatalf("%d deliveries after the backlog was read (want 51), %d held", n, len(s.held))
	}
}

// In a queue group, a member whose destination is backlogged is passed over: the others
// get its share.
func TestBackloggedQueueMemberPassedOver(t *testing.T) {
	s, bus, _ := newPipelinedEngine(t, nil)
	for _, inbox := range []string{"q1", "q2"} {
		s.step(op{kind: opSubscribe, reply: "r", data: marshal(&stanpb.SubscriptionRequest{ClientID: "c1", Subject: "foo", QGroup: "g",
			Inbox: inbox, MaxInFlight: 1 << 20, AckWaitInSecs: 30})})
	}
	bus.backlog = map[string]bool{"q1": true}
	for i := 1; i <= 40; i++ {
		publish(s, i)
	}
	s.waitCommits(0)
	if q1, q2 := bus.count("q1"), bus.count("q2"); q1 != 0 || q2 != 40 {
		t.Fatalf("q1 (backlogged) got %d, q2 %d; want 0 and 40", q1, q2)
	}
	s.heldTimer.Stop()
}

// A redelivery due while the destination is backlogged is not sent: it is tried again
// retrySendsAfter later, and sent (flagged) once the backlog is read.
func TestBackloggedDestinationDefersRedelivery(t *testing.T) {
	s, bus, ackID := newPipelinedEngine(t, nil)
	sub := s.byAckID[ackID]
	due := func() {
		p, _ := sub.pending.Get(1)
		p.expiry = s.clock.monoNow() - int64(time.Second)
		sub.pending.Set(1, p)
		sub.expReset()
		sub.expPush(expiry{seq: 1, at: p.expiry})
	}
	bus.backlog = map[string]bool{"in": true}
	due()
	s.step(op{kind: opRedeliver, sub: sub})
	p, _ := sub.pending.Get(1)
	if n := bus.count("in"); n != 1 || p.count != 0 {
		t.Fatalf("redelivered to a backlogged destination: %d sends, count %d", n, p.count)
	}
	if wait := time.Duration(p.expiry - s.clock.monoNow()); wait <= 0 || wait > retrySendsAfter {
		t.Fatalf("deferred redelivery due in %v, want within %v", wait, retrySendsAfter)
	}
	bus.backlog["in"] = false
	due()
	s.step(op{kind: opRedeliver, sub: sub})
	if p, _ := sub.pending.Get(1); bus.count("in") != 2 || p.count != 1 {
		t.Fatalf("after the backlog was read: %d sends, count %d", bus.count("in"), p.count)
	}
	if sub.timer != nil {
		sub.timer.Stop()
	}
}
