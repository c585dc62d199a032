package main

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"time"
)

// The raw clients below speak the NATS text protocol directly: opening 10,000 idle connections
// through a full client library would cost the compare process more than the servers under test,
// and natscli v0.5.0's `bench sub` cannot join a queue group.

const connectLine = "CONNECT {\"verbose\":false,\"pedantic\":false,\"protocol\":1}\r\n"

// rawConn is one plain-TCP NATS client connection.
type rawConn struct {
	c net.Conn
	r *bufio.Reader
}

// dialRaw connects to addr and runs the handshake: CONNECT, then subs (SUB/QSUB lines), then a
// PING whose PONG proves the server has processed every subscription.
func dialRaw(addr string, subs []byte, readBuf int, timeout time.Duration) (*rawConn, error) {
	c, err := net.DialTimeout("tcp", addr, timeout)
	if err != nil {
		return nil, err
	}
	rc := &rawConn{c: c, r: bufio.NewReaderSize(c, readBuf)}
	if err := rc.handshake(subs, time.Now().Add(timeout)); err != nil {
		c.Close()
		return nil, err
	}
	return rc, nil
}

func (rc *rawConn) handshake(subs []byte, deadline time.Time) error {
	_ = rc.c.SetDeadline(deadline)
	defer rc.c.SetDeadline(time.Time{})
	msg := make([]byte, 0, len(connectLine)+len(subs)+6)
	msg = append(append(append(msg, connectLine...), subs...), "PING\r\n"...)
	if _, err := rc.c.Write(msg); err != nil {
		return err
	}
	for {
		line, err := rc.readLine()
		if err != nil {
			return fmt.Errorf("handshake: %w", err)
		}
		switch {
		case bytes.HasPrefix(line, []byte("PONG")):
			return nil
		case bytes.HasPrefix(line, []byte("-ERR")):
			return fmt.Errorf("handshake: server said %s", bytes.TrimSpace(line))
		}
	}
}

// readLine returns the next control line. A line longer than the buffer (a large INFO) is
// skipped whole: only short lines matter here.
func (rc *rawConn) readLine() ([]byte, error) {
	long := false
	for {
		line, err := rc.r.ReadSlice('\n')
		switch {
		case errors.Is(err, bufio.ErrBufferFull):
			long = true
		case err != nil:
			return nil, err
		case long:
			long = false
		default:
			return line, nil
		}
	}
}

func (rc *rawConn) close() { _ = rc.c.Close() }

// queueGroup is a set of raw connections in one queue group, counting what they receive.
type queueGroup struct {
	members []*rawConn
	want    int64
	total   atomic.Int64 // messages received by all members, published in batches
	counts  []int64      // per member; final once wg is done
	first   []time.Time  // per member: when its first message arrived
	end     time.Time    // when total reached want; final once done is closed
	done    chan struct{}
	once    sync.Once
	wg      sync.WaitGroup
	errs    chan error
}

// joinQueueGroup opens n members subscribed to subject in queue group queue, expecting want
// messages in total, and starts their readers.
func joinQueueGroup(addr, subject, queue string, n int, want int64, timeout time.Duration) (*queueGroup, error) {
	g := &queueGroup{
		want: want, counts: make([]int64, n), first: make([]time.Time, n),
		done: make(chan struct{}), errs: make(chan error, n),
	}
	sub := []byte(fmt.Sprintf("SUB %s %s 1\r\n", subject, queue))
	for range n {
		rc, err := dialRaw(addr, sub, 64<<10, timeout)
		if err != nil {
			g.close()
			return nil, fmt.Errorf("queue member: %w", err)
		}
		g.members = append(g.members, rc)
	}
	for i := range g.members {
		g.wg.Add(1)
		go g.read(i)
	}
	return g, nil
}

// read counts MSGs on member i. It adds to the shared total only when its buffer is drained,
// so the members do not contend on one counter for every message.
func (g *queueGroup) read(i int) {
	defer g.wg.Done()
	rc := g.members[i]
	var local, published int64
	for {
		line, err := rc.readLine()
		if err != nil {
			select {
			case <-g.done: // closed by us after the run
			default:
				g.errs <- fmt.Errorf("queue member %d: %w", i, err)
			}
			g.counts[i] = local
			return
		}
		switch {
		case bytes.HasPrefix(line, []byte("MSG ")):
			if err := discardPayload(rc.r, line); err != nil {
				g.errs <- fmt.Errorf("queue member %d: %w", i, err)
				g.counts[i] = local
				return
			}
			if local++; local == 1 {
				g.first[i] = time.Now()
			}
		case bytes.HasPrefix(line, []byte("PING")):
			_, _ = rc.c.Write([]byte("PONG\r\n"))
		case bytes.HasPrefix(line, []byte("-ERR")):
			g.errs <- fmt.Errorf("queue member %d: server said %s", i, bytes.TrimSpace(line))
		}
		if rc.r.Buffered() == 0 && local > published {
			if g.total.Add(local-published) >= g.want {
				g.once.Do(func() { g.end = time.Now(); close(g.done) })
			}
			published = local
		}
	}
}

// discardPayload skips the payload announced by a "MSG <subject> <sid> [reply] <size>" line.
func discardPayload(r *bufio.Reader, line []byte) error {
	line = bytes.TrimRight(line, "\r\n")
	size := 0
	for _, c := range line[bytes.LastIndexByte(line, ' ')+1:] {
		if c < '0' || c > '9' || size > 1<<30 {
			return fmt.Errorf("bad MSG line %q", line)
		}
		size = size*10 + int(c-'0')
	}
	_, err := r.Discard(size + 2)
	return err
}

// close disconnects every member and waits for the readers.
func (g *queueGroup) close() {
	g.once.Do(func() { close(g.done) })
	for _, m := range g.members {
		m.close()
	}
	g.wg.Wait()
}

// span is the time from the first message any member received to the last expected one.
func (g *queueGroup) span() time.Duration {
	var start time.Time
	for _, t := range g.first {
		if !t.IsZero() && (start.IsZero() || t.Before(start)) {
			start = t
		}
	}
	return g.end.Sub(start)
}
