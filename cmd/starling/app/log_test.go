package app

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/stan.go"
	"google.golang.org/protobuf/proto"

	"github.com/starling-io/starling/core"
	"github.com/starling-io/starling/proto/stanpb"
)

// The handler writes text or JSON, with or without timestamps, in UTC on request, and
// names the trace level TRACE.
func TestLogHandlerFormats(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want []string // in the line
		not  []string
	}{
		{nil, []string{"time=", "level=TRACE", `msg="a trace"`, "k=1"}, nil},
		{[]string{"-T=false"}, []string{"level=TRACE"}, []string{"time="}},
		{[]string{"--logtime_utc"}, []string{"Z level=TRACE"}, nil},
		{[]string{"--log_format", "json"}, []string{`"time":`, `"level":"TRACE"`, `"msg":"a trace"`, `"k":1`}, nil},
		{[]string{"--log_format=json", "--logtime=false"}, []string{`{"level":"TRACE"`}, []string{`"time"`}},
	} {
		var out bytes.Buffer
		slog.New(newLogHandler(&out, parse(t, tc.args...))).Log(context.Background(), levelTrace, "a trace", "k", 1)
		line := out.String()
		for _, w := range tc.want {
			if !strings.Contains(line, w) {
				t.Errorf("%v: %q lacks %q", tc.args, line, w)
			}
		}
		for _, w := range tc.not {
			if strings.Contains(line, w) {
				t.Errorf("%v: %q has %q", tc.args, line, w)
			}
		}
		if strings.Contains(strings.Join(tc.args, " "), "json") && !json.Valid(out.Bytes()) {
			t.Errorf("%v: not JSON: %q", tc.args, line)
		}
	}
}

// Levels come from -D, -V, -DV and the file's debug and trace; flags win over the file.
func TestLogLevels(t *testing.T) {
	dir := t.TempDir()
	debugFile := writeFile(t, dir, "d.conf", "debug: true\n")
	traceFile := writeFile(t, dir, "t.conf", "trace: true\ndebug: false\n")
	for _, tc := range []struct {
		args []string
		want slog.Level
	}{
		{nil, slog.LevelInfo},
		{[]string{"-D"}, slog.LevelDebug},
		{[]string{"--debug"}, slog.LevelDebug},
		{[]string{"-V"}, levelTrace},
		{[]string{"--trace"}, levelTrace},
		{[]string{"-DV"}, levelTrace},
		{[]string{"-c", debugFile}, slog.LevelDebug},
		{[]string{"-c", traceFile}, levelTrace},
		{[]string{"-c", debugFile, "--debug=false"}, slog.LevelInfo},
	} {
		if got := parse(t, tc.args...).level(); got != tc.want {
			t.Errorf("%v: level %v, want %v", tc.args, got, tc.want)
		}
	}
}

// The file's logging keys, with nats-server's names and aliases; a bad value names
// file:line:col.
func TestLogConfigKeys(t *testing.T) {
	dir := t.TempDir()
	path := writeFile(t, dir, "log.conf", `
log_file: "/var/log/starling.log"
logfile_size_limit: 10MB
logfile_max_num: 5
log_format: json
logtime: false
logtime_utc: true
`)
	s := parse(t, "-c", path)
	if s.logFile != "/var/log/starling.log" || s.logSizeLimit != 10<<20 || s.logMaxNum != 5 || s.logFormat != logJSON || s.logTime || !s.logUTC {
		t.Errorf("settings: file %q limit %d num %d format %q time %v utc %v", s.logFile, s.logSizeLimit, s.logMaxNum, s.logFormat, s.logTime, s.logUTC)
	}
	s = parse(t, "-c", writeFile(t, dir, "alias.conf", "logfile: a.log\nlog_size_limit: 2048\nlog_max_num: 2\n"), "--log_max_num", "3")
	if s.logFile != "a.log" || s.logSizeLimit != 2048 || s.logMaxNum != 3 {
		t.Errorf("aliases and flags: %q %d %d", s.logFile, s.logSizeLimit, s.logMaxNum)
	}

	bad := writeFile(t, dir, "bad.conf", "log_format: xml\nlogfile_max_num: -1\nlogfile_size_limit: lots\n")
	err := NewMain(io.Discard, io.Discard).ParseFlags([]string{"-c", bad})
	for _, w := range []string{bad + `:1:1: log_format: "xml" is not a log format`, bad + `:2:1: logfile_max_num: -1 is out of range`,
		bad + `:3:1: logfile_size_limit: expected a size`} {
		if err == nil || !strings.Contains(err.Error(), w) {
			t.Errorf("error %v lacks %q", err, w)
		}
	}
	for _, args := range [][]string{{"--log_max_num", "-1"}, {"--log_size_limit", "big"}, {"--log_format", "xml"}} {
		err := NewMain(io.Discard, io.Discard).ParseFlags(args)
		if err == nil || !strings.Contains(err.Error(), args[0][2:]) {
			t.Errorf("%v: %v", args, err)
		}
	}
}

// With -l and a size limit the running server rotates its log, keeping --log_max_num
// files; SIGUSR1 reopens it after an external tool moved it; a reload changes the limits
// but refuses a new format.
func TestServerLogFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "starling.log")
	conf := writeFile(t, dir, "s.conf", "log_size_limit: 2KB\nlog_max_num: 2\n")
	m := NewMain(io.Discard, io.Discard)
	m.HandleSignals = true
	check(t, m.ParseFlags([]string{"-c", conf, "-a", "127.0.0.1", "-p", "-1", "-l", path, "-D"}))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- m.Run(ctx) }()
	defer func() {
		cancel()
		check(t, <-done)
	}()
	<-m.Ready()
	for range 20 { // each connection logs a few debug lines
		nc, err := nats.Connect(m.Server().ClientURL())
		check(t, err)
		nc.Close()
	}
	waitFor(t, "a rotation", func() bool {
		old, _ := m.logFile.backups()
		return len(old) == 1 // log_max_num 2: one rotated file and the current one
	})
	for _, name := range append(must(m.logFile.backups()), path) {
		if st, err := os.Stat(name); err != nil || st.Size() > 2048 {
			t.Errorf("%s: %v %v", name, st.Size(), err)
		}
	}

	check(t, os.Rename(path, path+".moved"))
	check(t, syscall.Kill(os.Getpid(), syscall.SIGUSR1))
	waitFor(t, "the reopened log file", func() bool {
		b, _ := os.ReadFile(path)
		return strings.Contains(string(b), "log file reopened")
	})

	writeFile(t, dir, "s.conf", "log_size_limit: 1MB\nlog_max_num: 2\nlog_format: json\n")
	if err := m.Reload(); err == nil || !strings.Contains(err.Error(), "log_format") {
		t.Fatalf("reload with another log format: %v", err)
	}
	writeFile(t, dir, "s.conf", "log_size_limit: 1MB\nlog_max_num: 2\n")
	check(t, m.Reload())
	m.logFile.mu.Lock()
	limit := m.logFile.limit
	m.logFile.mu.Unlock()
	if limit != 1<<20 {
		t.Errorf("limit after reload %d", limit)
	}
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}

// countCalls counts every log call, including those below the level (the handler's
// Enabled is asked first): a hot path that logs per message shows up even when nothing
// is written.
type countCalls struct {
	slog.Handler
	n *atomic.Int64
}

func (c countCalls) Enabled(ctx context.Context, l slog.Level) bool {
	c.n.Add(1)
	return c.Handler.Enabled(ctx, l)
}

func (c countCalls) WithAttrs(a []slog.Attr) slog.Handler {
	return countCalls{c.Handler.WithAttrs(a), c.n}
}

func (c countCalls) WithGroup(g string) slog.Handler { return countCalls{c.Handler.WithGroup(g), c.n} }

// Nothing logs per message: once clients, subscriptions and the channel exist, a thousand
// more core messages and a thousand streaming publishes, deliveries and acks make no log
// call at all, at the default level and with -D (so none can allocate or write).
func TestNoLoggingPerMessage(t *testing.T) {
	for _, args := range [][]string{nil, {"-D"}} {
		var calls atomic.Int64
		m := NewMain(io.Discard, io.Discard)
		m.wrapLog = func(h slog.Handler) slog.Handler { return countCalls{h, &calls} }
		check(t, m.ParseFlags(append([]string{"-a", "127.0.0.1", "-p", "-1"}, args...)))
		check(t, m.Start())

		nc, err := nats.Connect(m.Server().ClientURL())
		check(t, err)
		var got atomic.Int64
		_, err = nc.Subscribe("core.msgs", func(*nats.Msg) { got.Add(1) })
		check(t, err)
		sc, err := stan.Connect("test-cluster", "quiet", stan.NatsURL(m.Server().ClientURL()))
		check(t, err)
		var delivered atomic.Int64
		_, err = sc.Subscribe("quiet", func(msg *stan.Msg) { _ = msg.Ack(); delivered.Add(1) },
			stan.SetManualAckMode(), stan.DurableName("d"), stan.DeliverAllAvailable())
		check(t, err)
		round := func(n int64) {
			for range n {
				check(t, nc.Publish("core.msgs", []byte("hello")))
				check(t, sc.Publish("quiet", []byte("hello")))
			}
			check(t, nc.Flush())
		}
		round(10) // the channel is created, the first deliveries go out
		waitFor(t, "the first messages", func() bool { return got.Load() == 10 && delivered.Load() == 10 })
		before := calls.Load()
		round(1000)
		waitFor(t, "every message", func() bool { return got.Load() == 1010 && delivered.Load() == 1010 })
		if n := calls.Load() - before; n != 0 {
			t.Errorf("%v: %d log calls for 1000 messages", args, n)
		}
		_ = sc.Close()
		nc.Close()
		check(t, m.Close())
	}
}

// BenchmarkPublishDefaultLogging publishes in-process through the server as the binary
// builds it, logging at the default level (text): a core message to an in-process
// subscriber (0 allocs/op), and a streaming publish (PubMsg → store → PubAck) in batches
// of 64 (1 alloc/op: the copy of the publish as the streaming handler queues it,
// streaming/engine.go). Nothing allocates for logging: no log call happens per message
// (TestNoLoggingPerMessage). Run: go test -run '^$' -bench PublishDefaultLogging -benchmem ./cmd/starling/app/
func BenchmarkPublishDefaultLogging(b *testing.B) {
	m := NewMain(io.Discard, io.Discard)
	check(b, m.ParseFlags([]string{"-a", "127.0.0.1", "-p", "-1"}))
	check(b, m.Start())
	defer m.Close()
	nc, err := m.Server().Connect("bench")
	check(b, err)
	payload := make([]byte, 16)

	b.Run("core", func(b *testing.B) {
		var n atomic.Int64
		sub, err := nc.Subscribe("bench", "", func(core.Msg) { n.Add(1) })
		check(b, err)
		defer sub.Unsubscribe()
		b.ReportAllocs()
		b.ResetTimer()
		for i := range b.N {
			_ = nc.Publish("bench", "", nil, payload)
			if i%64 == 63 {
				nc.Flush()
			}
		}
		nc.Flush()
		if n.Load() != int64(b.N) {
			b.Fatalf("%d of %d delivered", n.Load(), b.N)
		}
	})

	b.Run("streaming", func(b *testing.B) {
		ctx := context.Background()
		req, _ := proto.Marshal(&stanpb.ConnectRequest{ClientID: "bench", HeartbeatInbox: nc.NewInbox(), Protocol: 1, ConnID: []byte("bench-conn")})
		resp, err := nc.Request(ctx, "_STAN.discover.test-cluster", nil, req)
		check(b, err)
		var cr stanpb.ConnectResponse
		check(b, proto.Unmarshal(resp.Data, &cr))
		if cr.Error != "" {
			b.Fatal(cr.Error)
		}
		var acks atomic.Int64
		ackInbox := nc.NewInbox()
		sub, err := nc.Subscribe(ackInbox, "", func(core.Msg) { acks.Add(1) })
		check(b, err)
		defer sub.Unsubscribe()
		pub, _ := proto.Marshal(&stanpb.PubMsg{ClientID: "bench", Guid: "0123456789012345678901", Subject: "bench", Data: payload, ConnID: []byte("bench-conn")})
		subj := cr.PubPrefix + ".bench"
		wait := func(n int64) {
			for acks.Load() < n {
				runtime.Gosched()
			}
		}
		b.ReportAllocs()
		b.ResetTimer()
		for i := range b.N {
			_ = nc.Publish(subj, ackInbox, nil, pub)
			if i%64 == 63 {
				nc.Flush()
				wait(int64(i + 1))
			}
		}
		nc.Flush()
		wait(int64(b.N))
	})
}
