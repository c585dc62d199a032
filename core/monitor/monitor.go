package monitor

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/starling-io/starling/core"
)

// Monitor is the HTTP monitoring endpoint of one core.Server.
type Monitor struct {
	srv  *core.Server
	log  *slog.Logger
	mux  *http.ServeMux
	http *http.Server
	ln   net.Listener
	reg  *prometheus.Registry // what /metrics serves
	base string               // http_base_path: prefixes every path served

	assets map[string]*asset // the dashboard's files by path (dashboard.go)

	mu     sync.Mutex
	stats  map[string]uint64 // http_req_stats
	checks []func() error    // more for /healthz (AddHealthCheck)

	connMu  sync.Mutex
	fresh   map[net.Conn]struct{} // connections that have not sent a request yet (http.StateNew)
	closing bool                  // Close has begun: a new connection is closed at once
}

// New builds the handlers; call Start to listen. basePath prefixes every path.
func New(srv *core.Server, basePath string, log *slog.Logger) *Monitor {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	m := &Monitor{srv: srv, log: log, mux: http.NewServeMux(), reg: newRegistry(srv), base: basePath, stats: map[string]uint64{},
		assets: dashboardAssets(), fresh: map[net.Conn]struct{}{}}
	routes := map[string]http.HandlerFunc{
		"/":               m.HandleRoot,
		"/varz":           m.HandleVarz,
		"/connz":          m.HandleConnz,
		"/subsz":          m.HandleSubsz,
		"/subscriptionsz": m.HandleSubsz,
		"/routez":         m.HandleRoutez,
		"/healthz":        m.HandleHealthz,
		"/accountz":       m.HandleAccountz,
		"/accstatz":       m.HandleAccountStatz,
		"/gatewayz":       m.HandleGatewayz,
		"/leafz":          m.HandleLeafz,
		MetricsPath:       m.metricsHandler(),
	}
	for path, a := range m.assets {
		if path != "/" {
			routes[path] = a.serve
		}
	}
	for path, h := range routes {
		pattern := "GET " + basePath + path
		if path == "/" {
			pattern = "GET " + basePath + "/{$}"
		}
		key := path
		if path == "/subscriptionsz" {
			key = "/subsz" // nats-server counts the alias under its endpoint
		}
		m.mux.HandleFunc(pattern, m.count(key, h))
	}
	if basePath != "" {
		// The dashboard's URLs are relative to it: it must be loaded as basePath + "/".
		m.mux.HandleFunc("GET "+basePath, func(w http.ResponseWriter, r *http.Request) {
			// Relative, so that it holds behind a proxy that adds a prefix of its own.
			w.Header().Set("Location", basePath[strings.LastIndexByte(basePath, '/')+1:]+"/")
			w.WriteHeader(http.StatusMovedPermanently)
		})
	}
	return m
}

// Handle mounts an extra handler (e.g. streaming's /streaming/ endpoints) at path, relative
// to the base path, counted in http_req_stats under path like the built-in ones.
func (m *Monitor) Handle(path string, h http.HandlerFunc) {
	m.mux.HandleFunc("GET "+m.base+path, m.count(path, h))
}

// Handler returns the HTTP handler (for tests and embedding).
func (m *Monitor) Handler() http.Handler { return m.mux }

func (m *Monitor) count(path string, h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		m.mu.Lock()
		m.stats[path]++
		m.mu.Unlock()
		h(w, r)
	}
}

// Start listens on addr ("host:port"; port 0 = random) and serves in the background.
func (m *Monitor) Start(addr string) error { return m.StartTLS(addr, nil) }

// StartTLS is Start over HTTPS when cfg is not nil (the https / https_port setting).
func (m *Monitor) StartTLS(addr string, cfg *tls.Config) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("monitor: listen: %w", err)
	}
	if cfg != nil {
		ln = tls.NewListener(ln, cfg)
	}
	m.ln = ln
	m.http = &http.Server{Handler: m.mux, ReadHeaderTimeout: 5 * time.Second, ConnState: m.trackConn}
	m.log.Info("listening for monitoring requests", "addr", ln.Addr().String())
	go func() {
		if err := m.http.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			m.log.Error("monitoring server failed", "err", err)
		}
	}()
	return nil
}

// Addr returns the bound address (nil before Start).
func (m *Monitor) Addr() net.Addr {
	if m.ln == nil {
		return nil
	}
	return m.ln.Addr()
}

// Close stops the HTTP server: it waits for the requests in flight (until ctx ends).
func (m *Monitor) Close(ctx context.Context) error {
	if m.http == nil {
		return nil
	}
	// http.Server.Shutdown counts a connection that has not sent its first request as busy
	// for its first 5 seconds, and browsers open such connections ahead of need: a browser
	// showing a monitoring page would delay every shutdown by up to 5 s. No request is in
	// flight on them.
	m.connMu.Lock()
	m.closing = true
	fresh := make([]net.Conn, 0, len(m.fresh))
	for c := range m.fresh {
		fresh = append(fresh, c)
	}
	m.connMu.Unlock()
	for _, c := range fresh {
		_ = c.Close()
	}
	return m.http.Shutdown(ctx)
}

// trackConn keeps the set of connections without a request yet, for Close.
func (m *Monitor) trackConn(c net.Conn, s http.ConnState) {
	m.connMu.Lock()
	closing := m.closing
	if s == http.StateNew && !closing {
		m.fresh[c] = struct{}{}
	} else {
		delete(m.fresh, c)
	}
	m.connMu.Unlock()
	if s == http.StateNew && closing {
		_ = c.Close()
	}
}

// writeJSON writes v indented like nats-server does, with the headers monitoring tools expect.
func writeJSON(w http.ResponseWriter, v any, indent bool) {
	var b []byte
	var err error
	if indent {
		b, err = json.MarshalIndent(v, "", "  ")
	} else {
		b, err = json.Marshal(v)
	}
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Access-Control-Allow-Origin", "*")
	_, _ = w.Write(b)
}

func badRequest(w http.ResponseWriter, err error) {
	msg := err.Error()
	if errors.Is(err, core.ErrBadRequest) {
		msg = msg[len(core.ErrBadRequest.Error())+2:]
	}
	http.Error(w, msg, http.StatusBadRequest)
}

func boolParam(r *http.Request, name string) (bool, error) {
	v := r.URL.Query().Get(name)
	if v == "" {
		return false, nil
	}
	b, err := strconv.ParseBool(v)
	if err != nil {
		//lint:ignore ST1005 the text nats-server answers with
		return false, fmt.Errorf("Error decoding boolean for '%s': %v", name, err)
	}
	return b, nil
}

func intParam(r *http.Request, name string) (int, error) {
	v := r.URL.Query().Get(name)
	if v == "" {
		return 0, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil {
		//lint:ignore ST1005 the text nats-server answers with
		return 0, fmt.Errorf("Error decoding int for '%s': %v", name, err)
	}
	return n, nil
}

// params reads query parameters, keeping the first error.
type params struct {
	r   *http.Request
	err error
}

func (p *params) bool(name string) bool {
	if p.err != nil {
		return false
	}
	v, err := boolParam(p.r, name)
	p.err = err
	return v
}

func (p *params) int(name string) int {
	if p.err != nil {
		return 0
	}
	v, err := intParam(p.r, name)
	p.err = err
	return v
}

// HandleVarz serves /varz.
func (m *Monitor) HandleVarz(w http.ResponseWriter, r *http.Request) {
	v := m.srv.Varz()
	m.mu.Lock()
	for k, n := range m.stats {
		v.HTTPReqStats[k] = n
	}
	m.mu.Unlock()
	writeJSON(w, v, true)
}

// HandleConnz serves /connz.
func (m *Monitor) HandleConnz(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	// No filter_subject: nats-server's HandleConnz does not read it (it is a field of the
	// CONNZ system request only), so /connz?filter_subject=S lists every connection.
	o := core.ConnzOptions{Sort: q.Get("sort"), State: q.Get("state"), Account: q.Get("acc"), User: q.Get("user")}
	p := params{r: r}
	if strings.EqualFold(q.Get("subs"), "detail") { // any case, as nats-server
		o.SubsDetail = true
	} else {
		o.Subs = p.bool("subs")
	}
	o.Auth, o.Offset, o.Limit = p.bool("auth"), p.int("offset"), p.int("limit")
	if p.err != nil {
		badRequest(w, p.err)
		return
	}
	var err error
	if v := q.Get("cid"); v != "" {
		if o.CID, err = strconv.ParseUint(v, 10, 64); err != nil {
			//lint:ignore ST1005 the text nats-server answers with
			badRequest(w, fmt.Errorf("Error decoding uint64 for 'cid': %v", err))
			return
		}
	}
	cz, err := m.srv.Connz(o)
	if err != nil {
		badRequest(w, err)
		return
	}
	writeJSON(w, cz, true)
}

// HandleSubsz serves /subsz.
func (m *Monitor) HandleSubsz(w http.ResponseWriter, r *http.Request) {
	p := params{r: r}
	o := core.SubszOptions{Test: r.URL.Query().Get("test"), Subs: p.bool("subs"), Offset: p.int("offset"), Limit: p.int("limit"),
		Account: r.URL.Query().Get("acc")}
	if p.err != nil {
		badRequest(w, p.err)
		return
	}
	sz, err := m.srv.Subsz(o)
	if err != nil {
		badRequest(w, err)
		return
	}
	writeJSON(w, sz, true)
}

// Routez is /routez.
type Routez struct {
	ID        string           `json:"server_id"`
	Name      string           `json:"server_name"`
	Now       time.Time        `json:"now"`
	NumRoutes int              `json:"num_routes"`
	Routes    []core.RouteInfo `json:"routes"`
}

// HandleRoutez serves /routez (subs=1 lists each route's interest, subs=detail in detail).
func (m *Monitor) HandleRoutez(w http.ResponseWriter, r *http.Request) {
	subs, detail := false, false
	if v := r.URL.Query().Get("subs"); v != "" {
		if strings.EqualFold(v, "detail") {
			detail = true
		} else {
			b, err := strconv.ParseBool(v)
			if err != nil {
				http.Error(w, fmt.Sprintf("Error decoding boolean for 'subs': %v", err), http.StatusBadRequest)
				return
			}
			subs = b
		}
	}
	rs := m.srv.Routez(subs, detail)
	writeJSON(w, Routez{ID: m.srv.ID(), Name: m.srv.Name(), Now: time.Now().UTC(), NumRoutes: len(rs), Routes: rs}, true)
}

// AddHealthCheck adds a check to /healthz: while it returns an error, /healthz answers 503
// with that error (streaming adds one that says why it cannot acknowledge anything).
func (m *Monitor) AddHealthCheck(check func() error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.checks = append(m.checks, check)
}

// HandleAccountz serves /accountz: the accounts, or with ?acc=NAME one account's details.
func (m *Monitor) HandleAccountz(w http.ResponseWriter, r *http.Request) {
	az, err := m.srv.Accountz(r.URL.Query().Get("acc"))
	if err != nil {
		badRequest(w, err)
		return
	}
	writeJSON(w, az, true)
}

// HandleAccountStatz serves /accstatz: each account's connections, subscriptions and
// traffic; unused=1 includes the accounts without connections.
func (m *Monitor) HandleAccountStatz(w http.ResponseWriter, r *http.Request) {
	unused, err := boolParam(r, "unused")
	if err != nil {
		badRequest(w, err)
		return
	}
	writeJSON(w, m.srv.AccountStatz(unused), true)
}

// HandleGatewayz serves /gatewayz in its empty form.
func (m *Monitor) HandleGatewayz(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, map[string]any{"server_id": m.srv.ID(), "now": time.Now().UTC(),
		"outbound_gateways": map[string]any{}, "inbound_gateways": map[string]any{}}, true)
}

// HandleLeafz serves /leafz in its empty form: Starling has no leafnode connections.
// prometheus-nats-exporter -leafz decodes it; a 404 would be an error on every scrape.
func (m *Monitor) HandleLeafz(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, map[string]any{"server_id": m.srv.ID(), "now": time.Now().UTC(), "leafnodes": 0, "leafs": []any{}}, true)
}
