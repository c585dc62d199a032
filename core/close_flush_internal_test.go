package core

import (
	"bufio"
	"io"
	"net"
	"syscall"
	"testing"
	"time"
)

// pausedRaw holds the first in-place write at its start until released, to freeze a
// producer between taking the output and writing it.
type pausedRaw struct {
	syscall.RawConn
	entered, release chan struct{}
}

func (p *pausedRaw) Write(f func(fd uintptr) bool) error {
	if p.entered != nil {
		close(p.entered)
		p.entered = nil
		<-p.release
	}
	return p.RawConn.Write(f)
}

// staleDuringInPlaceWrite has a socket publisher's reader write "first" in place to a raw
// subscriber, holds that write, closes the subscriber as stale (an -ERR and a last flush)
// meanwhile, and returns the subscriber, what its socket receives up to EOF, and the
// release of the held write (called at cleanup if the test does not).
func staleDuringInPlaceWrite(t *testing.T) (dst *client, got <-chan string, release func()) {
	s, r, dst := rawSubscriber(t, 0)
	pr := &pausedRaw{RawConn: dst.raw, entered: make(chan struct{}), release: make(chan struct{})}
	entered := pr.entered
	released := false
	release = func() {
		if !released {
			released = true
			close(pr.release)
		}
	}
	t.Cleanup(release)
	// Under s.mu: the publisher's reader, registered under it later, sees the wrapper.
	s.mu.Lock()
	dst.raw = pr
	s.mu.Unlock()

	// The writer may still be finishing with the PONG the client read: a busy flusher
	// would leave the message to it.
	waitFor(t, 5*time.Second, func() bool { p, f, _, _ := outState(dst); return p == 0 && !f })

	pub, err := net.Dial("tcp", s.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pub.Close() })
	if _, err := io.WriteString(pub, "CONNECT {\"verbose\":false}\r\nPUB big 5\r\nfirst\r\n"); err != nil {
		t.Fatal(err)
	}
	select {
	case <-entered: // the publisher's reader took "first" from dst's buffer and is writing it
	case <-time.After(5 * time.Second):
		t.Fatal("no in-place write")
	}

	dst.mu.Lock()
	dst.pingsOut = s.o().PingMax
	dst.mu.Unlock()
	dst.lastIn.Store(0)
	dst.processPingTimer()
	if !dst.isClosed() {
		t.Fatal("not closed as stale")
	}
	ch := make(chan string, 1)
	go func(r *bufio.Reader) {
		b, _ := io.ReadAll(r)
		ch <- string(b)
	}(r)
	return dst, ch, release
}

// TestCloseFlushWaitsForInPlaceWrite: a client closed with a last flush (here stale, with
// its -ERR) while another client's reader is writing its messages in place gets those
// messages first, then the -ERR. The writer's last flush used to write the -ERR and close
// the socket under the in-place write: the client read the -ERR, then EOF, and the message
// was lost (with a partial in-place write, the frame was cut or had the -ERR spliced in).
func TestCloseFlushWaitsForInPlaceWrite(t *testing.T) {
	dst, got, release := staleDuringInPlaceWrite(t)
	// Nothing may reach the client while the in-place write is held: the old writer wrote
	// the -ERR and closed within microseconds.
	select {
	case early := <-got:
		t.Fatalf("the client read %q (then EOF) while the in-place write of its message was in flight", early)
	case <-time.After(300 * time.Millisecond):
	}
	release()
	want := "MSG big 1 5\r\nfirst\r\n-ERR 'Stale Connection'\r\n"
	select {
	case b := <-got:
		if b != want {
			t.Fatalf("the client read %q, want %q", b, want)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the socket was not closed")
	}
	select {
	case <-dst.writerDone:
	case <-time.After(5 * time.Second):
		t.Fatal("the writer did not end")
	}
}

// TestCloseFlushGivesUpOnStuckWrite: a flusher that takes longer than the last flush's own
// budget does not hold the writer (nor Shutdown) up: the socket is closed after
// closeFlushMax, and the -ERR, which would follow a frame that may be cut, is not written.
func TestCloseFlushGivesUpOnStuckWrite(t *testing.T) {
	dst, got, release := staleDuringInPlaceWrite(t)
	select {
	case <-dst.writerDone:
	case <-time.After(6 * time.Second): // closeFlushMax and slack
		t.Fatal("the writer waits for a stuck flusher")
	}
	select {
	case b := <-got:
		if b != "" {
			t.Fatalf("the client read %q", b)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the socket was not closed")
	}
	release() // the held write now finds the socket closed
}

// A close that finds the client closed already (its flush failed mid-frame and closed it,
// say) must not ask for a last flush again: the writer would write the queued bytes right
// after the cut frame. Before, closeFlushing set flushOnClose whatever the state (the
// reader's parse error after its own failed flush did, found by review).
func TestCloseFlushingAClosedClientAddsNoLastFlush(t *testing.T) {
	_, _, dst := rawSubscriber(t, 0)
	dst.mu.Lock()
	dst.out.flushOnClose = false // as a failed flush leaves it
	dst.mu.Unlock()
	dst.closeConnection(reasonWriteError)
	dst.closeFlushing(reasonProtocolViolation)
	dst.mu.Lock()
	again := dst.out.flushOnClose
	dst.mu.Unlock()
	if again {
		t.Fatal("closeFlushing on a closed client asked for a last flush")
	}
}
