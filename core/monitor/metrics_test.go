package monitor

import (
	"context"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/prometheus/client_golang/prometheus/testutil"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/starling-io/starling/core"
)

func startCore(t *testing.T) *core.Server {
	t.Helper()
	srv, err := core.New(core.Options{Host: "127.0.0.1", Port: -1})
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(ctx)
	})
	return srv
}

// scrape GETs path and parses the Prometheus text format.
func scrape(t *testing.T, url string) map[string]*dto.MetricFamily {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/plain; version=0.0.4") {
		t.Fatalf("GET %s: %d %q", url, resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	mfs, err := p.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return mfs
}

// value returns the value of the series of name whose labels include the given pairs.
func value(t *testing.T, mfs map[string]*dto.MetricFamily, name string, labels ...string) float64 {
	t.Helper()
	mf := mfs[name]
	if mf == nil {
		t.Fatalf("no %s in the scrape", name)
	}
next:
	for _, m := range mf.GetMetric() {
		for i := 0; i+1 < len(labels); i += 2 {
			found := false
			for _, lp := range m.GetLabel() {
				if lp.GetName() == labels[i] && lp.GetValue() == labels[i+1] {
					found = true
				}
			}
			if !found {
				continue next
			}
		}
		switch {
		case m.Counter != nil:
			return m.Counter.GetValue()
		case m.Gauge != nil:
			return m.Gauge.GetValue()
		}
	}
	t.Fatalf("no %s%v in the scrape", name, labels)
	return 0
}

// /metrics under the base path shows what a real client did, with the types and names
// Prometheus expects, and counts in /varz's http_req_stats like the other endpoints.
func TestMetrics(t *testing.T) {
	srv := startCore(t)
	m := New(srv, "/mon", nil)
	hs := httptest.NewServer(m.Handler())
	defer hs.Close()

	nc, err := nats.Connect(srv.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	got := make(chan *nats.Msg, 10)
	if _, err := nc.ChanSubscribe("metrics.test", got); err != nil {
		t.Fatal(err)
	}
	for range 3 {
		if err := nc.Publish("metrics.test", []byte("12345")); err != nil {
			t.Fatal(err)
		}
	}
	for range 3 {
		select {
		case <-got:
		case <-time.After(5 * time.Second):
			t.Fatal("message not delivered")
		}
	}

	mfs := scrape(t, hs.URL+"/mon/metrics")
	for name, want := range map[string]float64{
		"starling_connections":             1,
		"starling_connections_total":       1,
		"starling_subscriptions":           1,
		"starling_routes":                  0,
		"starling_received_messages_total": 3,
		"starling_received_bytes_total":    15,
		"starling_sent_messages_total":     3,
		"starling_sent_bytes_total":        15,
		"starling_stale_connections_total": 0,
		"starling_max_connections":         64 * 1024,
	} {
		if v := value(t, mfs, name); v != want {
			t.Errorf("%s = %v, want %v", name, v, want)
		}
	}
	if v := value(t, mfs, "starling_slow_consumers_total", "kind", "client"); v != 0 {
		t.Errorf("slow consumers %v", v)
	}
	if v := value(t, mfs, "starling_info", "server_id", srv.ID(), "version", core.Version); v != 1 {
		t.Errorf("info %v", v)
	}
	if mfs["starling_received_messages_total"].GetType() != dto.MetricType_COUNTER ||
		mfs["starling_connections"].GetType() != dto.MetricType_GAUGE {
		t.Error("wrong metric types")
	}
	for _, name := range []string{"go_goroutines", "process_resident_memory_bytes", "process_cpu_seconds_total"} {
		if mfs[name] == nil {
			t.Errorf("no %s", name)
		}
	}
	if v := srv.Varz(); v.InMsgs != 3 {
		t.Errorf("varz in_msgs %d", v.InMsgs)
	}
	resp, err := http.Get(hs.URL + "/mon/varz")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	m.mu.Lock()
	n := m.stats[MetricsPath]
	m.mu.Unlock()
	if n != 1 {
		t.Errorf("http_req_stats[/metrics] = %d", n)
	}
}

// The names follow Prometheus' conventions (promlint: _total counters, base units).
func TestMetricsLint(t *testing.T) {
	srv := startCore(t)
	problems, err := testutil.CollectAndLint(NewCollector(srv))
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Errorf("%s: %s", p.Metric, p.Text)
	}
}

// A traffic total that Varz reads a little low (a connection between the open set and the
// closed one) is reported at the previous value, never lower.
func TestMetricsMonotonic(t *testing.T) {
	c := NewCollector(startCore(t))
	if in, _, _, outb := c.monotonic(&core.Varz{InMsgs: 10, OutBytes: 100}); in != 10 || outb != 100 {
		t.Fatalf("first: %v %v", in, outb)
	}
	if in, inb, _, outb := c.monotonic(&core.Varz{InMsgs: 7, InBytes: 5, OutBytes: 90}); in != 10 || inb != 5 || outb != 100 {
		t.Fatalf("dip: %v %v %v", in, inb, outb)
	}
	if in, _, _, _ := c.monotonic(&core.Varz{InMsgs: 12}); in != 12 {
		t.Fatalf("after: %v", in)
	}
}

// Two servers in a mesh: the publisher's server shows the route to the subscriber's, with
// what went over it and the interest registered.
func TestMetricsRoutes(t *testing.T) {
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
		t.Cleanup(func() {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			_ = srv.Shutdown(ctx)
		})
		return srv
	}
	a := start("a", nil)
	b := start("b", &url.URL{Scheme: "nats-route", Host: a.ClusterAddr().String()})
	hs := httptest.NewServer(New(a, "", nil).Handler())
	defer hs.Close()

	sub, err := nats.Connect(b.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	got := make(chan *nats.Msg, 10)
	if _, err := sub.ChanSubscribe("over.route", got); err != nil {
		t.Fatal(err)
	}
	if err := sub.Flush(); err != nil {
		t.Fatal(err)
	}
	pub, err := nats.Connect(a.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	defer pub.Close()
	deadline := time.Now().Add(5 * time.Second)
	for a.NumSubscriptions() == 0 { // b's interest has reached a
		if time.Now().After(deadline) {
			t.Fatal("no interest over the route")
		}
		time.Sleep(10 * time.Millisecond)
	}
	for range 4 {
		if err := pub.Publish("over.route", []byte("abc")); err != nil {
			t.Fatal(err)
		}
	}
	for range 4 {
		select {
		case <-got:
		case <-time.After(5 * time.Second):
			t.Fatal("message not delivered over the route")
		}
	}

	mfs := scrape(t, hs.URL+"/metrics")
	route := []string{"remote_id", b.ID(), "remote_name", "b"}
	for name, want := range map[string]float64{
		"starling_routes":                        1,
		"starling_route_sent_messages_total":     4,
		"starling_route_sent_bytes_total":        12,
		"starling_route_received_messages_total": 0,
		"starling_route_subscriptions":           1,
		"starling_received_messages_total":       4,
	} {
		labels := route
		if !strings.HasPrefix(name, "starling_route_") {
			labels = nil
		}
		if v := value(t, mfs, name, labels...); v != want {
			t.Errorf("%s = %v, want %v", name, v, want)
		}
	}
	if v := value(t, mfs, "starling_route_pending_bytes", route...); v < 0 {
		t.Errorf("pending %v", v)
	}
	problems, err := testutil.CollectAndLint(NewCollector(a))
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Errorf("%s: %s", p.Metric, p.Text)
	}
}
