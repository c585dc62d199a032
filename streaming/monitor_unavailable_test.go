package streaming_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/stan.go"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/starling-io/starling/core"
	"github.com/starling-io/starling/raftlog"
	"github.com/starling-io/starling/stores/memstore"
	"github.com/starling-io/starling/streaming"
	"github.com/starling-io/starling/streaming/monitor"
)

// A streaming server whose engine cannot answer — busy, then shut down — is never shown as
// an empty one: /streaming/serverz, /storez, /clientsz and /channelsz answer 503 with a
// plain-text reason (not JSON, which prometheus-nats-exporter would decode into zeros
// whatever the status), and /metrics has no sample for the figures the engine owns while
// the traffic counters and the info series stay. Before, they answered 200 with no
// client, channel, subscription or message, and the gauges dropped to 0.
func TestMonitoringUnavailableEngine(t *testing.T) {
	cs, err := core.New(core.Options{Host: "127.0.0.1", Port: -1})
	check(t, err)
	check(t, cs.Start())
	conn, err := cs.Connect("_STARLING-test-cluster")
	check(t, err)
	store, err := memstore.New(memstore.Options{})
	check(t, err)
	st, err := streaming.New(streaming.InProcess(conn), store, raftlog.Standalone, streaming.Options{ClusterID: "test-cluster"})
	check(t, err)
	check(t, st.Start())
	mux := http.NewServeMux()
	for path, h := range monitor.New(st).Routes() {
		mux.HandleFunc("GET "+path, h)
	}
	hs := httptest.NewServer(mux)
	t.Cleanup(func() {
		hs.Close()
		_ = st.Shutdown()
		conn.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = cs.Shutdown(ctx)
	})
	sc, err := stan.Connect("test-cluster", "client-1", stan.NatsURL(cs.ClientURL()))
	check(t, err)
	check(t, sc.Publish("foo", []byte("hi")))
	_, err = sc.Subscribe("foo", func(*stan.Msg) {}, stan.DurableName("d"))
	check(t, err)

	get := func(path string) (int, string) {
		t.Helper()
		resp, err := http.Get(hs.URL + path)
		check(t, err)
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		check(t, err)
		return resp.StatusCode, string(b)
	}
	paths := []string{monitor.ServerPath, monitor.StorePath, monitor.ClientsPath, monitor.ClientsPath + "?subs=1",
		monitor.ChannelsPath, monitor.ChannelsPath + "?subs=1", monitor.ServerPath + "?digest=1"}
	unavailable := func(why string) {
		t.Helper()
		for _, p := range paths {
			code, body := get(p)
			if code != http.StatusServiceUnavailable || !strings.Contains(body, why) || json.Valid([]byte(body)) {
				t.Errorf("GET %s with the engine %s: %d %q, want 503 and a plain-text reason", p, why, code, body)
			}
		}
		mfs := gather(t, monitor.NewCollector(st))
		for _, name := range []string{"starling_streaming_clients", "starling_streaming_subscriptions",
			"starling_streaming_channels", "starling_streaming_stored_messages", "starling_streaming_stored_bytes",
			"starling_streaming_channel_messages", "starling_streaming_subscription_pending_messages"} {
			if mf := mfs[name]; mf != nil {
				t.Errorf("with the engine %s, %s has samples: %v", why, name, mf.GetMetric())
			}
		}
		for _, name := range []string{"starling_streaming_info", "starling_streaming_received_messages_total"} {
			if mfs[name] == nil {
				t.Errorf("with the engine %s, %s has no sample", why, name)
			}
		}
		if _, err := st.ServerzErr(); err == nil {
			t.Errorf("ServerzErr with the engine %s: no error", why)
		}
	}
	available := func() {
		t.Helper()
		var z streaming.Serverz
		code, body := get(monitor.ServerPath)
		if code != http.StatusOK {
			t.Fatalf("serverz: %d %s", code, body)
		}
		check(t, json.Unmarshal([]byte(body), &z))
		if z.Clients != 1 || z.Channels != 1 || z.TotalMsgs != 1 || z.Subscriptions != 1 {
			t.Fatalf("serverz: %+v", z)
		}
		mfs := gather(t, monitor.NewCollector(st))
		if mf := mfs["starling_streaming_clients"]; mf == nil || mf.GetMetric()[0].GetGauge().GetValue() != 1 {
			t.Fatalf("starling_streaming_clients: %v", mf)
		}
	}
	available()

	release := streaming.HoldEngine(st, 200*time.Millisecond)
	unavailable("busy")
	release()
	available()

	sc.Close()
	check(t, st.Shutdown())
	unavailable("shut down")
	// The state, which needs no engine, says so: before, it stayed "STANDALONE".
	if z := st.Serverz(); z.State != "SHUTDOWN" {
		t.Errorf("serverz state after Shutdown: %q, want SHUTDOWN", z.State)
	}
	info := gather(t, monitor.NewCollector(st))["starling_streaming_info"]
	if info == nil || !hasLabel(info.GetMetric()[0], "state", "SHUTDOWN") {
		t.Errorf("starling_streaming_info after Shutdown: %v, want state=\"SHUTDOWN\"", info)
	}
}

func hasLabel(m *dto.Metric, name, value string) bool {
	for _, lp := range m.GetLabel() {
		if lp.GetName() == name && lp.GetValue() == value {
			return true
		}
	}
	return false
}

func gather(t *testing.T, c prometheus.Collector) map[string]*dto.MetricFamily {
	t.Helper()
	reg := prometheus.NewRegistry()
	reg.MustRegister(c)
	mfs, err := reg.Gather()
	check(t, err)
	out := make(map[string]*dto.MetricFamily, len(mfs))
	for _, mf := range mfs {
		out[mf.GetName()] = mf
	}
	return out
}

func check(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
