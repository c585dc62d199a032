package streaming

import (
	"path/filepath"
	"testing"
	"time"

	"github.com/starling-io/starling/stores/boltstore"
)

// startOnBolt is startOnFile on a bolt store: a store that splits its Sync and asks for
// coalescing (stores.CommitCoalescer).
func startOnBolt(t *testing.T) (*readerBus, *Server) {
	t.Helper()
	store, err := boltstore.Open(filepath.Join(t.TempDir(), "s.db"), boltstore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	bus := newReaderBus()
	return bus, startOn(t, bus, store)
}

// Over a store that coalesces its commits (bolt), an async publisher's read buffer runs on
// its reader even while commit groups are in flight: the committer waits for the
// publishers' window anyway, so the engine's goroutine had nothing to overlap, and handing
// each read buffer to it cost a goroutine hand-off (often a parked thread's wake-up) per
// read buffer, ~7 per commit at 1 KiB. A store that does not coalesce (the file store)
// still leaves such a buffer to the engine's goroutine.
func TestCoalescingEngineRunsReadBuffersInline(t *testing.T) {
	for _, tc := range []struct {
		name   string
		start  func(*testing.T) (*readerBus, *Server)
		inline bool
	}{{"bolt", startOnBolt, true}, {"file", startOnFile, false}} {
		t.Run(tc.name, func(t *testing.T) {
			bus, s := startWithFoo(t, tc.start)

			// A pass running: the first buffer's group stays in flight.
			s.commit.passMu.Lock()
			bus.busy = true // more input waiting: the reader does not run the pass itself
			bus.deliver(s.pubPrefix+".foo", burst("r.a", 32)...)
			waitUntil(t, "the first buffer's group", func() bool {
				s.runMu.Lock()
				defer s.runMu.Unlock()
				return s.commit.groups > 0
			})
			flushes := bus.inPlaceCalls()
			bus.deliver(s.pubPrefix+".foo", burst("r.b", 32)...)
			ranInline := bus.inPlaceCalls() > flushes
			s.commit.passMu.Unlock()
			waitUntil(t, "every PubAck", func() bool { return bus.count("r.a") == 32 && bus.count("r.b") == 32 })
			if ranInline != tc.inline {
				t.Fatalf("a read buffer with groups in flight ran on the reader: %v, want %v", ranInline, tc.inline)
			}
		})
	}
}

// An inline iteration may wait for the committer (waitCommits: a full pipeline, a heal)
// while the engine's goroutine, woken by the same completion signal, waits for runMu. The
// engine's goroutine then hands the signal back; had it kept it, the inline iteration
// would wait for a pass that never comes (nothing else queued), and the engine's goroutine
// for runMu: both for good.
func TestInlineWaitGetsTheCompletionSignal(t *testing.T) {
	bus, s := startOnBolt(t)
	connectC1(bus, s)
	quiesce(t, s)
	bus.deliver(s.pubPrefix+".foo", pubReq("r.ack0", "g0")) // creates the channel
	waitUntil(t, "the first PubAck", func() bool { return bus.has("r.ack0") })
	quiesce(t, s)

	c := s.commit
	s.runMu.Lock() // this goroutine plays an inline iteration
	s.iterate([]op{{kind: opPublish, reply: "r.ack1", from: 1, data: pubReq("", "g1").Data}})
	if c.groups != 1 {
		s.runMu.Unlock()
		t.Fatalf("%d groups in flight, want 1; sent %q", c.groups, bus.sent)
	}
	waitUntil(t, "the pass", func() bool {
		c.mu.Lock()
		defer c.mu.Unlock()
		return len(c.done) > 0
	})
	time.Sleep(50 * time.Millisecond) // the engine's goroutine takes the signal and waits for runMu
	done := make(chan struct{})
	go func() {
		defer close(done)
		s.waitCommits(0)
	}()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		signal(c.ready) // let the test end
		<-done
		s.runMu.Unlock()
		t.Fatal("the inline iteration's waitCommits never got the completion signal")
	}
	s.runMu.Unlock()
	waitUntil(t, "the PubAck", func() bool { return bus.has("r.ack1") })
}

// Over a store that coalesces its commits (bolt), the committer completes a large pass too
// where it ran, when the engine is idle: the next pass waits for the publishers' window,
// which refills only once these PubAcks are out, so handing the pass to the engine's
// goroutine overlapped nothing and cost a hand-off per commit. Over the file store a large
// pass is still the engine's (the committer goes back to its fsyncs).
func TestCoalescingCommitterCompletesALargePass(t *testing.T) {
	for _, tc := range []struct {
		name  string
		start func(*testing.T) (*readerBus, *Server)
		here  bool
	}{{"bolt", startOnBolt, true}, {"file", startOnFile, false}} {
		t.Run(tc.name, func(t *testing.T) {
			bus, s := startWithFoo(t, tc.start)

			s.runMu.Lock()
			before := s.inlineDone
			s.runMu.Unlock()
			s.commit.passMu.Lock() // the pass waits until the burst is queued
			bus.busy = true        // more input waiting: the reader does not run the pass itself
			bus.deliver(s.pubPrefix+".foo", burst("r.a", 4*inlineMax)...)
			waitUntil(t, "the burst's group", func() bool { return s.commit.queuedLen() > 0 })
			s.commit.passMu.Unlock()
			waitUntil(t, "every PubAck", func() bool { return bus.count("r.a") == 4*inlineMax })
			s.runMu.Lock()
			here := s.inlineDone > before
			s.runMu.Unlock()
			if here != tc.here {
				t.Fatalf("the committer completed a pass of %d in place: %v, want %v", 4*inlineMax, here, tc.here)
			}
		})
	}
}

// startWithFoo starts a server with start, connects client c1 and publishes one message to
// channel foo (which creates it), and returns once its PubAck is out and the engine idle.
func startWithFoo(t *testing.T, start func(*testing.T) (*readerBus, *Server)) (*readerBus, *Server) {
	t.Helper()
	bus, s := start(t)
	connectC1(bus, s)
	quiesce(t, s)
	bus.deliver(s.pubPrefix+".foo", pubReq("r.ack0", "g0")) // creates the channel
	waitUntil(t, "the first PubAck", func() bool { return bus.has("r.ack0") })
	quiesce(t, s)
	return bus, s
}
