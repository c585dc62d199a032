package tests

// Subscription semantics that stan.go clients observe, checked against what
// nats-streaming-server v0.25.x does (server/server.go). Found by an audit of
// subscription semantics: each test failed before its fix.

import (
	"testing"
	"time"

	"github.com/nats-io/stan.go"

	"github.com/starling-io/starling/stores"
)

// A subscriber stalled at MaxInflight whose only pending message was then removed by the
// channel's max_msgs limit: when its ack wait expires the message is found gone and
// treated as acknowledged (reference: getMsgForRedelivery -> processAck), and the
// subscriber, no longer stalled, is sent the next message at once. Before the fix it
// stayed stalled until the next publish or ack.
func TestStanStalledSubResumesWhenPendingMsgEvicted(t *testing.T) {
	limits := &stores.LimitsSet{Global: stores.DefaultLimits()}
	limits.Global.MaxMsgs = 2
	s := startStan(t, limits, nil)
	sc := stanConnect(t, s, "c1")
	col := newCollector()
	_, err := sc.Subscribe("ev", col.handler, stan.SetManualAckMode(), stan.MaxInflight(1), stan.AckWait(time.Second))
	must(t, err)
	publishN(t, sc, "ev", 1, 1)
	if got := col.seqs(t, 1, 3*time.Second); got[0] != 1 {
		t.Fatalf("got %v, want [1]", got)
	}
	publishN(t, sc, "ev", 2, 3) // removes seq 1 from the channel; the subscriber is stalled on it
	m := nextStanMsg(t, col, 4*time.Second)
	if m.Sequence != 2 || m.Redelivered {
		t.Fatalf("after the ack wait got seq %d (redelivered %v), want seq 2 first delivered", m.Sequence, m.Redelivered)
	}
}

// nextStanMsg returns the collector's next message, failing the test when none comes
// within d.
func nextStanMsg(t *testing.T, col *collector, d time.Duration) *stan.Msg {
	t.Helper()
	select {
	case m := <-col.ch:
		return m
	case <-time.After(d):
		t.Fatalf("no message within %v", d)
		return nil
	}
}
