package streaming

import (
	"context"
	"log/slog"
	"sync/atomic"
	"testing"
	"time"

	"github.com/starling-io/starling/raftlog"
)

// failingBarrierLog is a switchLog whose first barriers fail, as a new leader's does when
// the commands committed before it are not applied within barrierTimeout.
type failingBarrierLog struct {
	*switchLog
	fails atomic.Int32 // barriers still to fail
	calls atomic.Int32
	err   error // what they fail with; context.DeadlineExceeded if nil
}

func (l *failingBarrierLog) Barrier(ctx context.Context) error {
	l.calls.Add(1)
	if l.fails.Add(-1) >= 0 {
		if l.err != nil {
			return l.err
		}
		return context.DeadlineExceeded
	}
	return l.switchLog.Barrier(ctx)
}

// startFailingTakeovers runs a standalone engine over a log whose first fails barriers
// (takeovers) fail, logging to a countHandler.
func startFailingTakeovers(t *testing.T, fails int32) (*Server, *failingBarrierLog, *countHandler) {
	t.Helper()
	h := &countHandler{n: map[string]int{}}
	var fl *failingBarrierLog
	s, err := New(&fakeBus{}, newMemStore(t), func(sm raftlog.StateMachine) (raftlog.Log, error) {
		fl = &failingBarrierLog{switchLog: newSwitchLog(sm)}
		fl.fails.Store(fails)
		return fl, nil
	}, Options{Logger: slog.New(h)})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.recover(); err != nil {
		t.Fatal(err)
	}
	runEngine(s)
	return s, fl, h
}

// TestFailedTakeoverIsRetried: a new leader whose takeover fails says why and tries again
// while its log goes on naming it leader (the log reports only changes: nothing else would),
// and serves once a takeover succeeds. It is never left a raft leader that silently serves
// nobody.
func TestFailedTakeoverIsRetried(t *testing.T) {
	s, fl, h := startFailingTakeovers(t, 2)
	defer func() { close(s.stop); <-s.done }()
	fl.set(true)
	waitUntil(t, "a takeover after two failed ones", func() bool { return s.takeSnapshot(false).leader })
	h.mu.Lock()
	failed, changed := h.n["cannot take over as streaming leader"], h.n["streaming leadership changed"]
	h.mu.Unlock()
	if got := fl.calls.Load(); got != 3 || failed != 2 || changed != 1 {
		t.Fatalf("%d barriers, %d failures logged, %d changes logged; want 3, 2, 1", got, failed, changed)
	}
}

// handOffLog is a failingBarrierLog that hands its leadership off when asked
// (raftlog.Node.HandOff), as a three-node group does.
type handOffLog struct {
	*failingBarrierLog
	leading  atomic.Bool
	handOffs atomic.Int32
}

func (l *handOffLog) IsLeader() bool { return l.leading.Load() }
func (l *handOffLog) lead() {
	l.leading.Store(true)
	l.leadership <- true
}
func (l *handOffLog) HandOff(context.Context) error {
	l.handOffs.Add(1)
	l.leading.Store(false)
	l.leadership <- false
	return nil
}

// startHandOff runs an engine over a handOffLog whose first fails barriers fail with err
// (nil: a timeout), and makes it leader.
func startHandOff(t *testing.T, fails int32, err error) (*Server, *handOffLog, *countHandler) {
	t.Helper()
	h := &countHandler{n: map[string]int{}}
	var hl *handOffLog
	s, e := New(&fakeBus{}, newMemStore(t), func(sm raftlog.StateMachine) (raftlog.Log, error) {
		hl = &handOffLog{failingBarrierLog: &failingBarrierLog{switchLog: newSwitchLog(sm), err: err}}
		hl.fails.Store(fails)
		return hl, nil
	}, Options{Logger: slog.New(h)})
	if e != nil {
		t.Fatal(e)
	}
	if e := s.recover(); e != nil {
		t.Fatal(e)
	}
	runEngine(s)
	t.Cleanup(func() { close(s.stop); <-s.done })
	hl.lead()
	return s, hl, h
}

// TestPersistentlyFailingTakeoverHandsLeadershipOff: a leader whose takeover keeps failing
// shows it to monitoring and, after takeOverAttempts failures in a row, hands raft
// leadership to another node, which may serve, saying why; before, it stayed raft leader,
// serving nobody, for as long as the failure lasted. It tries no more once it no longer
// leads.
func TestPersistentlyFailingTakeoverHandsLeadershipOff(t *testing.T) {
	s, hl, h := startHandOff(t, 1000, nil)
	waitUntil(t, "a failure shown", func() bool {
		f := s.failingTakeOver()
		return f != nil && f.attempts == 1
	})
	waitUntil(t, "leadership handed off", func() bool { return hl.handOffs.Load() == 1 })
	if got := hl.calls.Load(); got != takeOverAttempts {
		t.Fatalf("%d takeovers before the hand-off, want %d", got, takeOverAttempts)
	}
	time.Sleep(2 * takeOverRetry)
	h.mu.Lock()
	failed, gaveUp := h.n["cannot take over as streaming leader"], h.n["cannot take over as streaming leader: giving raft leadership up so that another node serves"]
	h.mu.Unlock()
	if got := hl.calls.Load(); got != takeOverAttempts || hl.handOffs.Load() != 1 || failed != takeOverAttempts-1 || gaveUp != 1 {
		t.Fatalf("%d takeovers, %d hand-offs, %d failures and %d give-ups logged; want %d, 1, %d, 1",
			got, hl.handOffs.Load(), failed, gaveUp, takeOverAttempts, takeOverAttempts-1)
	}
	if f := s.failingTakeOver(); f != nil || s.takeSnapshot(false).leader {
		t.Fatalf("after the hand-off: failure shown %v, engine leads %v", f, s.takeSnapshot(false).leader)
	}
}

// TestTransientTakeoverFailureKeepsLeadership: fewer failures than takeOverAttempts are
// retried, and the leader serves, handing nothing off; monitoring forgets them.
func TestTransientTakeoverFailureKeepsLeadership(t *testing.T) {
	s, hl, _ := startHandOff(t, takeOverAttempts-1, nil)
	waitUntil(t, "a takeover after the failed ones", func() bool { return s.takeSnapshot(false).leader })
	if n := hl.handOffs.Load(); n != 0 {
		t.Fatalf("%d hand-offs after a transient failure", n)
	}
	if f := s.failingTakeOver(); f != nil {
		t.Fatalf("a failure still shown once serving: %v", f.err)
	}
}

// TestTakeoverLostToRaftHandsNothingOff: a takeover that fails because raft no longer
// names this node leader (the barrier's ErrNotLeader, however often, even while IsLeader is
// stale) is not this node's failure: it hands nothing off and shows nothing.
func TestTakeoverLostToRaftHandsNothingOff(t *testing.T) {
	s, hl, _ := startHandOff(t, 1000, raftlog.ErrNotLeader)
	waitUntil(t, "four takeovers", func() bool { return hl.calls.Load() >= takeOverAttempts+1 })
	if n := hl.handOffs.Load(); n != 0 {
		t.Fatalf("%d hand-offs when raft lost leadership", n)
	}
	if f := s.failingTakeOver(); f != nil {
		t.Fatalf("failure shown when raft lost leadership: %v", f.err)
	}
}

// stuckHandOffLog is a handOffLog whose hand-off waits until its ctx ends, as a transfer to
// voters that do not answer does.
type stuckHandOffLog struct {
	*handOffLog
	entered  chan struct{}
	returned atomic.Bool
}

func (l *stuckHandOffLog) HandOff(ctx context.Context) error {
	close(l.entered)
	<-ctx.Done()
	time.Sleep(20 * time.Millisecond) // a transfer takes a moment to stop
	l.returned.Store(true)
	return ctx.Err()
}

// TestShutdownEndsTheHandOff: Shutdown ends a hand-off under way (giveUpLeadership, off the
// engine) and waits for it, so that nothing of the server runs once it returns. Before, the
// hand-off went on for up to giveUpTimeout after Shutdown, on a closed log.
func TestShutdownEndsTheHandOff(t *testing.T) {
	var sl *stuckHandOffLog
	s, err := New(&fakeBus{}, newMemStore(t), func(sm raftlog.StateMachine) (raftlog.Log, error) {
		hl := &handOffLog{failingBarrierLog: &failingBarrierLog{switchLog: newSwitchLog(sm)}}
		hl.fails.Store(1000)
		sl = &stuckHandOffLog{handOffLog: hl, entered: make(chan struct{})}
		return sl, nil
	}, Options{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.recover(); err != nil {
		t.Fatal(err)
	}
	runEngine(s)
	sl.lead()
	select {
	case <-sl.entered:
	case <-time.After(10 * time.Second):
		t.Fatal("no hand-off")
	}
	sl.leading.Store(false) // Shutdown's own hand-over has nothing to do
	began := time.Now()
	if err := s.Shutdown(); err != nil {
		t.Fatal(err)
	}
	if !sl.returned.Load() {
		t.Fatal("the hand-off still runs after Shutdown returned")
	}
	if d := time.Since(began); d > giveUpTimeout/2 {
		t.Fatalf("Shutdown took %v: it waited for the hand-off's timeout instead of ending it", d)
	}
}

// TestShutdownStopsTheTakeoverRetry: a takeover that failed arms a retry; Shutdown stops
// it, so that once Shutdown returned nothing of the server runs and no op is queued for
// the engine that stopped. Before, the retry's timer outlived Shutdown by up to
// takeOverRetry and, over a log that still named this node leader after Close, queued a
// takeover nobody would take.
func TestShutdownStopsTheTakeoverRetry(t *testing.T) {
	s, fl, h := startFailingTakeovers(t, 1000)
	fl.set(true) // and it stays leader, Close or not
	waitUntil(t, "a failed takeover", func() bool {
		h.mu.Lock()
		defer h.mu.Unlock()
		return h.n["cannot take over as streaming leader"] > 0
	})
	if err := s.Shutdown(); err != nil {
		t.Fatal(err)
	}
	queued := s.q.Len()
	time.Sleep(takeOverRetry + takeOverRetry/2)
	if n := s.q.Len(); n != queued {
		t.Fatalf("%d ops queued after Shutdown returned (a takeover retry still armed)", n-queued)
	}
}
