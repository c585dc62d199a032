package raftlog

import (
	"sync"
	"testing"
)

func recv(t *testing.T, l *leadershipChan) (v, ok bool) {
	t.Helper()
	select {
	case v := <-l.C():
		return v, true
	default:
		return false, false
	}
}

func TestLeadershipChanLatestValue(t *testing.T) {
	l := newLeadershipChan()
	if _, ok := recv(t, l); ok {
		t.Fatal("a value before any set")
	}
	l.set(true)
	if v, ok := recv(t, l); !ok || !v {
		t.Fatalf("after set(true): %v %v", v, ok)
	}
	if _, ok := recv(t, l); ok {
		t.Fatal("a value read twice")
	}

	// Unread values are replaced by newer ones; the reader sees only the latest.
	l.set(true)
	l.set(false)
	if v, ok := recv(t, l); !ok || v {
		t.Fatalf("after set(true), set(false): %v %v, want false", v, ok)
	}
	if _, ok := recv(t, l); ok {
		t.Fatal("the replaced value was delivered too")
	}
}

func TestLeadershipChanSetNeverBlocks(t *testing.T) {
	l := newLeadershipChan()
	for i := range 10000 { // nobody reads
		l.set(i%2 == 0)
	}
	if v, ok := recv(t, l); !ok || v {
		t.Fatalf("after 10000 sets: %v %v, want the last (false)", v, ok)
	}
}

// TestLeadershipChanFinalStateNeverDropped races setters against a reader: whatever the
// interleaving, once the setters are done the reader ends on the final value.
func TestLeadershipChanFinalStateNeverDropped(t *testing.T) {
	for round := range 200 {
		l := newLeadershipChan()
		final := round%2 == 0
		stop := make(chan struct{})
		last := make(chan bool, 1)
		go func() {
			var seen, heard bool
			for {
				select {
				case v := <-l.C():
					seen, heard = v, true
				case <-stop:
					select { // what was set after our last receive
					case v := <-l.C():
						seen, heard = v, true
					default:
					}
					if !heard {
						t.Error("reader saw nothing")
					}
					last <- seen
					return
				}
			}
		}()
		var wg sync.WaitGroup
		for s := range 3 {
			wg.Go(func() {
				for i := range 100 {
					l.set((i+s)%2 == 0)
				}
			})
		}
		wg.Wait()
		l.set(final)
		close(stop)
		if got := <-last; got != final {
			t.Fatalf("round %d: reader ended on %v, want the final %v", round, got, final)
		}
	}
}
