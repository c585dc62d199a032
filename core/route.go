package core

import (
	"crypto/subtle"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/url"
	"runtime"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/starling-io/starling/core/wire"
)

// Routes join servers into a full mesh (spec §16: every interest and message line names
// its account). Each pair of servers keeps one route connection, used both ways; a message crosses
// at most one route. A route is a client of kindRoute: it shares the outbound buffer,
// writer, slow-consumer and keepalive machinery of clients, with its own parser and state.

// Route close reasons, as /routez and the log name them.
const (
	reasonDuplicateRoute = "Duplicate Route"
	reasonRouteRejected  = "Route Rejected"
	reasonWrongPort      = "Incorrect Port"
)

const (
	routeDialTimeout  = 2 * time.Second
	routeBackoffStart = 250 * time.Millisecond
	routeBackoffMax   = 10 * time.Second
	routePingMax      = 30 * time.Second
	// implicitRetries: a gossiped route is attempted this many extra times before the server
	// it names is forgotten (explicit routes are retried forever).
	implicitRetries = 3
)

// routeState is what a route connection knows beyond a client's.
type routeState struct {
	rid        uint64
	solicited  bool     // we dialed it
	configured bool     // from the configured routes: retried forever
	url        *url.URL // what we dialed
	parser     *wire.RouteParser

	// Owned by the read goroutine: the account of the last line, and the unknown account
	// names already logged (those whose interest was dropped too).
	lastAcc      *account
	lastSet      *accountSet // the account set lastAcc was found in
	unknownAccs  map[string]bool
	droppedAccs  map[string]bool
	droppedReset time.Time // when droppedAccs was last cleared (limboFreed)

	// Guarded by the client's mu: the peer's interest in accounts this server does not
	// have, kept for an account of that name a reload may add (moveRouteInterest).
	limbo map[string]*account

	retiring atomic.Bool // lost a tie-break: drained, then closed (route_retire.go)
	// next is the route that replaced this retired one and took its interest over: a
	// message matched on this route's interest goes there (route_carry.go).
	next atomic.Pointer[client]
	// carried: guarded by the client's mu, the keys of subs taken over from retired routes
	// (each with the route it came from) that the peer has not announced again here yet;
	// the PONG to the PING sent when they came ends the wait (route_carry.go).
	carried map[string]*client

	// Guarded by the server's rmu.
	registered  bool
	regAt       time.Time
	self        bool // the route led back to this server
	remoteID    string
	remoteName  string
	remoteURL   string            // its route URL, from its INFO
	connectURLs []string          // its client URLs
	info        []byte            // its INFO, forwarded to the others so they can connect to it
	meta        map[string]string // its Meta, from its latest INFO
}

// routeInfo is the INFO exchanged on routes.
type routeInfo struct {
	ServerID     string   `json:"server_id"`
	ServerName   string   `json:"server_name"`
	Version      string   `json:"version"`
	Proto        int      `json:"proto"`
	Go           string   `json:"go"`
	Host         string   `json:"host"`
	Port         int      `json:"port"`
	IP           string   `json:"ip,omitempty"` // nats-route://host:port/ — how to reach it
	Cluster      string   `json:"cluster,omitempty"`
	Accounts     string   `json:"accounts_digest,omitempty"` // of the account configuration: routes compare it
	Headers      bool     `json:"headers"`
	MaxPayload   int      `json:"max_payload"`
	AuthRequired bool     `json:"auth_required,omitempty"`
	TLSRequired  bool     `json:"tls_required,omitempty"`
	ConnectURLs  []string `json:"connect_urls,omitempty"`
	LameDuckMode bool     `json:"ldm,omitempty"`
	// Meta is what layers above core advertise to the mesh (route_meta.go); nats-server
	// ignores the field.
	Meta map[string]string `json:"starling_meta,omitempty"`
}

// routeConnect is the soliciting side's CONNECT. Lang is a pointer: a client's CONNECT on the
// route port carries it, a route's never does.
type routeConnect struct {
	Verbose  bool    `json:"verbose"`
	Pedantic bool    `json:"pedantic"`
	User     string  `json:"user,omitempty"`
	Pass     string  `json:"pass,omitempty"`
	TLS      bool    `json:"tls_required"`
	Headers  bool    `json:"headers"`
	Name     string  `json:"name"`
	Cluster  string  `json:"cluster"`
	Lang     *string `json:"lang,omitempty"`
}

// startCluster opens the route listener and starts dialing the configured routes; s.mu held.
func (s *Server) startCluster(co *ClusterOptions) error {
	port := co.Port
	if port < 0 {
		port = 0
	}
	ln, err := net.Listen("tcp", net.JoinHostPort(co.Host, strconv.Itoa(port)))
	if err != nil {
		return fmt.Errorf("core: cluster listen: %w", err)
	}
	s.routeLn = ln
	a := ln.Addr().(*net.TCPAddr)
	host := co.Host
	if co.Advertise != "" {
		s.routeURL = "nats-route://" + co.Advertise + "/"
	} else {
		if a.IP.IsUnspecified() {
			host = firstHost()
		}
		s.routeURL = "nats-route://" + net.JoinHostPort(host, strconv.Itoa(a.Port)) + "/"
	}
	s.log.Info("listening for route connections", "addr", ln.Addr().String(), "cluster", co.Name, "advertise", s.routeURL)
	s.wg.Add(1)
	go s.acceptLoop(ln, "route", s.acceptRoute)
	for _, u := range co.Routes {
		s.solicit(u, true)
	}
	return nil
}

// firstHost is the address other servers can use when we listen on every interface.
func firstHost() string {
	addrs, _ := net.InterfaceAddrs()
	for _, ad := range addrs {
		if ipn, ok := ad.(*net.IPNet); ok && !ipn.IP.IsLoopback() && !ipn.IP.IsLinkLocalUnicast() && ipn.IP.To4() != nil {
			return ipn.IP.String()
		}
	}
	return "127.0.0.1"
}

// ClusterAddr returns the bound route listener address (nil without a cluster).
func (s *Server) ClusterAddr() *net.TCPAddr {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.routeLn == nil {
		return nil
	}
	return s.routeLn.Addr().(*net.TCPAddr)
}

// acceptRoute runs the handshake of an accepted route on its own goroutine, never on the
// accept loop (TLS may be slow).
func (s *Server) acceptRoute(nc net.Conn) {
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		s.startRoute(nc, &routeState{})
	}()
}

// solicit dials a route in the background: a configured one until shutdown, a gossiped one
// a few times. At most one dialer runs per URL.
func (s *Server) solicit(u *url.URL, configured bool) {
	key := u.Host
	s.rmu.Lock()
	if s.dialing[key] {
		s.rmu.Unlock()
		return
	}
	s.dialing[key] = true
	s.rmu.Unlock()
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		s.solicitLoop(u, configured)
		s.rmu.Lock()
		delete(s.dialing, key)
		s.rmu.Unlock()
	}()
}

func (s *Server) solicitLoop(u *url.URL, configured bool) {
	backoff := routeBackoffStart
	failures := 0
	var id string // the server behind u, once known
	for {
		if s.quitting() {
			return
		}
		s.rmu.Lock()
		_, connected := s.routes[id]
		s.rmu.Unlock()
		if id != "" && connected {
			// Already meshed with it over another connection (it dialed us): watch, don't dial.
			if !configured || !s.sleepQuit(time.Second) {
				return
			}
			continue
		}
		nc, err := net.DialTimeout("tcp", u.Host, routeDialTimeout)
		if err == nil {
			st := &routeState{solicited: true, configured: configured, url: u}
			c := s.startRoute(nc, st)
			if c != nil {
				<-c.writerDone
			}
			s.rmu.Lock()
			self, ok := st.self, st.registered
			if st.remoteID != "" {
				id = st.remoteID
			}
			s.rmu.Unlock()
			if self {
				s.log.Debug("route leads back to this server; not dialing it again", "url", redactURL(u))
				return
			}
			if ok {
				backoff, failures = routeBackoffStart, 0
			}
		} else {
			s.log.Debug("route dial failed", "url", redactURL(u), "err", err)
		}
		failures++
		if !configured && failures > implicitRetries {
			s.log.Info("giving up on gossiped route", "url", redactURL(u))
			return
		}
		d := backoff + rand.N(backoff/4+1)
		backoff = min(backoff*2, routeBackoffMax)
		if !s.sleepQuit(d) {
			return
		}
	}
}

// sleepQuit waits d or until shutdown; false means shutdown.
func (s *Server) sleepQuit(d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-s.quit:
		return false
	}
}

func redactURL(u *url.URL) string {
	if u == nil {
		return ""
	}
	return u.Redacted()
}

// startRoute turns a connected socket into a running route; nil if the server is closing.
func (s *Server) startRoute(nc net.Conn, st *routeState) *client {
	co := s.o().Cluster
	if co.TLS != nil {
		var tc *tls.Conn
		if st.solicited {
			cfg := co.TLSClient.Clone()
			if cfg.ServerName == "" {
				cfg.ServerName = st.url.Hostname()
			}
			tc = tls.Client(nc, cfg)
		} else {
			tc = tls.Server(nc, co.TLS)
		}
		_ = nc.SetDeadline(time.Now().Add(s.o().TLSTimeout))
		if err := tc.Handshake(); err != nil {
			s.log.Info("route TLS handshake failed", "remote", nc.RemoteAddr().String(), "err", err)
			_ = nc.Close()
			return nil
		}
		_ = nc.SetDeadline(time.Time{})
		nc = tc
	}
	c := s.newSocketClient(kindRoute, nc)
	c.route = st
	st.rid = c.cid
	st.parser = wire.NewRouteParser(c)
	// Our max_payload limits our clients' publishes, not what a peer with a larger one
	// routes to us: that is delivered, as nats-server does. Reloads leave it.
	st.parser.MaxPayload = maxMaxPayload
	st.parser.MaxControlLine = routeMaxLine(s.o())
	c.log = s.log.With("rid", c.cid, "remote", nc.RemoteAddr().String(), "kind", "route")
	c.opts = connectOpts{Echo: false, Headers: true}
	c.headers.Store(true)

	s.rmu.Lock()
	if s.routeConns == nil || s.quitting() {
		s.rmu.Unlock()
		_ = nc.Close()
		return nil
	}
	s.routeConns[c.cid] = c
	s.rmu.Unlock()

	info := s.routeInfoJSON()
	c.mu.Lock()
	if st.solicited {
		c.out.buf = append(c.out.buf, "CONNECT "...)
		c.out.buf = append(c.out.buf, s.routeConnectJSON(st.url)...)
		c.out.buf = append(c.out.buf, '\r', '\n')
		c.authDone = true // we are the one proving who we are
	}
	c.out.buf = wire.AppendInfo(c.out.buf, info)
	c.mu.Unlock()
	if !st.solicited {
		c.startAuthTimer(&Options{AuthTimeout: co.AuthTimeout})
	}
	// Either side: a peer that connects but never finishes the handshake (no INFO, or a
	// black hole that accepts and stays silent) is dropped, so the dialer can try again.
	time.AfterFunc(2*co.AuthTimeout+routeDialTimeout, func() {
		s.rmu.Lock()
		done := st.registered || c.route.self || st.retiring.Load()
		s.rmu.Unlock()
		if !done && !c.isClosed() {
			c.log.Info("closing route", "cause", "handshake not completed in time")
			c.closeConnection(reasonRouteRejected)
		}
	})
	c.log.Debug("route connection opened", "solicited", st.solicited)
	c.run()
	return c
}

// routeMaxLine is a route's control-line limit: 16 times a client's, as nats-server allows,
// so an RMSG carrying the longest subject and reply a client may publish (plus account and
// queue names) fits.
func routeMaxLine(o *Options) int {
	return 16 * min(max(o.MaxControlLine, DefaultMaxControlLine), 1<<26)
}

// quitting reports whether shutdown has begun, without s.mu, so callers holding rmu may ask
// (s.mu is never taken under rmu).
func (s *Server) quitting() bool {
	select {
	case <-s.quit:
		return true
	default:
		return false
	}
}

func (s *Server) routeInfoJSON() []byte {
	co := s.o().Cluster
	s.mu.Lock()
	info := routeInfo{
		ServerID:     s.id,
		ServerName:   s.name,
		Version:      NATSVersion,
		Proto:        1,
		Go:           runtime.Version(),
		Host:         co.Host,
		IP:           s.routeURL,
		Cluster:      co.Name,
		Accounts:     s.accountSet().digest,
		Headers:      true,
		MaxPayload:   s.o().MaxPayload,
		AuthRequired: co.Username != "",
		TLSRequired:  co.TLS != nil,
		LameDuckMode: s.ldm,
	}
	if s.routeLn != nil {
		info.Port = s.routeLn.Addr().(*net.TCPAddr).Port
	}
	if !s.ldm {
		info.ConnectURLs = s.urls
	}
	info.Meta = s.routeMeta
	b, _ := json.Marshal(info)
	s.mu.Unlock()
	return b
}

// routeConnectJSON is our CONNECT on a route we dialed: credentials from the URL, else the
// cluster's own.
func (s *Server) routeConnectJSON(u *url.URL) []byte {
	co := s.o().Cluster
	rc := routeConnect{Headers: true, Name: s.id, Cluster: co.Name, TLS: co.TLS != nil}
	rc.User, rc.Pass = co.Username, co.Password
	if u != nil && u.User != nil {
		rc.User = u.User.Username()
		rc.Pass, _ = u.User.Password()
	}
	b, _ := json.Marshal(rc)
	return b
}

// RouteConnect checks the dialing side's CONNECT on a route we accepted.
func (c *client) RouteConnect(arg []byte) error {
	if c.route.solicited {
		return nil // not expected from the accepting side; harmless
	}
	var rc routeConnect
	if err := json.Unmarshal(arg, &rc); err != nil {
		c.log.Info("closing route", "cause", "invalid CONNECT", "err", err)
		return errRouteClose(wire.ErrProtocol.Text, reasonProtocolViolation)
	}
	if rc.Lang != nil {
		c.log.Info("closing connection", "cause", "a client connected to the route port")
		return errRouteClose("attempted to connect to route port", reasonWrongPort)
	}
	co := c.srv.o().Cluster
	if co.Name != "" && rc.Cluster != "" && rc.Cluster != co.Name {
		msg := fmt.Sprintf("Rejecting connection, cluster name %q does not match %q", rc.Cluster, co.Name)
		c.log.Warn("rejecting route", "cause", msg)
		return errRouteClose(msg, reasonRouteRejected)
	}
	if co.Username != "" && (rc.User != co.Username || !passwordMatch(co.Password, rc.Pass)) {
		c.log.Warn("rejecting route", "cause", "wrong credentials", "user", rc.User)
		return errRouteClose(wire.ErrAuthorization.Text, reasonRouteRejected)
	}
	c.mu.Lock()
	c.authDone = true
	if c.authTimer != nil {
		c.authTimer.Stop()
	}
	c.mu.Unlock()
	return nil
}

// passwordMatch compares a configured password (plain or bcrypt) with a given one.
func passwordMatch(configured, given string) bool {
	if strings.HasPrefix(configured, "$2") {
		return bcrypt.CompareHashAndPassword([]byte(configured), []byte(given)) == nil
	}
	return subtle.ConstantTimeCompare([]byte(configured), []byte(given)) == 1
}

// routeCloseErr ends a route after sending an -ERR.
type routeCloseErr struct{ text, reason string }

func (e *routeCloseErr) Error() string { return e.text }

func errRouteClose(text, reason string) error { return &routeCloseErr{text, reason} }

// RouteInfo handles an INFO: the peer's own (handshake or update) or one it forwards about
// another server (gossip), which we dial unless already connected.
func (c *client) RouteInfo(arg []byte) error {
	var info routeInfo
	if err := json.Unmarshal(arg, &info); err != nil || info.ServerID == "" {
		c.log.Info("closing route", "cause", "invalid INFO")
		return errRouteClose(wire.ErrProtocol.Text, reasonProtocolViolation)
	}
	if !c.isAuthDone() {
		c.log.Info("closing route", "cause", "INFO before CONNECT")
		return errRouteClose(wire.ErrAuthorization.Text, reasonRouteRejected)
	}
	if c.route.retiring.Load() {
		return nil // the peer's INFOs reach us on the route that stays
	}
	s := c.srv
	s.rmu.Lock()
	registered, remote := c.route.registered, c.route.remoteID
	s.rmu.Unlock()
	switch {
	case !registered:
		return s.registerRoute(c, &info, arg)
	case info.ServerID == remote:
		s.updateRoute(c, &info)
	default:
		s.gossiped(&info)
	}
	return nil
}

func (c *client) isAuthDone() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.authDone
}

func (c *client) RoutePing() error {
	c.inBatch.active = true
	c.sendProto(wire.PongLine)
	return nil
}

func (c *client) RoutePong() error {
	c.dropCarried()
	return c.ProcessPong()
}

// RouteErr: the peer refused us; it closes the connection, we log why.
func (c *client) RouteErr(arg []byte) error {
	c.log.Warn("route error from peer", "text", string(arg))
	return nil
}

// errRouteClosed stops parsing on a route that closed itself.
var errRouteClosed = errors.New("route closed")

// handleRouteError closes a route after bad input, with a log line naming the cause.
func (c *client) handleRouteError(err error) {
	if err == errRouteClosed {
		c.closeConnection(reasonProtocolViolation) // no-op when already closed
		return
	}
	var rc *routeCloseErr
	if errors.As(err, &rc) {
		if rc.text != "" {
			c.sendErr(rc.text)
		}
		c.prod.flushPending()
		c.closeFlushing(rc.reason)
		return
	}
	var we *wire.Error
	if errors.As(err, &we) && !c.route.solicited && !c.isAuthDone() {
		// Whatever a stranger sends before a valid CONNECT, the answer is the same.
		c.log.Warn("closing route", "cause", "protocol error before CONNECT", "err", we.Error())
		c.sendErr(wire.ErrAuthorization.Text)
		c.closeFlushing(reasonRouteRejected)
		return
	}
	if errors.As(err, &we) {
		c.log.Warn("closing route", "cause", "protocol error", "err", we.Error())
		if we.Text != "" {
			c.sendErr(we.Text)
		}
		c.closeFlushing(reasonProtocolViolation)
		return
	}
	c.log.Warn("closing route", "cause", err)
	c.closeConnection(reasonProtocolViolation)
}
