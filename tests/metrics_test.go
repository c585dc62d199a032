package tests

import (
	"fmt"
	"io"
	"net/http"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/stan.go"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/starling-io/starling/cmd/starling/app"
	"github.com/starling-io/starling/stores"
	"github.com/starling-io/starling/stores/filestore"
)

const metricsCluster = "metrics-test"

// startMetricsServer runs Starling in-process as the binary does, streaming on (memory
// store), with monitoring on a random port.
func startMetricsServer(t testing.TB, args ...string) *app.Main {
	t.Helper()
	logs := &syncBuffer{}
	m := app.NewMain(io.Discard, logs)
	must(t, m.ParseFlags(append([]string{"-a", "127.0.0.1", "-p", "-1", "-m", "-1", "-cid", metricsCluster}, args...)))
	must(t, m.Start())
	t.Cleanup(func() {
		_ = m.Close()
		if t.Failed() && os.Getenv("STARLING_TEST_LOGS") != "" {
			t.Logf("server log:\n%s", logs.String())
		}
	})
	return m
}

// scrapeMetrics GETs /metrics and parses it as Prometheus does.
func scrapeMetrics(t testing.TB, m *app.Main) map[string]*dto.MetricFamily {
	t.Helper()
	resp, err := http.Get("http://" + m.MonitorAddr() + "/metrics")
	must(t, err)
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(resp.Body)
		t.Fatalf("GET /metrics: %d %s", resp.StatusCode, b)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	mfs, err := p.TextToMetricFamilies(resp.Body)
	must(t, err)
	return mfs
}

// metricValue returns the value of the series of name whose labels include the given
// pairs, and whether there is one.
func metricValue(mfs map[string]*dto.MetricFamily, name string, labels ...string) (float64, bool) {
next:
	for _, s := range mfs[name].GetMetric() {
		for i := 0; i+1 < len(labels); i += 2 {
			if !slices.ContainsFunc(s.GetLabel(), func(lp *dto.LabelPair) bool {
				return lp.GetName() == labels[i] && lp.GetValue() == labels[i+1]
			}) {
				continue next
			}
		}
		switch {
		case s.Counter != nil:
			return s.Counter.GetValue(), true
		case s.Gauge != nil:
			return s.Gauge.GetValue(), true
		case s.Untyped != nil:
			return s.Untyped.GetValue(), true
		}
	}
	return 0, false
}

// A nats.go client and a stan.go client against the server as the binary runs it: what they
// did shows in a /metrics scrape — core traffic exactly, the channel's messages and
// sequences, and a stalled subscriber's pending count and lag.
func TestMetricsEndToEnd(t *testing.T) {
	m := startMetricsServer(t)
	before := scrapeMetrics(t, m)

	nc := connect(t, m)
	got := make(chan *nats.Msg, 16)
	_, err := nc.ChanSubscribe("metrics.core", got)
	must(t, err)
	for i := range 10 {
		must(t, nc.Publish("metrics.core", msgf("core-%d", i))) // 6 bytes each
	}
	recvN(t, got, 10, 5*time.Second)
	after := scrapeMetrics(t, m)
	delta := func(name string) float64 {
		b, _ := metricValue(before, name)
		a, ok := metricValue(after, name)
		if !ok {
			t.Fatalf("no %s", name)
		}
		return a - b
	}
	for name, want := range map[string]float64{
		"starling_received_messages_total": 10, "starling_received_bytes_total": 60,
		"starling_sent_messages_total": 10, "starling_sent_bytes_total": 60,
		"starling_connections_total": 1, "starling_connections": 1, "starling_subscriptions": 1,
	} {
		if d := delta(name); d != want {
			t.Errorf("%s grew by %v, want %v", name, d, want)
		}
	}

	sc, err := stan.Connect(metricsCluster, "metrics-client", stan.NatsURL(clientURL(m)))
	must(t, err)
	defer sc.Close()
	for i := range 4 {
		must(t, sc.Publish("orders", msgf("order-%d", i))) // 7 bytes each
	}
	_, err = sc.Subscribe("orders", func(*stan.Msg) {}, stan.DurableName("billing"), stan.DeliverAllAvailable(),
		stan.SetManualAckMode(), stan.MaxInflight(3), stan.AckWait(time.Minute))
	must(t, err)
	sub := []string{"channel", "orders", "client_id", "metrics-client", "durable", "billing"}
	var mfs map[string]*dto.MetricFamily
	waitFor(t, 5*time.Second, func() error {
		mfs = scrapeMetrics(t, m)
		if v, _ := metricValue(mfs, "starling_streaming_subscription_pending_messages", sub...); v != 3 {
			return fmt.Errorf("pending %v", v)
		}
		return nil
	})
	for _, tc := range []struct {
		name   string
		labels []string
		want   float64
	}{
		{"starling_streaming_info", []string{"cluster_id", metricsCluster, "store", "MEMORY"}, 1},
		{"starling_streaming_clients", nil, 1},
		{"starling_streaming_channels", nil, 1},
		{"starling_streaming_subscriptions", nil, 1},
		{"starling_streaming_stored_messages", nil, 4},
		{"starling_streaming_received_messages_total", nil, 4},
		{"starling_streaming_received_bytes_total", nil, 28},
		{"starling_streaming_sent_messages_total", nil, 3},
		{"starling_streaming_channel_messages", []string{"channel", "orders"}, 4},
		{"starling_streaming_channel_first_sequence", []string{"channel", "orders"}, 1},
		{"starling_streaming_channel_last_sequence", []string{"channel", "orders"}, 4},
		{"starling_streaming_channel_subscriptions", []string{"channel", "orders"}, 1},
		{"starling_streaming_subscription_last_sent_sequence", sub, 3},
		{"starling_streaming_subscription_lag_messages", sub, 1},
		{"starling_streaming_subscription_stalled", sub, 1},
		{"starling_streaming_subscription_max_inflight", sub, 3},
		// nats.go and stan.go's connection, not the streaming layer's in-process one
		{"starling_connections", nil, 2},
	} {
		if v, ok := metricValue(mfs, tc.name, tc.labels...); !ok || v != tc.want {
			t.Errorf("%s%v = %v (found %v), want %v", tc.name, tc.labels, v, ok, tc.want)
		}
	}
	if v, _ := metricValue(mfs, "starling_received_messages_total"); v < 10+4 {
		t.Errorf("core received %v messages: fewer than were published", v)
	}
	if mfs["process_resident_memory_bytes"] == nil || mfs["go_goroutines"] == nil {
		t.Error("no process or Go runtime metrics")
	}
}

// /metrics without streaming has core's figures and none of streaming's.
func TestMetricsWithoutStreaming(t *testing.T) {
	m := startServer(t)
	mfs := scrapeMetrics(t, m)
	if _, ok := metricValue(mfs, "starling_connections"); !ok {
		t.Error("no starling_connections")
	}
	for name := range mfs {
		if strings.HasPrefix(name, "starling_streaming_") {
			t.Errorf("%s without streaming", name)
		}
	}
}

// A channel's name in a store is not always UTF-8 (one written before publishes were
// checked, or imported from nss, which took any bytes), while Prometheus label values must
// be: a scrape shows it with the invalid bytes replaced. The collector used to panic on it (recovered by the registry),
// which left out every channel after it and logged a stack trace at each scrape.
func TestMetricsNonUTF8ChannelName(t *testing.T) {
	// Publishes name UTF-8 channels only now (TestPublishOfNonUTF8IsRefused).
	dir := t.TempDir()
	st, err := filestore.Open(dir, filestore.Options{})
	must(t, err)
	must(t, st.Init(stores.ServerInfo{ClusterID: metricsCluster}))
	for i, name := range []string{"bad\xff.name", "zz"} { // zz: a channel after it
		ch, err := st.CreateChannel(name, uint64(i+1))
		must(t, err)
		must(t, ch.Msgs.Append([]stores.Msg{{Seq: 1, Time: time.Now().UnixNano(), Data: []byte("x")}}))
		must(t, ch.Msgs.Sync())
	}
	must(t, st.Close())
	m := startMetricsServer(t, "--store", "file", "--dir", dir)
	mfs := scrapeMetrics(t, m)
	for _, ch := range []string{"bad\uFFFD.name", "zz"} {
		if v, ok := metricValue(mfs, "starling_streaming_channel_messages", "channel", ch); !ok || v != 1 {
			t.Errorf("channel %q: %v (found %v)", ch, v, ok)
		}
	}
}
