package core

import (
	"runtime"
	"sync/atomic"
	"syscall"
	"time"
)

// Spinning for a request that follows a reply.
//
// A synchronous client (stan.go's Publish, a request/reply loop) leaves the server idle
// between its messages: after our reply, the read goroutine finds nothing (EAGAIN) and parks
// on the poller, its thread sleeps in epoll_wait, and the next request wakes it. On this
// Firecracker VM that wake-up (an idle vCPU's halt, an IPI through the host) is ~30 µs of a
// ~140 µs round trip. When the connection's recent pattern is reply → next request within a
// short gap, the read goroutine instead polls the socket with non-blocking raw reads for
// that gap (plus a margin), yielding the CPU to the kernel between polls (sched_yield:
// another thread of this CPU, often the client's own, runs first), and parks only if
// nothing came: the next request is then read without a thread wake-up. Yielding to Go's
// scheduler instead (runtime.Gosched) kept the thread busy in Go and lost: 5,374 against
// 10,614 msgs/s, server CPU 65 against 31 µs a message (medians of 5 rounds, one run on a
// busy machine): the client's threads, on the same two cores, waited for the spinner.
//
// The trade-off is CPU: each caught request costs the gap in spinning (tens of µs) on one
// core, where parking costs the wake-up's latency and some kernel and scheduler work. So it
// is tightly bounded:
//   - at most one spinner in the process at a time (spinner), and only while no other
//     connection reads anything (lastReader);
//   - only with GOMAXPROCS > 1 (the spinner holds one P; the others stay for other work),
//     and with at most spinMaxConns client sockets (a server with many connections is not
//     idling between one client's messages);
//   - only for a client (not a route) that sent one message per read buffer, the last
//     spinSingles times;
//   - only right after output was written to that connection while the reader handled its
//     last read buffer (the reply to it, as a streaming publish's PubAck made inline); not
//     for one written from elsewhere, as a core request forwarded to a service by another
//     client's reader: there the request/reply row (8 requesters, 2 services) lost 17 %
//     (12,157 against 14,625 requests/s, 44 against 38 µs of server CPU each, medians of
//     3) before this check. And only while
//     its recent reply → request gap (an average, spinState.gap) is at most spinMax; the spin
//     ends at the last write + that average × 5/4, never past spinMax after the write;
//   - the spinner yields the CPU between polls and gives up as soon as one poll took longer
//     than spinStall: another thread had work for that CPU. It does not yield its P: a
//     goroutine readied meanwhile runs on another P (GOMAXPROCS > 1), or at worst waits out
//     the spin (spinMax).
//   - Linux only (spinOS), where the polls are raw system calls: an accounted one would wake
//     the runtime's monitor thread (rawio.go).

// spinMax is the longest spin after a write, and the longest average gap still spun for.
// A var for tests.
var spinMax = int64(100 * time.Microsecond)

// spinStall: a poll (a read and a yield) that took longer means the processor had other
// work: the spin ends.
const spinStall = int64(20 * time.Microsecond)

// spinSingles is how many read buffers in a row must each have held at most one message
// for the reader to spin: a client that waits for each reply sends one request at a time;
// one with many in flight (an async publisher) fills buffers with several, and a spin there
// only takes a P from the work its messages make. Async 16 B with a subscriber (stan-bench,
// medians of 3): 142,272 against 186,383 msgs/s without this check nor lastReader's,
// 184,131 against 253,647 with lastReader's alone, 219,712 against 223,401 with both.
const spinSingles = 4

// spinMaxConns is the most client sockets a server may have for its readers to spin.
const spinMaxConns = 16

// spinEnabled turns spinning on: where the reads are raw system calls (spinOS), or in tests.
var spinEnabled atomic.Bool

func init() { spinEnabled.Store(spinOS) }

// spinYield is osYield; a var for tests.
var spinYield = osYield

// spinner is held (true) by the one read goroutine spinning now.
var spinner atomic.Bool

// lastReader is the reader id (rid) of the connection that last read data, process-wide: a spin
// starts only when no other connection read anything since its own last read, and ends
// when one does: a synchronous client alone spins, not one among several busy connections
// (many requesters, a publisher and a subscriber's acks). Written only when it changes:
// one connection reading alone (the case that spins) does not write the shared line.
var lastReader atomic.Uint64

// readerIDs numbers socket connections process-wide, for lastReader: client IDs are per
// server, and two servers in one process (tests, embedding) would share them.
var readerIDs atomic.Uint64

// spinState is the read goroutine's view of its connection's reply → request gaps.
type spinState struct {
	lastIn int64 // unix nanos of the last read that returned data
	gap    int64 // average gap (ns) from a write to the next read's data; 0: none seen
	single int   // read buffers in a row that held at most one message (spinSingles wanted)
	own    bool  // the last read buffer's handling wrote to the connection (a reply of ours)
	spins  int   // spins started (tests)
	caught int   // spins that read data (tests)
}

// noteRead records a read that returned data at now (read goroutine): if output was
// written to the connection since the previous read, the gap since that write updates the
// average (1/4 of each new sample). It returns the last write's time it saw, for
// noteBatch.
func (c *client) noteRead(now int64) (out int64) {
	s := &c.spin
	if out = c.lastOut.Load(); out > s.lastIn && out <= now {
		g := now - out
		if s.gap == 0 {
			s.gap = g
		} else {
			s.gap += (g - s.gap) / 4
		}
	}
	s.lastIn = now
	if lastReader.Load() != c.rid {
		lastReader.Store(c.rid)
	}
	return out
}

// noteBatch records how many messages the read buffer just handled held, and whether
// output was written to the connection while it was (out0: lastOut before): the reply to
// the request, made on this goroutine (read goroutine).
func (c *client) noteBatch(msgs int64, out0 int64) {
	c.spin.own = c.lastOut.Load() != out0
	if msgs > 1 {
		c.spin.single = 0
	} else if c.spin.single < spinSingles {
		c.spin.single++
	}
}

// spinBudget returns the deadline (unix nanos) of a spin starting now, or 0 when the
// connection should not spin: no write since the last read, no recent gap at most spinMax,
// or the deadline already passed.
func (c *client) spinBudget(now int64) int64 {
	s := &c.spin
	out := c.lastOut.Load()
	if s.gap == 0 || s.gap > spinMax || out <= s.lastIn {
		return 0
	}
	d := out + min(s.gap+s.gap/4, spinMax)
	if d <= now {
		return 0
	}
	return d
}

// spinRead polls the raw socket into o.b until data (or an error) arrives, the budget
// ends, or the processor is wanted; it reports whether the read is done (o.n, o.errno
// and err then hold its result). Read goroutine only, raw reads only (o.rc set).
func (c *client) spinRead() (done bool, err error) {
	s := &c.spin
	if !spinEnabled.Load() || c.kind != kindClient || !s.own || s.single < spinSingles || s.gap == 0 || s.gap > spinMax || c.lastOut.Load() <= s.lastIn {
		return false, nil // the cheap checks first: no clock read, no shared write
	}
	if lastReader.Load() != c.rid || c.srv == nil || c.srv.sockets.Load() > spinMaxConns || runtime.GOMAXPROCS(0) < 2 {
		return false, nil
	}
	if !spinner.CompareAndSwap(false, true) {
		return false, nil
	}
	defer spinner.Store(false)
	prev := time.Now().UnixNano()
	deadline := c.spinBudget(prev)
	if deadline == 0 {
		return false, nil
	}
	s.spins++
	o := &c.rin
	for {
		if err := c.raw.Control(o.probe); err != nil {
			return true, err
		}
		if o.errno != syscall.EAGAIN {
			s.caught++
			return true, nil
		}
		now := time.Now().UnixNano()
		if now >= deadline || now-prev > spinStall || lastReader.Load() != c.rid {
			return false, nil
		}
		prev = now
		spinYield()
	}
}
