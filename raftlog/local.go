package raftlog

import (
	"context"
	"sync"
	"time"
)

var _ Log = (*Local)(nil)

// Local is the standalone Log: a proposal is applied in the proposer's goroutine, from
// Command.Value, with no encoding, no goroutine hop and no allocation. It is always the leader.
type Local struct {
	sm       StateMachine
	resolved chan struct{} // closed in NewLocal: the Done channel of every Local future
	leader   *leadershipChan

	// mu serialises proposals and is held across StateMachine.Apply — the one call out under
	// a lock in this package, and the point of it: Apply runs on one goroutine at a time, in
	// index order. Apply must therefore not call back into the Local.
	mu     sync.Mutex
	index  uint64     // index of the last applied command
	closed bool       // set by Close
	one    [1]Command // Propose's batch of one, so that it need not allocate a slice
}

// NewLocal returns a Local applying to sm. It reports leadership (true) once.
func NewLocal(sm StateMachine) *Local {
	l := &Local{sm: sm, resolved: make(chan struct{}), leader: newLeadershipChan()}
	close(l.resolved)
	l.leader.set(true)
	return l
}

// Standalone is the log factory of a server that replicates nothing: a Local over sm.
func Standalone(sm StateMachine) (Log, error) { return NewLocal(sm), nil }

// Propose applies c (its Value; Data is not used) before returning, unless the Local is
// closed (ErrClosed) or ctx is already done (ctx.Err()); in both cases nothing is applied
// and no index is used. The Future is resolved.
func (l *Local) Propose(ctx context.Context, c Command) Future {
	l.mu.Lock()
	if err := l.refuse(ctx); err != nil {
		l.mu.Unlock()
		return resolvedFuture(l.resolved, refused(err))
	}
	l.one[0] = c
	o := l.apply(l.one[:])
	l.one[0] = Command{} // do not keep the op alive until the next Propose
	l.mu.Unlock()
	return resolvedFuture(l.resolved, o)
}

// ProposeBatch applies cs with one Apply call before returning, like Propose.
func (l *Local) ProposeBatch(ctx context.Context, cs []Command) Future {
	if len(cs) == 0 {
		return resolvedFuture(l.resolved, outcome{})
	}
	l.mu.Lock()
	if err := l.refuse(ctx); err != nil {
		l.mu.Unlock()
		return resolvedFuture(l.resolved, refused(err))
	}
	o := l.apply(cs)
	l.mu.Unlock()
	return resolvedFuture(l.resolved, o)
}

// refuse says why a proposal must not be applied, or nil. l.mu is held.
func (l *Local) refuse(ctx context.Context) error {
	if l.closed {
		return ErrClosed
	}
	return ctx.Err()
}

// apply gives cmds the next indexes and applies them. l.mu is held.
func (l *Local) apply(cmds []Command) outcome {
	index := l.index + 1
	l.index += uint64(len(cmds))
	return applied(index, len(cmds), l.sm.Apply(index, cmds))
}

// IsLeader returns true: a standalone server is always the leader.
func (l *Local) IsLeader() bool { return true }

// Lease of a log that leads alone and for good: it never lapses.
func (l *Local) Lease(context.Context) (time.Time, error) { return time.Now().Add(localLease), nil }

// localLease is how long a lease of Local lasts: any long span will do.
const localLease = time.Hour

// Leadership returns a channel that delivers true once.
func (l *Local) Leadership() <-chan bool { return l.leader.C() }

// Barrier returns nil at once: every proposal was applied before it returned. After Close it
// returns ErrClosed.
// TransferLeadership does nothing: a Local has no other replica to lead.
func (l *Local) TransferLeadership(context.Context) error { return nil }

func (l *Local) Barrier(ctx context.Context) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return ErrClosed
	}
	return nil
}

// Close makes later proposals fail with ErrClosed. It waits for a proposal being applied and
// may be called more than once.
func (l *Local) Close() error {
	l.mu.Lock()
	l.closed = true
	l.mu.Unlock()
	return nil
}
