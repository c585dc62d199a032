package monitor

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/stan.go"

	"github.com/starling-io/starling/core"
	"github.com/starling-io/starling/raftlog"
	"github.com/starling-io/starling/stores"
	"github.com/starling-io/starling/stores/memstore"
	"github.com/starling-io/starling/streaming"
)

// fixture is core + streaming over the memory store, in-process on a random port, with the
// monitoring handlers on an httptest server.
type fixture struct {
	url  string // NATS
	http *httptest.Server
	st   *streaming.Server
}

// testLimits are the server's channel limits: storez shows them after inheritance.
var testLimits = &stores.LimitsSet{
	Global:   stores.DefaultLimits(),
	Channels: map[string]stores.Limits{"orders.>": {MaxMsgs: 10, MaxAge: time.Hour}},
}

func start(t *testing.T) *fixture {
	t.Helper()
	cs, err := core.New(core.Options{Host: "127.0.0.1", Port: -1})
	check(t, err)
	check(t, cs.Start())
	conn, err := cs.Connect("_STARLING-test-cluster")
	check(t, err)
	store, err := memstore.New(memstore.Options{})
	check(t, err)
	st, err := streaming.New(streaming.InProcess(conn), store, raftlog.Standalone,
		streaming.Options{ClusterID: "test-cluster", Limits: testLimits})
	check(t, err)
	check(t, st.Start())
	mux := http.NewServeMux()
	for path, h := range New(st).Routes() {
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
	return &fixture{url: cs.ClientURL(), http: hs, st: st}
}

func check(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// get fetches path and returns the status, the body, and the response headers.
func (f *fixture) get(t *testing.T, path string) (int, []byte, http.Header) {
	t.Helper()
	resp, err := http.Get(f.http.URL + path)
	check(t, err)
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	check(t, err)
	return resp.StatusCode, body, resp.Header
}

// getJSON fetches path, checks the status is 200 with the JSON headers, and decodes the body
// into v.
func (f *fixture) getJSON(t *testing.T, path string, v any) {
	t.Helper()
	code, body, h := f.get(t, path)
	if code != http.StatusOK {
		t.Fatalf("GET %s: %d %s", path, code, body)
	}
	if h.Get("Content-Type") != "application/json" || h.Get("Access-Control-Allow-Origin") != "*" {
		t.Errorf("GET %s: headers %v", path, h)
	}
	if !strings.HasPrefix(string(body), "{\n  \"") {
		t.Errorf("GET %s: not indented by two spaces: %.40q", path, body)
	}
	check(t, json.Unmarshal(body, v))
}

// waitFor polls cond until it returns nil, for at most 5 seconds.
func waitFor(t *testing.T, cond func() error) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		err := cond()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal(err)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// keys returns the JSON object's keys, sorted.
func keys(m map[string]any) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

// Two 2-byte messages on foo, a durable manual-ack subscriber that has received both and
// acked none, and a queue subscriber on bar: every endpoint shows them with the reference's
// JSON names.
func TestEndpointsWithStanClient(t *testing.T) {
	f := start(t)
	sc, err := stan.Connect("test-cluster", "client-1", stan.NatsURL(f.url))
	check(t, err)
	defer sc.Close()
	check(t, sc.Publish("foo", []byte("hi")))
	check(t, sc.Publish("foo", []byte("yo")))
	got := make(chan uint64, 10)
	_, err = sc.Subscribe("foo", func(m *stan.Msg) { got <- m.Sequence },
		stan.DurableName("dur"), stan.DeliverAllAvailable(), stan.SetManualAckMode(),
		stan.MaxInflight(10), stan.AckWait(30*time.Second))
	check(t, err)
	_, err = sc.QueueSubscribe("bar", "workers", func(*stan.Msg) {})
	check(t, err)
	for want := uint64(1); want <= 2; want++ {
		select {
		case seq := <-got:
			if seq != want {
				t.Fatalf("got sequence %d, want %d", seq, want)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("message %d not delivered", want)
		}
	}

	t.Run("serverz", func(t *testing.T) {
		var z map[string]any
		waitFor(t, func() error {
			f.getJSON(t, ServerPath, &z)
			if z["subscriptions"] != 2.0 || z["out_msgs"] != 2.0 {
				return fmt.Errorf("serverz %v", z)
			}
			return nil
		})
		for k, want := range map[string]any{"cluster_id": "test-cluster", "state": "STANDALONE", "clients": 1.0,
			"channels": 2.0, "total_msgs": 2.0, "total_bytes": 42.0, "in_msgs": 2.0} {
			if z[k] != want {
				t.Errorf("serverz %s = %v, want %v", k, z[k], want)
			}
		}
		for _, k := range []string{"server_id", "version", "go", "now", "start_time", "uptime", "in_bytes", "out_bytes"} {
			if _, ok := z[k]; !ok {
				t.Errorf("serverz has no %s: %v", k, keys(z))
			}
		}
	})

	t.Run("storez", func(t *testing.T) {
		var z map[string]any
		f.getJSON(t, StorePath, &z)
		if want := []string{"cluster_id", "limits", "now", "server_id", "total_bytes", "total_msgs", "type"}; !reflect.DeepEqual(keys(z), want) {
			t.Errorf("storez keys %v, want %v", keys(z), want)
		}
		if z["type"] != "MEMORY" || z["total_msgs"] != 2.0 || z["total_bytes"] != 42.0 || z["cluster_id"] != "test-cluster" || z["server_id"] == "" {
			t.Errorf("storez %v", z)
		}
		lim := z["limits"].(map[string]any)
		want := map[string]any{"max_channels": 100.0, "max_msgs": 1e6, "max_bytes": 1.024e9, "max_age": 0.0,
			"max_subscriptions": 1000.0, "max_inactivity": 0.0,
			"channels": map[string]any{"orders.>": map[string]any{"max_msgs": 10.0, "max_bytes": 1.024e9,
				"max_age": float64(time.Hour), "max_subscriptions": 1000.0, "max_inactivity": 0.0}}}
		if !reflect.DeepEqual(lim, want) {
			t.Errorf("storez limits\n got %v\nwant %v", lim, want)
		}
	})

	t.Run("channelsz names", func(t *testing.T) {
		var z map[string]any
		f.getJSON(t, ChannelsPath, &z)
		if want := []string{"cluster_id", "count", "limit", "names", "now", "offset", "server_id", "total"}; !reflect.DeepEqual(keys(z), want) {
			t.Errorf("channelsz keys %v, want %v", keys(z), want)
		}
		if !reflect.DeepEqual(z["names"], []any{"bar", "foo"}) || z["count"] != 2.0 || z["total"] != 2.0 ||
			z["limit"] != float64(DefaultListLimit) || z["offset"] != 0.0 {
			t.Errorf("channelsz %v", z)
		}
		z = nil
		f.getJSON(t, ChannelsPath+"?offset=1&limit=1", &z)
		if !reflect.DeepEqual(z["names"], []any{"foo"}) || z["count"] != 1.0 || z["total"] != 2.0 || z["limit"] != 1.0 || z["offset"] != 1.0 {
			t.Errorf("channelsz page %v", z)
		}
		z = nil
		f.getJSON(t, ChannelsPath+"?offset=5", &z)
		if _, ok := z["names"]; ok || z["count"] != 0.0 || z["total"] != 2.0 {
			t.Errorf("channelsz past the end %v", z)
		}
		z = nil
		f.getJSON(t, ChannelsPath+"?subs=true", &z) // only subs=1 turns subscriptions on
		if _, ok := z["channels"]; ok {
			t.Errorf("subs=true gave channels: %v", z)
		}
	})

	t.Run("channelsz subs", func(t *testing.T) {
		var z Channelsz
		f.getJSON(t, ChannelsPath+"?subs=1", &z)
		if len(z.Names) != 0 || len(z.Channels) != 2 || z.Count != 2 || z.Total != 2 {
			t.Fatalf("channelsz?subs=1 %+v", z)
		}
		bar, foo := z.Channels[0], z.Channels[1]
		if foo.Name != "foo" || foo.Msgs != 2 || foo.Bytes != 42 || foo.FirstSeq != 1 || foo.LastSeq != 2 || foo.SubsCount != 1 {
			t.Errorf("foo %+v", foo)
		}
		if bar.Name != "bar" || bar.Msgs != 0 || bar.SubsCount != 1 || len(bar.Subscriptions) != 1 || bar.Subscriptions[0].QueueName != "workers" {
			t.Errorf("bar %+v", bar)
		}
		if len(foo.Subscriptions) != 1 {
			t.Fatalf("foo subscriptions %+v", foo.Subscriptions)
		}
		s := foo.Subscriptions[0]
		if s.ClientID != "client-1" || s.DurableName != "dur" || !s.IsDurable || s.IsOffline || s.MaxInflight != 10 ||
			s.AckWait != 30 || s.LastSent != 2 || s.PendingCount != 2 || s.IsStalled || s.Inbox == "" || s.AckInbox == "" || s.QueueName != "" {
			t.Errorf("foo subscription %+v", s)
		}
		// The raw names of a subscription.
		var raw map[string]any
		f.getJSON(t, ChannelsPath+"?subs=1&channel=foo", &raw)
		sub := raw["subscriptions"].([]any)[0].(map[string]any)
		want := []string{"ack_inbox", "ack_wait", "client_id", "durable_name", "inbox", "is_durable", "is_offline",
			"is_stalled", "last_sent", "max_inflight", "pending_count"}
		if !reflect.DeepEqual(keys(sub), want) {
			t.Errorf("subscription keys %v, want %v", keys(sub), want)
		}
		if want := []string{"bytes", "first_seq", "last_seq", "msgs", "name", "subs_count", "subscriptions"}; !reflect.DeepEqual(keys(raw), want) {
			t.Errorf("channel keys %v, want %v", keys(raw), want)
		}
	})

	t.Run("channelsz one", func(t *testing.T) {
		var c streaming.Channelz
		f.getJSON(t, ChannelsPath+"?channel=foo", &c)
		if c.Name != "foo" || c.Msgs != 2 || c.Bytes != 42 || c.FirstSeq != 1 || c.LastSeq != 2 || c.Subscriptions != nil {
			t.Errorf("channel=foo %+v", c)
		}
		code, body, _ := f.get(t, ChannelsPath+"?channel=nope")
		if code != http.StatusNotFound || strings.TrimSpace(string(body)) != "Channel nope not found" {
			t.Errorf("channel=nope: %d %q", code, body)
		}
	})

	t.Run("clientsz", func(t *testing.T) {
		var raw map[string]any
		f.getJSON(t, ClientsPath, &raw)
		if want := []string{"clients", "cluster_id", "count", "limit", "now", "offset", "server_id", "total"}; !reflect.DeepEqual(keys(raw), want) {
			t.Errorf("clientsz keys %v, want %v", keys(raw), want)
		}
		var z Clientsz
		f.getJSON(t, ClientsPath, &z)
		if z.Count != 1 || z.Total != 1 || z.Limit != DefaultListLimit || z.ClusterID != "test-cluster" || z.ServerID == "" {
			t.Fatalf("clientsz %+v", z)
		}
		if c := z.Clients[0]; c.ID != "client-1" || c.HBInbox == "" || c.SubsCount != 2 || c.Subscriptions != nil {
			t.Errorf("client %+v", c)
		}
		z = Clientsz{}
		f.getJSON(t, ClientsPath+"?subs=1", &z)
		if subs := z.Clients[0].Subscriptions; len(subs["foo"]) != 1 || len(subs["bar"]) != 1 || subs["foo"][0].DurableName != "dur" {
			t.Errorf("client subscriptions %+v", subs)
		}
		raw = nil
		f.getJSON(t, ClientsPath+"?offset=1", &raw)
		if cl, ok := raw["clients"].([]any); !ok || len(cl) != 0 || raw["count"] != 0.0 || raw["total"] != 1.0 {
			t.Errorf("clientsz past the end %v", raw) // "clients": [] is always there
		}
		var c streaming.Clientz
		f.getJSON(t, ClientsPath+"?client=client-1&subs=1", &c)
		if c.ID != "client-1" || len(c.Subscriptions["foo"]) != 1 {
			t.Errorf("client=client-1 %+v", c)
		}
		code, body, _ := f.get(t, ClientsPath+"?client=ghost")
		if code != http.StatusNotFound || strings.TrimSpace(string(body)) != "Client ghost not found" {
			t.Errorf("client=ghost: %d %q", code, body)
		}
	})

	t.Run("isFTActive and index", func(t *testing.T) {
		code, body, _ := f.get(t, IsFTActivePath)
		if code != http.StatusNoContent || len(body) != 0 {
			t.Errorf("isFTActive standalone: %d %q", code, body)
		}
		code, body, h := f.get(t, RootPath)
		if code != http.StatusOK || !strings.HasPrefix(h.Get("Content-Type"), "text/html") || !strings.Contains(string(body), `href="streaming/channelsz"`) {
			t.Errorf("index: %d %s %q", code, h.Get("Content-Type"), body)
		}
	})

	// After the client closes, the durable stays as an offline subscription.
	check(t, sc.Close())
	waitFor(t, func() error {
		var z Channelsz
		f.getJSON(t, ChannelsPath+"?subs=1", &z)
		if len(z.Channels) != 2 || len(z.Channels[1].Subscriptions) != 1 || !z.Channels[1].Subscriptions[0].IsOffline {
			return fmt.Errorf("after close: %+v", z.Channels)
		}
		return nil
	})
}

func TestBounds(t *testing.T) {
	for _, tc := range []struct{ offset, limit, total, lo, hi int }{
		{0, 1024, 3, 0, 3}, {1, 1, 3, 1, 2}, {2, 5, 3, 2, 3}, {5, 5, 3, 3, 3}, {0, 1, 0, 0, 0},
	} {
		if lo, hi := bounds(tc.offset, tc.limit, tc.total); lo != tc.lo || hi != tc.hi {
			t.Errorf("bounds(%d, %d, %d) = %d, %d; want %d, %d", tc.offset, tc.limit, tc.total, lo, hi, tc.lo, tc.hi)
		}
	}
	for q, want := range map[string][2]int{"": {0, 1024}, "?offset=-3&limit=0": {0, 1024}, "?offset=2&limit=7": {2, 7}, "?offset=x&limit=y": {0, 1024}} {
		r := httptest.NewRequest("GET", ChannelsPath+q, nil)
		if o, l := page(r); o != want[0] || l != want[1] {
			t.Errorf("page(%q) = %d, %d; want %v", q, o, l, want)
		}
	}
}

// serverz shows the process's open file descriptors and their limit, as
// nats-streaming-server does (where /proc tells: Linux).
func TestServerzFDs(t *testing.T) {
	if _, err := os.Stat("/proc/self/fd"); err != nil {
		t.Skip("no /proc/self/fd")
	}
	f := start(t)
	var z struct {
		OpenFDs int `json:"open_fds"`
		MaxFDs  int `json:"max_fds"`
	}
	f.getJSON(t, ServerPath, &z)
	if z.OpenFDs <= 0 || z.MaxFDs < z.OpenFDs {
		t.Fatalf("serverz open_fds %d, max_fds %d", z.OpenFDs, z.MaxFDs)
	}
}
