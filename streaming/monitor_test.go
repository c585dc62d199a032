package streaming

import (
	"errors"
	"testing"
	"time"

	"github.com/starling-io/starling/proto/stanpb"
	"github.com/starling-io/starling/raftlog"
)

// takeSnapshot is snapshot for the tests: an empty snapshot when the engine does not answer.
func (s *Server) takeSnapshot(subs bool) *snapshot {
	sn, err := s.snapshot(subs)
	if err != nil {
		return &snapshot{}
	}
	return sn
}

// Monitoring asked while the engine queue is at its limit (a publish flood) waits its turn
// and shows the state. Before, the refused request answered an empty snapshot: serverz,
// clientsz and channelsz showed no client, channel or message, which a scraper records as
// a counter reset.
func TestMonitoringPassesAFullQueue(t *testing.T) {
	bus := &dataBus{}
	s, err := New(bus, newMemStore(t), raftlog.Standalone, Options{QueueLimit: 4})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.recover(); err != nil {
		t.Fatal(err)
	}
	s.step(requestOp(opConnect, "r", &stanpb.ConnectRequest{ClientID: "c1", HeartbeatInbox: "hb.c1", Protocol: 1, ConnID: []byte("x")}))
	for s.q.Push(op{kind: opPing, reply: "p", data: []byte{0xff}}) == nil {
	}
	got := make(chan int, 1)
	go func() { got <- len(s.Clients(false)) }()
	time.Sleep(50 * time.Millisecond) // the request meets the full queue
	runEngine(s)
	defer func() { close(s.stop); <-s.done }()
	select {
	case n := <-got:
		if n != 1 {
			t.Fatalf("clientsz during a full queue: %d clients, want 1", n)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no answer")
	}
}

// With maxQueuedSnapshots monitoring requests waiting for the engine, one more is refused
// at once with ErrEngineBusy: before, it answered an empty snapshot, which monitoring
// showed as a server without clients.
func TestMonitoringRefusedPastQueuedSnapshots(t *testing.T) {
	s, err := New(&dataBus{}, newMemStore(t), raftlog.Standalone, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.recover(); err != nil {
		t.Fatal(err)
	}
	s.step(requestOp(opConnect, "r", &stanpb.ConnectRequest{ClientID: "c1", HeartbeatInbox: "hb.c1", Protocol: 1, ConnID: []byte("x")}))
	runEngine(s)
	defer func() { close(s.stop); <-s.done }()
	s.snapsQueued.Add(maxQueuedSnapshots)
	start := time.Now()
	if c, err := s.ClientsErr(false); !errors.Is(err, ErrEngineBusy) || c != nil || time.Since(start) > time.Second {
		t.Fatalf("past %d queued snapshots: %v, %v after %v; want ErrEngineBusy at once", maxQueuedSnapshots, c, err, time.Since(start))
	}
	s.snapsQueued.Add(-maxQueuedSnapshots)
	if c, err := s.ClientsErr(false); err != nil || len(c) != 1 {
		t.Fatalf("clients: %v, %v", c, err)
	}
}
