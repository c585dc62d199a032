package tests

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/stan.go"
)

// The monitoring endpoints against the reference servers (nats-server, and
// nats-streaming-server for /streaming/*): the same scenario on both, then every endpoint's
// JSON shape (the keys at every level and their JSON types), the values that must agree,
// the status codes and content types, bad query parameters included. A key the reference
// has and Starling lacks is a finding unless monDiffAllowed says why Starling leaves it out.
// MONDIFF_DUMP=<part of a path> logs both bodies of the matching requests.

// monDiffAllowed: "endpoint path" (path as shapeOf flattens it; everything below it too) →
// why Starling does not show it.
var monDiffAllowed = map[string]string{
	"/varz config_digest":                         "nats-server's digest of its own parsed configuration: another parser's would not compare",
	"/varz disk_io_wait_stats":                    "JetStream file store I/O waits: no JetStream",
	"/varz feature_flags":                         "JetStream feature flags: no JetStream",
	"/varz stale_connection_stats":                "stale connections are not counted by kind; stale_connections has the total",
	"/routez routes[].account":                    "a route pinned to one account: Starling has one route per server, for all accounts",
	"/routez routes[].rtt":                        "shown once measured (the first route PING); nats-server's \"0s\" before is no measurement, and the exporter skips a missing rtt",
	"/accountz?acc=A account_detail.imports":      "nats-server lists its automatic $SYS service imports; Starling answers those requests without listing them",
	"/accountz?acc=%24SYS account_detail.exports": "nats-server lists the system services its accounts import; Starling answers those requests without listing them",
	"/accstatz account_statz[].sent.gateways":     "account traffic is not split by connection kind",
	"/accstatz account_statz[].sent.routes":       "account traffic is not split by connection kind",
	"/accstatz account_statz[].sent.leafs":        "account traffic is not split by connection kind",
	"/accstatz account_statz[].received.gateways": "account traffic is not split by connection kind",
	"/accstatz account_statz[].received.routes":   "account traffic is not split by connection kind",
	"/accstatz account_statz[].received.leafs":    "account traffic is not split by connection kind",
}

// monValueAllowed: "endpoint path" (the request's, or its endpoint's for any query) → why the
// value may differ from the reference's.
var monValueAllowed = map[string]string{
	"/connz?cid=BETA .total":             "nats-server counts every open connection, Starling the one that matches cid",
	"/connz?state=closed&cid=REQ .total": "nats-server counts every closed connection, Starling the one that matches cid",
	"/connz?state=all&cid=REQ .total":    "nats-server counts every connection, Starling the one that matches cid",
	"/connz?cid=REQ .total":              "nats-server counts every open connection, Starling the ones that match cid (none open)",
	"/connz?user=b .total":               "nats-server counts every open connection, Starling the ones that match user",
	"/connz?user=b&auth=1 .total":        "nats-server counts every open connection, Starling the ones that match user",
	"/streaming/serverz .in_bytes":       "Starling counts message payload, nats-streaming-server the PubMsg protocol messages",
	"/streaming/serverz .out_bytes":      "Starling counts message payload, nats-streaming-server the MsgProto protocol messages",
	"/streaming/serverz .open_fds":       "the process's own: the two processes differ",
}

// monShapeOnly are the requests whose values differ for reasons of their own: the servers'
// internal subscriptions (nats-server has more), nats-server's route pool, its $SYS
// account's internal traffic (Starling counts client connections' only), request inboxes
// (random), orders that depend
// on timing (last activity, rtt) or on how nats-server's unstable sort breaks ties.
var monShapeOnly = map[string]bool{"/subsz?subs=1": true, "/subsz?subs=1&acc=A": true, "/routez": true,
	"/routez?subs=1": true, "/routez?subs=detail": true, "/accstatz?unused=1": true, "/subsz?subs=1&acc=B": true,
	"/connz?sort=last": true, "/connz?sort=idle": true, "/connz?sort=rtt": true, "/connz?sort=subs": true,
	"/connz?state=closed&sort=idle": true, "/connz?sort=pending": true, "/connz?state=closed&sort=uptime": true,
	"/subsz?acc=C&subs=1&limit=1": true, "/connz?state=closed&subs=detail": true, "/connz?state=closed&subs=1&auth=1": true,
	"/connz?state=closed&sort=rtt": true, "/accountz?acc=%24SYS": true,
	"/connz?acc=nope": true} // nats-server: connections null for an unknown account, Starling [] (both decode)

// monVarzValues are the /varz fields that agree for the same scenario and options.
var monVarzValues = []string{"connections", "total_connections", "remotes", "leafnodes", "in_client_msgs",
	"out_client_msgs", "in_client_bytes", "out_client_bytes", "slow_consumers", "max_payload", "max_connections",
	"ping_interval", "ping_max", "max_control_line", "max_pending", "write_deadline", "auth_timeout", "tls_timeout",
	"auth_required", "proto", "host", "http_host", "system_account"}

// monTarget is one server under comparison.
type monTarget struct {
	name string
	mon  string // monitoring host:port
	url  string // client URL
}

type monResp struct {
	code  int
	ctype string
	body  []byte
	v     any // the decoded body, when JSON
}

func (tg monTarget) get(t *testing.T, path string) monResp {
	t.Helper()
	resp, err := http.Get("http://" + tg.mon + path)
	if err != nil {
		t.Fatalf("%s: GET %s: %v", tg.name, path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	r := monResp{code: resp.StatusCode, ctype: resp.Header.Get("Content-Type"), body: b}
	if strings.HasPrefix(r.ctype, "application/json") {
		if err := json.Unmarshal(b, &r.v); err != nil {
			t.Fatalf("%s: GET %s: %v in %q", tg.name, path, err, b)
		}
	}
	return r
}

// monDynamicKeys are objects keyed by data (paths, channel names): shapeOf folds their keys
// into "*".
var monDynamicKeys = regexp.MustCompile(`(^|\.)(http_req_stats|subscriptions|channels|outbound_gateways|inbound_gateways)$`)

// shapeOf flattens v into path → JSON type; arrays add "[]" to the path, and every element
// contributes.
func shapeOf(v any, path string, out map[string]string) {
	switch x := v.(type) {
	case map[string]any:
		out[path] = "object"
		dyn := monDynamicKeys.MatchString(path)
		for k, e := range x {
			if dyn {
				k = "*"
			}
			p := k
			if path != "" {
				p = path + "." + k
			}
			shapeOf(e, p, out)
		}
	case []any:
		out[path] = "array"
		for _, e := range x {
			shapeOf(e, path+"[]", out)
		}
	case string:
		out[path] = "string"
	case float64:
		out[path] = "number"
	case bool:
		out[path] = "bool"
	case nil:
		out[path] = "null"
	}
}

// diffShape reports the keys ref has and got lacks (unless allowed) and the type
// differences; the keys only got has are logged.
func diffShape(t *testing.T, endpoint string, ref, got any) {
	t.Helper()
	rs, gs := map[string]string{}, map[string]string{}
	shapeOf(ref, "", rs)
	shapeOf(got, "", gs)
	var missing, typed, extra []string
	for p, rt := range rs {
		gt, ok := gs[p]
		switch {
		case !ok:
			if !monAllowed(endpoint, p) {
				missing = append(missing, p+" ("+rt+")")
			}
		case gt != rt && rt != "null" && gt != "null":
			typed = append(typed, fmt.Sprintf("%s: %s, reference %s", p, gt, rt))
		}
	}
	for p := range gs {
		if _, ok := rs[p]; !ok {
			extra = append(extra, p)
		}
	}
	sort.Strings(missing)
	sort.Strings(typed)
	sort.Strings(extra)
	for _, m := range missing {
		t.Errorf("%s: missing %s", endpoint, m)
	}
	for _, m := range typed {
		t.Errorf("%s: type of %s", endpoint, m)
	}
	if len(extra) > 0 {
		t.Logf("%s: only Starling has %v", endpoint, extra)
	}
}

// monAllowed: monDiffAllowed has p, or a path above it, for this request or its endpoint.
func monAllowed(endpoint, p string) bool {
	base, _, _ := strings.Cut(endpoint, "?")
	for k := range monDiffAllowed {
		e, path, _ := strings.Cut(k, " ")
		if (e == endpoint || e == base) && (p == path || strings.HasPrefix(p, path+".") || strings.HasPrefix(p, path+"[]")) {
			return true
		}
	}
	return false
}

// monVolatile are keys whose values differ between any two servers (identities, times,
// ports, the servers' own internal subscriptions, bytes a socket had not taken yet): diffValues
// skips them.
var monVolatile = map[string]bool{"server_id": true, "now": true, "cid": true, "port": true, "start": true,
	"last_activity": true, "rtt": true, "uptime": true, "idle": true, "stop": true, "remote_id": true, "rid": true,
	"update_time": true, "start_time": true, "inbox": true, "ack_inbox": true, "hb_inbox": true, "version": true,
	"go": true, "num_subscriptions": true, "num_cache": true, "num_inserts": true, "num_removes": true,
	"num_matches": true, "cache_hit_rate": true, "max_fanout": true, "avg_fanout": true,
	"pending_bytes": true}

// monUnordered are the lists whose order is the servers' own (nats-server's is map order).
// Streaming's per-client lists (under .subscriptions.<channel>) too.
var monUnordered = map[string]bool{"subscriptions_list": true, "subscriptions_list_detail": true, "accounts": true,
	"account_statz": true, "subscriptions": true, "exports": true, "imports": true, "approved_accounts": true}

// diffValues reports the values that differ at the keys both have, volatile ones aside;
// arrays must have the same length, and the same order unless monUnordered.
func diffValues(t *testing.T, endpoint, path string, ref, got any) {
	t.Helper()
	base, _, _ := strings.Cut(endpoint, "?")
	why, ok := monValueAllowed[endpoint+" "+path]
	if !ok {
		why, ok = monValueAllowed[base+" "+path] // the endpoint's, whatever the query
	}
	if ok {
		t.Logf("%s %s may differ: %s", endpoint, path, why)
		return
	}
	switch r := ref.(type) {
	case map[string]any:
		g, ok := got.(map[string]any)
		if !ok {
			return // a type difference: diffShape reports it
		}
		for k, rv := range r {
			if gv, ok := g[k]; ok && !monVolatile[k] {
				diffValues(t, endpoint, path+"."+k, rv, gv)
			}
		}
	case []any:
		g, ok := got.([]any)
		if !ok {
			return
		}
		if len(r) != len(g) {
			t.Errorf("%s: %s has %d elements, reference %d", endpoint, path, len(g), len(r))
			return
		}
		if monUnordered[path[strings.LastIndexByte(path, '.')+1:]] || strings.Contains(path, ".subscriptions.") {
			r, g = sortedBy(r), sortedBy(g)
		}
		for i := range r {
			diffValues(t, endpoint, fmt.Sprintf("%s[]", path), r[i], g[i])
		}
	default:
		if ref != got {
			t.Errorf("%s: %s is %v, reference %v", endpoint, path, got, ref)
		}
	}
}

// sortedBy sorts a copy of list by what identifies an element: a string itself, an
// object by its account, name, subject, queue and sid, or streaming's client, queue,
// durable and whether it is offline.
func sortedBy(list []any) []any {
	key := func(e any) string {
		if m, ok := e.(map[string]any); ok {
			return fmt.Sprint(m["acc"], m["name"], m["subject"], m["qgroup"], m["sid"], m["client_id"], m["queue_name"],
				m["durable_name"], m["is_offline"], m["type"], m["account"])
		}
		return fmt.Sprint(e)
	}
	out := slices.Clone(list)
	sort.SliceStable(out, func(i, j int) bool { return key(out[i]) < key(out[j]) })
	return out
}

// compare checks one request's answers: status and content type, then the body, its shape
// and values when JSON, its text (trailing white space aside) otherwise.
func compare(t *testing.T, p string, r, g monResp) {
	t.Helper()
	if d := os.Getenv("MONDIFF_DUMP"); d != "" && strings.Contains(p, d) {
		t.Logf("%s reference:\n%s\nstarling:\n%s", p, r.body, g.body)
	}
	if r.code != g.code || r.ctype != g.ctype {
		t.Errorf("%s: status %d %q, reference %d %q", p, g.code, g.ctype, r.code, r.ctype)
	}
	if r.v == nil || g.v == nil {
		if strings.TrimSpace(string(r.body)) != strings.TrimSpace(string(g.body)) {
			t.Errorf("%s: body %.300q, reference %.300q", p, g.body, r.body)
		}
		return
	}
	diffShape(t, p, r.v, g.v)
	switch {
	case monShapeOnly[p]:
	case p == "/varz":
		rm, gm := r.v.(map[string]any), g.v.(map[string]any)
		for _, k := range monVarzValues {
			diffValues(t, p, "."+k, rm[k], gm[k])
		}
	default:
		diffValues(t, p, "", r.v, g.v)
	}
}

// startRefCore runs nats-server on conf.
func startRefCore(t *testing.T, conf string) monTarget {
	bin := madeTool(t, "NATS_SERVER", "nats-server")
	port, mport := freePort(t), freePort(t)
	startProc(t, bin, "-c", conf, "-a", "127.0.0.1", "-p", fmt.Sprint(port), "-m", fmt.Sprint(mport))
	tg := monTarget{name: "nats-server", mon: fmt.Sprintf("127.0.0.1:%d", mport), url: fmt.Sprintf("nats://127.0.0.1:%d", port)}
	waitFor(t, 10*time.Second, func() error {
		resp, err := http.Get("http://" + tg.mon + "/healthz")
		if err == nil {
			resp.Body.Close()
		}
		return err
	})
	return tg
}

func startStarlingCore(t *testing.T, conf string) monTarget {
	m := startServer(t, "-c", conf)
	return monTarget{name: "starling", mon: m.MonitorAddr(), url: clientURL(m)}
}

const monDiffConf = `server_name: %s
accounts {
  A { users [{user: a, password: a}] }
  B { users [{user: b, password: b}] }
}
cluster {
  name: diff
  listen: "127.0.0.1:%d"
  routes: ["nats://127.0.0.1:%d"]
}
`

// coreMesh starts two servers of one kind routed to each other and returns both.
func coreMesh(t *testing.T, start func(*testing.T, string) monTarget, dir, prefix string) (monTarget, monTarget) {
	p1, p2 := freePort(t), freePort(t)
	c1, c2 := filepath.Join(dir, prefix+"1.conf"), filepath.Join(dir, prefix+"2.conf")
	must(t, os.WriteFile(c1, fmt.Appendf(nil, monDiffConf, prefix+"1", p1, p2), 0o600))
	must(t, os.WriteFile(c2, fmt.Appendf(nil, monDiffConf, prefix+"2", p2, p1), 0o600))
	a, b := start(t, c1), start(t, c2)
	waitFor(t, 10*time.Second, func() error {
		for _, tg := range []monTarget{a, b} {
			var rz struct {
				NumRoutes int `json:"num_routes"`
			}
			if err := json.Unmarshal(tg.get(t, "/routez").body, &rz); err != nil || rz.NumRoutes == 0 {
				return fmt.Errorf("%s: no route yet", tg.name)
			}
		}
		return nil
	})
	return a, b
}

// coreScenario connects the same clients to tg and returns them by name.
func coreScenario(t *testing.T, tg monTarget) map[string]*nats.Conn {
	conns := map[string]*nats.Conn{}
	dial := func(name, user string) *nats.Conn {
		nc, err := nats.Connect(tg.url, nats.Name(name), nats.UserInfo(user, user))
		must(t, err)
		t.Cleanup(nc.Close)
		conns[name] = nc
		return nc
	}
	noop := func(*nats.Msg) {}
	alpha := dial("alpha", "a")
	for _, s := range []string{"d.one", "d.two", "d.*"} {
		_, err := alpha.Subscribe(s, noop)
		must(t, err)
	}
	beta := dial("beta", "a")
	_, err := beta.QueueSubscribe("d.one", "workers", noop)
	must(t, err)
	must(t, alpha.Flush())
	must(t, beta.Flush())
	// gone's traffic stays in its account's /accstatz totals after it closes.
	gone := dial("gone", "a")
	_, err = gone.Subscribe("d.two", noop)
	must(t, err)
	must(t, gone.Publish("d.one", []byte("bye")))
	must(t, gone.Flush())
	must(t, beta.Publish("d.two", []byte("to gone")))
	must(t, beta.Flush())
	waitFor(t, 5*time.Second, func() error { // gone has its copy of d.two
		if m := gone.Stats().InMsgs; m != 1 {
			return fmt.Errorf("%s: gone received %d", tg.name, m)
		}
		return nil
	})
	gone.Close()
	gamma := dial("gamma", "b")
	_, err = gamma.Subscribe("e.>", noop)
	must(t, err)
	for _, nc := range conns {
		if !nc.IsClosed() {
			must(t, nc.Flush())
		}
	}
	for range 10 {
		must(t, beta.Publish("d.one", []byte("hello")))
	}
	for range 5 {
		must(t, beta.Publish("d.two", []byte("hi")))
	}
	for range 3 {
		must(t, gamma.Publish("e.x", []byte("x")))
	}
	for _, nc := range conns {
		if !nc.IsClosed() {
			must(t, nc.Flush())
		}
	}
	waitFor(t, 5*time.Second, func() error { // gone is in the closed list
		var cz struct{ Total int }
		if err := json.Unmarshal(tg.get(t, "/connz?state=closed").body, &cz); err != nil || cz.Total != 1 {
			return fmt.Errorf("%s: gone not closed yet (%v)", tg.name, err)
		}
		return nil
	})
	return conns
}

func TestMonitorDiffCore(t *testing.T) {
	dir := t.TempDir()
	ref, _ := coreMesh(t, startRefCore, dir, "ref")
	got, _ := coreMesh(t, startStarlingCore, dir, "st")
	refConns, gotConns := coreScenario(t, ref), coreScenario(t, got)
	cidOf := func(conns map[string]*nats.Conn, name string) string {
		id, err := conns[name].GetClientID()
		must(t, err)
		return fmt.Sprint(id)
	}
	paths := []string{
		"/varz",
		"/connz", "/connz?subs=1", "/connz?subs=detail", "/connz?auth=1", "/connz?sort=msgs_from",
		"/connz?limit=1&offset=1", "/connz?state=closed", "/connz?state=all", "/connz?cid=BETA",
		"/connz?acc=A", "/connz?sort=msgs_to", "/connz?sort=bytes_to&limit=2", "/connz?sort=start",
		"/connz?state=closed&sort=stop", "/connz?state=all&sort=bytes_from", "/connz?offset=10",
		"/subsz", "/subsz?subs=1", "/subsz?subs=1&test=d.one", "/subsz?subs=1&acc=A",
		"/routez", "/routez?subs=1", "/routez?subs=detail",
		"/accountz", "/accountz?acc=A", "/accstatz", "/accstatz?unused=1", "/healthz", "/healthz?js-enabled-only=true",
		"/leafz", "/gatewayz",
		// bad parameters
		"/connz?sort=bogus", "/connz?limit=-1", "/connz?limit=abc", "/connz?offset=-5", "/connz?cid=abc",
		"/connz?auth=maybe", "/connz?state=xyz", "/connz?sort=stop", "/connz?subs=maybe",
		"/subsz?test=d.*", "/subsz?subs=maybe", "/accountz?acc=NOPE", "/healthz?js-enabled-only=maybe",
		"/routez?subs=maybe", "/accstatz?unused=maybe", "/connz?sort=reason", "/nope",
	}
	for _, p := range paths {
		rp := strings.Replace(p, "BETA", cidOf(refConns, "beta"), 1)
		gp := strings.Replace(p, "BETA", cidOf(gotConns, "beta"), 1)
		compare(t, p, ref.get(t, rp), got.get(t, gp))
	}
}

func startRefStreaming(t *testing.T) monTarget {
	bin := madeTool(t, "NSS_BIN", "nats-streaming-server")
	port, mport := freePort(t), freePort(t)
	startProc(t, bin, "-cid", "test-cluster", "-store", "memory", "-a", "127.0.0.1", "-p", fmt.Sprint(port), "-m", fmt.Sprint(mport))
	return monTarget{name: "nats-streaming-server", mon: fmt.Sprintf("127.0.0.1:%d", mport), url: fmt.Sprintf("nats://127.0.0.1:%d", port)}
}

func startStarlingStreaming(t *testing.T) monTarget {
	m := startMetricsServer(t, "-cid", "test-cluster")
	return monTarget{name: "starling", mon: m.MonitorAddr(), url: clientURL(m)}
}

// stanScenario: clients sc1 and sc2, channels foo and bar with messages, a plain
// subscription, an offline durable, a queue group and a durable queue group.
func stanScenario(t *testing.T, tg monTarget) {
	conn := func(id string) stan.Conn {
		var sc stan.Conn
		waitFor(t, 10*time.Second, func() (err error) {
			sc, err = stan.Connect("test-cluster", id, stan.NatsURL(tg.url), stan.ConnectWait(time.Second))
			return err
		})
		t.Cleanup(func() { _ = sc.Close() })
		return sc
	}
	sc1, sc2 := conn("sc1"), conn("sc2")
	for i := range 5 {
		must(t, sc1.Publish("foo", fmt.Appendf(nil, "m%d", i)))
	}
	for range 3 {
		must(t, sc2.Publish("bar", []byte("xyz")))
	}
	got := make(chan struct{}, 100)
	count := func(*stan.Msg) { got <- struct{}{} }
	_, err := sc1.Subscribe("foo", count, stan.DeliverAllAvailable())
	must(t, err)
	dur, err := sc1.Subscribe("foo", count, stan.DurableName("dur"), stan.DeliverAllAvailable())
	must(t, err)
	_, err = sc2.QueueSubscribe("bar", "q", count, stan.DeliverAllAvailable())
	must(t, err)
	dq, err := sc2.QueueSubscribe("bar", "dq", count, stan.DurableName("dd"), stan.MaxInflight(7), stan.AckWait(3*time.Second))
	must(t, err)
	for i := range 13 { // foo's 5 twice, bar's 3 once (dq starts with new messages)
		select {
		case <-got:
		case <-time.After(5 * time.Second):
			t.Fatalf("%s: %d of 13 deliveries", tg.name, i)
		}
	}
	waitFor(t, 5*time.Second, func() error { // every ack counted: pending_count 0
		var cz struct {
			Channels []struct {
				Subs []struct {
					Pending int `json:"pending_count"`
				} `json:"subscriptions"`
			} `json:"channels"`
		}
		if err := json.Unmarshal(tg.get(t, "/streaming/channelsz?subs=1").body, &cz); err != nil {
			return err
		}
		for _, c := range cz.Channels {
			for _, s := range c.Subs {
				if s.Pending != 0 {
					return fmt.Errorf("%s: acks pending", tg.name)
				}
			}
		}
		return nil
	})
	must(t, dur.Close()) // the durable stays, offline
	must(t, dq.Close())  // and the durable queue group, its last member gone
	// A subscriber that does not ack: stalled with max_inflight messages pending.
	held := make(chan struct{}, 10)
	_, err = sc2.Subscribe("foo", func(*stan.Msg) { held <- struct{}{} }, stan.DeliverAllAvailable(), stan.SetManualAckMode(),
		stan.MaxInflight(2), stan.AckWait(30*time.Second))
	must(t, err)
	for i := range 2 {
		select {
		case <-held:
		case <-time.After(5 * time.Second):
			t.Fatalf("%s: %d of 2 deliveries to the stalled subscriber", tg.name, i)
		}
	}
}

func TestMonitorDiffStreaming(t *testing.T) {
	ref, got := startRefStreaming(t), startStarlingStreaming(t)
	stanScenario(t, ref)
	stanScenario(t, got)
	paths := []string{
		"/streaming/serverz", "/streaming/storez",
		"/streaming/clientsz", "/streaming/clientsz?subs=1", "/streaming/clientsz?client=sc2",
		"/streaming/clientsz?client=sc2&subs=1", "/streaming/clientsz?limit=1&offset=1",
		"/streaming/channelsz", "/streaming/channelsz?subs=1", "/streaming/channelsz?channel=foo",
		"/streaming/channelsz?channel=bar&subs=1", "/streaming/channelsz?limit=1&offset=1",
		"/streaming/channelsz?subs=1&limit=1&offset=1", "/streaming/isFTActive",
		"/streaming/clientsz?subs=1&limit=1", "/streaming/clientsz?subs=1&offset=1", "/streaming/clientsz?offset=5",
		"/streaming/clientsz?client=sc1&subs=1", "/streaming/clientsz?subs=2", "/streaming/clientsz?subs=true",
		"/streaming/clientsz?limit=0", "/streaming/clientsz?client=sc1&limit=1&offset=3",
		"/streaming/channelsz?channel=foo&subs=1", "/streaming/channelsz?channel=foo&subs=true",
		"/streaming/channelsz?offset=10&subs=1", "/streaming/channelsz?subs=0", "/streaming/channelsz?limit=0",
		"/streaming/channelsz?offset=-1&subs=1", "/streaming/channelsz?channel=bar&limit=1&offset=4",
		"/streaming/serverz?subs=1", "/streaming/storez?channel=foo",
		// bad parameters
		"/streaming/clientsz?client=nope", "/streaming/channelsz?channel=nope", "/streaming/channelsz?limit=-1",
		"/streaming/channelsz?limit=abc", "/streaming/clientsz?offset=-3", "/streaming/channelsz?subs=true",
		"/streaming/clientsz?offset=abc", "/streaming/channelsz?offset=x&subs=1", "/streaming/clientsz?limit=-2&subs=1",
		"/streaming/channelsz?channel=", "/streaming/clientsz?client=", "/streaming/nope",
	}
	for _, p := range paths {
		compare(t, p, ref.get(t, p), got.get(t, p))
	}
}
