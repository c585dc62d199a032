package streaming

import (
	"context"
	"log/slog"
	"sync/atomic"
	"testing"

	"github.com/starling-io/starling/raftlog"
)

// failingBarrierLog is a switchLog whose first barriers fail, as a new leader's does when
// the commands committed before it are not applied within barrierTimeout.
type failingBarrierLog struct {
	*switchLog
	fails atomic.Int32 // barriers still to fail
	calls atomic.Int32
}

func (l *failingBarrierLog) Barrier(ctx context.Context) error {
	l.calls.Add(1)
	if l.fails.Add(-1) >= 0 {
		return context.DeadlineExceeded
	}
	return l.switchLog.Barrier(ctx)
}

// TestFailedTakeoverIsRetried: a new leader whose takeover fails says why and tries again
// while its log goes on naming it leader (the log reports only changes: nothing else would),
// and serves once a takeover succeeds. It is never left a raft leader that silently serves
// nobody.
func TestFailedTakeoverIsRetried(t *testing.T) {
	h := &countHandler{n: map[string]int{}}
	var fl *failingBarrierLog
	s, err := New(&fakeBus{}, newMemStore(t), func(sm raftlog.StateMachine) (raftlog.Log, error) {
		fl = &failingBarrierLog{switchLog: newSwitchLog(sm)}
		fl.fails.Store(2)
		return fl, nil
	}, Options{Logger: slog.New(h)})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.recover(); err != nil {
		t.Fatal(err)
	}
	runEngine(s)
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
