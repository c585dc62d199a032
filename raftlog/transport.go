package raftlog

import (
	"fmt"
	"io"
	"log/slog"
	"net"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"
)

// AddressFunc adapts a function to raft.ServerAddressProvider: it maps a node ID to the
// address its raft transport listens on (learned, later, from the route mesh).
type AddressFunc func(id raft.ServerID) (raft.ServerAddress, error)

// ServerAddr implements raft.ServerAddressProvider.
func (f AddressFunc) ServerAddr(id raft.ServerID) (raft.ServerAddress, error) { return f(id) }

// TCPTransportConfig configures NewTCPTransport.
type TCPTransportConfig struct {
	// Listen is the host:port raft listens on, apart from the client and route ports; port 0
	// picks a free one.
	Listen string
	// Advertise is the address peers dial, when it is not the listener's own: a host, which
	// takes the listener's port, or host:port. A wildcard Listen (":0", "0.0.0.0:7422")
	// needs one.
	Advertise string
	// Resolve maps a peer's node ID (which the raft configuration holds as its address) to
	// the address it listens on, each time a connection is dialled, so that addresses can be
	// learned late and can change. nil: node IDs are dialled as they are (host:port IDs).
	Resolve raft.ServerAddressProvider
	// MaxPool is the number of idle connections kept per peer (default 3); Timeout the I/O
	// deadline of an RPC (default 10s; raft scales it up for snapshots).
	MaxPool int
	Timeout time.Duration
	// Logger receives the transport's messages from Level up; NoLog drops them.
	Logger *slog.Logger
	Level  slog.Level
	NoLog  bool
}

// NewTCPTransport returns raft's network transport over TCP, on a listener of its own.
// Each RPC takes a pooled connection of its own, and the receiver answers heartbeats on its
// fast path, outside raft's main loop: heartbeats never wait behind a large AppendEntries or
// a snapshot (DESIGN.md).
func NewTCPTransport(c TCPTransportConfig) (*raft.NetworkTransport, error) {
	if c.MaxPool == 0 {
		c.MaxPool = 3
	}
	if c.Timeout == 0 {
		c.Timeout = 10 * time.Second
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	ln, err := net.Listen("tcp", c.Listen)
	if err != nil {
		return nil, fmt.Errorf("raftlog: raft listener on %q: %w", c.Listen, err)
	}
	adv, err := advertised(ln.Addr().(*net.TCPAddr), c.Advertise)
	if err != nil {
		_ = ln.Close()
		return nil, err
	}
	level := hclogLevel(c.Level)
	if c.NoLog {
		level = hclog.Off
	}
	hl := newHCLogger(c.Logger, "raft-net", level)
	// No ServerAddressProvider for raft: it would pool connections by the resolved address,
	// and a peer back on another port would leave the ones pooled to its old address there
	// for good. The stream resolves instead, so the pools are keyed by node ID.
	return raft.NewNetworkTransportWithConfig(&raft.NetworkTransportConfig{
		Logger:  hl,
		MaxPool: c.MaxPool,
		Timeout: c.Timeout,
		Stream:  &tcpStream{ln: ln, adv: adv, resolve: c.Resolve, log: hl},
	}), nil
}

// advertised is the address peers dial: adv, completed with the listener's port when it
// names a host only, or the listener's own address, which must then be a dialable one.
func advertised(bound *net.TCPAddr, adv string) (*net.TCPAddr, error) {
	if adv == "" {
		if bound.IP.IsUnspecified() {
			return nil, fmt.Errorf("raftlog: raft listens on %s, which peers cannot dial: an advertise address is needed", bound)
		}
		return bound, nil
	}
	if _, _, err := net.SplitHostPort(adv); err != nil {
		adv = net.JoinHostPort(adv, strconv.Itoa(bound.Port))
	}
	a, err := net.ResolveTCPAddr("tcp", adv)
	if err != nil {
		return nil, fmt.Errorf("raftlog: raft advertise address %q: %w", adv, err)
	}
	if a.IP == nil || a.IP.IsUnspecified() {
		return nil, fmt.Errorf("raftlog: raft advertise address %q is not one peers can dial", adv)
	}
	return a, nil
}

// tcpStream is raft's StreamLayer over a TCP listener, advertising adv. It keeps the
// connections it accepted and dialled until they close, and closes them with the listener:
// raft's transport closes only its listener at Close, leaving its pooled connections and
// its handlers of accepted ones (blocked reading, each with its socket) to the process's
// exit, and a node closed and started again in one process leaked them at every restart,
// with the peers' ends.
type tcpStream struct {
	ln      net.Listener
	adv     net.Addr
	resolve raft.ServerAddressProvider // nil: addresses are dialled as they are
	log     hclog.Logger

	mu     sync.Mutex
	conns  map[io.Closer]struct{}
	closed bool
}

func (t *tcpStream) Accept() (net.Conn, error) {
	nc, err := t.ln.Accept()
	if err != nil {
		return nil, err
	}
	c := &acceptedConn{Conn: nc, s: t}
	if !t.track(c) {
		_ = nc.Close()
		return nil, net.ErrClosed
	}
	return c, nil
}

func (t *tcpStream) Addr() net.Addr { return t.adv }

// Close closes the listener and every connection still open.
func (t *tcpStream) Close() error {
	err := t.ln.Close()
	t.mu.Lock()
	t.closed = true
	conns := t.conns
	t.conns = nil
	t.mu.Unlock()
	for c := range conns {
		_ = c.Close()
	}
	return err
}

// track adds c to the open connections; false once the stream is closed.
func (t *tcpStream) track(c io.Closer) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closed {
		return false
	}
	if t.conns == nil {
		t.conns = map[io.Closer]struct{}{}
	}
	t.conns[c] = struct{}{}
	return true
}

func (t *tcpStream) untrack(c io.Closer) {
	t.mu.Lock()
	delete(t.conns, c)
	t.mu.Unlock()
}

// dialAddr is where a connection to addr, a node ID from the raft configuration, goes: the
// address resolve gives, or addr itself when it gives none (as raft falls back).
func (t *tcpStream) dialAddr(addr raft.ServerAddress) string {
	if t.resolve == nil {
		return string(addr)
	}
	a, err := t.resolve.ServerAddr(raft.ServerID(addr))
	if err != nil {
		t.log.Warn("unable to get address for server, using fallback address", "id", addr, "fallback", addr, "error", err)
		return string(addr)
	}
	return string(a)
}

// Dial connects to addr, a node ID resolved at each dial (and redial). A failure is an
// *unreachableError: no RPC reached the peer, so the caller may try it again (contacts).
func (t *tcpStream) Dial(addr raft.ServerAddress, timeout time.Duration) (net.Conn, error) {
	nc, err := net.DialTimeout("tcp", t.dialAddr(addr), timeout)
	if err != nil {
		return nil, &unreachableError{addr: addr, err: err}
	}
	c := &redialConn{Conn: nc, addr: addr, timeout: timeout, s: t}
	if !t.track(c) {
		_ = nc.Close()
		return nil, net.ErrClosed
	}
	return c, nil
}

// unreachableError is a failed dial of a peer: the RPC that needed the connection sent
// nothing (raft's transport dials before it reads or writes anything).
type unreachableError struct {
	addr raft.ServerAddress
	err  error
}

func (e *unreachableError) Error() string {
	return fmt.Sprintf("raftlog: dialling %s: %v", e.addr, e.err)
}

func (e *unreachableError) Unwrap() error { return e.err }

// acceptedConn is an accepted connection, forgotten by its stream once closed.
type acceptedConn struct {
	net.Conn
	s *tcpStream
}

func (c *acceptedConn) Close() error {
	c.s.untrack(c)
	return c.Conn.Close()
}

// redialConn is a connection raft pools between RPCs, which replaces itself with a new one
// when the peer closed it meanwhile (at the peer's address then, which may have changed). A peer that was killed and restarted leaves every pooled
// connection to it dead, and raft would fail one RPC on each (no retry): after a leader's
// death, a vote request that fails that way cost the election a whole election timeout.
//
// It also makes raft's deadline of an RPC (SetDeadline: the transport's Timeout, 10 s by
// default) one on progress: each read or write that moves bytes pushes it that far again. A
// whole RPC had to fit it before: an AppendEntries of MaxAppendEntries large entries (256 of
// 7 MB, 1.8 GB: 15 s on a 1 Gbit/s link) failed at every retry, the same one, and a follower
// that far behind never caught up from the log. The pipeline's own read and write deadlines
// stay as raft sets them.
type redialConn struct {
	net.Conn
	addr    raft.ServerAddress // as raft dialled it: resolved again at a redial
	timeout time.Duration
	idle    atomic.Int64 // the RPC's deadline less its start: how far progress pushes it; 0: none
	s       *tcpStream
	// mu orders the swap of Conn in SetDeadline with a Close from the stream's (raft reads
	// and writes only between its own SetDeadline calls); closed: no swap after Close.
	mu     sync.Mutex
	closed bool
}

// writeChunk bounds a write between two pushes of the deadline: a large entry is written in
// pieces, each of which a slow link must carry within the deadline.
const writeChunk = 1 << 20

func (c *redialConn) Read(b []byte) (int, error) {
	n, err := c.Conn.Read(b)
	if n > 0 {
		c.progress()
	}
	return n, err
}

func (c *redialConn) Write(b []byte) (int, error) {
	written := 0
	for len(b) > 0 {
		n, err := c.Conn.Write(b[:min(len(b), writeChunk)])
		written += n
		if n > 0 {
			c.progress()
		}
		if err != nil {
			return written, err
		}
		b = b[n:]
	}
	return written, nil
}

// progress pushes the RPC's deadline, if raft set one with SetDeadline.
func (c *redialConn) progress() {
	if d := time.Duration(c.idle.Load()); d > 0 {
		_ = c.Conn.SetDeadline(time.Now().Add(d))
	}
}

func (c *redialConn) SetReadDeadline(t time.Time) error {
	c.idle.Store(0)
	return c.Conn.SetReadDeadline(t)
}

func (c *redialConn) SetWriteDeadline(t time.Time) error {
	c.idle.Store(0)
	return c.Conn.SetWriteDeadline(t)
}

// SetDeadline is how raft starts an RPC on a connection it took from its pool (net_transport.go,
// genericRPC and InstallSnapshot; the pipeline sets write deadlines only): nothing is in flight
// then, so a dead connection can be swapped for a fresh one under raft's buffered reader and
// writer.
func (c *redialConn) SetDeadline(t time.Time) error {
	if peerClosed(c.Conn) {
		if nc, err := net.DialTimeout("tcp", c.s.dialAddr(c.addr), c.timeout); err == nil {
			c.mu.Lock()
			old := c.Conn
			if c.closed {
				old = nc
			} else {
				c.Conn = nc
			}
			c.mu.Unlock()
			_ = old.Close()
		}
	}
	c.idle.Store(0)
	if !t.IsZero() {
		c.idle.Store(int64(max(time.Until(t), 0)))
	}
	return c.Conn.SetDeadline(t)
}

func (c *redialConn) Close() error {
	c.s.untrack(c)
	c.mu.Lock()
	defer c.mu.Unlock()
	c.closed = true
	return c.Conn.Close()
}

// peerClosed reports whether nc's peer has closed it or reset it: a non-blocking peek reads
// end of file or an error other than "nothing to read yet".
func peerClosed(nc net.Conn) bool {
	sc, ok := nc.(syscall.Conn)
	if !ok {
		return false
	}
	raw, err := sc.SyscallConn()
	if err != nil {
		return false
	}
	closed := false
	var b [1]byte
	err = raw.Read(func(fd uintptr) bool {
		n, _, err := syscall.Recvfrom(int(fd), b[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
		closed = n == 0 && err == nil || err != nil && err != syscall.EAGAIN && err != syscall.EINTR
		return true // never wait for readability
	})
	return closed || err != nil
}
