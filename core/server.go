package core

import (
	"context"
	"crypto/rand"
	"encoding/base32"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// NATSVersion is the nats-server feature level Starling speaks; it is what INFO reports as
// "version" because clients and the nats CLI gate features on it.
const NATSVersion = "2.11.0"

// Version is Starling's own release.
const Version = "0.1.0"

// ErrServerClosed is returned by Start on a server that was shut down.
var ErrServerClosed = errors.New("core: server closed")

// Server is the core router. Create it with New, then Start it.
type Server struct {
	opts     atomic.Pointer[Options] // replaced whole by Reload; read with o()
	reloadMu sync.Mutex              // one Reload at a time; held across it (taken by nothing else)
	log      *slog.Logger
	id       string
	name     string
	start    time.Time

	// Accounts: an immutable set, replaced whole by a reload that adds or removes accounts
	// (reload_accounts.go), so read without a lock. gacc is the global account $G.
	gacc   *account
	accs   atomic.Pointer[accountSet]
	sysAcc *account  // the system account, nil without accounts
	sys    *sysState // system account requests (sysreq.go); nil without a system account

	mu       sync.Mutex
	clients  map[uint64]*client
	internal int // in-process Conns among clients: not counted by max_connections
	closed   closedRing
	listener net.Listener
	shutdown bool
	ldm      bool
	ldmURLs  []string // in lame duck: the other servers' client URLs advertised since it began
	urls     []string // our client URLs (connect_urls)
	// routeMeta is advertised in our route INFO (route_meta.go); replaced, never changed in place.
	routeMeta map[string]string
	port      int // bound client port

	nextCID   atomic.Uint64
	configAt  atomic.Int64  // unix ns: when the options in force were loaded (/varz config_load_time)
	totalConn atomic.Uint64 // client connections accepted (in-process ones not)
	sockets   atomic.Int32  // client sockets connected now (spin.go bounds spinning by it)
	slow      atomic.Int64
	stale     atomic.Int64
	cpu       cpuMeter
	gone      counters   // traffic of closed client connections (added under mu), so totals never go backwards
	goneRoute counters   // traffic of closed routes (added under rmu, as routeTraffic reads it)
	authLog   logLimiter // refused logins: a flood must not flood the log

	// Cluster (route.go). rmu guards the route maps and interest counts; it is taken before
	// any client's mu, never after.
	rmu         sync.Mutex
	routes      map[string]*client       // registered routes by remote server id
	routeConns  map[uint64]*client       // every route connection, registered or not
	interest    map[interestKey]int32    // local subscribers per subject/queue; nil unclustered
	remoteURLs  map[string]int           // client URLs of the other servers, counted
	dialing     map[string]bool          // route addresses being dialed
	clusterURLs atomic.Pointer[[]string] // sorted keys of remoteURLs, for INFO
	routeLn     net.Listener
	routeURL    string // how other servers reach our route listener
	slowRoutes  atomic.Int64

	ready chan struct{}
	quit  chan struct{} // closed when shutdown begins
	done  chan struct{}
	wg    sync.WaitGroup
}

// New validates opts and builds a server that is not yet listening.
func New(opts Options) (*Server, error) {
	o, err := opts.withDefaults()
	if err != nil {
		return nil, err
	}
	s := &Server{
		log:     o.Logger,
		id:      newServerID(),
		start:   time.Now(),
		clients: make(map[uint64]*client),
		closed:  closedRing{max: 10000},
		ready:   make(chan struct{}),
		quit:    make(chan struct{}),
		done:    make(chan struct{}),
	}
	s.configAt.Store(s.start.UnixNano())
	if o.Cluster != nil {
		s.routes = make(map[string]*client)
		s.routeConns = make(map[uint64]*client)
		s.interest = make(map[interestKey]int32)
		s.remoteURLs = make(map[string]int)
		s.dialing = make(map[string]bool)
	}
	if errs := ValidateAccounts(o.Accounts); len(errs) > 0 {
		return nil, fmt.Errorf("%w: %w", ErrInvalidOptions, errors.Join(errs...))
	}
	s.opts.Store(&o)
	if err := s.buildAccounts(o.Accounts); err != nil {
		return nil, err
	}
	if err := s.setupSystem(&o); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrInvalidOptions, err)
	}
	if o.Auth != nil {
		for _, name := range o.Auth.Accounts() {
			if s.account(name) == nil {
				return nil, fmt.Errorf("%w: a user belongs to account %q, which is not configured", ErrInvalidOptions, name)
			}
		}
	}
	s.name = o.ServerName
	if s.name == "" {
		s.name = s.id
	}
	return s, nil
}

// newServerID returns a 56-character id shaped like nats-server's (an nkey-style 'N…').
func newServerID() string {
	var b [35]byte
	_, _ = rand.Read(b[:])
	id := []byte(base32.StdEncoding.WithPadding(base32.NoPadding).EncodeToString(b[:]))
	id[0] = 'N'
	return string(id)
}

// o returns the options in force: immutable, replaced as a whole by Reload.
func (s *Server) o() *Options { return s.opts.Load() }

// ID returns the server id sent in INFO.
func (s *Server) ID() string { return s.id }

// Name returns the server name.
func (s *Server) Name() string { return s.name }

// Start opens the client listener and accepts connections in the background.
func (s *Server) Start() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.shutdown {
		return ErrServerClosed
	}
	if s.listener != nil {
		return errors.New("core: server already started")
	}
	port := s.o().Port
	if port < 0 {
		port = 0
	}
	ln, err := net.Listen("tcp", net.JoinHostPort(s.o().Host, strconv.Itoa(port)))
	if err != nil {
		return fmt.Errorf("core: listen: %w", err)
	}
	s.listener = ln
	s.port = ln.Addr().(*net.TCPAddr).Port
	s.urls = s.clientURLs(ln.Addr().(*net.TCPAddr))
	s.log.Info("listening for client connections", "addr", ln.Addr().String(), "server_id", s.id, "server_name", s.name, "version", Version)
	s.wg.Add(1)
	go s.acceptLoop(ln, "client", s.createClient)
	if s.sys != nil {
		s.wg.Add(1)
		go s.sysLoop()
	}
	if co := s.o().Cluster; co != nil {
		if err := s.startCluster(co); err != nil {
			_ = ln.Close()
			return err
		}
	}
	close(s.ready)
	return nil
}

// Addr returns the bound client address (nil before Start).
func (s *Server) Addr() *net.TCPAddr {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.listener == nil {
		return nil
	}
	return s.listener.Addr().(*net.TCPAddr)
}

// ClientURL returns a nats:// URL a local client can dial.
func (s *Server) ClientURL() string {
	a := s.Addr()
	if a == nil {
		return ""
	}
	host := s.o().Host
	if host == "0.0.0.0" || host == "::" || host == "" {
		host = "127.0.0.1"
	}
	return "nats://" + net.JoinHostPort(host, strconv.Itoa(a.Port))
}

// clientURLs lists the host:port pairs a client could use to reach us: the advertise
// address if set, the configured host, or every non-loopback interface address.
func (s *Server) clientURLs(a *net.TCPAddr) []string {
	if s.o().ClientAdvertise != "" {
		return []string{s.o().ClientAdvertise}
	}
	port := strconv.Itoa(a.Port)
	if !a.IP.IsUnspecified() {
		return []string{net.JoinHostPort(a.IP.String(), port)}
	}
	var urls []string
	addrs, _ := net.InterfaceAddrs()
	for _, ad := range addrs {
		ipn, ok := ad.(*net.IPNet)
		if !ok || ipn.IP.IsLoopback() || ipn.IP.IsLinkLocalUnicast() {
			continue
		}
		urls = append(urls, net.JoinHostPort(ipn.IP.String(), port))
	}
	if len(urls) == 0 {
		urls = append(urls, net.JoinHostPort("127.0.0.1", port))
	}
	return urls
}

// acceptLoop hands every connection accepted on ln to handle; kind names the listener in
// the log.
func (s *Server) acceptLoop(ln net.Listener, kind string, handle func(net.Conn)) {
	defer s.wg.Done()
	var backoff time.Duration
	for {
		nc, err := ln.Accept()
		if err != nil {
			if s.isShuttingDown() || errors.Is(err, net.ErrClosed) {
				return
			}
			// Out of descriptors and the like: back off instead of spinning.
			backoff = min(max(backoff*2, 5*time.Millisecond), time.Second)
			s.log.Error("accept failed", "listener", kind, "err", err, "retry_in", backoff)
			time.Sleep(backoff)
			continue
		}
		backoff = 0
		handle(nc)
	}
}

func (s *Server) isShuttingDown() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.shutdown
}

// Shutdown stops accepting, closes every connection (reason "Server Shutdown") and waits
// for connection goroutines to end or ctx to expire.
func (s *Server) Shutdown(ctx context.Context) error {
	s.mu.Lock()
	down := s.shutdown
	s.mu.Unlock()
	if !down {
		s.serverEvent("SHUTDOWN") // before anyone is disconnected
	}
	s.mu.Lock()
	if s.shutdown {
		s.mu.Unlock()
		return nil
	}
	s.shutdown = true
	close(s.quit)
	ln, rln := s.listener, s.routeLn
	cls := make([]*client, 0, len(s.clients))
	for _, c := range s.clients {
		cls = append(cls, c)
	}
	s.mu.Unlock()
	if ln != nil {
		_ = ln.Close()
	}
	if rln != nil {
		_ = rln.Close()
	}
	if s.routeConns != nil {
		s.closeRoutes()
	}
	for _, c := range cls {
		c.closeConnection(reasonShutdown)
	}
	waited := make(chan struct{})
	go func() { s.wg.Wait(); close(waited) }()
	defer close(s.done)
	select {
	case <-waited:
		s.log.Info("server stopped")
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Done is closed once Shutdown has finished.
func (s *Server) Done() <-chan struct{} { return s.done }

// LameDuck stops accepting, tells clients (INFO with ldm) so they move elsewhere, waits the
// grace period, closes clients spread over the rest of the lame-duck duration (at most one
// second apart), then shuts down; without clients it shuts down at once. ctx cancels the
// waits, not the shutdown.
func (s *Server) LameDuck(ctx context.Context) error {
	s.mu.Lock()
	if s.shutdown || s.ldm {
		s.mu.Unlock()
		return nil
	}
	s.ldm = true
	if p := s.clusterURLs.Load(); p != nil {
		s.ldmURLs = slices.Clone(*p) // what the lame duck INFO below tells; never less from now on
	}
	ln := s.listener
	s.listener = nil
	cls := s.clientList()
	s.mu.Unlock()
	if ln != nil {
		_ = ln.Close()
	}
	s.log.Info("entering lame duck mode", "clients", countClients(cls), "grace", s.o().LameDuckGracePeriod, "duration", s.o().LameDuckDuration)
	s.serverEvent("LAMEDUCK")
	for _, c := range cls {
		c.sendAsyncInfo(infoPlain)
	}
	s.lameDuckRoutes()
	if countClients(cls) > 0 { // with none to move, shut down now, as nats-server does
		sleepCtx(ctx, s.o().LameDuckGracePeriod)
		s.mu.Lock()
		cls = s.clientList()
		s.mu.Unlock()
	}
	if n := countClients(cls); n > 0 {
		gap := min((s.o().LameDuckDuration-s.o().LameDuckGracePeriod)/time.Duration(n), time.Second)
		for _, c := range cls { // map order is already random
			if c.kind != kindClient {
				continue
			}
			c.closeConnection(reasonShutdown)
			sleepCtx(ctx, gap)
		}
	}
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return s.Shutdown(sctx)
}

// countClients is how many of cls are client connections: in-process connections (the
// streaming layer's) are no clients, as in /connz and /varz, and lame duck mode closes none.
func countClients(cls []*client) int {
	n := 0
	for _, c := range cls {
		if c.kind == kindClient {
			n++
		}
	}
	return n
}

func sleepCtx(ctx context.Context, d time.Duration) {
	if d <= 0 {
		return
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-ctx.Done():
	}
}

// clientList snapshots the connected clients; s.mu must be held.
func (s *Server) clientList() []*client {
	cls := make([]*client, 0, len(s.clients))
	for _, c := range s.clients {
		cls = append(cls, c)
	}
	return cls
}

// NumClients returns the number of open connections (in-process ones included).
func (s *Server) NumClients() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.clients)
}

// NumSubscriptions returns the number of subscriptions in the indexes of all accounts.
func (s *Server) NumSubscriptions() int {
	n := 0
	for _, a := range s.accountMap() {
		n += a.subs.Count()
	}
	return n
}
