package raftlog

import "sync"

// leadershipChan is the channel behind Log.Leadership: capacity one, where a newer value
// replaces an unread older one. The reader therefore never sees a stale state after a fresher
// one, a writer never blocks on a slow reader, and the last value set stays readable until it
// is read: the final state is never dropped. Intermediate states may be (true, false, true set
// before the reader looks reads as one true); a reader that must notice a lost-and-regained
// leadership compares terms or calls Barrier rather than count transitions.
type leadershipChan struct {
	mu sync.Mutex // serialises set: the drain-then-send below must not interleave
	ch chan bool
}

func newLeadershipChan() *leadershipChan {
	return &leadershipChan{ch: make(chan bool, 1)}
}

// C returns the channel to read.
func (l *leadershipChan) C() <-chan bool { return l.ch }

// set publishes v, replacing a value the reader has not taken yet.
func (l *leadershipChan) set(v bool) {
	l.mu.Lock()
	select {
	case <-l.ch: // drop the unread older value
	default:
	}
	// The channel is empty now — only set sends, under mu, and the reader only takes — so
	// this never blocks.
	l.ch <- v
	l.mu.Unlock()
}
