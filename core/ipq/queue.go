package ipq

import (
	"math"
	"sync"
)

// Queue is a multi-producer queue drained in batches by one consumer. It is
// safe for concurrent use. The zero value is not usable: use New.
type Queue[T any] struct {
	name  string
	limit int           // 0: unbounded
	ready chan struct{} // cap 1: a pending wake-up

	mu    sync.Mutex
	items []T
	bytes int64 // what PushBytes counted for items (0 for Push)
	quiet bool  // items were pushed quietly and no wake-up has been sent for them

	lastOut int // length of the batch the last Pop returned (the consumer's own field)
}

// New returns an empty queue. limit is the most items it holds; 0 means
// unbounded.
func New[T any](name string, limit int) *Queue[T] {
	return &Queue[T]{name: name, limit: max(limit, 0), ready: make(chan struct{}, 1)}
}

// Push appends v. It never blocks: it returns ErrFull when the queue holds
// limit items. A Push that makes the queue non-empty signals Ready.
func (q *Queue[T]) Push(v T) error { return q.PushBytes(v, 0, math.MaxInt64) }

// PushBytes is Push for an item that weighs n bytes: past the item limit, or when n
// would take the bytes queued beyond maxBytes, it fails with ErrFull. The bytes are
// counted under the lock Push takes anyway, so a byte bound costs no extra shared
// write; Pop, which drains everything, sets them back to zero.
func (q *Queue[T]) PushBytes(v T, n, maxBytes int64) error {
	return q.push(v, n, maxBytes, false)
}

// PushQuiet is PushBytes without the wake-up: the caller promises a Wake (or a Pop) soon,
// so that a run of pushes wakes the consumer once, or not at all when the caller drains
// the queue itself. A Push after it sends the wake-up it withheld.
func (q *Queue[T]) PushQuiet(v T, n, maxBytes int64) error {
	return q.push(v, n, maxBytes, true)
}

// PushAlways is Push past the limits, for an item the producer must not lose, such as a
// timer's: dropped, whatever the timer stands for (a redelivery, an expiry) would wait
// for good. The producer bounds such items itself (one per timer).
func (q *Queue[T]) PushAlways(v T) { _ = q.push(v, 0, -1, false) }

// push appends v; maxBytes < 0 means no limit at all (PushAlways).
func (q *Queue[T]) push(v T, n, maxBytes int64, quiet bool) error {
	q.mu.Lock()
	if maxBytes >= 0 && ((q.limit > 0 && len(q.items) >= q.limit) || q.bytes+n > maxBytes) {
		q.mu.Unlock()
		return ErrFull
	}
	q.items = append(q.items, v)
	q.bytes += n
	wake := !quiet && (len(q.items) == 1 || q.quiet)
	q.quiet = quiet && (len(q.items) == 1 || q.quiet)
	q.mu.Unlock()
	if wake {
		q.signal()
	}
	return nil
}

// Wake sends the wake-up that quiet pushes withheld, if the queue still holds them.
func (q *Queue[T]) Wake() {
	q.mu.Lock()
	wake := q.quiet
	q.quiet = false
	q.mu.Unlock()
	if wake {
		q.signal()
	}
}

func (q *Queue[T]) signal() {
	select {
	case q.ready <- struct{}{}:
	default: // a wake-up is already pending
	}
}

// Bytes returns the bytes PushBytes counted for the items queued now.
func (q *Queue[T]) Bytes() int64 {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.bytes
}

// Ready returns a channel that receives when the queue goes from empty to
// non-empty. A receive may find the queue already drained (the items were
// popped after the signal); consumers just Pop and continue.
func (q *Queue[T]) Ready() <-chan struct{} { return q.ready }

// Pop removes every queued item and appends them to into, in push order,
// returning the extended slice. When into is empty the queue swaps buffers with
// it instead of copying: into's backing array is cleared and taken over by the
// queue, so the caller must be done with the previous batch. A consumer calling
// batch = q.Pop(batch[:0]) in a loop thus ping-pongs two buffers and allocates
// nothing in steady state; passing nil instead lets a buffer grown by a burst
// be collected.
func (q *Queue[T]) Pop(into []T) []T {
	if len(into) == 0 {
		// The buffer we hand to the queue must not keep old items alive. It is normally
		// the batch this Pop returned last time, so clearing that many items is enough —
		// clearing the whole capacity would cost a burst's worth on every small batch.
		clear(into[:min(q.lastOut, cap(into))])
		q.mu.Lock()
		if len(q.items) == 0 {
			// Nothing queued: keep the buffers as they are. Swapping here would hand the
			// queue the very array we return, and the producers would then append into
			// the batch the consumer is reading.
			q.mu.Unlock()
			q.lastOut = 0
			return into[:0]
		}
		out := q.items
		q.items = into[:0]
		q.bytes = 0
		q.quiet = false
		q.mu.Unlock()
		q.lastOut = len(out)
		return out
	}
	q.mu.Lock()
	into = append(into, q.items...)
	clear(q.items)
	q.items = q.items[:0]
	q.bytes = 0
	q.quiet = false
	q.mu.Unlock()
	return into
}

// Len returns the number of queued items.
func (q *Queue[T]) Len() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	return len(q.items)
}

// Name returns the name given to New (for logs and monitoring).
func (q *Queue[T]) Name() string { return q.name }
