package monitor

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/starling-io/starling/core"
)

// A connection that never sends a request (browsers open them ahead of need) does not
// hold Close up: http.Server.Shutdown alone would wait 5 s for it.
func TestCloseWithUnusedConnection(t *testing.T) {
	m := New(startCore(t), "", nil)
	if err := m.Start("127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	c, err := net.Dial("tcp", m.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	// The server has accepted it once a request on another connection has been answered.
	resp, err := http.Get("http://" + m.Addr().String() + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	start := time.Now()
	if err := m.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("Close took %v", d)
	}
}

// TestHealthChecks: a check added to /healthz turns it to 503 with the check's error while
// the check fails, and back to 200 when it passes.
func TestHealthChecks(t *testing.T) {
	m := New(startCore(t), "", nil)
	if err := m.Start("127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	defer m.Close(context.Background())
	var failing error
	m.AddHealthCheck(func() error { return failing })
	get := func() (int, string) {
		resp, err := http.Get("http://" + m.Addr().String() + "/healthz")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if code, body := get(); code != 200 || !strings.Contains(body, `"ok"`) {
		t.Fatalf("healthy: %d %s", code, body)
	}
	failing = errors.New("streaming: no raft leader")
	if code, body := get(); code != 503 || !strings.Contains(body, "no raft leader") {
		t.Fatalf("failing check: %d %s", code, body)
	}
}

// TestPagingHostileLimit: offset+limit past MaxInt must not overflow into a slice panic,
// which drops the connection: the exporter and nats-top see an EOF instead of a page.
func TestPagingHostileLimit(t *testing.T) {
	srv := startCore(t)
	subscribedClient(t, srv, "SUB foo 1\r\nSUB bar 2\r\n")
	h := New(srv, "", nil).Handler()
	for _, path := range []string{
		"/connz?offset=1&limit=9223372036854775807",
		"/subsz?subs=1&offset=1&limit=9223372036854775807",
	} {
		rec := httptest.NewRecorder()
		func() {
			defer func() {
				if p := recover(); p != nil {
					t.Errorf("%s: panic: %v", path, p)
				}
			}()
			h.ServeHTTP(rec, httptest.NewRequest("GET", path, nil))
		}()
		if rec.Code != http.StatusOK {
			t.Errorf("%s: %d %s", path, rec.Code, rec.Body)
		}
	}
}

// TestHealthzBadBoolean: like nats-server, /healthz answers 400 to a boolean parameter it
// cannot parse, rather than "ok" (a probe URL with a typo would otherwise always pass).
func TestHealthzBadBoolean(t *testing.T) {
	h := New(startCore(t), "", nil).Handler()
	for _, q := range []string{"js-enabled-only=bad", "js-server-only=x", "js-meta-only=2", "details=yes", "js-enabled=no!"} {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest("GET", "/healthz?"+q, nil))
		if rec.Code != http.StatusBadRequest || !strings.HasPrefix(rec.Body.String(), "Error decoding boolean for '") {
			t.Errorf("%s: %d %q", q, rec.Code, rec.Body)
		}
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("GET", "/healthz?js-enabled-only=true&details=1", nil))
	if rec.Code != http.StatusOK {
		t.Errorf("valid booleans: %d %q", rec.Code, rec.Body)
	}
}

// TestSubsDetailCaseInsensitive: nats-server takes subs=detail in any case, on /connz and
// /routez; a 400 there fails the whole poll of a tool that sends subs=Detail.
func TestSubsDetailCaseInsensitive(t *testing.T) {
	srv := startCore(t)
	subscribedClient(t, srv, "SUB foo 1\r\n")
	h := New(srv, "", nil).Handler()
	for _, path := range []string{"/connz?subs=DETAIL", "/connz?subs=Detail", "/routez?subs=DETAIL"} {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest("GET", path, nil))
		if rec.Code != http.StatusOK {
			t.Errorf("%s: %d %s", path, rec.Code, rec.Body)
		}
		if strings.HasPrefix(path, "/connz") && !strings.Contains(rec.Body.String(), `"subscriptions_list_detail"`) {
			t.Errorf("%s: no subscriptions_list_detail: %s", path, rec.Body)
		}
	}
}

// TestBadParamTexts: a bad parameter gets nats-server's 400 text, which scripts match on.
func TestBadParamTexts(t *testing.T) {
	h := New(startCore(t), "", nil).Handler()
	for path, want := range map[string]string{
		"/connz?limit=abc":   `Error decoding int for 'limit': strconv.Atoi: parsing "abc": invalid syntax`,
		"/subsz?offset=1.5":  `Error decoding int for 'offset': strconv.Atoi: parsing "1.5": invalid syntax`,
		"/connz?cid=-1":      `Error decoding uint64 for 'cid': strconv.ParseUint: parsing "-1": invalid syntax`,
		"/connz?sort=stop":   "sort by stop only valid on closed connections",
		"/connz?sort=reason": "sort by reason only valid on closed connections",
		"/connz?sort=bogus":  "invalid sorting option: bogus",
		"/connz?state=bogus": "Error decoding state for bogus",
	} {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest("GET", path, nil))
		if got := strings.TrimSpace(rec.Body.String()); rec.Code != http.StatusBadRequest || got != want {
			t.Errorf("%s: %d %q, want 400 %q", path, rec.Code, got, want)
		}
	}
}

// TestSubscriptionszCountedAsSubsz: like nats-server, /varz http_req_stats counts the
// /subscriptionsz alias under "/subsz", so per-endpoint request counts stay comparable.
func TestSubscriptionszCountedAsSubsz(t *testing.T) {
	h := New(startCore(t), "", nil).Handler()
	for _, path := range []string{"/subsz", "/subscriptionsz"} {
		h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest("GET", path, nil))
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("GET", "/varz", nil))
	var v struct {
		Stats map[string]uint64 `json:"http_req_stats"`
	}
	if err := json.Unmarshal(rec.Body.Bytes(), &v); err != nil {
		t.Fatal(err)
	}
	if v.Stats["/subsz"] != 2 || v.Stats["/subscriptionsz"] != 0 {
		t.Errorf("http_req_stats = %v, want /subsz: 2 and no /subscriptionsz", v.Stats)
	}
}

// subscribedClient connects a raw client to srv that sends subs (protocol lines) and
// returns once the server answered its PING: the subscriptions are in place. Closed when
// the test ends.
func subscribedClient(t *testing.T, srv *core.Server, subs string) {
	t.Helper()
	c, err := net.Dial("tcp", srv.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	if _, err := c.Write([]byte("CONNECT {\"verbose\":false}\r\n" + subs + "PING\r\n")); err != nil {
		t.Fatal(err)
	}
	var got []byte // INFO, then PONG once subscribed
	for !strings.Contains(string(got), "PONG") {
		b := make([]byte, 4096)
		n, err := c.Read(b)
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, b[:n]...)
	}
}

// An unhealthy /healthz carries the same headers as a healthy one: a page on another
// origin polling it reads the error instead of a CORS failure.
func TestHealthzErrorHeaders(t *testing.T) {
	m := New(startCore(t), "", nil)
	m.AddHealthCheck(func() error { return errors.New("streaming: no raft leader") })
	rec := httptest.NewRecorder()
	m.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/healthz", nil))
	if rec.Code != http.StatusServiceUnavailable || rec.Header().Get("Access-Control-Allow-Origin") != "*" ||
		rec.Header().Get("Content-Type") != "application/json" {
		t.Fatalf("unhealthy: %d %v", rec.Code, rec.Header())
	}
}

// /routez?subs=detail lists each route's interest in detail (subject, queue group), and
// subs=1 its subjects, as nats-server does.
func TestRoutezSubsDetail(t *testing.T) {
	start := func(name string, seed *url.URL) *core.Server {
		o := core.Options{Host: "127.0.0.1", Port: -1, ServerName: name,
			Cluster: &core.ClusterOptions{Host: "127.0.0.1", Port: -1, Name: "mesh"}}
		if seed != nil {
			o.Cluster.Routes = []*url.URL{seed}
		}
		srv, err := core.New(o)
		if err != nil {
			t.Fatal(err)
		}
		if err := srv.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = srv.Shutdown(context.Background()) })
		return srv
	}
	a := start("a", nil)
	b := start("b", &url.URL{Scheme: "nats-route", Host: a.ClusterAddr().String()})
	conn, err := b.Connect("sub")
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := conn.Subscribe("over.route", "workers", func(core.Msg) {}); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for a.NumSubscriptions() == 0 { // b's interest has reached a
		if time.Now().After(deadline) {
			t.Fatal("no interest over the route")
		}
		time.Sleep(10 * time.Millisecond)
	}
	h := New(a, "", nil).Handler()
	var rz struct {
		Routes []struct {
			Subs   []string `json:"subscriptions_list"`
			Detail []struct {
				Subject string `json:"subject"`
				Queue   string `json:"qgroup"`
			} `json:"subscriptions_list_detail"`
		} `json:"routes"`
	}
	get := func(path string) {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest("GET", path, nil))
		rz.Routes = nil
		if err := json.Unmarshal(rec.Body.Bytes(), &rz); err != nil || len(rz.Routes) != 1 {
			t.Fatalf("GET %s: %d %s (%v)", path, rec.Code, rec.Body, err)
		}
	}
	get("/routez?subs=detail")
	if r := rz.Routes[0]; len(r.Detail) != 1 || r.Detail[0].Subject != "over.route" || r.Detail[0].Queue != "workers" || r.Subs != nil {
		t.Errorf("subs=detail: %+v", r)
	}
	get("/routez?subs=1")
	if r := rz.Routes[0]; len(r.Subs) != 1 || r.Subs[0] != "over.route" || r.Detail != nil {
		t.Errorf("subs=1: %+v", r)
	}
}

// TestLeafzEmpty: /leafz answers nats-server's form for a server without leafnodes (it
// was a 404, which prometheus-nats-exporter -leafz fails to decode on every scrape).
func TestLeafzEmpty(t *testing.T) {
	srv := startCore(t)
	rec := httptest.NewRecorder()
	New(srv, "", nil).Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/leafz", nil))
	var lz struct {
		ID        string `json:"server_id"`
		LeafNodes *int   `json:"leafnodes"`
		Leafs     []any  `json:"leafs"`
	}
	if rec.Code != http.StatusOK || json.Unmarshal(rec.Body.Bytes(), &lz) != nil || lz.ID != srv.ID() ||
		lz.LeafNodes == nil || *lz.LeafNodes != 0 || lz.Leafs == nil || len(lz.Leafs) != 0 {
		t.Fatalf("/leafz: %d %s", rec.Code, rec.Body)
	}
}
