package core

import (
	"errors"
	"net"
	"os"
	"sync"
	"syscall"
	"time"
)

// inPlaceMax is the most a client's reader writes to another client's socket itself at the
// end of its read buffer. Small frames (requests, replies) then skip the writer's wake-up;
// bulk output is left to the writer so that parsing and writing use both cores. (The
// streaming engine's flush, Conn.FlushInPlace, writes bulk output in place too.)
const inPlaceMax = 16 << 10

// outbound is a client's pending output: producers append whole frames to buf under the
// client's lock; one flusher at a time swaps buf for the spare and writes it in a single
// call, so frames from many producers and many messages leave in one syscall. A backlog
// past sealAt is queued in chunks (full) ahead of buf.
type outbound struct {
	buf          []byte        // frames waiting to be written
	spare        []byte        // recycled buffer, swapped in when buf is taken
	full         [][]byte      // sealed chunks, oldest first, all queued before buf
	fullLen      int           // bytes in full
	fullSpare    [][]byte      // the flusher's last list, kept for reuse
	inflight     int           // bytes being written right now
	flushing     bool          // a flusher owns the socket
	flushed      chan struct{} // closed when that flusher is done: a closing writer waits on it
	flushOnClose bool          // on close, give queued bytes a last chance (an -ERR)
	shut         bool          // a retired route's write side is shut: output is dropped
	stall        chan struct{} // closed when pending drops below the stall mark
	signal       chan struct{} // wakes the writer; capacity 1, never blocks
}

// pending is the number of bytes queued or in flight; c.mu must be held.
func (o *outbound) pending() int { return o.fullLen + len(o.buf) + o.inflight }

// A buffer that reaches sealAt is queued whole and the next frames go to a chunk of their
// own: a backlog (a reader far behind, max_pending allowing) then grows chunk by chunk.
// Grown by append, one buffer was copied whole at every doubling: with a subscriber 500 MB
// behind a route, memmove was 45 % of the server's CPU and the collector, spinning to
// preempt those long copies, another 30 %.
const (
	sealAt   = 1 << 20
	chunkCap = sealAt + 64<<10 // room for the frame that crosses sealAt
)

// chunkPool recycles sealed chunks between all clients: a backlog is rare and passing.
var chunkPool = sync.Pool{New: func() any { b := make([]byte, 0, chunkCap); return &b }}

// sealIfLarge queues buf as a chunk once it reaches sealAt; c.mu must be held.
func (o *outbound) sealIfLarge() {
	if len(o.buf) < sealAt {
		return
	}
	o.full = append(o.full, o.buf)
	o.fullLen += len(o.buf)
	o.buf = (*chunkPool.Get().(*[]byte))[:0]
}

// recycleChunk gives a written chunk back; one that grew past a chunk's size (a large
// frame) is left to the collector.
func recycleChunk(b []byte) {
	if cap(b) >= sealAt && cap(b) <= 2*chunkCap {
		b = b[:0]
		chunkPool.Put(&b)
	}
}

// flushSignal wakes the client's writer without blocking.
func (c *client) flushSignal() {
	if c.out.signal == nil {
		return
	}
	select {
	case c.out.signal <- struct{}{}:
	default:
	}
}

// closeFlushMax is how long a closing client's last output may take to leave.
const closeFlushMax = time.Second

// writeLoop is the client's writer: it flushes whenever signalled, and after the client is
// closed it makes a last flush (if asked), closes the socket and exits.
func (c *client) writeLoop() {
	defer c.srv.wg.Done()
	defer close(c.writerDone)
	for range c.out.signal {
		if c.flushOut() {
			c.finishClose()
			return
		}
	}
}

// finishClose runs on the writer once the client is closed.
func (c *client) finishClose() {
	c.mu.Lock()
	if c.out.flushOnClose && c.out.flushing {
		// Another goroutine (a producer writing in place, the client's own reader) is
		// writing frames queued before ours: ours go after them, and the socket is not
		// closed under that write. No flusher starts once closed, so one wait is enough;
		// one that takes longer than our own last chance is cut short, and nothing follows.
		ch := make(chan struct{})
		c.out.flushed = ch
		c.mu.Unlock()
		t := time.NewTimer(closeFlushMax)
		select {
		case <-ch:
		case <-t.C:
		}
		t.Stop()
		c.mu.Lock()
		if c.out.flushing {
			c.out.flushOnClose = false
		}
	}
	full, b := c.out.full, c.out.buf
	flush := c.out.flushOnClose
	c.out.buf, c.out.spare, c.out.full, c.out.fullSpare, c.out.fullLen = nil, nil, nil, nil, 0
	if c.out.stall != nil {
		close(c.out.stall)
		c.out.stall = nil
	}
	c.mu.Unlock()
	if flush && (len(b) > 0 || len(full) > 0) {
		_ = c.nc.SetWriteDeadline(time.Now().Add(closeFlushMax))
		bufs := net.Buffers(append(full, b)) // what was queued before b goes first
		_, _ = bufs.WriteTo(c.nc)
	}
	_ = c.nc.Close()
}

// tryFlushInPlace makes one non-blocking write of c's pending output, up to limit bytes,
// from the producer's goroutine; whatever the socket does not take (or a busy flusher, more
// than limit, or a sealed backlog) is left to the writer, which is then signalled.
func (c *client) tryFlushInPlace(limit int) {
	if c.raw == nil {
		c.flushSignal()
		return
	}
	c.mu.Lock()
	if c.closed || c.out.flushing || c.out.shut || len(c.out.buf) == 0 || len(c.out.buf) > limit || len(c.out.full) > 0 {
		c.mu.Unlock()
		c.flushSignal()
		return
	}
	b := c.out.buf
	c.out.buf = c.out.spare[:0]
	c.out.spare = nil
	c.out.inflight = len(b)
	c.out.flushing = true
	c.mu.Unlock()

	n, err := c.writeInPlace(b)
	done := n == len(b)

	c.mu.Lock()
	c.out.endFlush()
	if !done && len(c.out.full) > 0 {
		// Put the rest back in front of anything appended meanwhile: producers sealed
		// chunks, so in front of the first.
		c.out.full = append(c.out.full, nil)
		copy(c.out.full[1:], c.out.full)
		c.out.full[0] = append([]byte(nil), b[n:]...)
		c.out.fullLen += len(b) - n
	} else if !done {
		// Put the rest back in front of anything appended meanwhile, in b itself: a bulk
		// output (up to sealAt) that a full socket did not take is moved, not copied anew
		// at each try, and the buffer producers appended to becomes the spare again.
		rest := copy(b, b[n:])
		appended := c.out.buf
		c.out.buf = append(b[:rest], appended...)
		if c.out.spare == nil {
			c.out.spare = appended[:0]
		}
	} else if c.out.spare == nil {
		c.out.spare = b[:0]
	}
	// A producer that appended while we held the socket left its bytes to us.
	more := len(c.out.buf) > 0 || len(c.out.full) > 0
	c.mu.Unlock()
	if n > 0 {
		now := time.Now().UnixNano()
		c.lastAct.Store(now)
		c.lastOut.Store(now)
	}
	if !done || more || (err != nil && err != syscall.EAGAIN) {
		c.flushSignal() // the writer finishes the job or reports the error
	}
}

// endFlush gives the socket back after a write; c.mu must be held.
func (o *outbound) endFlush() {
	o.inflight = 0
	o.flushing = false
	if o.flushed != nil {
		close(o.flushed)
		o.flushed = nil
	}
}

// flushOut writes everything queued unless another flusher is active (which will pick the
// new bytes up on its next round). It reports whether the client is closed.
func (c *client) flushOut() (closed bool) {
	c.mu.Lock()
	for !c.closed && !c.out.flushing && (len(c.out.buf) > 0 || len(c.out.full) > 0) {
		if c.out.shut {
			c.out.dropShut()
			break
		}
		full := c.out.full
		c.out.full = c.out.fullSpare[:0]
		c.out.fullSpare = nil
		b := c.out.buf
		c.out.buf = c.out.spare[:0]
		c.out.spare = nil
		c.out.inflight = c.out.fullLen + len(b)
		c.out.fullLen = 0
		c.out.flushing = true
		c.mu.Unlock()

		err := c.writeChunks(full)
		if err == nil && len(b) > 0 {
			err = c.writeOut(b)
		}

		c.mu.Lock()
		c.out.endFlush()
		c.releaseStall()
		if c.out.spare == nil && (cap(b) <= maxSpareOut || len(c.out.buf) > 0) {
			// A large buffer is kept only while more output is already queued: a
			// backlogged reader (a streaming replay fills tens of MiB ahead of it) then
			// swaps two buffers instead of growing a fresh one from empty every turn,
			// which cost over a third of a replay's CPU; an idle one lets it go.
			c.out.spare = b[:0]
		}
		clear(full)
		c.out.fullSpare = full[:0]
		if err != nil {
			c.out.flushOnClose = false // a frame may be cut: nothing may follow it
			c.mu.Unlock()
			reason := reasonWriteError
			if errors.Is(err, os.ErrDeadlineExceeded) || isTimeout(err) {
				reason = reasonSlowConsumerWrite
				c.srv.countSlow(c)
				c.log.Info("slow consumer detected", "reason", reason)
			}
			c.closeConnection(reason)
			return true
		}
	}
	closed = c.closed
	shut := !closed && c.route != nil && c.out.shutDue(c.route.retiring.Load())
	c.mu.Unlock()
	if shut {
		if hc, ok := c.nc.(interface{ CloseWrite() error }); ok {
			_ = hc.CloseWrite() // a half-close: the peer reads EOF, and we can still read
		}
	}
	return closed
}

// writeOut writes b to the socket within the write deadline.
//
// On a plain TCP socket (c.raw) the write is raw (rawio.go): through net.Conn.Write, an
// accounted system call, the first after an idle spell woke Go's sysmon into polling every
// 20 µs again, and a large write to a reader that keeps up takes tens of µs, long enough
// for sysmon to hand the writer's P to another thread midway.
func (c *client) writeOut(b []byte) error {
	_ = c.nc.SetWriteDeadline(time.Now().Add(c.srv.o().WriteDeadline))
	var n int
	var err error
	if c.raw != nil {
		n, err = c.writeRaw(b)
	} else {
		n, err = c.nc.Write(b)
	}
	if n > 0 {
		now := time.Now().UnixNano()
		c.lastAct.Store(now)
		c.lastOut.Store(now)
	}
	return err
}

// writeChunks writes the sealed chunks a flusher took, each within the write deadline (a
// reader that takes a chunk in time is not slow, however long the backlog), and gives
// each back as soon as it is written: producers waiting at the stall mark go on once
// what is left in flight is below it.
func (c *client) writeChunks(full [][]byte) error {
	for _, ch := range full {
		err := c.writeOut(ch)
		c.mu.Lock()
		c.out.inflight -= len(ch)
		c.releaseStall()
		c.mu.Unlock()
		if err != nil {
			return err
		}
		recycleChunk(ch)
	}
	return nil
}

// releaseStall lets the producers waiting for c go on once its pending output is below the
// stall mark; c.mu must be held.
func (c *client) releaseStall() {
	if c.out.stall != nil && !c.stallMark(0) {
		close(c.out.stall)
		c.out.stall = nil
	}
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// overPending reports whether adding n bytes would pass the client's max pending budget; the
// caller holds c.mu. The caller then closes the client as a slow consumer.
func (c *client) overPending(n int) bool {
	return int64(c.out.pending()+n) > c.srv.o().MaxPending
}

// stallMax caps the stall mark: past it, more queued output only costs memory — the writer
// already has plenty to write — and buffers above it would be reallocated on every turn.
const stallMax = 8 << 20

// stallMark reports whether pending output (plus n) is past the stall mark (3/4 of
// max_pending, at most stallMax), where producers start waiting briefly for this client to
// drain; c.mu must be held.
func (c *client) stallMark(n int) bool {
	return int64(c.out.pending()+n) > min(c.srv.o().MaxPending/4*3, stallMax)
}

// stallChan returns the channel a producer waits on while c drains; c.mu must be held.
func (c *client) stallChan() chan struct{} {
	if c.out.stall == nil {
		c.out.stall = make(chan struct{})
	}
	return c.out.stall
}

// markSlowConsumer closes a client whose pending output passed max_pending. It must be
// called without c.mu held.
func (c *client) markSlowConsumer() {
	c.mu.Lock()
	already := c.closed
	c.mu.Unlock()
	if already {
		return
	}
	c.srv.countSlow(c)
	c.log.Info("slow consumer detected", "reason", reasonSlowConsumerPending, "max_pending", c.srv.o().MaxPending)
	c.closeConnection(reasonSlowConsumerPending)
}

// countSlow counts a slow consumer under its kind (/varz slow_consumer_stats).
func (s *Server) countSlow(c *client) {
	if c.kind == kindRoute {
		s.slowRoutes.Add(1)
		return
	}
	s.slow.Add(1)
	c.mu.Lock()
	acc := c.acc
	c.mu.Unlock()
	if acc != nil {
		acc.slow.Add(1) // and under its account (/accstatz slow_consumers)
	}
}
