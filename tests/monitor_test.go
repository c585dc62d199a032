package tests

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/starling-io/starling/core"
)

func coreConnzClosed() core.ConnzOptions { return core.ConnzOptions{State: "closed"} }

// The monitoring endpoints decode into the reference's field names and JSON types.
func TestMonitoringEndpoints(t *testing.T) {
	m := startServer(t)
	var before struct {
		Subscriptions int `json:"subscriptions"`
	}
	getJSON(t, m, "/varz", &before) // the system account's own, as nats-server counts them
	a := connect(t, m, nats.Name("alpha"))
	b := connect(t, m, nats.Name("beta"))
	for _, s := range []string{"m.one", "m.two", "m.three"} {
		_, err := a.Subscribe(s, func(*nats.Msg) {})
		must(t, err)
	}
	_, err := b.QueueSubscribe("m.q", "grp", func(*nats.Msg) {})
	must(t, err)
	must(t, a.Flush())
	must(t, b.Flush())
	for range 10 {
		must(t, b.Publish("m.one", []byte("12345")))
	}
	must(t, b.Flush())
	must(t, a.Flush())

	var varz struct {
		ServerID      string            `json:"server_id"`
		Version       string            `json:"version"`
		Connections   int               `json:"connections"`
		Subscriptions int               `json:"subscriptions"`
		InMsgs        int64             `json:"in_msgs"`
		OutMsgs       int64             `json:"out_msgs"`
		InBytes       int64             `json:"in_bytes"`
		PingInterval  time.Duration     `json:"ping_interval"`
		Uptime        string            `json:"uptime"`
		Mem           int64             `json:"mem"`
		CPU           float64           `json:"cpu"`
		Start         time.Time         `json:"start"`
		MaxPayload    int               `json:"max_payload"`
		HTTPReqStats  map[string]uint64 `json:"http_req_stats"`
	}
	getJSON(t, m, "/varz", nil) // counted in http_req_stats of the next call
	if code := getJSON(t, m, "/varz", &varz); code != 200 {
		t.Fatalf("/varz status %d", code)
	}
	if varz.ServerID == "" || varz.Connections != 2 || varz.Subscriptions != before.Subscriptions+4 || varz.InMsgs != 10 ||
		varz.OutMsgs != 10 || varz.InBytes != 50 || varz.PingInterval != 2*time.Minute || varz.Mem <= 0 ||
		varz.MaxPayload != 1<<20 || varz.HTTPReqStats["/varz"] < 1 {
		t.Fatalf("unexpected varz %+v", varz)
	}

	var connz core.Connz
	getJSON(t, m, "/connz?subs=1&sort=subs", &connz)
	if connz.NumConns != 2 || connz.Total != 2 || connz.Conns[0].Name != "alpha" || len(connz.Conns[0].Subs) != 3 ||
		connz.Conns[0].Lang != "go" || connz.Conns[0].Version == "" {
		t.Fatalf("unexpected connz %+v", connz)
	}
	getJSON(t, m, "/connz?limit=1&offset=1", &connz)
	if connz.NumConns != 1 || connz.Total != 2 || connz.Offset != 1 || connz.Conns[0].Name != "beta" {
		t.Fatalf("pagination: %+v", connz)
	}
	bid, _ := b.GetClientID()
	getJSON(t, m, "/connz?subs=detail&cid="+itoa(bid), &connz)
	if connz.NumConns != 1 || connz.Conns[0].Cid != bid || len(connz.Conns[0].SubsDetail) != 1 || connz.Conns[0].SubsDetail[0].Queue != "grp" {
		t.Fatalf("cid filter: %+v", connz.Conns)
	}
	getJSON(t, m, "/connz?sort=msgs_from", &connz)
	if connz.Conns[0].Name != "beta" || connz.Conns[0].InMsgs != 10 {
		t.Fatalf("sort msgs_from: %+v", connz.Conns[0])
	}
	if code := getJSON(t, m, "/connz?sort=bogus", nil); code != http.StatusBadRequest {
		t.Fatalf("bad sort: status %d", code)
	}
	if code := getJSON(t, m, "/connz?sort=stop", nil); code != http.StatusBadRequest {
		t.Fatalf("sort=stop on open: status %d", code)
	}
	b.Close()
	waitFor(t, 2*time.Second, func() error {
		getJSON(t, m, "/connz?state=closed", &connz)
		if connz.NumConns != 1 || connz.Conns[0].Reason != "Client Closed" {
			return errString("closed connection not listed")
		}
		return nil
	})

	var subsz core.Subsz
	getJSON(t, m, "/subsz?subs=1&test=m.one", &subsz)
	if subsz.NumSubs != uint32(before.Subscriptions)+3 || subsz.Total != 1 || subsz.Subs[0].Subject != "m.one" {
		t.Fatalf("subsz %+v", subsz)
	}
	if code := getJSON(t, m, "/subsz?test=m.*", nil); code != http.StatusBadRequest {
		t.Fatalf("subsz wildcard test: status %d", code)
	}
	var h struct{ Status string }
	if code := getJSON(t, m, "/healthz", &h); code != 200 || h.Status != "ok" {
		t.Fatalf("healthz %d %+v", code, h)
	}
	var routez struct {
		NumRoutes int   `json:"num_routes"`
		Routes    []any `json:"routes"`
	}
	getJSON(t, m, "/routez", &routez)
	if routez.Routes == nil {
		t.Fatal("routez routes must be an array")
	}
}

type errString string

func (e errString) Error() string { return string(e) }

func itoa(n uint64) string {
	b := []byte{}
	for {
		b = append([]byte{byte('0' + n%10)}, b...)
		n /= 10
		if n == 0 {
			return string(b)
		}
	}
}

// The streaming layer's in-process connection is no client connection: /varz connections
// and total_connections, /connz (open and closed) and /metrics count nats.go's alone, as
// nats-server counts its client connections and not its internal ones.
func TestMonitoringCountsClientsOnly(t *testing.T) {
	m := startMetricsServer(t) // streaming on: its in-process connection exists
	nc := connect(t, m, nats.Name("only"))
	must(t, nc.Flush())
	var varz struct {
		Connections      int    `json:"connections"`
		TotalConnections uint64 `json:"total_connections"`
	}
	getJSON(t, m, "/varz", &varz)
	var connz core.Connz
	getJSON(t, m, "/connz?state=any", &connz)
	if varz.Connections != 1 || varz.TotalConnections != 1 || connz.Total != 1 || connz.Conns[0].Name != "only" {
		t.Fatalf("varz connections %d total %d; connz %+v", varz.Connections, varz.TotalConnections, connz.Conns)
	}
	if v, _ := metricValue(scrapeMetrics(t, m), "starling_connections"); v != 1 {
		t.Fatalf("starling_connections = %v, want 1", v)
	}
}

// http_req_stats names every endpoint by its path without the base path, the streaming
// ones too, as nats-server names its own.
func TestHTTPReqStatsWithBasePath(t *testing.T) {
	m := startMetricsServer(t, "--http_base_path", "/mon")
	getJSON(t, m, "/mon/streaming/serverz", nil)
	getJSON(t, m, "/mon/connz", nil)
	var varz struct {
		HTTPReqStats map[string]uint64 `json:"http_req_stats"`
	}
	if code := getJSON(t, m, "/mon/varz", &varz); code != 200 {
		t.Fatalf("/mon/varz: %d", code)
	}
	for _, path := range []string{"/streaming/serverz", "/connz", "/varz"} {
		if varz.HTTPReqStats[path] != 1 {
			t.Errorf("http_req_stats[%s] = %d: %v", path, varz.HTTPReqStats[path], varz.HTTPReqStats)
		}
	}
}

// sort=uptime puts the shortest-lived connection first, as nats-server's (its SortByUptime
// is the one ascending order besides cid and start); a closed one lived from its start to
// its stop, not until now.
func TestConnzSortUptimeClosed(t *testing.T) {
	m := startServer(t)
	short := connect(t, m, nats.Name("short"))
	long := connect(t, m, nats.Name("long"))
	short.Close()
	time.Sleep(100 * time.Millisecond) // long lives 100 ms longer than short
	long.Close()
	var connz core.Connz
	waitFor(t, 2*time.Second, func() error {
		getJSON(t, m, "/connz?state=closed&sort=uptime", &connz)
		if connz.NumConns != 2 {
			return errString("not both closed yet")
		}
		return nil
	})
	if connz.Conns[0].Name != "short" {
		t.Fatalf("sort=uptime on closed connections: %s first, want short", connz.Conns[0].Name)
	}
}

// state is read in any case, as nats-server reads it: state=CLOSED lists the closed
// connections instead of answering 400.
func TestConnzStateAnyCase(t *testing.T) {
	m := startServer(t)
	connect(t, m, nats.Name("gone")).Close()
	var connz core.Connz
	waitFor(t, 2*time.Second, func() error {
		if code := getJSON(t, m, "/connz?state=CLOSED", &connz); code != 200 {
			return errString("state=CLOSED: HTTP " + itoa(uint64(code)))
		}
		if connz.NumConns != 1 || connz.Conns[0].Name != "gone" {
			return errString("closed connection not listed")
		}
		return nil
	})
	if code := getJSON(t, m, "/connz?state=Any", nil); code != 200 {
		t.Fatalf("state=Any: HTTP %d", code)
	}
}

// /varz shows the monitoring base path it is served under, as nats-server does.
func TestVarzHTTPBasePath(t *testing.T) {
	m := startServer(t, "--http_base_path", "/mon")
	var varz struct {
		BasePath string `json:"http_base_path"`
	}
	if code := getJSON(t, m, "/mon/varz", &varz); code != 200 || varz.BasePath != "/mon" {
		t.Fatalf("/mon/varz: %d, http_base_path %q", code, varz.BasePath)
	}
}

// /connz names a connection's account (name_tag as well as account) only with auth=1, as
// nats-server does: without it the account stays hidden, open or closed.
func TestConnzNameTagOnlyWithAuth(t *testing.T) {
	m := startServer(t)
	connect(t, m, nats.Name("open")).Flush()
	connect(t, m, nats.Name("gone")).Close()
	waitFor(t, 2*time.Second, func() error {
		var connz core.Connz
		getJSON(t, m, "/connz?state=closed", &connz)
		if connz.NumConns != 1 {
			return errString("gone not closed yet")
		}
		return nil
	})
	for _, q := range []string{"/connz", "/connz?state=closed"} {
		var plain, auth core.Connz
		getJSON(t, m, q, &plain)
		getJSON(t, m, q+map[bool]string{true: "&", false: "?"}[strings.Contains(q, "?")]+"auth=1", &auth)
		if len(plain.Conns) != 1 || len(auth.Conns) != 1 {
			t.Fatalf("%s: %d and %d connections", q, len(plain.Conns), len(auth.Conns))
		}
		if plain.Conns[0].NameTag != "" || auth.Conns[0].NameTag != core.GlobalAccount {
			t.Errorf("%s: name_tag %q without auth, %q with auth=1", q, plain.Conns[0].NameTag, auth.Conns[0].NameTag)
		}
	}
}

// /accstatz (prometheus-nats-exporter -accstatz polls it with unused=1) lists each
// account's connections, subscriptions and traffic; without unused, only accounts with
// connections. It was a 404.
func TestAccstatz(t *testing.T) {
	m := startServer(t, "-c", writeConf(t, "accstatz.conf", "accounts { A { users [{user: a, password: a}] }, B {} }\n"))
	nc := connect(t, m, nats.UserInfo("a", "a"))
	got := make(chan *nats.Msg, 10)
	_, err := nc.ChanSubscribe("acc.x", got)
	must(t, err)
	for range 3 {
		must(t, nc.Publish("acc.x", []byte("abcd")))
	}
	recvN(t, got, 3, 2*time.Second)
	type stat struct {
		Account string `json:"acc"`
		Conns   int    `json:"conns"`
		NumSubs int    `json:"num_subscriptions"`
		Sent    struct{ Msgs, Bytes int64 }
		Recv    struct{ Msgs, Bytes int64 } `json:"received"`
	}
	var az struct {
		ID       string `json:"server_id"`
		Accounts []stat `json:"account_statz"`
	}
	if code := getJSON(t, m, "/accstatz", &az); code != 200 || az.ID == "" || len(az.Accounts) != 1 {
		t.Fatalf("/accstatz: %d %+v", code, az)
	}
	if a := az.Accounts[0]; a.Account != "A" || a.Conns != 1 || a.NumSubs < 1 ||
		a.Sent.Msgs != 3 || a.Sent.Bytes != 12 || a.Recv.Msgs != 3 || a.Recv.Bytes != 12 {
		t.Fatalf("/accstatz: %+v", a)
	}
	getJSON(t, m, "/accstatz?unused=1", &az)
	if len(az.Accounts) < 2 { // B, without connections, as well
		t.Fatalf("/accstatz?unused=1: %+v", az.Accounts)
	}
	if code := getJSON(t, m, "/accstatz?unused=maybe", nil); code != http.StatusBadRequest {
		t.Fatalf("/accstatz?unused=maybe: %d", code)
	}
}

// /accountz?acc= gives the account's name_tag (prometheus-nats-exporter's account_name
// label) and its subject index statistics, as nats-server does.
func TestAccountzNameTagSublistStats(t *testing.T) {
	m := startServer(t, "-c", writeConf(t, "accountz.conf", "accounts { A { users [{user: a, password: a}] } }\n"))
	nc := connect(t, m, nats.UserInfo("a", "a"))
	for _, s := range []string{"az.one", "az.two"} {
		_, err := nc.SubscribeSync(s)
		must(t, err)
	}
	must(t, nc.Flush())
	var az struct {
		Detail struct {
			Subs    uint32 `json:"subscriptions"`
			NameTag string `json:"name_tag"`
			Sublist *struct {
				NumSubs    uint32 `json:"num_subscriptions"`
				NumInserts uint64 `json:"num_inserts"`
			} `json:"sublist_stats"`
		} `json:"account_detail"`
	}
	if code := getJSON(t, m, "/accountz?acc=A", &az); code != 200 {
		t.Fatalf("/accountz?acc=A: %d", code)
	}
	d := az.Detail
	if d.NameTag != "A" || d.Sublist == nil || d.Sublist.NumSubs != d.Subs || d.Subs < 2 || d.Sublist.NumInserts < 2 {
		t.Fatalf("/accountz?acc=A: name_tag %q, subscriptions %d, sublist_stats %+v", d.NameTag, d.Subs, d.Sublist)
	}
}

// /subsz?subs=1 gives each subscription's account_tag beside its account, as nats-server.
func TestSubszAccountTag(t *testing.T) {
	m := startServer(t)
	nc := connect(t, m)
	_, err := nc.SubscribeSync("tag.x")
	must(t, err)
	must(t, nc.Flush())
	var sz struct {
		Subs []struct {
			Account    string `json:"account"`
			AccountTag string `json:"account_tag"`
		} `json:"subscriptions_list"`
	}
	getJSON(t, m, "/subsz?subs=1&test=tag.x", &sz)
	if len(sz.Subs) != 1 || sz.Subs[0].Account != core.GlobalAccount || sz.Subs[0].AccountTag != core.GlobalAccount {
		t.Fatalf("/subsz: %+v", sz.Subs)
	}
}

// /connz?subs=detail does not name the account in each subscription, as nats-server: the
// connection's account is shown with auth=1 alone.
func TestConnzSubsDetailNoAccount(t *testing.T) {
	m := startServer(t)
	nc := connect(t, m)
	_, err := nc.SubscribeSync("detail.x")
	must(t, err)
	must(t, nc.Flush())
	connect(t, m, nats.Name("gone")).Close()
	for _, q := range []string{"/connz?subs=detail", "/connz?subs=detail&state=all"} {
		var connz core.Connz
		getJSON(t, m, q, &connz)
		for _, c := range connz.Conns {
			for _, d := range c.SubsDetail {
				if d.Account != "" {
					t.Errorf("%s: subscription %s names account %q", q, d.Subject, d.Account)
				}
			}
		}
	}
}
