package monitor

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/hashicorp/raft"
	"github.com/nats-io/stan.go"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	dto "github.com/prometheus/client_model/go"

	"github.com/starling-io/starling/core"
	"github.com/starling-io/starling/raftlog"
	"github.com/starling-io/starling/stores/memstore"
	"github.com/starling-io/starling/streaming"
)

// gather collects c once and indexes the series by name.
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

// series returns the value of the series of name whose labels include the given pairs,
// and whether there is one.
func series(mfs map[string]*dto.MetricFamily, name string, labels ...string) (float64, bool) {
next:
	for _, m := range mfs[name].GetMetric() {
		for i := 0; i+1 < len(labels); i += 2 {
			found := false
			for _, lp := range m.GetLabel() {
				found = found || lp.GetName() == labels[i] && lp.GetValue() == labels[i+1]
			}
			if !found {
				continue next
			}
		}
		if m.Counter != nil {
			return m.Counter.GetValue(), true
		}
		return m.Gauge.GetValue(), true
	}
	return 0, false
}

// Five messages on foo; a durable manual-ack subscriber with max_inflight 2 that acks
// nothing (2 pending, stalled, 3 behind) and a plain subscriber that has everything: the
// collector shows the server, the channel and both subscriptions as the JSON endpoints do.
func TestCollector(t *testing.T) {
	f := start(t)
	sc, err := stan.Connect("test-cluster", "client-1", stan.NatsURL(f.url))
	check(t, err)
	defer sc.Close()
	for i := range 5 {
		check(t, sc.Publish("foo", fmt.Appendf(nil, "msg-%d", i)))
	}
	_, err = sc.Subscribe("foo", func(*stan.Msg) {}, stan.DurableName("dur"), stan.DeliverAllAvailable(),
		stan.SetManualAckMode(), stan.MaxInflight(2), stan.AckWait(30*time.Second))
	check(t, err)
	_, err = sc.Subscribe("foo", func(*stan.Msg) {}, stan.DeliverAllAvailable())
	check(t, err)

	c := NewCollector(f.st)
	var mfs map[string]*dto.MetricFamily
	dur := []string{"channel", "foo", "client_id", "client-1", "durable", "dur", "queue", ""}
	plain := []string{"channel", "foo", "client_id", "client-1", "durable", "", "queue", ""}
	waitFor(t, func() error {
		mfs = gather(t, c)
		sent, _ := series(mfs, "starling_streaming_sent_messages_total")
		pending, _ := series(mfs, "starling_streaming_subscription_pending_messages", plain...)
		if sent != 7 || pending != 0 {
			return fmt.Errorf("sent %v, plain subscription pending %v", sent, pending)
		}
		return nil
	})
	for _, tc := range []struct {
		name   string
		labels []string
		want   float64
	}{
		{"starling_streaming_info", []string{"cluster_id", "test-cluster", "state", "STANDALONE", "store", "MEMORY"}, 1},
		{"starling_streaming_clients", nil, 1},
		{"starling_streaming_subscriptions", nil, 2},
		{"starling_streaming_channels", nil, 1},
		{"starling_streaming_stored_messages", nil, 5},
		{"starling_streaming_received_messages_total", nil, 5},
		{"starling_streaming_received_bytes_total", nil, 25},
		{"starling_streaming_sent_bytes_total", nil, 35},
		{"starling_streaming_channel_messages", []string{"channel", "foo"}, 5},
		{"starling_streaming_channel_first_sequence", []string{"channel", "foo"}, 1},
		{"starling_streaming_channel_last_sequence", []string{"channel", "foo"}, 5},
		{"starling_streaming_channel_subscriptions", []string{"channel", "foo"}, 2},
		{"starling_streaming_subscription_pending_messages", dur, 2},
		{"starling_streaming_subscription_last_sent_sequence", dur, 2},
		{"starling_streaming_subscription_lag_messages", dur, 3},
		{"starling_streaming_subscription_stalled", dur, 1},
		{"starling_streaming_subscription_offline", dur, 0},
		{"starling_streaming_subscription_max_inflight", dur, 2},
		{"starling_streaming_subscription_last_sent_sequence", plain, 5},
		{"starling_streaming_subscription_lag_messages", plain, 0},
		{"starling_streaming_subscription_stalled", plain, 0},
	} {
		if v, ok := series(mfs, tc.name, tc.labels...); !ok || v != tc.want {
			t.Errorf("%s%v = %v (found %v), want %v", tc.name, tc.labels, v, ok, tc.want)
		}
	}
	if v, _ := series(mfs, "starling_streaming_channel_bytes", "channel", "foo"); v <= 25 {
		t.Errorf("channel bytes %v: the stored messages are more than their payloads", v)
	}

	// The durable's client goes: the durable stays, offline, with its position.
	check(t, sc.Close())
	waitFor(t, func() error {
		mfs = gather(t, c)
		if v, ok := series(mfs, "starling_streaming_subscription_offline", "durable", "dur"); v != 1 {
			return fmt.Errorf("offline %v %v", v, ok)
		}
		if _, ok := series(mfs, "starling_streaming_subscription_offline", "durable", ""); ok {
			return fmt.Errorf("the plain subscription is still there")
		}
		return nil
	})
	if v, _ := series(mfs, "starling_streaming_subscription_lag_messages", "durable", "dur"); v != 3 {
		t.Errorf("offline durable lag %v", v)
	}
}

// The names follow Prometheus' conventions (promlint), per-subscription series included.
func TestCollectorLint(t *testing.T) {
	f := start(t)
	sc, err := stan.Connect("test-cluster", "client-1", stan.NatsURL(f.url))
	check(t, err)
	defer sc.Close()
	check(t, sc.Publish("foo", []byte("x")))
	_, err = sc.QueueSubscribe("foo", "q", func(*stan.Msg) {})
	check(t, err)
	problems, err := testutil.CollectAndLint(NewCollector(f.st))
	check(t, err)
	for _, p := range problems {
		t.Errorf("%s: %s", p.Metric, p.Text)
	}
}

func TestLag(t *testing.T) {
	for _, tc := range []struct {
		first, last, sent, want uint64
	}{
		{0, 0, 0, 0},      // no message ever
		{1, 5, 2, 3},      // behind by 3
		{1, 5, 5, 0},      // up to date
		{101, 100, 0, 0},  // emptied by limits
		{50, 100, 10, 51}, // 1..49 gone: only what is held counts
		{1, 5, 7, 0},      // a position past the end (never negative)
	} {
		ch := &streaming.Channelz{FirstSeq: tc.first, LastSeq: tc.last}
		if got := lag(ch, &streaming.Subscriptionz{LastSent: tc.sent}); got != tc.want {
			t.Errorf("first %d last %d sent %d: lag %d, want %d", tc.first, tc.last, tc.sent, got, tc.want)
		}
	}
}

// TestCollectorRaft: over a replicated log the collector adds the node's raft figures, and
// a real stan.go client is served by the one-node group's leader.
func TestCollectorRaft(t *testing.T) {
	cs, err := core.New(core.Options{Host: "127.0.0.1", Port: -1})
	check(t, err)
	check(t, cs.Start())
	conn, err := cs.Connect("_STARLING-test-cluster")
	check(t, err)
	store, err := memstore.New(memstore.Options{})
	check(t, err)
	_, trans := raft.NewInmemTransport("n1")
	st, err := streaming.New(streaming.InProcess(conn), store, func(sm raftlog.StateMachine) (raftlog.Log, error) {
		return raftlog.NewNode(raftlog.Config{Group: "g0", NodeID: "n1", Dir: t.TempDir(), Transport: trans,
			HeartbeatTimeout: 100 * time.Millisecond, ElectionTimeout: 100 * time.Millisecond,
			LeaderLeaseTimeout: 50 * time.Millisecond, NoRaftLog: true}, sm)
	}, streaming.Options{ClusterID: "test-cluster"})
	check(t, err)
	check(t, st.Start())
	t.Cleanup(func() {
		_ = st.Shutdown()
		conn.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = cs.Shutdown(ctx)
	})
	var sc stan.Conn
	waitFor(t, func() error { // the group elects its one node first
		sc, err = stan.Connect("test-cluster", "client-1", stan.NatsURL(cs.ClientURL()), stan.ConnectWait(500*time.Millisecond))
		return err
	})
	defer sc.Close()
	check(t, sc.Publish("foo", []byte("replicated")))

	c := NewCollector(st)
	ids := []string{"group", "g0", "node_id", "n1"}
	mfs := gather(t, c)
	for name, want := range map[string]float64{"starling_streaming_raft_leader": 1, "starling_streaming_channel_messages": 1} {
		labels := ids
		if name == "starling_streaming_channel_messages" {
			labels = []string{"channel", "foo"}
		}
		if v, ok := series(mfs, name, labels...); !ok || v != want {
			t.Errorf("%s = %v (present %v), want %v", name, v, ok, want)
		}
	}
	for _, name := range []string{"starling_streaming_raft_term", "starling_streaming_raft_commit_index", "starling_streaming_raft_applied_index"} {
		if v, ok := series(mfs, name, ids...); !ok || v < 1 {
			t.Errorf("%s = %v (present %v), want ≥ 1", name, v, ok)
		}
	}
	if v, _ := series(mfs, "starling_streaming_leader_changes_total"); v < 1 {
		t.Errorf("leader_changes_total = %v, want ≥ 1", v)
	}
	if h := mfs["starling_streaming_puback_latency_seconds"]; h == nil || h.Metric[0].GetHistogram().GetSampleCount() < 1 {
		t.Errorf("no PubAck latency observed over the replicated log: %v", h)
	}
	if z := st.Serverz(); z.State != "CLUSTERED" || z.Role != "Leader" {
		t.Errorf("serverz state %q role %q", z.State, z.Role)
	}
}
