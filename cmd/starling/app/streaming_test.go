package app

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/raft"
	"github.com/nats-io/stan.go"

	"github.com/starling-io/starling/core/conf"
	"github.com/starling-io/starling/raftlog"
	"github.com/starling-io/starling/raftlog/raftlogtest"
	"github.com/starling-io/starling/stores"
	"github.com/starling-io/starling/streaming"
	stanmon "github.com/starling-io/starling/streaming/monitor"
)

func parse(t *testing.T, args ...string) *settings {
	t.Helper()
	m := NewMain(&bytes.Buffer{}, &bytes.Buffer{})
	check(t, m.ParseFlags(args))
	return m.cfg
}

func TestStreamingDefaults(t *testing.T) {
	st := parse(t).streaming
	want := streaming.Options{ClusterID: "test-cluster", DiscoverPrefix: "_STAN.discover", HBInterval: 30 * time.Second,
		HBTimeout: 10 * time.Second, HBFailCount: 10, IOBatchSize: 1024, MaxClients: streaming.DefaultMaxClients}
	if st.off || st.opts != want || st.storeType() != "memory" || st.dir != "" || st.debug || st.trace {
		t.Errorf("defaults %+v", st)
	}
	if !reflect.DeepEqual(st.limits, stores.LimitsSet{Global: stores.DefaultLimits()}) {
		t.Errorf("default limits %+v", st.limits)
	}
	if len(st.warnings) != 0 {
		t.Errorf("warnings %q", st.warnings)
	}
}

// Every streaming flag, by its short and its long name.
func TestStreamingFlags(t *testing.T) {
	want := streaming.Options{ClusterID: "c1", DiscoverPrefix: "X.disc", HBInterval: 5 * time.Second,
		HBTimeout: 2 * time.Second, HBFailCount: 3, IOBatchSize: 10, ReplaceDurable: true, MaxClients: 7}
	wantLimits := stores.Limits{MaxChannels: 5, MaxSubs: 6, MaxMsgs: 7, MaxBytes: 1 << 20, MaxAge: time.Hour, MaxInactivity: 2 * time.Hour}
	for _, args := range [][]string{
		{"-cid", "c1", "-st", "MEMORY", "-mc", "5", "-msu", "6", "-mm", "7", "-mb", "1MB", "-ma", "1h", "-mi", "2h",
			"-hbi", "5s", "-hbt", "2s", "-hbf", "3", "--io_batch_size", "10", "--replace_durable", "-SD", "-SV",
			"--discover_prefix", "X.disc", "--dir", "/tmp/x", "--max_clients", "7"},
		{"--cluster_id", "c1", "--store", "memory", "--max_channels", "5", "--max_subs", "6", "--max_msgs", "7",
			"--max_bytes", "1048576", "--max_age", "1h", "--max_inactivity", "2h", "--hb_interval", "5s", "--hb_timeout", "2s",
			"--hb_fail_count", "3", "--io_batch_size=10", "--replace_durable=true", "--stan_debug", "--stan_trace",
			"--discover_prefix", "X.disc", "--dir", "/tmp/x", "--max_clients", "7"},
		{"-cid", "c1", "-mc", "5", "-msu", "6", "-mm", "7", "-mb", "1MB", "-ma", "1h", "-mi", "2h",
			"-hbi", "5s", "-hbt", "2s", "-hbf", "3", "--io_batch_size", "10", "--replace_durable", "-SDV",
			"--discover_prefix", "X.disc", "--dir", "/tmp/x", "--max_clients", "7"},
	} {
		c := parse(t, args...)
		st := c.streaming
		if st.opts != want || st.limits.Global != wantLimits || !st.debug || !st.trace || st.dir != "/tmp/x" || st.storeType() != "memory" {
			t.Errorf("%v:\n got %+v %+v debug %v trace %v dir %q", args, st.opts, st.limits.Global, st.debug, st.trace, st.dir)
		}
		if len(st.warnings) != 1 || !strings.Contains(st.warnings[0], "flag --dir: the memory store keeps nothing on disk") {
			t.Errorf("%v: warnings %q", args, st.warnings)
		}
		if got := st.level(c.level()); got != levelTrace {
			t.Errorf("%v: streaming log level %v", args, got)
		}
	}
	if st := parse(t, "--no_streaming").streaming; !st.off {
		t.Error("--no_streaming did not turn streaming off")
	}
	// Log levels: -SD is the streaming layer's alone; -D lowers both.
	c := parse(t, "-SD")
	if c.level() != slog.LevelInfo || c.streaming.level(c.level()) != slog.LevelDebug {
		t.Errorf("-SD: core %v streaming %v", c.level(), c.streaming.level(c.level()))
	}
	c = parse(t, "-V")
	if c.streaming.level(c.level()) != levelTrace {
		t.Errorf("-V: streaming %v", c.streaming.level(c.level()))
	}
}

const fullStreamingBlock = `
streaming {
  cid: orders-cluster
  discover_prefix: "_ORDERS.discover"
  store_type: MEMORY
  sd: true
  stan_trace: false
  hb_interval: "20s"
  server_to_client_hb_timeout: "4s"
  hb_fail_count: 5
  io_batch_size: 256
  replace_durable: true
  store_limits {
    mc: 50
    max_subscriptions: 20
    MaxMsgs: 5000
    mb: 10MB
    max_age: "24h"
    mi: "1h"
    channels {
      "orders.>": { max_msgs: 100, max_age: "1h" }
      "orders.eu.*": { mm: 10, max_bytes: -1 }
      "Orders.EU.Paris": { max_subs: -1, max_inactivity: "10m" }
      "audit": {}
    }
  }
  ft_group: "ft"
  partitioning: false
  encrypt: false
  username: stan
  password: secret
  max_clients: 9
}
`

func TestStreamingConfigFile(t *testing.T) {
	path := writeFile(t, t.TempDir(), "s.conf", fullStreamingBlock)
	c := parse(t, "-c", path)
	st := c.streaming
	want := streaming.Options{ClusterID: "orders-cluster", DiscoverPrefix: "_ORDERS.discover", HBInterval: 20 * time.Second,
		HBTimeout: 4 * time.Second, HBFailCount: 5, IOBatchSize: 256, ReplaceDurable: true, MaxClients: 9}
	if st.opts != want || st.storeType() != "memory" || !st.debug || st.trace || st.off {
		t.Errorf("options %+v store %q debug %v trace %v", st.opts, st.store, st.debug, st.trace)
	}
	wantLimits := stores.LimitsSet{
		Global: stores.Limits{MaxChannels: 50, MaxSubs: 20, MaxMsgs: 5000, MaxBytes: 10 << 20, MaxAge: 24 * time.Hour, MaxInactivity: time.Hour},
		Channels: map[string]stores.Limits{
			"orders.>":        {MaxMsgs: 100, MaxAge: time.Hour},
			"orders.eu.*":     {MaxMsgs: 10, MaxBytes: -1},
			"Orders.EU.Paris": {MaxSubs: -1, MaxInactivity: 10 * time.Minute},
			"audit":           {},
		},
	}
	if !reflect.DeepEqual(st.limits, wantLimits) {
		t.Errorf("limits\n got %+v\nwant %+v", st.limits, wantLimits)
	}
	// Inheritance, as storez shows it: orders.eu.* inherits max_age from orders.>.
	ml := stanmon.LimitsOf(&st.limits)
	if ml.MaxChannels != 50 || ml.MaxMsgs != 5000 || ml.MaxSubscriptions != 20 || ml.MaxAge != 24*time.Hour {
		t.Errorf("storez global limits %+v", ml)
	}
	if eu := ml.Channels["orders.eu.*"]; eu.MaxMsgs != 10 || eu.MaxBytes != 0 || eu.MaxAge != time.Hour || eu.MaxSubscriptions != 20 {
		t.Errorf("storez orders.eu.* %+v", eu)
	}
	if a := ml.Channels["audit"]; a.MaxMsgs != 5000 || a.MaxBytes != 10<<20 || len(ml.Channels) != 4 {
		t.Errorf("storez audit %+v (%d channels)", a, len(ml.Channels))
	}
	if st.reserved["ft_group"] != "ft" || st.reserved["partitioning"] != false {
		t.Errorf("reserved %+v", st.reserved)
	}
	warnings := strings.Join(st.warnings, "\n")
	for _, w := range []string{path + ":30:3: streaming.username is not used", path + ":31:3: streaming.password is not used",
		// Reserved keys too name where they were written (README: every unused key's warning
		// names file:line:col).
		path + ":27:3: streaming.ft_group is reserved", path + ":29:3: streaming.encrypt is not used: the stores keep messages unencrypted"} {
		if !strings.Contains(warnings, w) {
			t.Errorf("no warning %q in:\n%s", w, warnings)
		}
	}
	if strings.Contains(warnings, "secret") {
		t.Errorf("a warning shows the password:\n%s", warnings)
	}

	// enabled: false is --no_streaming.
	path = writeFile(t, t.TempDir(), "off.conf", "streaming { enabled: false, store: file }\n")
	if st := parse(t, "-c", path).streaming; !st.off {
		t.Error("enabled: false did not turn streaming off")
	}
}

// Flags given on the command line win over the file; what they do not name keeps the file's
// value.
func TestStreamingFlagsOverFile(t *testing.T) {
	path := writeFile(t, t.TempDir(), "s.conf", fullStreamingBlock)
	st := parse(t, "-c", path, "-cid", "flagged", "-mm", "9", "-hbi", "1s", "--stan_trace").streaming
	if st.opts.ClusterID != "flagged" || st.limits.Global.MaxMsgs != 9 || st.opts.HBInterval != time.Second || !st.trace {
		t.Errorf("flags lost: %+v %+v", st.opts, st.limits.Global)
	}
	if st.opts.HBFailCount != 5 || st.limits.Global.MaxChannels != 50 || st.limits.Channels["orders.>"].MaxMsgs != 100 || !st.debug {
		t.Errorf("file values lost: %+v %+v", st.opts, st.limits)
	}
	// A flag lowering max_channels below the file's literal channels: reported at the
	// file's channels block.
	m := NewMain(&bytes.Buffer{}, &bytes.Buffer{})
	err := m.ParseFlags([]string{"-c", path, "-mc", "1"})
	if err == nil || !strings.Contains(err.Error(), path+":20:5: streaming.store_limits.channels: stores: invalid limits: too many channels defined (2). The max channels limit is set to 1") {
		t.Errorf("got %v", err)
	}
}

func TestStreamingConfigErrors(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct {
		name string
		text string
		want []string // "line:col: key: message" after the file name
	}{
		{"sql", "streaming {\n  store: sql\n  sql_options { driver: mysql }\n}\n",
			[]string{`2:3: streaming.store: the SQL store is not supported`, `3:3: streaming.sql_options: the SQL store is not supported`}},
		{"unknown store", "streaming { store: paper }",
			[]string{`1:13: streaming.store: "paper" is not a store type (memory, file or bolt)`}},
		{"external nats", "streaming {\n  nats_server_url: \"http://x:4222\"\n  store: file\n  cluster { node_id: a, bootstrap: true }\n}\n",
			[]string{`2:3: streaming.nats_server_url: "http://x:4222" is not a NATS server URL`,
				`2:3: streaming.nats_server_url: a clustered streaming server runs on this server's own router`}},
		{"unknown key", "streaming {\n  cluster_id: c\n  bogus: 1\n}\n",
			[]string{`3:3: streaming.bogus: unknown configuration key`}},
		{"bad cluster id", "streaming {\n  id: \"a.b\"\n}\n",
			[]string{`2:3: streaming.id: cluster ID "a.b": only letters, digits, '-' and '_' are allowed`}},
		{"bad discover prefix", "streaming { discover_prefix: \"a.*\" }",
			[]string{`1:13: streaming.discover_prefix: "a.*" is not a valid subject without wildcards`}},
		{"wrong types", "streaming {\n  hb_interval: soon\n  hb_fail_count: many\n  sd: maybe\n  store_limits { max_msgs: lots, mb: big }\n}\n",
			[]string{`2:3: streaming.hb_interval: expected a duration`, `3:3: streaming.hb_fail_count: expected an integer`,
				`4:3: streaming.sd: expected a boolean`, `5:18: streaming.store_limits.max_msgs: expected an integer`,
				`5:34: streaming.store_limits.mb: expected a size`}},
		{"negative global limits", "streaming {\n  store_limits {\n    max_msgs: -1\n    max_bytes: -5\n    max_age: \"-1h\"\n  }\n}\n",
			[]string{`3:5: streaming.store_limits.max_msgs: -1 is out of range`, `4:5: streaming.store_limits.max_bytes: size -5 is negative`,
				`5:5: streaming.store_limits.max_age: duration -1h0m0s is negative`}},
		{"bad channel name", "streaming {\n  store_limits {\n    channels {\n      \"foo..bar\": { max_msgs: 1 }\n      \"ok.>\": { max_msgs: 2 }\n      \"a.>.b\": {}\n    }\n  }\n}\n",
			[]string{`4:7: streaming.store_limits.channels.foo..bar: stores: invalid limits: invalid channel name "foo..bar"`,
				`6:7: streaming.store_limits.channels.a.>.b: stores: invalid limits: invalid channel name "a.>.b"`}},
		{"max_channels per channel", "streaming { store_limits { channels { foo: { max_channels: 3, max_bogus: 1 } } } }",
			[]string{`1:46: streaming.store_limits.channels.foo.max_channels: max_channels is a global limit`,
				`1:63: streaming.store_limits.channels.foo.max_bogus: unknown configuration key`}},
		{"channel entry not a block", "streaming { store_limits { channels { foo: 3 } } }",
			[]string{`1:39: streaming.store_limits.channels.foo: expected a map`}},
		{"too many channels", "streaming {\n  store_limits {\n    max_channels: 2\n    channels {\n      a: {}\n      b: {}\n      c: {}\n      \"d.*\": {}\n    }\n  }\n}\n",
			[]string{`4:5: streaming.store_limits.channels: stores: invalid limits: too many channels defined (3). The max channels limit is set to 2`}},
		{"reserved types", "streaming {\n  store: file\n  cluster { bootstrap: maybe, node_id: a }\n  file_options { buffer_size: huge }\n  ft_group: [a, b]\n}\n",
			[]string{`3:13: streaming.cluster.bootstrap: expected a boolean`, `4:18: streaming.file_options.buffer_size: expected a size`,
				`5:3: streaming.ft_group: expected a string`,
				`3:3: streaming.cluster: a clustered streaming server needs its peers' node IDs (--cluster_peers), or --cluster_bootstrap`}},
		{"cluster", "streaming {\n  cluster { node_id: \"a/b\", peers: [\"c d\"], raft_heartbeat_timeout: 100ms, raft_lease_timeout: 1s, gossip: 1 }\n}\n",
			[]string{`2:3: streaming.cluster: a clustered streaming server needs a file or bolt store`,
				`2:13: streaming.cluster.node_id: node ID "a/b": only letters`, `2:29: streaming.cluster.peers: peer node ID "c d": only letters`,
				`2:76: streaming.cluster.raft_lease_timeout: the lease timeout 1s exceeds the heartbeat timeout 100ms`,
				`2:100: streaming.cluster.gossip: unknown configuration key`,
				`2:29: streaming.cluster.peers: the peers are reached over the route mesh: configure it`}},
		{"streaming key at the top level", "cluster_id: c1\nstore_limits { max_msgs: 1 }\nhbi: 5s\nns: \"nats://h:4222\"\n",
			[]string{`1:1: cluster_id: unknown configuration key (streaming settings go inside a streaming { } block)`,
				`2:1: store_limits: unknown configuration key (streaming settings go inside`,
				`3:1: hbi: unknown configuration key (streaming settings go inside`,
				`4:1: ns: unknown configuration key (streaming settings go inside`}},
		{"block not a map", "streaming: 3",
			[]string{`1:1: streaming: expected a map`}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := writeFile(t, dir, strings.ReplaceAll(tc.name, " ", "_")+".conf", tc.text)
			m := NewMain(&bytes.Buffer{}, &bytes.Buffer{})
			err := m.ParseFlags([]string{"-c", path})
			var ce *ConfigError
			if !errors.As(err, &ce) {
				t.Fatalf("want a *ConfigError, got %v", err)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), path+":"+w) {
					t.Errorf("missing %q in:\n%v", path+":"+w, err)
				}
			}
			if len(ce.Errs) != len(tc.want) {
				t.Errorf("got %d errors, want %d:\n%v", len(ce.Errs), len(tc.want), err)
			}
			var pe *conf.Error
			if !errors.As(err, &pe) || !errors.Is(err, ErrInvalidConfig) && !errors.Is(err, conf.ErrType) {
				t.Errorf("not a positioned configuration error: %v", err)
			}
		})
	}
	// --no_streaming lets a core-only run start with a file written for a later store.
	path := writeFile(t, dir, "later.conf", "streaming { store: file, dir: /var/lib/starling }\n")
	parse(t, "-c", path, "--no_streaming")
}

func TestStreamingFlagErrors(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"-st", "paper"}, `flag --st: "paper" is not a store type`},
		{[]string{"-cid", "a b"}, `flag --cid: cluster ID "a b": only letters`},
		{[]string{"-mm", "-1"}, "flag --mm: a global limit cannot be negative"},
		{[]string{"--max_age", "-1h"}, "flag --max_age: a global limit cannot be negative"},
		{[]string{"-hbi", "-1s"}, "flag --hbi: duration -1s is negative"},
		{[]string{"-hbf", "-2"}, "flag --hbf: -2 is negative"},
		{[]string{"--discover_prefix", "x.>"}, `flag --discover_prefix: "x.>" is not a valid subject`},
	} {
		m := NewMain(&bytes.Buffer{}, &bytes.Buffer{})
		err := m.ParseFlags(tc.args)
		var ce *ConfigError
		if !errors.As(err, &ce) || len(ce.Errs) != 1 || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%v: got %v, want one error with %q", tc.args, err, tc.want)
		}
	}
	// Values that do not parse are usage errors naming the flag.
	for _, args := range [][]string{{"-mm", "lots"}, {"-mb", "big"}, {"-ma", "soon"}, {"-hbf", "x"}} {
		var out bytes.Buffer
		m := NewMain(&bytes.Buffer{}, &out)
		err := m.ParseFlags(args)
		var ce *ConfigError
		if err == nil || errors.As(err, &ce) || !strings.Contains(err.Error(), args[0]) {
			t.Errorf("%v: got %v", args, err)
		}
	}
}

// startMain runs Main on random ports with monitoring, and closes it at the end of the test.
func startMain(t *testing.T, args ...string) (*Main, *syncBuffer) {
	t.Helper()
	logs := &syncBuffer{}
	m := NewMain(io.Discard, logs)
	check(t, m.ParseFlags(append([]string{"-a", "127.0.0.1", "-p", "-1", "-m", "-1"}, args...)))
	check(t, m.Start())
	t.Cleanup(func() { _ = m.Close() })
	return m, logs
}

func getJSON(t *testing.T, m *Main, path string, v any) int {
	t.Helper()
	resp, err := http.Get("http://" + m.MonitorAddr() + path)
	check(t, err)
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	check(t, err)
	if resp.StatusCode == http.StatusOK && v != nil {
		check(t, json.Unmarshal(body, v))
	}
	return resp.StatusCode
}

// The binary runs core and streaming together: a stan.go client publishes and subscribes,
// and the streaming endpoints sit beside core's under the base path, counted in /varz.
func TestCombinedServer(t *testing.T) {
	m, logs := startMain(t, "-cid", "main-test", "-mm", "1", "--http_base_path", "/mon", "-SD")
	if m.Streaming() == nil || m.Streaming().ClusterID() != "main-test" {
		t.Fatal("no streaming server")
	}
	sc, err := stan.Connect("main-test", "client-1", stan.NatsURL(m.Server().ClientURL()))
	check(t, err)
	defer sc.Close()
	check(t, sc.Publish("foo", []byte("one")))
	check(t, sc.Publish("foo", []byte("two")))
	got := make(chan string, 4)
	_, err = sc.Subscribe("foo", func(msg *stan.Msg) { got <- string(msg.Data) }, stan.DeliverAllAvailable(), stan.DurableName("d"))
	check(t, err)
	select {
	case s := <-got: // max_msgs 1: only the last message is left
		if s != "two" {
			t.Errorf("got %q, want two", s)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no message delivered")
	}

	var serverz map[string]any
	if code := getJSON(t, m, "/mon/streaming/serverz", &serverz); code != http.StatusOK || serverz["cluster_id"] != "main-test" || serverz["clients"] != 1.0 {
		t.Errorf("serverz: %d %v", code, serverz)
	}
	var storez map[string]any
	if code := getJSON(t, m, "/mon/streaming/storez", &storez); code != http.StatusOK || storez["type"] != "MEMORY" ||
		storez["limits"].(map[string]any)["max_msgs"] != 1.0 || storez["total_msgs"] != 1.0 {
		t.Errorf("storez: %d %v", code, storez)
	}
	if code := getJSON(t, m, "/streaming/serverz", nil); code != http.StatusNotFound {
		t.Errorf("/streaming/serverz outside the base path: %d", code)
	}
	var varz struct {
		Stats map[string]uint64 `json:"http_req_stats"`
	}
	getJSON(t, m, "/mon/varz", &varz)
	if varz.Stats["/streaming/serverz"] != 1 { // by its path without the base path, as /varz
		t.Errorf("http_req_stats %v", varz.Stats)
	}
	if !strings.Contains(logs.String(), "layer=streaming") || !strings.Contains(logs.String(), "level=DEBUG") {
		t.Errorf("-SD: no streaming debug log:\n%s", logs.String())
	}
	check(t, m.Close())
	if m.Streaming() != nil {
		t.Error("streaming still set after Close")
	}
}

func TestNoStreaming(t *testing.T) {
	m, _ := startMain(t, "--no_streaming")
	if m.Streaming() != nil {
		t.Fatal("streaming started with --no_streaming")
	}
	if code := getJSON(t, m, "/streaming/serverz", nil); code != http.StatusNotFound {
		t.Errorf("/streaming/serverz with --no_streaming: %d", code)
	}
	if n := m.Server().NumClients(); n != 0 {
		t.Errorf("%d clients with --no_streaming", n)
	}
}

// A reload may change the streaming log levels, nothing else of streaming.
func TestStreamingReload(t *testing.T) {
	path := writeFile(t, t.TempDir(), "r.conf", "streaming { cluster_id: r1 }\n")
	m, logs := startMain(t, "-c", path)
	if m.stanLevel.Level() != slog.LevelInfo {
		t.Fatalf("streaming level %v", m.stanLevel.Level())
	}
	check(t, os.WriteFile(path, []byte("streaming {\n  cluster_id: r1\n  sd: true\n}\n"), 0o600))
	check(t, m.Reload())
	if m.stanLevel.Level() != slog.LevelDebug || m.level.Level() != slog.LevelInfo {
		t.Errorf("after reload with sd: streaming %v core %v", m.stanLevel.Level(), m.level.Level())
	}
	for _, text := range []string{
		"streaming { cluster_id: r2 }\n",
		"streaming { cluster_id: r1, store_limits { max_msgs: 5 } }\n",
		"streaming { cluster_id: r1, enabled: false }\n",
	} {
		check(t, os.WriteFile(path, []byte(text), 0o600))
		err := m.Reload()
		if err == nil || !strings.Contains(err.Error(), "streaming settings") || !strings.Contains(err.Error(), "restart") {
			t.Errorf("%q: got %v", text, err)
		}
	}
	if m.Streaming().ClusterID() != "r1" || !strings.Contains(logs.String(), "streaming settings") {
		t.Errorf("cluster %s, log:\n%s", m.Streaming().ClusterID(), logs.String())
	}
}

// -t prints the streaming warnings and accepts the configuration.
func TestCheckStreamingWarnings(t *testing.T) {
	path := writeFile(t, t.TempDir(), "w.conf", "streaming {\n  store: file\n  cluster { node_id: a, bootstrap: true, nodes_connections: true }\n}\n")
	var out, errOut bytes.Buffer
	if code := Execute(context.Background(), []string{"-c", path, "-t"}, &out, &errOut); code != 0 {
		t.Fatalf("exit %d: %s", code, errOut.String())
	}
	if !strings.Contains(errOut.String(), "warning: "+path+":3:42: streaming.cluster.nodes_connections is not used: raft has its own connections") {
		t.Errorf("stderr %q", errOut.String())
	}
}

// streaming.secure is a boolean, as in nats-streaming-server: accepted, and not used.
func TestStreamingSecureIsABoolean(t *testing.T) {
	path := writeFile(t, t.TempDir(), "s.conf", "streaming {\n  secure: true\n}\n")
	st := parse(t, "-c", path).streaming
	if len(st.warnings) != 1 || !strings.Contains(st.warnings[0], path+":2:3: streaming.secure is not used") {
		t.Errorf("warnings %q", st.warnings)
	}
}

// A clustered node's directories carry its identity: another node ID or cluster ID, or an
// unclustered server, refuses to start on them.
func TestClusterDirIdentity(t *testing.T) {
	dir := t.TempDir()
	if err := claimDir(dir, "c1", "n1"); err != nil {
		t.Fatal(err)
	}
	if err := claimDir(dir, "c1", "n1"); err != nil {
		t.Fatalf("the same node again: %v", err)
	}
	for _, tc := range []struct{ cluster, node, want string }{
		{"c1", "n2", "belongs to cluster c1, node n1, and this server is cluster c1, node n2: refusing to start"},
		{"c2", "n1", "belongs to cluster c1, node n1, and this server is cluster c2, node n1"},
		{"c1", "", "belongs to a streaming cluster (cluster c1, node n1): start this server with its --clustered flags"},
	} {
		err := claimDir(dir, tc.cluster, tc.node)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("claim as %s/%s: %v, want %q", tc.cluster, tc.node, err, tc.want)
		}
	}
	if err := claimDir(t.TempDir(), "c1", ""); err != nil {
		t.Fatalf("an unclustered server on a fresh directory: %v", err)
	}
}

// TestClusterRaftPeerAddrs: --cluster_raft_peer_addrs (and raft_peer_addrs in the cluster
// block) fixes peers' raft addresses; entries must be id=host:port of a peer.
func TestClusterRaftPeerAddrs(t *testing.T) {
	base := []string{"--store", "file", "--dir", t.TempDir(), "--clustered", "--cluster_node_id", "n1",
		"--cluster_peers", "n1,n2,n3", "--cluster", "nats://127.0.0.1:6222"}
	m := NewMain(&bytes.Buffer{}, &bytes.Buffer{})
	if err := m.ParseFlags(append(base, "--cluster_raft_peer_addrs", "n2=127.0.0.1:7001, n3=h3:7002")); err != nil {
		t.Fatal(err)
	}
	c := &m.cfg.streaming.cluster
	if a, ok := c.peerAddr("n2"); !ok || a != "127.0.0.1:7001" {
		t.Errorf("n2: %q %v", a, ok)
	}
	if a, ok := c.peerAddr("n3"); !ok || a != "h3:7002" {
		t.Errorf("n3: %q %v", a, ok)
	}
	if _, ok := c.peerAddr("n1"); ok {
		t.Error("n1 has a fixed address")
	}
	for _, tc := range []struct{ v, want string }{
		{"n2", `"n2": want id=host:port`},
		{"n2=h", `"n2=h": want id=host:port with a port`},
		{"n4=h:1", `raft address of "n4": not one of the peers [n2 n3]`},
		{"n1=h:1", `raft address of "n1": not one of the peers`},
	} {
		m := NewMain(&bytes.Buffer{}, &bytes.Buffer{})
		err := m.ParseFlags(append(base, "--cluster_raft_peer_addrs", tc.v))
		if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), "cluster_raft_peer_addrs") {
			t.Errorf("%s: want an error naming the flag with %q, got %v", tc.v, tc.want, err)
		}
	}
	path := writeFile(t, t.TempDir(), "c.conf", "cluster { listen: 127.0.0.1:6222 }\nstreaming {\n  store: file\n  dir: \""+t.TempDir()+
		"\"\n  cluster { node_id: n1, peers: [n1, n2, n3], raft_peer_addrs: [\"n2=127.0.0.1:7001\", \"n3=127.0.0.1:7002\"] }\n}\n")
	m = NewMain(&bytes.Buffer{}, &bytes.Buffer{})
	if err := m.ParseFlags([]string{"-c", path}); err != nil {
		t.Fatal(err)
	}
	if a, ok := m.cfg.streaming.cluster.peerAddr("n3"); !ok || a != "127.0.0.1:7002" {
		t.Errorf("config n3: %q %v", a, ok)
	}
	path = writeFile(t, t.TempDir(), "bad.conf", "cluster { listen: 127.0.0.1:6222 }\nstreaming {\n  store: file\n  cluster { node_id: n1, peers: [n1, n2], raft_peer_addrs: [\"n2:7001\"] }\n}\n")
	m = NewMain(&bytes.Buffer{}, &bytes.Buffer{})
	if err := m.ParseFlags([]string{"-c", path}); err == nil || !strings.Contains(err.Error(), "streaming.cluster.raft_peer_addrs[0]") {
		t.Errorf("bad config entry: %v", err)
	}
}

// --cluster_log_store and streaming.cluster.log_store take segments or bolt; anything else
// is refused, naming the flag or the file position.
func TestClusterLogStore(t *testing.T) {
	base := []string{"--store", "file", "--dir", t.TempDir(), "--clustered", "--cluster_node_id", "n1",
		"--cluster_peers", "n1,n2,n3", "--cluster", "nats://127.0.0.1:6222"}
	for _, v := range []string{"segments", "bolt"} {
		m := NewMain(&bytes.Buffer{}, &bytes.Buffer{})
		if err := m.ParseFlags(append(base, "--cluster_log_store", v)); err != nil {
			t.Fatalf("%s: %v", v, err)
		}
		if got := m.cfg.streaming.cluster.logStore; got != v {
			t.Errorf("--cluster_log_store %s: %q", v, got)
		}
	}
	m := NewMain(&bytes.Buffer{}, &bytes.Buffer{})
	if err := m.ParseFlags(append(base, "--cluster_log_store", "rocks")); err == nil ||
		!strings.Contains(err.Error(), "cluster_log_store") || !strings.Contains(err.Error(), `log store "rocks"`) {
		t.Errorf("an unknown log store: %v", err)
	}
	path := writeFile(t, t.TempDir(), "c.conf", "cluster { listen: 127.0.0.1:6222 }\nstreaming {\n  store: file\n  dir: \""+t.TempDir()+
		"\"\n  cluster { node_id: n1, peers: [n1, n2, n3], log_store: bolt }\n}\n")
	m = NewMain(&bytes.Buffer{}, &bytes.Buffer{})
	if err := m.ParseFlags([]string{"-c", path}); err != nil {
		t.Fatal(err)
	}
	if got := m.cfg.streaming.cluster.logStore; got != "bolt" {
		t.Errorf("log_store: bolt read as %q", got)
	}
	path = writeFile(t, t.TempDir(), "bad.conf", "cluster { listen: 127.0.0.1:6222 }\nstreaming {\n  store: file\n  dir: \""+t.TempDir()+
		"\"\n  cluster { node_id: n1, peers: [n1, n2, n3], log_store: rocks }\n}\n")
	m = NewMain(&bytes.Buffer{}, &bytes.Buffer{})
	if err := m.ParseFlags([]string{"-c", path}); err == nil || !strings.Contains(err.Error(), "bad.conf:") {
		t.Errorf("an unknown log store in a file: %v", err)
	}
}

// nats-streaming-server's flags for TLS to the NATS server: --secure and
// --tls_client_cert, --tls_client_key, --tls_client_cacert; with -ns they set the
// connection's TLS, without it they are not used (a warning).
func TestStreamingNSTLSFlags(t *testing.T) {
	st := parse(t, "-ns", "nats://h:4222", "--tls_client_cert", "c.pem", "--tls_client_key", "k.pem", "--tls_client_cacert", "ca.pem").streaming
	if tl := st.ns.tls; tl == nil || tl.cert != "c.pem" || tl.key != "k.pem" || tl.ca != "ca.pem" {
		t.Fatalf("tls %+v", st.ns.tls)
	}
	if st := parse(t, "-ns", "nats://h:4222", "--secure").streaming; st.ns.tls == nil {
		t.Fatal("--secure: no TLS")
	}
	st = parse(t, "--secure").streaming
	if len(st.warnings) != 1 || !strings.Contains(st.warnings[0], "flag --secure is not used") {
		t.Errorf("warnings %q", st.warnings)
	}
}

// A streaming block written with nats-streaming-server's other names for its keys (its
// server/conf.go) is read as nats-streaming-server reads it: README promises the block
// takes nats-streaming-server's keys, with their aliases.
func TestStreamingNSSAliases(t *testing.T) {
	dir := t.TempDir()
	path := writeFile(t, dir, "nss.conf", `
streaming {
  st: file
  dir: "`+filepath.Join(dir, "data")+`"
  hbi: "7s"
  hbt: "3s"
  hbf: 4
  replace_duplicate_durables: true
  store_limits {
    channelslimits { "orders": { mm: 5 } }
  }
  file_options {
    file_auto_sync: "2s"
    file_read_buffer_size: 1MB
  }
}
`)
	st := parse(t, "-c", path).streaming
	o := st.opts
	if st.storeType() != "file" || o.HBInterval != 7*time.Second || o.HBTimeout != 3*time.Second || o.HBFailCount != 4 || !o.ReplaceDurable {
		t.Errorf("store %q options %+v", st.storeType(), o)
	}
	if st.limits.Channels["orders"].MaxMsgs != 5 {
		t.Errorf("per-channel limits %+v", st.limits.Channels)
	}
	if st.file.autoSync != 2*time.Second {
		t.Errorf("auto_sync %v", st.file.autoSync)
	}
	for _, alias := range []string{"replace_durables", "replace_duplicate_durable"} {
		p := writeFile(t, dir, alias+".conf", "streaming { "+alias+": true }\n")
		if !parse(t, "-c", p).streaming.opts.ReplaceDurable {
			t.Errorf("%s: true did not set replace_durable", alias)
		}
	}
}

// With nats_server_url, streaming { account } cannot apply (streaming logs in to the
// external server with its credentials): a warning naming the key, not silence.
func TestStreamingAccountWithNSWarns(t *testing.T) {
	path := writeFile(t, t.TempDir(), "ns.conf", "streaming {\n  nats_server_url: \"nats://h:4222\"\n  account: A\n}\n")
	st := parse(t, "-c", path).streaming
	if len(st.warnings) != 1 || !strings.Contains(st.warnings[0], "ns.conf:3:3") || !strings.Contains(st.warnings[0], "account") {
		t.Errorf("warnings %q", st.warnings)
	}
}

// A clustered node whose raft log is refused never opens its client port: core starts once
// the raft directory has been opened and checked, not before (a client accepted there would
// be dropped as the node exits).
func TestClusteredNodeWithARefusedLogOpensNoPort(t *testing.T) {
	dir := t.TempDir()
	raftDir := filepath.Join(dir, "raft", "test-cluster")
	check(t, os.MkdirAll(raftDir, 0o700))
	check(t, os.WriteFile(filepath.Join(raftDir, "raft.db"), bytes.Repeat([]byte("not a bolt file "), 1024), 0o600))
	logs := &syncBuffer{}
	m := NewMain(io.Discard, logs)
	check(t, m.ParseFlags([]string{"-a", "127.0.0.1", "-p", "-1", "-m", "-1", "--store", "file", "--dir", dir,
		"--clustered", "--cluster_node_id", "n1", "--cluster_peers", "n1,n2,n3", "--cluster", "nats://127.0.0.1:-1"}))
	err := m.Start()
	t.Cleanup(func() { _ = m.Close() })
	if err == nil || !strings.Contains(err.Error(), raftDir) {
		t.Fatalf("Start: %v, want an error naming %s", err, raftDir)
	}
	if a := m.Server().Addr(); a != nil {
		t.Errorf("core listens on %s with its raft log refused", a)
	}
	if strings.Contains(logs.String(), "listening for client connections") {
		t.Errorf("core started with its raft log refused:\n%s", logs.String())
	}
}

// TestClusteredNodeWithADamagedSnapshotOpensNoPort: a clustered node whose only raft
// snapshot fails its checksum refuses to start before core opens its ports. Before, raft
// found the damage only as it started, after core: the node accepted clients for a moment.
func TestClusteredNodeWithADamagedSnapshotOpensNoPort(t *testing.T) {
	dir := t.TempDir()
	raftDir := filepath.Join(dir, "raft")
	_, trans := raft.NewInmemTransport("n1")
	n, err := raftlog.NewNode(raftlog.Config{Group: "test-cluster", NodeID: "n1", Dir: raftDir, Transport: trans,
		NoSync: true, NoRaftLog: true, Logger: slog.New(slog.DiscardHandler)}, &raftlogtest.SM{})
	check(t, err)
	for deadline := time.Now().Add(10 * time.Second); !n.IsLeader(); time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("a node of one did not lead")
		}
	}
	_, err = n.Propose(context.Background(), raftlogtest.Put("x")).Wait()
	check(t, err)
	check(t, n.Snapshot())
	check(t, n.Close())
	states, err := filepath.Glob(filepath.Join(raftDir, "test-cluster", "snapshots", "*", "state.bin"))
	if err != nil || len(states) != 1 {
		t.Fatalf("snapshot states %v: %v", states, err)
	}
	b, err := os.ReadFile(states[0])
	check(t, err)
	b[len(b)-1] ^= 0x40
	check(t, os.WriteFile(states[0], b, 0o600))

	logs := &syncBuffer{}
	m := NewMain(io.Discard, logs)
	check(t, m.ParseFlags([]string{"-a", "127.0.0.1", "-p", "-1", "-m", "-1", "--store", "file", "--dir", dir,
		"--clustered", "--cluster_node_id", "n1", "--cluster_bootstrap", "--cluster", "nats://127.0.0.1:-1"}))
	err = m.Start()
	t.Cleanup(func() { _ = m.Close() })
	if err == nil || !strings.Contains(err.Error(), "snapshots") {
		t.Fatalf("Start: %v, want an error naming the damaged snapshots", err)
	}
	if a := m.Server().Addr(); a != nil {
		t.Errorf("core listens on %s with its raft snapshots damaged", a)
	}
	if strings.Contains(logs.String(), "listening for client connections") {
		t.Errorf("core started with its raft snapshots damaged:\n%s", logs.String())
	}
}

// TestStoreDirOfAnUnfinishedImport: a directory an nss import was filling when it was
// killed holds the import's marker (and its temporary directory, or part of the store).
// The server started on it, with either durable store, opened a new empty store there and
// served it; now it exits, its error line naming the marker, and leaves the directory as
// it was.
func TestStoreDirOfAnUnfinishedImport(t *testing.T) {
	for _, kind := range []string{"file", "bolt"} {
		dir := t.TempDir()
		marker := filepath.Join(dir, stores.ImportMarker)
		check(t, os.WriteFile(marker, nil, 0o644))
		check(t, os.Mkdir(filepath.Join(dir, ".x.import-1"), 0o755))
		var stderr syncBuffer
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second) // a server that starts runs until then
		code := Execute(ctx, []string{"-a", "127.0.0.1", "-p", "-1", "-m", "-1", "-cid", "test-cluster",
			"--store", kind, "--dir", dir}, io.Discard, &stderr)
		cancel()
		if code == 0 || !strings.Contains(stderr.String(), marker) {
			t.Errorf("--store %s on an unfinished import: exit %d, stderr %q; want a failure naming %s", kind, code, stderr.String(), marker)
		}
		if after, _ := os.ReadDir(dir); len(after) != 2 {
			t.Errorf("--store %s: the directory changed: %v", kind, after)
		}
	}
}

// TestStoreDirWithAnImportLeftover: an interrupted import leaves its hidden temporary
// directory in the target beside the marker, maybe holding the whole store. The refusal named
// only the marker, and once it was removed by hand (as the refusal offers) the server
// started without a word about the directory. Now the refusal names it, and every start
// logs it; it is never removed.
func TestStoreDirWithAnImportLeftover(t *testing.T) {
	for _, kind := range []string{"file", "bolt"} {
		dir := t.TempDir()
		marker := filepath.Join(dir, stores.ImportMarker)
		left := filepath.Join(dir, "."+filepath.Base(dir)+".import-123")
		check(t, os.WriteFile(marker, nil, 0o644))
		check(t, os.MkdirAll(filepath.Join(left, "ch00000001"), 0o755))
		m := NewMain(io.Discard, &syncBuffer{})
		check(t, m.ParseFlags([]string{"-a", "127.0.0.1", "-p", "-1", "-m", "-1", "-cid", "test-cluster", "--store", kind, "--dir", dir}))
		err := m.Start()
		_ = m.Close()
		if err == nil || !strings.Contains(err.Error(), marker) || !strings.Contains(err.Error(), left) {
			t.Fatalf("--store %s on an unfinished import: %v, want a refusal naming %s and %s", kind, err, marker, left)
		}
		check(t, os.Remove(marker))
		m, logs := startMain(t, "-cid", "test-cluster", "--store", kind, "--dir", dir)
		check(t, m.Close())
		if !strings.Contains(logs.String(), left) {
			t.Errorf("--store %s, marker removed: the log does not name %s:\n%s", kind, left, logs.String())
		}
		if _, err := os.Stat(filepath.Join(left, "ch00000001")); err != nil {
			t.Errorf("--store %s: the leftover was touched: %v", kind, err)
		}
	}
}

// TestStoreDirOfAnotherKind: --dir naming a directory that holds another kind of store (a
// nats-streaming-server store not imported yet — nss's own configuration reused as is —
// or a Starling store of the other --store) fails the start, saying what to do, instead of
// starting an empty store beside it and leaving its clients without their channels.
func TestStoreDirOfAnotherKind(t *testing.T) {
	nss := t.TempDir()
	for _, f := range []string{"server.dat", "clients.dat", "orders/msgs.1.dat"} {
		check(t, os.MkdirAll(filepath.Dir(filepath.Join(nss, f)), 0o755))
		check(t, os.WriteFile(filepath.Join(nss, f), []byte{1, 0, 0, 0}, 0o644))
	}
	bolt, file := t.TempDir(), t.TempDir()
	for dir, kind := range map[string]string{bolt: "bolt", file: "file"} {
		m, _ := startMain(t, "-cid", "test-cluster", "--store", kind, "--dir", dir)
		check(t, m.Close())
	}
	for _, c := range []struct{ kind, dir, want string }{
		{"file", nss, "starling store import --from-nss " + nss},
		{"bolt", nss, "starling store import --from-nss " + nss},
		{"file", bolt, "--store bolt"},
		{"bolt", file, "--store file"},
	} {
		before, _ := os.ReadDir(c.dir)
		m := NewMain(io.Discard, &syncBuffer{})
		check(t, m.ParseFlags([]string{"-a", "127.0.0.1", "-p", "-1", "-m", "-1", "-cid", "test-cluster", "--store", c.kind, "--dir", c.dir}))
		err := m.Start()
		_ = m.Close()
		if err == nil || !strings.Contains(err.Error(), c.dir) || !strings.Contains(err.Error(), c.want) {
			t.Errorf("--store %s --dir %s: started (err %v), want an error naming the directory and %q", c.kind, c.dir, err, c.want)
		}
		if after, _ := os.ReadDir(c.dir); len(after) != len(before) {
			t.Errorf("--store %s --dir %s: the directory changed: %v, was %v", c.kind, c.dir, after, before)
		}
	}
}
