package streaming

import (
	"testing"
	"time"

	"github.com/starling-io/starling/proto/stanpb"
	"github.com/starling-io/starling/raftlog"
)

// A heartbeat answered after hb_timeout counts as missed, as in the reference (whose
// request has timed out by then); one answered in time clears the failures. Before,
// hb_timeout was accepted and ignored: any answer before the next tick counted.
func TestLateHeartbeatAnswerCountsAsMissed(t *testing.T) {
	bus := &dataBus{}
	s, err := New(bus, newMemStore(t), raftlog.Standalone, Options{HBTimeout: 20 * time.Millisecond, HBFailCount: 5})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.recover(); err != nil {
		t.Fatal(err)
	}
	s.step(requestOp(opConnect, "r", &stanpb.ConnectRequest{ClientID: "c1", HeartbeatInbox: "hb.c1", Protocol: 1, ConnID: []byte("x")}))
	c := s.clients["c1"]
	answer := func() { s.step(op{kind: opHbReply, token: "c1", from: 1}) }

	s.processHbTick()
	time.Sleep(40 * time.Millisecond)
	answer() // late
	s.processHbTick()
	if c.hbFails != 1 {
		t.Fatalf("after a late answer: %d failures, want 1", c.hbFails)
	}
	answer() // in time
	if c.hbOut || c.hbFails != 0 {
		t.Fatalf("after a timely answer: outstanding %v, %d failures", c.hbOut, c.hbFails)
	}
	// An answer that arrived in time counts even when a backlog kept the engine from it
	// past hb_timeout: lateness is the client's, not the engine's.
	s.processHbTick()
	arrived := time.Now().UnixNano()
	time.Sleep(40 * time.Millisecond)
	s.step(op{kind: opHbReply, token: "c1", from: 1, at: arrived})
	if c.hbOut {
		t.Fatal("an answer that arrived in time, processed late, counted as missed")
	}
}
