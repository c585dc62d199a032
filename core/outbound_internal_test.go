package core

import (
	"bufio"
	"encoding/binary"
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

// TestBacklogQueuedInChunks: a reader far behind (max_pending allowing) gets its backlog
// queued in chunks of about sealAt, never in one buffer grown by append (which copied the
// whole backlog at every doubling), and receives every frame once, in order; once idle, the
// keepalive tick gives its buffers up.
func TestBacklogQueuedInChunks(t *testing.T) {
	s, r, dst := rawSubscriber(t, 0)
	nc := mustConnect(t, s)
	const size = 1024
	payload := make([]byte, size)
	sent, seal := 0, 0
	publish := func(n int) {
		for range n {
			binary.BigEndian.PutUint64(payload, uint64(sent))
			if err := nc.Publish("big", "", nil, payload); err != nil {
				t.Fatal(err)
			}
			sent++
		}
		nc.Flush()
	}
	// Queue until several chunks wait behind the writer blocked on the unread socket.
	for {
		publish(256)
		dst.mu.Lock()
		chunks, largest := len(dst.out.full), max(cap(dst.out.buf), cap(dst.out.spare))
		for _, ch := range dst.out.full {
			largest = max(largest, cap(ch))
		}
		dst.mu.Unlock()
		if largest > 2*chunkCap {
			t.Fatalf("a buffer of %d bytes: the backlog grew one buffer", largest)
		}
		if chunks >= 4 {
			break
		}
		if sent > 64<<10 {
			t.Fatalf("no chunks queued after %d messages (closed: %v)", sent, dst.isClosed())
		}
	}
	seal = sent
	publish(1024) // more behind the chunks
	frame := len("MSG big 1 1024\r\n") + size + 2
	buf := make([]byte, frame)
	for i := range sent {
		if _, err := io.ReadFull(r, buf); err != nil {
			t.Fatal(err)
		}
		if got := binary.BigEndian.Uint64(buf[len(buf)-2-size:]); got != uint64(i) {
			t.Fatalf("frame %d carries message %d (%d queued before the last burst)", i, got, seal)
		}
	}
	waitFor(t, 5*time.Second, func() bool { p, f, _, _ := outState(dst); return p == 0 && !f })
	dst.processPingTimer() // idle now: the tick lets both buffers go
	waitFor(t, 5*time.Second, func() bool {
		p, f, b, sp := outState(dst)
		return p == 0 && !f && b <= 4096 && sp <= 4096
	})
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
