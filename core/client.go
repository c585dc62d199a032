package core

import (
	"context"
	"crypto/tls"
	"errors"
	"io"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/starling-io/starling/core/auth"
	"github.com/starling-io/starling/core/subject"
	"github.com/starling-io/starling/core/wire"
)

type clientKind uint8

const (
	kindClient   clientKind = iota // a socket speaking the client protocol
	kindInternal                   // an in-process Conn: no socket, handler subscriptions
	kindRoute                      // another server of the cluster
)

// Read buffer sizing: start small so idle connections stay cheap, grow while reads fill
// the buffer, shrink back when traffic calms down.
const (
	minReadBuf = 512
	maxReadBuf = 64 << 10
	// maxSpareOut is the largest flushed outbound buffer always kept for reuse: above
	// stallMax, so a busy connection's two buffers take turns without reallocating. A
	// larger one is kept while output is still queued behind it (outbound.go). An idle
	// connection drops both buffers' capacity at the next keepalive tick.
	maxSpareOut = stallMax + maxReadBuf*2
	// l1Max bounds the per-client match cache.
	l1Max = 128
)

// l1Entry is an L1 match cache entry: the result, and the key it is stored under (so that
// client.l1last can hold it without copying the subject).
type l1Entry struct {
	subj string
	r    *subject.Result[*subscription]
}

// connectOpts holds what the client said in CONNECT (defaults per the spec: verbose,
// pedantic and echo on when absent).
type connectOpts struct {
	Verbose      bool   `json:"verbose"`
	Pedantic     bool   `json:"pedantic"`
	TLSRequired  bool   `json:"tls_required"`
	AuthToken    string `json:"auth_token,omitempty"`
	User         string `json:"user,omitempty"`
	Pass         string `json:"pass,omitempty"`
	Nkey         string `json:"nkey,omitempty"`
	Sig          string `json:"sig,omitempty"`
	JWT          string `json:"jwt,omitempty"`
	Name         string `json:"name"`
	Lang         string `json:"lang"`
	Version      string `json:"version"`
	Protocol     int    `json:"protocol"`
	Echo         bool   `json:"echo"`
	Headers      bool   `json:"headers"`
	NoResponders bool   `json:"no_responders"`
	Account      *any   `json:"account,omitempty"`
	NewAccount   *any   `json:"new_account,omitempty"`
}

// client is one connection. Fields are grouped by who touches them.
type client struct {
	srv  *Server
	kind clientKind
	cid  uint64
	rid  uint64          // process-wide id of a socket's reader (lastReader); cid is per server
	nc   net.Conn        // nil for kindInternal
	raw  syscall.RawConn // for non-blocking in-place writes; nil when not a plain TCP socket
	rin  rawOp           // the read goroutine's raw reads (readInput)
	rout rawOp           // in-place writes (writeInPlace), by whoever holds c.out.flushing
	ip   string
	port int
	log  *slog.Logger

	ldmTold bool // an INFO with ldm was rendered for it (infoJSON, under srv.mu)

	// Owned by the read goroutine.
	parser    *wire.Parser
	prod      producer
	l1        map[string]l1Entry
	l1gen     uint64   // the index generation the L1 entries were matched in
	l1last    l1Entry  // the subject matched last, an entry of l1 (its key: no copy); r nil: none
	gotPing   bool     // first PING after a CONNECT answered (connect_info INFO sent), once per connection
	optsSeen  *Options // the options the parser limits were taken from
	inBatch   inBatch
	connected bool // CONNECT processed
	ready     bool // a route: handshake done (cached from route.registered)

	route *routeState // set for kindRoute

	// acc is the client's account: $G until CONNECT names another, then fixed. Read by the
	// read goroutine (match, SUB) and set there, at CONNECT, before any SUB is accepted.
	acc *account

	// Set at CONNECT by the read goroutine before any delivery can depend on them; the
	// flags are atomics because producers on other goroutines read them.
	opts    connectOpts
	echo    atomic.Bool
	headers atomic.Bool
	proto1  atomic.Bool // protocol >= 1 and first PONG sent: may receive async INFO

	// Authentication and permissions. perms is replaced by Reload; the read goroutine keeps
	// a decision cache built for the checker it last saw.
	nonce       []byte // sent in INFO for nkey signing
	mustConnect bool   // accepted when CONNECT was required first (set before the goroutines start)
	tlsState    *tls.ConnectionState
	tlsFirst    atomic.Bool // TLS handshake before INFO: INFO says tls_required even with AllowNonTLS
	perms       atomic.Pointer[auth.Checker]
	responses   atomic.Pointer[auth.Responses]
	pubCache    *auth.PubCache
	pubCacheFor *auth.Checker
	reauthMu    sync.Mutex // serialises reauthenticate (a reload and a CONNECT finishing its check)

	// gone mirrors closed for the read loop, which checks it at each PUB without c.mu: a
	// client closed from elsewhere publishes nothing more of its read buffer.
	gone atomic.Bool

	mu        sync.Mutex // guards everything below
	out       outbound
	subs      map[string]*subscription // by sid
	closed    bool
	reason    string
	stop      time.Time
	pingsOut  int
	pingSent  time.Time
	rtt       time.Duration
	rttStart  time.Time // when the last PING went out: an RTT older than rttMaxAge is measured again
	pingTimer *time.Timer
	authTimer *time.Timer
	authDone  bool                // CONNECT authenticated (or no auth needed)
	authErred bool                // an authentication error event was sent (authErrorEvent)
	ident     *auth.Identity      // who the client is; nil without auth
	authBy    *auth.Authenticator // the one that issued ident; nil without auth
	announced *account            // a connect event was sent (counted in this account's conns): a disconnect event follows

	// The auth timer ends authCtx (so does closing): a CONNECT waiting for its turn at
	// bcrypt gives up. authUser and authChecking name, for the timer's log line, who the
	// CONNECT claimed to be and whether its check was still running.
	authCtx      context.Context
	authCancel   context.CancelFunc
	authUser     string
	authChecking bool

	name    string // CONNECT name, readable by monitoring
	lang    string
	version string

	start      time.Time
	lastIn     atomic.Int64 // unix nanos of the last inbound PUB/SUB/PING
	lastAct    atomic.Int64 // unix nanos of the last activity either way
	lastOut    atomic.Int64 // unix nanos of the last write to the socket (spin.go)
	spin       spinState    // read goroutine's
	stats      counters
	writerDone chan struct{}
}

// inBatch counts inbound traffic during one read buffer; it is published to the atomic
// counters once per buffer instead of once per message.
type inBatch struct {
	msgs, bytes int64
	active      bool // a PUB, SUB or PING arrived: the client is not idle
}

// publishInBatch moves the read buffer's counts to the shared counters.
func (c *client) publishInBatch(now int64) {
	b := &c.inBatch
	if b.msgs > 0 {
		c.stats.inMsgs.Add(b.msgs)
		c.stats.inBytes.Add(b.bytes)
		b.active = true
	}
	if b.active {
		c.lastIn.Store(now)
	}
	*b = inBatch{}
}

// counters are per-connection traffic totals: atomics so monitoring can read them while
// the owner updates them without contention.
type counters struct {
	inMsgs, inBytes, outMsgs, outBytes atomic.Int64
}

// add adds o's counts to c.
func (c *counters) add(o *counters) {
	c.inMsgs.Add(o.inMsgs.Load())
	c.inBytes.Add(o.inBytes.Load())
	c.outMsgs.Add(o.outMsgs.Load())
	c.outBytes.Add(o.outBytes.Load())
}

// newSocketClient builds what every socket connection has — a client or a route — before
// its protocol is set up.
func (s *Server) newSocketClient(kind clientKind, nc net.Conn) *client {
	now := time.Now()
	c := &client{
		srv:        s,
		kind:       kind,
		cid:        s.nextCID.Add(1),
		rid:        readerIDs.Add(1),
		nc:         nc,
		start:      now,
		subs:       make(map[string]*subscription),
		writerDone: make(chan struct{}),
		acc:        s.gacc,
	}
	if tc, ok := nc.(*net.TCPConn); ok {
		c.raw, _ = tc.SyscallConn()
		c.initRaw()
	}
	if a, ok := nc.RemoteAddr().(*net.TCPAddr); ok {
		c.ip, c.port = a.IP.String(), a.Port
	}
	c.lastAct.Store(now.UnixNano())
	c.out.signal = make(chan struct{}, 1)
	c.prod.init(c)
	c.prod.batches = kind == kindClient // its readLoop flushes after every read buffer
	c.prod.idle = c.inputIdle
	return c
}

func (s *Server) createClient(nc net.Conn) {
	c := s.newSocketClient(kindClient, nc)
	c.log = s.log.With("cid", c.cid, "remote", nc.RemoteAddr().String())
	c.parser = wire.NewParser(c)
	// max_control_line applies from the first byte, CONNECT included, as in nats-server.
	c.applyLimits(s.o())
	// Until CONNECT, defaults apply: verbose and pedantic on (telnet users), echo on.
	c.opts = connectOpts{Verbose: true, Pedantic: true, Echo: true}
	c.echo.Store(true)

	// What a Reload reads of the client (reauthenticate: its nonce, whether CONNECT must
	// come first, its pre-CONNECT identity) is set before the client is registered, where
	// Reload finds it.
	o := s.o()
	if o.Auth != nil && o.Auth.NeedsNonce() {
		c.nonce = auth.NewNonce(nil)
	}
	// With accounts, a client's account is known at CONNECT: nothing may come before it.
	if o.Auth != nil && (o.Auth.Required() || len(o.Accounts) > 0) {
		c.parser.ExpectConnect, c.mustConnect = true, true
	} else if o.Auth != nil && !o.TLSMap {
		// No credentials asked for (a no_auth_user): until a CONNECT says otherwise, the
		// client is who it would be with a CONNECT that sends none, with those
		// permissions, as in nats-server.
		if id, err := o.Auth.Check(auth.Credentials{Nonce: c.nonce}); err == nil {
			c.setIdentity(id, o.Auth)
		}
	}

	s.mu.Lock()
	if s.shutdown || s.ldm {
		s.mu.Unlock()
		_ = nc.Close()
		return
	}
	over := len(s.clients)-s.internal >= s.o().MaxConnections // sockets only, as nats-server
	if !over {
		s.clients[c.cid] = c
		s.totalConn.Add(1)
		s.sockets.Add(1)
	}
	s.mu.Unlock()

	c.tlsFirst.Store(o.TLS != nil && o.TLSHandshakeFirst)
	info := s.infoJSON(c, infoPlain)
	if over {
		b := wire.AppendErr(wire.AppendInfo(nil, info), wire.ErrMaxConnections.Text)
		c.log.Debug("connection refused", "reason", "maximum connections exceeded")
		_ = nc.SetWriteDeadline(time.Now().Add(time.Second))
		_, _ = nc.Write(b)
		_ = nc.Close()
		return
	}
	if c.mustConnect {
		c.startAuthTimer(o)
	}
	if s.o().Auth != o.Auth && !c.reauthenticate() {
		_ = nc.Close() // a reload skipped us and refuses us: closed, never started
		return
	}
	c.log.Debug("client connected")
	if o.TLS != nil {
		s.wg.Add(1)
		// The handshake runs on the client's own goroutine, never on the accept loop.
		go c.upgradeAndRun(o)
		return
	}
	c.mu.Lock()
	c.out.buf = wire.AppendInfo(c.out.buf, info)
	c.mu.Unlock()
	c.run()
}

// run starts the client's writer and reader once its transport is final.
func (c *client) run() {
	c.srv.wg.Add(2)
	go c.writeLoop()
	go c.readLoop()
	c.setPingTimer(c.srv.o().PingInterval)
	c.flushSignal()
}

func (c *client) readLoop() {
	defer c.srv.wg.Done()
	buf := make([]byte, minReadBuf)
	small := 0
	c.startReads()
	for {
		n, err := c.readInput(buf)
		if n > 0 {
			now := time.Now().UnixNano()
			c.lastAct.Store(now)
			out0 := c.noteRead(now)
			if o := c.srv.o(); o != c.optsSeen {
				c.applyLimits(o)
			}
			var perr error
			if c.route != nil {
				perr = c.route.parser.Parse(buf[:n])
			} else {
				perr = c.parser.Parse(buf[:n])
			}
			msgs := c.inBatch.msgs
			c.publishInBatch(now)
			c.prod.flushPending()
			c.noteBatch(msgs, out0)
			if perr != nil {
				if c.route != nil {
					c.handleRouteError(perr)
				} else {
					c.handleParseError(perr)
				}
				return
			}
			// Adapt the buffer to the traffic.
			switch {
			case n == len(buf) && len(buf) < maxReadBuf:
				buf = make([]byte, len(buf)*2)
				small = 0
			case n < len(buf)/4 && len(buf) > minReadBuf:
				if small++; small > 8 {
					buf = make([]byte, len(buf)/2)
					small = 0
				}
			default:
				small = 0
			}
		}
		if err != nil {
			reason := reasonReadError
			switch {
			case c.route != nil && c.route.retiring.Load():
				reason = reasonDuplicateRoute // the end of a retired route (route_retire.go)
			case errors.Is(err, io.EOF):
				reason = reasonClientClosed
			}
			c.closeConnection(reason)
			return
		}
	}
}

// applyLimits takes the parser limits from (reloaded) options on the read goroutine.
func (c *client) applyLimits(o *Options) {
	c.optsSeen = o
	if c.route != nil {
		c.route.parser.MaxControlLine = routeMaxLine(o) // its payload limit is not ours (startRoute)
		return
	}
	c.parser.MaxPayload = o.MaxPayload
	c.parser.MaxControlLine = o.MaxControlLine
}

// handleParseError answers a protocol error the way the spec says and closes.
func (c *client) handleParseError(err error) {
	if errors.Is(err, errClosed) {
		return
	}
	var we *wire.Error
	if !errors.As(err, &we) {
		c.log.Debug("closing connection", "cause", err)
		c.closeConnection(reasonProtocolViolation)
		return
	}
	c.log.Debug("protocol error", "cause", we.Error())
	if we == wire.ErrAuthorization {
		c.authViolationEvent()
	}
	if we.Text != "" {
		c.sendErr(we.Text)
	}
	if we.Close {
		reason := we.Reason
		if reason == "" {
			reason = reasonProtocolViolation
		}
		c.closeFlushing(reason)
	}
}

// closeFlushing closes after giving queued output (typically an -ERR) a short chance to
// reach the client. A client closed already keeps its choice: a flush that failed there
// may have cut a frame, and nothing may follow it.
func (c *client) closeFlushing(reason string) {
	c.mu.Lock()
	if !c.closed {
		c.out.flushOnClose = true
	}
	c.mu.Unlock()
	c.closeConnection(reason)
}

// closeConnection is idempotent: it removes the client from the server and the index,
// stops its timers and ends its goroutines.
func (c *client) closeConnection(reason string) {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return
	}
	c.closed = true
	c.gone.Store(true)
	c.reason = reason
	c.stop = time.Now()
	if c.pingTimer != nil {
		c.pingTimer.Stop()
	}
	if c.authTimer != nil {
		c.authTimer.Stop()
	}
	authCancel := c.authCancel
	subs := make([]*subscription, 0, len(c.subs))
	for _, sub := range c.subs {
		subs = append(subs, sub)
	}
	flush := c.out.flushOnClose
	nc := c.nc
	ev := c.disconnectEvent()
	c.mu.Unlock()
	if ev != nil {
		c.srv.queueEvent(*ev)
	}
	if authCancel != nil {
		authCancel() // a CONNECT waiting for bcrypt gives up
	}

	c.dropSubs(subs)
	if c.kind == kindRoute {
		c.srv.removeRoute(c)
	} else {
		c.srv.removeClient(c)
	}
	if nc != nil {
		if !flush {
			_ = nc.Close()
		}
		c.flushSignal() // the writer flushes (if asked), closes the socket and exits
	}
	if reason != reasonClientClosed && reason != reasonShutdown {
		c.log.Debug("connection closed", "reason", reason)
	}
}

// dropSubs takes subscriptions of c out of the index.
func (c *client) dropSubs(subs []*subscription) {
	for _, sub := range subs {
		sub.closed.Store(true)
		_ = sub.acc.subs.Remove(sub.subject, sub.queue, sub)
		c.srv.subRemoved(sub)
		c.srv.removeShadows(sub)
	}
}

func (s *Server) removeClient(c *client) {
	c.mu.Lock()
	acc := c.acc
	c.mu.Unlock()
	s.mu.Lock()
	if _, ok := s.clients[c.cid]; ok {
		switch c.kind {
		case kindInternal:
			s.internal--
		case kindClient:
			s.sockets.Add(-1)
		}
	}
	delete(s.clients, c.cid)
	if c.kind != kindInternal {
		// All of it: Connz shows what each request asks for (ConnInfo.asRequested).
		ci := c.connInfo(ConnzOptions{SubsDetail: true, Auth: true}, time.Now())
		for i := range ci.SubsDetail { // as nats-server keeps them: with the account and its tag
			ci.SubsDetail[i].Account, ci.SubsDetail[i].AccountTag = ci.acc, ci.acc
		}
		s.closed.add(ci)
	}
	// Under s.mu, as Varz reads them: its totals never miss the connection in between.
	s.gone.inMsgs.Add(c.stats.inMsgs.Load())
	s.gone.inBytes.Add(c.stats.inBytes.Load())
	s.gone.outMsgs.Add(c.stats.outMsgs.Load())
	s.gone.outBytes.Add(c.stats.outBytes.Load())
	if c.kind == kindClient && acc != nil { // addTraffic reads these under s.mu too
		acc.gone.add(&c.stats)
	}
	s.mu.Unlock()
}

func (c *client) isClosed() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.closed
}

// sendProto queues a protocol line for this client and makes sure it gets flushed.
func (c *client) sendProto(line string) {
	c.mu.Lock()
	if !c.closed {
		c.out.buf = append(c.out.buf, line...)
	}
	c.mu.Unlock()
	c.prod.addPending(c)
}

func (c *client) sendErr(text string) {
	c.mu.Lock()
	if !c.closed {
		c.out.buf = wire.AppendErr(c.out.buf, text)
	}
	c.mu.Unlock()
	c.prod.addPending(c)
}

// sendAsyncInfo sends the current INFO of kind to a client that can take async INFOs; used
// for lame duck, an LDM request and topology changes.
func (c *client) sendAsyncInfo(kind infoKind) {
	if c.kind != kindClient || !c.proto1.Load() {
		return
	}
	info := c.srv.infoJSON(c, kind)
	c.mu.Lock()
	if !c.closed {
		c.out.buf = wire.AppendInfo(c.out.buf, info)
	}
	c.mu.Unlock()
	c.flushSignal()
}
