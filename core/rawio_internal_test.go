package core

import (
	"errors"
	"io"
	"net"
	"os"
	"testing"
	"time"
)

// rawPair returns a client over the accepted end of a loopback TCP connection, with its raw
// operations bound as newSocketClient binds them, and the dialled end.
func rawPair(t *testing.T) (*client, net.Conn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	peer, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { peer.Close() })
	nc, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nc.Close() })
	c := &client{nc: nc}
	c.raw, err = nc.(*net.TCPConn).SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	c.initRaw()
	c.startReads()
	return c, peer
}

// TestReadInputRaw: the reader's raw reads return what the peer sent, whole and in order
// across reads smaller than what was sent, wait (on the poller) for input that is not there
// yet, end with io.EOF when the peer closes, and honour a read deadline as net.Conn.Read
// does (a retiring route's reader relies on it).
func TestReadInputRaw(t *testing.T) {
	c, peer := rawPair(t)
	sent := make([]byte, 100_000)
	for i := range sent {
		sent[i] = byte(i % 251)
	}
	go func() {
		_, _ = peer.Write(sent[:10])
		time.Sleep(20 * time.Millisecond) // the reader parks on EAGAIN meanwhile (not asserted)
		_, _ = peer.Write(sent[10:])
		peer.Close()
	}()
	var got []byte
	buf := make([]byte, 4096)
	for {
		n, err := c.readInput(buf)
		got = append(got, buf[:n]...)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatalf("after %d bytes: %v", len(got), err)
		}
		if n == 0 {
			t.Fatal("a read returned nothing and no error")
		}
	}
	if string(got) != string(sent) {
		t.Fatalf("read %d bytes, not what was sent (%d bytes)", len(got), len(sent))
	}

	c2, _ := rawPair(t)
	if err := c2.nc.SetReadDeadline(time.Now().Add(10 * time.Millisecond)); err != nil {
		t.Fatal(err)
	}
	if n, err := c2.readInput(buf); n != 0 || !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("read past the deadline: %d, %v; want 0, a deadline error", n, err)
	}
	c2.nc.Close()
	if _, err := c2.readInput(buf); err == nil || errors.Is(err, io.EOF) {
		t.Fatalf("read on a closed connection: %v; want its error", err)
	}
}

// TestRawIOAllocatesNothing: a synchronous publisher's round trip is a read of its request
// and an in-place write of the reply: neither may allocate. The in-place write's closure
// used to be allocated on every call (it captured the result variables).
func TestRawIOAllocatesNothing(t *testing.T) {
	c, peer := rawPair(t)
	c.out.signal = nil // flushSignal: no writer here
	frame := []byte("MSG a 1 2\r\nhi\r\n")
	back := make([]byte, 64)
	in := make([]byte, 64)
	roundTrip := func() {
		c.mu.Lock()
		c.out.buf = append(c.out.buf, frame...)
		c.mu.Unlock()
		c.tryFlushInPlace(inPlaceMax)
		if _, err := io.ReadFull(peer, back[:len(frame)]); err != nil {
			t.Fatal(err)
		}
		if _, err := peer.Write(frame); err != nil {
			t.Fatal(err)
		}
		if n, err := c.readInput(in); err != nil || n != len(frame) {
			t.Fatalf("read %d, %v", n, err)
		}
	}
	for range 3 {
		roundTrip() // the output buffers' first turns allocate them
	}
	if a := testing.AllocsPerRun(200, roundTrip); a != 0 {
		t.Fatalf("%v allocations per round trip, want 0", a)
	}
	if string(back[:len(frame)]) != string(frame) {
		t.Fatalf("the peer read %q", back[:len(frame)])
	}
}

// TestFlushInPlaceBulk: the streaming engine's flush (Conn.FlushInPlace: bulk) writes a
// destination's bulk output in place as well as another's small output, waking no writer
// (before, bulk output made it wake every writer and write nothing). A reader's own end of
// buffer (bulk false) still writes only the small one in place and wakes the bulk one's
// writer; a sealed backlog is always left to the writer.
func TestFlushInPlaceBulk(t *testing.T) {
	small, smallPeer := rawPair(t)
	bulk, bulkPeer := rawPair(t)
	for _, c := range []*client{small, bulk} {
		c.out.signal = make(chan struct{}, 1)
	}
	var p producer
	p.init(&client{})
	frame := []byte("MSG a 1 2\r\n" + "hi\r\n")
	big := make([]byte, inPlaceMax+1)
	queue := func(withBulk, sealed bool) {
		small.mu.Lock()
		small.out.buf = append(small.out.buf[:0], frame...)
		small.mu.Unlock()
		p.addPending(small)
		if withBulk {
			bulk.mu.Lock()
			bulk.out.buf = append(bulk.out.buf[:0], big...)
			if sealed {
				bulk.out.full = append(bulk.out.full, []byte("sealed"))
				bulk.out.fullLen += len("sealed")
			}
			bulk.mu.Unlock()
			p.addPending(bulk)
		}
	}
	signalled := func(c *client) bool {
		select {
		case <-c.out.signal:
			return true
		default:
			return false
		}
	}
	pending := func(c *client) int {
		c.mu.Lock()
		defer c.mu.Unlock()
		return len(c.out.buf)
	}
	back := make([]byte, len(frame))
	readSmall := func() {
		t.Helper()
		if _, err := io.ReadFull(smallPeer, back); err != nil || string(back) != string(frame) {
			t.Fatalf("the small peer read %q, %v", back, err)
		}
	}
	bigBack := make([]byte, len(big))
	readBulk := func() {
		t.Helper()
		if _, err := io.ReadFull(bulkPeer, bigBack); err != nil {
			t.Fatalf("the bulk peer: %v", err)
		}
	}

	queue(false, false)
	p.flush(true, true)
	if pending(small) != 0 || signalled(small) {
		t.Fatal("a lone small output was not written in place")
	}
	readSmall()

	queue(true, false)
	p.flush(true, true)
	if pending(small) != 0 || signalled(small) || pending(bulk) != 0 || signalled(bulk) {
		t.Fatalf("the engine's flush left %d and %d bytes (writers woken: %v, %v), want both written in place",
			pending(small), pending(bulk), signalled(small), signalled(bulk))
	}
	readSmall()
	readBulk()

	queue(true, false)
	p.flush(true, false)
	if pending(small) != 0 || signalled(small) || pending(bulk) != len(big) || !signalled(bulk) {
		t.Fatal("a reader's end of buffer did not write the small output in place and leave the bulk one to its writer")
	}
	readSmall()
	bulk.mu.Lock()
	bulk.out.buf = bulk.out.buf[:0]
	bulk.mu.Unlock()

	queue(true, true)
	p.flush(true, true)
	if pending(small) != 0 || pending(bulk) != len(big) || !signalled(bulk) {
		t.Fatal("a sealed backlog was not left to its writer")
	}
	readSmall()
	bulk.mu.Lock()
	bulk.out.buf, bulk.out.full, bulk.out.fullLen = bulk.out.buf[:0], nil, 0
	bulk.mu.Unlock()

	// The engine's flush of a batch's PubAcks allocates nothing.
	if a := testing.AllocsPerRun(100, func() {
		queue(false, false)
		p.flush(true, true)
		readSmall()
	}); a != 0 {
		t.Fatalf("%v allocations per flush, want 0", a)
	}
}

// TestWriteRawWhole: the writer's raw write (writeOut on a TCP socket) delivers all of a
// buffer far larger than the socket holds, in order, waiting on the poller while the peer
// reads slowly; past the write deadline it fails as net.Conn.Write does (the slow consumer
// check relies on it), having said how much went; and it allocates nothing.
func TestWriteRawWhole(t *testing.T) {
	c, peer := rawPair(t)
	sent := make([]byte, 8<<20)
	for i := range sent {
		sent[i] = byte(i % 251)
	}
	got := make(chan []byte)
	go func() {
		var b []byte
		buf := make([]byte, 64<<10)
		for len(b) < len(sent) {
			time.Sleep(time.Millisecond) // slower than the writer: the socket fills
			n, err := peer.Read(buf)
			if err != nil {
				break
			}
			b = append(b, buf[:n]...)
		}
		got <- b
	}()
	if err := c.nc.SetWriteDeadline(time.Now().Add(time.Minute)); err != nil {
		t.Fatal(err)
	}
	if n, err := c.writeRaw(sent); n != len(sent) || err != nil {
		t.Fatalf("wrote %d of %d: %v", n, len(sent), err)
	}
	if b := <-got; string(b) != string(sent) {
		t.Fatalf("the peer read %d bytes, not what was sent", len(b))
	}

	small := []byte("MSG a 1 2\r\nhi\r\n")
	back := make([]byte, len(small))
	if a := testing.AllocsPerRun(100, func() {
		if n, err := c.writeRaw(small); n != len(small) || err != nil {
			t.Fatalf("wrote %d: %v", n, err)
		}
		if _, err := io.ReadFull(peer, back); err != nil {
			t.Fatal(err)
		}
	}); a != 0 {
		t.Fatalf("%v allocations per write, want 0", a)
	}

	c2, peer2 := rawPair(t) // its peer never reads
	// Small socket buffers: 8 MiB must not fit in them, whatever the host's TCP tuning.
	if err := c2.nc.(*net.TCPConn).SetWriteBuffer(64 << 10); err != nil {
		t.Fatal(err)
	}
	if err := peer2.(*net.TCPConn).SetReadBuffer(64 << 10); err != nil {
		t.Fatal(err)
	}
	if err := c2.nc.SetWriteDeadline(time.Now().Add(50 * time.Millisecond)); err != nil {
		t.Fatal(err)
	}
	n, err := c2.writeRaw(sent)
	if !errors.Is(err, os.ErrDeadlineExceeded) || !isTimeout(err) {
		t.Fatalf("a write nobody reads: %v; want a deadline error", err)
	}
	if n <= 0 || n >= len(sent) {
		t.Fatalf("the failed write says %d of %d bytes went", n, len(sent))
	}
	c2.nc.Close()
	if _, err := c2.writeRaw(small); err == nil {
		t.Fatal("a write on a closed connection did not fail")
	}
	// An in-place write after a whole one is a single attempt again.
	c.nc.SetWriteDeadline(time.Time{})
	if n, err := c.writeInPlace(small); n != len(small) || err != nil || c.rout.all {
		t.Fatalf("in-place write after writeRaw: %d, %v, all=%v", n, err, c.rout.all)
	}
}

// TestFlushInPlaceIntoAFullSocket: a bulk output (the streaming engine's flush writes up to
// sealAt in place) that a full socket does not take is kept in its buffer, not copied into
// a new one at every try; what is left goes out whole and in order once the peer reads.
func TestFlushInPlaceIntoAFullSocket(t *testing.T) {
	c, peer := rawPair(t)
	c.out.signal = make(chan struct{}, 1)
	fill := make([]byte, 64<<10)
	for { // fill the socket until it takes nothing more: the peer does not read yet
		n, err := c.writeInPlace(fill)
		if n == 0 || err != nil {
			break
		}
	}
	chunk := make([]byte, 256<<10)
	for i := range chunk {
		chunk[i] = byte(i)
	}
	queue := func() {
		c.mu.Lock()
		c.out.buf = append(c.out.buf[:0], chunk...)
		c.mu.Unlock()
	}
	queue()
	c.tryFlushInPlace(sealAt) // the spare is set up by the first try
	if a := testing.AllocsPerRun(20, func() {
		queue()
		c.tryFlushInPlace(sealAt)
	}); a != 0 {
		t.Fatalf("%v allocations per in-place flush into a full socket, want 0", a)
	}
	c.mu.Lock()
	left := append([]byte(nil), c.out.buf...)
	c.mu.Unlock()
	if len(left) != len(chunk) || string(left) != string(chunk) {
		t.Fatalf("%d bytes left pending, want the chunk's %d unchanged", len(left), len(chunk))
	}
	peer.Close()
}
