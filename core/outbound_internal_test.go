package core

import (
	"bufio"
	"io"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"
)

// rawSubscriber starts a server (max_pending maxPending, 0 for the default; no keepalive
// and no write deadline during the test) with a raw socket client subscribed to "big" that
// reads only when told, and returns the server, that socket's reader and the server's
// client for it.
func rawSubscriber(tb testing.TB, maxPending int64) (*Server, *bufio.Reader, *client) {
	tb.Helper()
	s := startMesh(tb, 1, func(_ int, o *Options) {
		// The socket is left unread for as long as a loaded machine takes to queue a backlog.
		o.PingInterval, o.WriteDeadline, o.MaxPending = time.Hour, time.Hour, maxPending
	})[0]
	raw, err := net.Dial("tcp", s.Addr().String())
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { raw.Close() })
	r := bufio.NewReaderSize(raw, 1<<16)
	if _, err := r.ReadString('\n'); err != nil { // INFO
		tb.Fatal(err)
	}
	if _, err := io.WriteString(raw, "CONNECT {\"verbose\":false}\r\nSUB big 1\r\nPING\r\n"); err != nil {
		tb.Fatal(err)
	}
	if l, err := r.ReadString('\n'); err != nil || !strings.HasPrefix(l, "PONG") {
		tb.Fatalf("%q %v", l, err)
	}
	var dst *client
	s.mu.Lock()
	for _, c := range s.clients {
		if c.kind == kindClient {
			dst = c
		}
	}
	s.mu.Unlock()
	// The first tick comes firstPingDelay after CONNECT whatever the interval: its PING would
	// be a turn of its own behind a backlog, and an idle tick drops the buffers under test.
	dst.mu.Lock()
	dst.pingTimer.Stop()
	dst.mu.Unlock()
	return s, r, dst
}

// publishBig publishes n messages of len(payload) bytes to "big" and flushes.
func publishBig(tb testing.TB, nc *Conn, n int, payload []byte) {
	for range n {
		if err := nc.Publish("big", "", nil, payload); err != nil {
			tb.Fatal(err)
		}
	}
	nc.Flush()
}

// readBig reads n MSG frames of size bytes for "big".
func readBig(tb testing.TB, r *bufio.Reader, n, size int) {
	frame := len("MSG big 1 \r\n") + len(strconv.Itoa(size)) + size + 2
	if _, err := io.CopyN(io.Discard, r, int64(n*frame)); err != nil {
		tb.Fatal(err)
	}
}

// outState reads dst's outbound state under its lock.
func outState(dst *client) (pending int, flushing bool, bufCap, spareCap int) {
	dst.mu.Lock()
	defer dst.mu.Unlock()
	return dst.out.pending(), dst.out.flushing, cap(dst.out.buf), cap(dst.out.spare)
}

// TestOutboundBuffersRecycledWhileBacklogged: a reader that falls more than maxSpareOut
// behind an in-process producer (a streaming replay) keeps its large buffer for the next
// turn while output is still queued behind it, and gives both buffers up at the keepalive
// tick once idle.
func TestOutboundBuffersRecycledWhileBacklogged(t *testing.T) {
	s, r, dst := rawSubscriber(t, 0)
	nc := mustConnect(t, s)
	payload := make([]byte, 1024)
	const burst = (maxSpareOut + 4<<20) / 1024 // one turn's buffer beyond maxSpareOut
	// How much of a burst the writer takes in its first turns, before the unread socket
	// blocks it, depends on scheduling: queue messages until a turn's worth waits behind
	// the blocked write.
	sent := 0
	for {
		publishBig(t, nc, 256, payload)
		sent += 256
		if _, flushing, queued := outQueue(dst); flushing && queued >= burst*1024 {
			break
		}
		if sent > 4*burst {
			t.Fatalf("the writer never blocked on the unread socket (closed: %v)", dst.isClosed())
		}
	}
	// Read until the writer has taken that turn: it then blocks on it, and what is
	// published now queues behind it.
	read := 0
	for {
		if inflight, _, _ := outQueue(dst); inflight >= burst*1024 {
			break
		}
		if read == sent {
			t.Fatal("the writer never took the queued turn")
		}
		n := min(64, sent-read)
		readBig(t, r, n, len(payload))
		read += n
	}
	publishBig(t, nc, 1024, payload)
	sent += 1024
	readBig(t, r, sent-read, len(payload))
	waitFor(t, 5*time.Second, func() bool { p, f, _, _ := outState(dst); return p == 0 && !f })
	if _, _, b, sp := outState(dst); max(b, sp) < burst*1024 {
		t.Fatalf("largest buffer kept after the backlog: %d bytes, want the turn's %d (closed %v)", max(b, sp), burst*1024, dst.isClosed())
	}

	dst.processPingTimer() // idle now: the tick lets both go
	waitFor(t, 5*time.Second, func() bool {
		p, f, b, sp := outState(dst)
		return p == 0 && !f && b <= 4096 && sp <= 4096
	})
}

// outQueue reads under dst's lock the bytes its writer is writing, whether it is, and the
// bytes queued behind.
func outQueue(dst *client) (inflight int, flushing bool, queued int) {
	dst.mu.Lock()
	defer dst.mu.Unlock()
	return dst.out.inflight, dst.out.flushing, len(dst.out.buf)
}

// BenchmarkBackloggedReader: an in-process producer keeps one turn of 12 MiB queued behind
// the turn a socket reader is receiving, as a streaming replay does. B/op is what the
// outbound buffers allocate per turn.
func BenchmarkBackloggedReader(b *testing.B) {
	s, r, _ := rawSubscriber(b, 0)
	nc := mustConnect(b, s)
	payload := make([]byte, 1024)
	const perTurn = 12 << 10            // messages of 1 KiB: 12 MiB a turn
	publishBig(b, nc, perTurn, payload) // one turn always queued ahead of the reader
	b.SetBytes(perTurn * 1024)
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		publishBig(b, nc, perTurn, payload)
		readBig(b, r, perTurn, len(payload))
	}
	b.StopTimer()
	readBig(b, r, perTurn, len(payload))
}

// TestBackloggedAtStallMark: Conn.Backlogged turns true once a socket subscriber's pending
// output passes its stall mark — well before max_pending, where the subscriber would be cut
// off — and false again once it has read its backlog.
func TestBackloggedAtStallMark(t *testing.T) {
	s, r, dst := rawSubscriber(t, 4<<20)
	nc := mustConnect(t, s)
	if nc.Backlogged("big") || nc.Backlogged("nobody") {
		t.Fatal("backlogged before anything was sent")
	}
	payload := make([]byte, 64<<10)
	sent := 0
	for !nc.Backlogged("big") {
		if sent == 1000 {
			t.Fatal("never backlogged")
		}
		publishBig(t, nc, 1, payload)
		sent++
		time.Sleep(time.Millisecond) // let the writer hand what it can to the socket
	}
	if nc.Backlogged("nobody") {
		t.Fatal("a subject nobody subscribes to is backlogged")
	}
	if dst.isClosed() {
		t.Fatal("the subscriber was cut off before its destination reported a backlog")
	}
	readBig(t, r, sent, len(payload))
	waitFor(t, 5*time.Second, func() bool { return !nc.Backlogged("big") })
}
