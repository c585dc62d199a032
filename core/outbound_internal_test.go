package core

import (
	"bufio"
	"context"
	"io"
	"net"
	"strings"
	"testing"
	"time"
)

// TestOutboundBuffersRecycledWhileBacklogged: a reader that falls more than maxSpareOut
// behind an in-process producer (a streaming replay) keeps its large buffer for the next
// turn while output is still queued behind it, and gives both buffers up at the keepalive
// tick once idle.
func TestOutboundBuffersRecycledWhileBacklogged(t *testing.T) {
	s, err := New(Options{Host: "127.0.0.1", Port: -1, PingInterval: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = s.Shutdown(ctx)
	})
	raw, err := net.Dial("tcp", s.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	r := bufio.NewReaderSize(raw, 1<<16)
	if _, err := r.ReadString('\n'); err != nil { // INFO
		t.Fatal(err)
	}
	if _, err := io.WriteString(raw, "CONNECT {\"verbose\":false}\r\nSUB big 1\r\nPING\r\n"); err != nil {
		t.Fatal(err)
	}
	if l, err := r.ReadString('\n'); err != nil || !strings.HasPrefix(l, "PONG") {
		t.Fatalf("%q %v", l, err)
	}
	var dst *client
	s.mu.Lock()
	for _, c := range s.clients {
		if c.kind == kindClient {
			dst = c
		}
	}
	s.mu.Unlock()

	nc := mustConnect(t, s)
	payload := make([]byte, 1024)
	const burst = (maxSpareOut + 4<<20) / 1024 // one turn's buffer beyond maxSpareOut
	for range burst {
		if err := nc.Publish("big", "", nil, payload); err != nil {
			t.Fatal(err)
		}
	}
	nc.Flush()
	// The writer is now blocked on the unread socket: queue more behind it.
	waitFor(t, 5*time.Second, func() bool {
		dst.mu.Lock()
		defer dst.mu.Unlock()
		return dst.out.flushing
	})
	for range 1024 {
		if err := nc.Publish("big", "", nil, payload); err != nil {
			t.Fatal(err)
		}
	}
	nc.Flush()
	want := (burst + 1024) * (len("MSG big 1 1024\r\n") + 1024 + 2)
	if _, err := io.CopyN(io.Discard, r, int64(want)); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 5*time.Second, func() bool {
		dst.mu.Lock()
		defer dst.mu.Unlock()
		return dst.out.pending() == 0 && !dst.out.flushing
	})
	dst.mu.Lock()
	kept := max(cap(dst.out.buf), cap(dst.out.spare))
	dst.mu.Unlock()
	if kept < burst*1024 {
		t.Fatalf("largest buffer kept after the backlog: %d bytes, want the turn's %d", kept, burst*1024)
	}

	dst.processPingTimer() // idle now: the tick lets both go
	waitFor(t, 5*time.Second, func() bool {
		dst.mu.Lock()
		defer dst.mu.Unlock()
		return dst.out.pending() == 0 && !dst.out.flushing && cap(dst.out.buf) <= 4096 && cap(dst.out.spare) <= 4096
	})
}

// BenchmarkBackloggedReader: an in-process producer keeps one turn of 12 MiB queued behind
// the turn a socket reader is receiving, as a streaming replay does. B/op is what the
// outbound buffers allocate per turn.
func BenchmarkBackloggedReader(b *testing.B) {
	s, err := New(Options{Host: "127.0.0.1", Port: -1, PingInterval: time.Hour})
	if err != nil {
		b.Fatal(err)
	}
	if err := s.Start(); err != nil {
		b.Fatal(err)
	}
	defer func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = s.Shutdown(ctx)
	}()
	raw, err := net.Dial("tcp", s.Addr().String())
	if err != nil {
		b.Fatal(err)
	}
	defer raw.Close()
	r := bufio.NewReaderSize(raw, 1<<16)
	if _, err := r.ReadString('\n'); err != nil {
		b.Fatal(err)
	}
	if _, err := io.WriteString(raw, "CONNECT {\"verbose\":false}\r\nSUB big 1\r\nPING\r\n"); err != nil {
		b.Fatal(err)
	}
	if l, err := r.ReadString('\n'); err != nil || !strings.HasPrefix(l, "PONG") {
		b.Fatalf("%q %v", l, err)
	}
	nc, err := s.Connect("bench")
	if err != nil {
		b.Fatal(err)
	}
	defer nc.Close()
	payload := make([]byte, 1024)
	const perTurn = 12 << 10 // messages of 1 KiB: 12 MiB a turn
	frame := int64(len("MSG big 1 1024\r\n") + 1024 + 2)
	turn := func() {
		for range perTurn {
			if err := nc.Publish("big", "", nil, payload); err != nil {
				b.Fatal(err)
			}
		}
		nc.Flush()
	}
	turn() // one turn always queued ahead of the reader
	b.SetBytes(perTurn * 1024)
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		turn()
		if _, err := io.CopyN(io.Discard, r, perTurn*frame); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	if _, err := io.CopyN(io.Discard, r, perTurn*frame); err != nil {
		b.Fatal(err)
	}
}

// TestBackloggedAtStallMark: Conn.Backlogged turns true once a socket subscriber's pending
// output passes its stall mark — well before max_pending, where the subscriber would be cut
// off — and false again once it has read its backlog.
func TestBackloggedAtStallMark(t *testing.T) {
	s, err := New(Options{Host: "127.0.0.1", Port: -1, PingInterval: time.Hour, MaxPending: 4 << 20})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = s.Shutdown(ctx)
	})
	raw, err := net.Dial("tcp", s.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	r := bufio.NewReaderSize(raw, 1<<16)
	if _, err := r.ReadString('\n'); err != nil {
		t.Fatal(err)
	}
	if _, err := io.WriteString(raw, "CONNECT {\"verbose\":false}\r\nSUB big 1\r\nPING\r\n"); err != nil {
		t.Fatal(err)
	}
	if l, err := r.ReadString('\n'); err != nil || !strings.HasPrefix(l, "PONG") {
		t.Fatalf("%q %v", l, err)
	}
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
		if err := nc.Publish("big", "", nil, payload); err != nil {
			t.Fatal(err)
		}
		nc.Flush()
		sent++
		time.Sleep(time.Millisecond) // let the writer hand what it can to the socket
	}
	if nc.Backlogged("nobody") {
		t.Fatal("a subject nobody subscribes to is backlogged")
	}
	var dst *client
	s.mu.Lock()
	for _, c := range s.clients {
		if c.kind == kindClient {
			dst = c
		}
	}
	s.mu.Unlock()
	if dst.isClosed() {
		t.Fatal("the subscriber was cut off before its destination reported a backlog")
	}
	frame := int64(len("MSG big 1 65536\r\n") + 64<<10 + 2)
	if _, err := io.CopyN(io.Discard, r, int64(sent)*frame); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 5*time.Second, func() bool { return !nc.Backlogged("big") })
}
