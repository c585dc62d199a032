// Package ipq is a generic in-process queue: the batching hand-off between a
// goroutine that must never block (a message handler running on a publisher's
// goroutine) and an owner goroutine that drains everything queued in one go.
//
// Producers Push; a Push that makes the queue non-empty signals Ready. The owner
// waits on Ready and Pops all queued items at once into a slice it reuses:
//
//	var batch []T
//	for range q.Ready() {
//		batch = q.Pop(batch[:0])
//		process(batch) // one fsync, one flush, then answer everyone
//	}
//
// The queue never blocks a producer: past the optional limit Push fails with
// ErrFull and the caller decides (drop, nack, close the client).
package ipq
