package streaming

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/starling-io/starling/core"
	"github.com/starling-io/starling/proto/stanpb"
	"github.com/starling-io/starling/raftlog"
	"github.com/starling-io/starling/stores"
)

// A heartbeat answered after hb_timeout counts as missed, as in the reference (whose
// request has timed out by then); one answered in time clears the failures. Before,
// hb_timeout was accepted and ignored: any answer before the next tick counted.
func TestLateHeartbeatAnswerCountsAsMissed(t *testing.T) {
	bus := &dataBus{}
	s, err := New(bus, newMemStore(t), raftlog.Standalone, Options{HBInterval: 20 * time.Millisecond, HBTimeout: 20 * time.Millisecond, HBFailCount: 5})
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
	time.Sleep(20 * time.Millisecond) // the next tick
	s.processHbTick()
	if !c.hbOut {
		t.Fatal("the tick sent no heartbeat")
	}
	arrived := s.clock.monoNow()
	time.Sleep(40 * time.Millisecond)
	s.step(op{kind: opHbReply, token: "c1", from: 1, at: arrived})
	if c.hbOut {
		t.Fatal("an answer that arrived in time, processed late, counted as missed")
	}
}

// TestHeartbeatAnswerAfterClockStepForward: a heartbeat answered at once counts although the
// system clock stepped an hour forward between the request and the answer. Before, the
// answer was timed by the wall clock, an hour after the request: it counted as missed, and
// past hb_fail_count such steps closed a live client.
func TestHeartbeatAnswerAfterClockStepForward(t *testing.T) {
	s, err := New(&dataBus{}, newMemStore(t), raftlog.Standalone, Options{HBInterval: time.Hour, HBTimeout: time.Second, HBFailCount: 5})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.recover(); err != nil {
		t.Fatal(err)
	}
	s.step(requestOp(opConnect, "r", &stanpb.ConnectRequest{ClientID: "c1", HeartbeatInbox: "hb.c1", Protocol: 1, ConnID: []byte("x")}))
	c := s.clients["c1"]
	s.processHbTick()
	StepClock(s, time.Hour)
	s.handler(opHbReply)(core.Msg{Subject: []byte(s.hbPrefix + ".c1"), From: 1})
	for _, o := range s.q.Pop(nil) {
		s.step(o)
	}
	if c.hbOut {
		t.Fatal("an answer sent at once counted as missed after the clock stepped forward")
	}
}

// answeringBus answers every heartbeat request at once, as a live client does.
type answeringBus struct {
	fakeBus
	s *Server
}

func (b *answeringBus) Publish(subject, reply string, hdr, data []byte) error {
	if strings.HasPrefix(subject, "hb.") && reply != "" {
		b.s.push(op{kind: opHbReply, token: subject[len("hb."):], from: 1, at: b.s.clock.monoNow()})
	}
	return nil
}

// slowBarrierLog is a switchLog whose barrier takes a while, as a new leader's does while
// it applies the commands committed before it.
type slowBarrierLog struct {
	*switchLog
	delay time.Duration
}

func (l *slowBarrierLog) Barrier(ctx context.Context) error {
	time.Sleep(l.delay)
	return l.switchLog.Barrier(ctx)
}

// A new leader whose takeover outlasts several heartbeat intervals does not close its live
// clients: the ticks queued meanwhile are one tick, not a run of them each counting the
// heartbeat the one before it sent as missed. Before, the client below, which answers every
// heartbeat at once, was closed by the third of the ticks handled back to back.
func TestTakeoverKeepsLiveClients(t *testing.T) {
	bus := &answeringBus{}
	var sl *slowBarrierLog
	s, err := New(bus, newMemStore(t), func(sm raftlog.StateMachine) (raftlog.Log, error) {
		sl = &slowBarrierLog{switchLog: newSwitchLog(sm), delay: 500 * time.Millisecond}
		return sl, nil
	}, Options{HBInterval: 50 * time.Millisecond, HBTimeout: 50 * time.Millisecond, HBFailCount: 2})
	if err != nil {
		t.Fatal(err)
	}
	bus.s = s
	if err := s.recover(); err != nil {
		t.Fatal(err)
	}
	// The client registered with the former leader: in the replicated state.
	s.sm.Apply(1, []raftlog.Command{{Value: &cmdConnect{info: stores.ClientInfo{ID: "c1", HbInbox: "hb.c1", ConnID: []byte("x"), Protocol: 1}}}})
	s.started = true
	go s.run()
	go s.leadershipLoop()
	go s.heartbeatLoop()
	defer func() { close(s.stop); <-s.done }()
	sl.set(true)
	waitUntil(t, "the takeover", func() bool { return s.takeSnapshot(false).leader })
	time.Sleep(500 * time.Millisecond) // ten heartbeat rounds, each answered
	if sn := s.takeSnapshot(false); len(sn.clients) != 1 {
		t.Fatalf("the new leader holds %d clients, want the live client", len(sn.clients))
	}
}
