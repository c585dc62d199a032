package raftlog

import (
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/raft"
)

// proposal is the state behind a Node's Future: the pending outcome, raft's future for the
// entry, and the flag that lets exactly one of the reaper, the ctx watcher and a sweep
// resolve it.
type proposal struct {
	pending
	f       raft.Future // raft.ApplyLog's, or raft.Barrier's when barrier is set; nil with parts
	parts   []entryPart // a proposal of several entries: each one's future, in log order
	barrier bool
	once    atomic.Bool
	stopCtx func() bool // stops the context.AfterFunc; nil when ctx cannot be cancelled
}

// entryPart is one entry of a proposal split over several (Config.MaxEntryBytes): its
// encoding until raft has it, then raft's future, and how many of the commands it carries.
type entryPart struct {
	data []byte
	f    raft.Future
	n    int
}

func newProposal() *proposal {
	return &proposal{pending: pending{done: make(chan struct{})}}
}

// finish resolves p with o unless it is resolved already.
func (p *proposal) finish(o outcome) {
	if p.once.CompareAndSwap(false, true) {
		p.resolve(o)
	}
}

// reaper turns raft's futures into outcomes, in proposal order, on one goroutine: raft's
// futures can only be waited on by blocking, and one waiter for every proposal in flight is
// cheaper than a goroutine each. An applied entry's outcome is what fsm.ApplyBatch returned
// for it; a failed one's is raft's error mapped by mapErr.
//
// raft (v1.7.2) never answers a future whose entry was still queued in its buffers when it
// shut down. So Close first drains — waits, bounded, for every proposal in flight to resolve
// while raft runs — and then sweeps what is left, resolving it with ErrClosed. If the reaper
// was blocked on such a future at that point it stays blocked: one goroutine left behind,
// only in that race.
type reaper struct {
	mapErr func(error) error

	mu      sync.Mutex
	wake    sync.Cond
	queue   []*proposal // queue[head:] are in flight, oldest first
	head    int
	closing bool // Close is draining: close drained once the queue is empty
	exit    bool // the queue was swept: return once it is empty
	drained chan struct{}
	isDrain bool // drained is closed
	done    chan struct{}
}

func newReaper(mapErr func(error) error) *reaper {
	r := &reaper{mapErr: mapErr, drained: make(chan struct{}), done: make(chan struct{})}
	r.wake.L = &r.mu
	return r
}

// push hands p, whose raft future is set, to the reaper.
func (r *reaper) push(p *proposal) {
	r.mu.Lock()
	r.queue = append(r.queue, p)
	r.mu.Unlock()
	r.wake.Signal()
}

func (r *reaper) run() {
	defer close(r.done)
	for {
		r.mu.Lock()
		for r.head == len(r.queue) {
			r.checkDrained()
			if r.exit {
				r.mu.Unlock()
				return
			}
			r.wake.Wait()
		}
		p := r.queue[r.head]
		r.mu.Unlock()

		if !p.once.Load() { // resolved by its ctx or a sweep: nobody waits for raft's answer
			p.finish(r.settle(p))
		}
		if p.stopCtx != nil {
			p.stopCtx()
		}

		r.mu.Lock()
		r.queue[r.head] = nil
		r.head++
		switch {
		case r.head == len(r.queue):
			r.queue, r.head = r.queue[:0], 0
		case r.head >= 1024 && 2*r.head >= len(r.queue): // reclaim the consumed prefix
			n := copy(r.queue, r.queue[r.head:])
			clear(r.queue[n:])
			r.queue, r.head = r.queue[:n], 0
		}
		r.mu.Unlock()
	}
}

// settle waits for raft's answer on p and returns p's outcome.
func (r *reaper) settle(p *proposal) outcome {
	if p.parts != nil {
		return r.settleParts(p.parts)
	}
	if p.barrier {
		if err := p.f.Error(); err != nil {
			return refused(r.mapErr(err))
		}
		return outcome{}
	}
	return r.settleEntry(p.f)
}

// settleParts combines the outcomes of a proposal's entries into the proposal's: its first
// command's index and every command's result. An entry after the first that was not applied
// leaves the proposal applied in part, which its proposer cannot tell from a proposal
// whose outcome is unknown: ErrLeadershipLost (raft refuses the rest of a proposal only when
// this node stops leading or shuts down).
func (r *reaper) settleParts(parts []entryPart) outcome {
	total := 0
	for _, e := range parts {
		total += e.n
	}
	var index uint64
	var res []any // made only when a result is not nil
	done := 0
	for i, e := range parts {
		o := r.settleEntry(e.f)
		if o.index == 0 {
			if i == 0 {
				return o
			}
			return refused(fmt.Errorf("%w (%d of its %d commands were applied)", ErrLeadershipLost, done, total))
		}
		if i == 0 {
			index = o.index
		}
		for j := range e.n {
			if v := o.at(j); v != nil {
				if res == nil {
					res = make([]any, total)
				}
				res[done+j] = v
			}
		}
		done += e.n
	}
	return applied(index, total, res)
}

// settleEntry waits for raft's answer on one entry's future and returns its outcome.
func (r *reaper) settleEntry(f raft.Future) outcome {
	if err := f.Error(); err != nil {
		return refused(r.mapErr(err))
	}
	af, ok := f.(raft.ApplyFuture)
	if !ok {
		return refused(errors.New("raftlog: raft answered a proposal with no ApplyFuture"))
	}
	o, ok := af.Response().(*outcome)
	if !ok || o == nil {
		return refused(errors.New("raftlog: raft applied a proposal without its outcome"))
	}
	return *o
}

// checkDrained closes drained once Close is draining and nothing is in flight. r.mu is held.
func (r *reaper) checkDrained() {
	if r.closing && !r.isDrain && r.head == len(r.queue) {
		close(r.drained)
		r.isDrain = true
	}
}

// drain waits up to d for every proposal in flight to resolve.
func (r *reaper) drain(d time.Duration) {
	r.mu.Lock()
	r.closing = true
	r.checkDrained()
	r.mu.Unlock()
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-r.drained:
	case <-t.C:
	}
}

// sweep resolves every proposal still in flight with err and lets the reaper return once it
// has passed them. Nothing is pushed after a sweep (Node.mu sees to that).
func (r *reaper) sweep(err error) {
	r.mu.Lock()
	for _, p := range r.queue[r.head:] {
		p.finish(refused(err))
	}
	r.exit = true
	r.mu.Unlock()
	r.wake.Signal()
}
