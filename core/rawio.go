package core

import (
	"io"
	"net"
	"syscall"
)

// rawOp is one non-blocking read or write made through a connection's syscall.RawConn: on
// Linux (rawio_linux.go) a raw system call (syscall.RawSyscall), which the runtime does not
// account as a system call (entersyscall); elsewhere, and in race builds, a plain one
// (rawio_other.go). For a non-blocking socket that is sound — the call never blocks its
// thread — and it spares the runtime's bookkeeping: coming back from idle, a process's first
// accounted system call wakes the runtime's monitor thread (sysmon), which then polls every
// 20 µs until the process is idle again. A synchronous publisher idles the server between
// its messages, so that was one futex wake-up and a few sleeps of another thread per
// message, on the core the client needs. fn is bound once (the method value), so a call
// allocates nothing.
type rawOp struct {
	rc    syscall.RawConn // rin: the socket read, nil unless the client reads the socket itself (startReads)
	b     []byte
	n     int
	errno syscall.Errno
	all   bool // rawWrite: the whole of b, waiting for writability as needed (writeRaw)
	fn    func(fd uintptr) bool
	probe func(fd uintptr) // rin: one raw read that never waits (spinRead)
}

// rawProbe reads into o.b once, whatever the result (EAGAIN included).
func (o *rawOp) rawProbe(fd uintptr) { o.n, o.errno = sysRead(fd, o.b) }

// rawRead reads into o.b; false (EAGAIN) has the poller wait for input.
func (o *rawOp) rawRead(fd uintptr) bool {
	o.n, o.errno = sysRead(fd, o.b)
	return o.errno != syscall.EAGAIN
}

// rawWrite writes o.b once and never waits for writability (an in-place write), or, with
// o.all, writes on from o.n until all of o.b is written or an error, having the poller wait
// whenever the socket is full (the writer's writeOut).
func (o *rawOp) rawWrite(fd uintptr) bool {
	if !o.all {
		o.n, o.errno = sysWrite(fd, o.b)
		return true
	}
	for o.n < len(o.b) {
		n, errno := sysWrite(fd, o.b[o.n:])
		switch {
		case errno == syscall.EAGAIN:
			return false
		case errno != 0:
			o.errno = errno
			return true
		case n == 0:
			o.errno = syscall.EIO // a socket that takes nothing and says nothing: do not spin
			return true
		}
		o.n += n
	}
	return true
}

// initRaw binds the client's raw operations (newSocketClient, with c.raw set).
func (c *client) initRaw() {
	c.rin.fn = c.rin.rawRead
	c.rin.probe = c.rin.rawProbe
	c.rout.fn = c.rout.rawWrite
}

// startReads sets up readInput as the read goroutine starts, on the connection's final
// transport: raw reads only when the client reads the TCP socket itself — not over TLS, nor
// through a connection that replays bytes peeked before it (upgradeAndRun's prefixConn).
func (c *client) startReads() {
	c.rin.rc = nil
	if _, ok := c.nc.(*net.TCPConn); ok {
		c.rin.rc = c.raw
	}
}

// readInput reads what the client sent into buf: net.Conn.Read, but on a plain TCP socket
// with a raw read (rawOp) made through the poller, which parks the goroutine on EAGAIN as
// net.Conn.Read does. Read goroutine only.
func (c *client) readInput(buf []byte) (int, error) {
	o := &c.rin
	if o.rc == nil || len(buf) == 0 {
		return c.nc.Read(buf)
	}
	o.b = buf
	done, err := c.spinRead()
	if !done {
		err = o.rc.Read(o.fn)
	}
	o.b = nil
	switch {
	case err != nil:
		return 0, err
	case o.errno != 0:
		return 0, o.errno
	case o.n == 0:
		return 0, io.EOF
	}
	return o.n, nil
}

// writeInPlace makes one non-blocking write of b on the raw socket (tryFlushInPlace, which
// owns the socket meanwhile: c.out.flushing).
func (c *client) writeInPlace(b []byte) (int, error) {
	o := &c.rout
	o.b = b
	rerr := c.raw.Write(o.fn)
	o.b = nil
	if rerr != nil {
		return 0, rerr
	}
	if o.errno != 0 {
		return 0, o.errno
	}
	return o.n, nil
}

// writeRaw writes all of b on the raw socket, waiting on the poller while the socket is
// full and honouring the write deadline as net.Conn.Write does; the caller holds
// c.out.flushing (writeOut).
func (c *client) writeRaw(b []byte) (int, error) {
	o := &c.rout
	o.b, o.n, o.errno, o.all = b, 0, 0, true
	err := c.raw.Write(o.fn)
	n, errno := o.n, o.errno
	o.b, o.all = nil, false
	if err != nil {
		return n, err
	}
	if errno != 0 {
		return n, errno
	}
	return n, nil
}
