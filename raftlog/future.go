package raftlog

import (
	"fmt"
	"slices"
)

// Future is the outcome of a proposal: the command's index, its error, and what Apply returned
// for it. It is a small value (five words, returned in registers), copied freely. A Future
// from Local is resolved before Propose returns and costs no allocation; one from the
// replicated log refers to state that its apply loop fills in, and its methods block until
// then. The zero Future never resolves.
type Future struct {
	done <-chan struct{} // closed once resolved
	p    *pending        // nil: resolved when made, the outcome is below
	outcome
}

// outcome is what a resolved proposal reports, in three words.
type outcome struct {
	index uint64 // the first command's index; 0 when not applied
	// v is, when index is 0, why the proposal was not applied (nil for an empty batch);
	// otherwise Apply's result for a single command, or for a batch of several either nil
	// (every result nil) or a *batchResults.
	v any
}

// batchResults holds a batch's results, copied from Apply's (which the state machine may
// reuse) only when one of them is non-nil: the common all-nil batch allocates nothing.
type batchResults struct {
	err error // the first result that is an error
	rs  []any
}

// Wait blocks until the proposal is resolved and returns the index of its (first) command and
// one error. A proposal that was not applied reports index 0 and why (ErrNotLeader, ErrClosed,
// ErrTimeout, a ctx error). An applied one reports its index and the first of its results that
// is an error, if any: the command was applied and rejected, as Apply decided on every replica.
// For a batch, ResultAt then tells which commands failed.
func (f Future) Wait() (index uint64, err error) {
	o := f.outcome
	if f.p != nil {
		<-f.p.done
		o = f.p.outcome
	}
	return o.index, o.err()
}

// Done returns a channel that is closed once the proposal is resolved.
func (f Future) Done() <-chan struct{} { return f.done }

// Result returns what Apply returned for the proposal's first command (the only one for
// Propose): nil, an error, or a value. It blocks like Wait.
func (f Future) Result() any { return f.ResultAt(0) }

// ResultAt returns what Apply returned for command i of the proposal, nil if there is no such
// command or it was not applied. It blocks like Wait.
func (f Future) ResultAt(i int) any {
	o := f.outcome
	if f.p != nil {
		<-f.p.done
		o = f.p.outcome
	}
	return o.at(i)
}

func (o outcome) err() error {
	switch v := o.v.(type) {
	case *batchResults:
		return v.err
	case error:
		return v
	}
	return nil
}

func (o outcome) at(i int) any {
	if o.index == 0 {
		return nil
	}
	if b, ok := o.v.(*batchResults); ok {
		if i >= 0 && i < len(b.rs) {
			return b.rs[i]
		}
		return nil
	}
	if i == 0 {
		return o.v
	}
	return nil
}

// refused is the outcome of a proposal that was not applied.
func refused(err error) outcome { return outcome{v: err} }

// applied builds the outcome of n commands applied from index, with res as Apply returned it.
func applied(index uint64, n int, res []any) outcome {
	o := outcome{index: index}
	if res == nil {
		return o
	}
	if len(res) != n {
		panic(fmt.Sprintf("raftlog: StateMachine.Apply returned %d results for %d commands", len(res), n))
	}
	if n == 1 {
		o.v = res[0]
		return o
	}
	var b *batchResults
	for _, r := range res {
		if r == nil {
			continue
		}
		if b == nil {
			b = &batchResults{rs: slices.Clone(res)}
			o.v = b
		}
		if err, ok := r.(error); ok {
			b.err = err
			break
		}
	}
	return o
}

// resolvedFuture returns a Future that is already resolved; done must be closed.
func resolvedFuture(done <-chan struct{}, o outcome) Future {
	return Future{done: done, outcome: o}
}

// Refused returns a resolved Future reporting that a proposal was not applied, for err: what
// a caller that could not even make its proposal (its command did not encode) hands on to
// code that waits on Futures. Not for a hot path: it allocates the done channel.
func Refused(err error) Future {
	done := make(chan struct{})
	close(done)
	return resolvedFuture(done, refused(err))
}

// pending is the shared state behind a Future that resolves later (the replicated log's).
type pending struct {
	done    chan struct{}
	outcome // written once, by resolve, before done is closed
}

func newPending() *pending { return &pending{done: make(chan struct{})} }

// future returns the Future that reports p's outcome.
func (p *pending) future() Future { return Future{done: p.done, p: p} }

// resolve records the outcome and wakes the waiters. It is called exactly once.
func (p *pending) resolve(o outcome) {
	p.outcome = o
	close(p.done)
}
