package tests

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/stan.go"

	"github.com/starling-io/starling/core"
	"github.com/starling-io/starling/raftlog"
	"github.com/starling-io/starling/stores"
	"github.com/starling-io/starling/stores/memstore"
	"github.com/starling-io/starling/streaming"
)

// stanServer is core + streaming over the memory store, in-process, on a random port.
type stanServer struct {
	core *core.Server
	st   *streaming.Server
	url  string
}

func startStan(t testing.TB, limits *stores.LimitsSet, mod func(*streaming.Options)) *stanServer {
	dbg := os.Getenv("STAN_DEBUG") != ""
	t.Helper()
	cs, err := core.New(core.Options{Host: "127.0.0.1", Port: -1})
	must(t, err)
	must(t, cs.Start())
	conn, err := cs.Connect("_STARLING-test")
	must(t, err)
	store, err := memstore.New(memstore.Options{Limits: limits})
	must(t, err)
	opts := streaming.Options{ClusterID: "test-cluster", Limits: limits}
	if dbg {
		opts.Logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	if mod != nil {
		mod(&opts)
	}
	st, err := streaming.New(streaming.InProcess(conn), store, raftlog.Standalone, opts)
	must(t, err)
	must(t, st.Start())
	t.Cleanup(func() {
		_ = st.Shutdown()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = cs.Shutdown(ctx)
	})
	return &stanServer{core: cs, st: st, url: cs.ClientURL()}
}

// stanConnect connects a stan.go client and closes it at the end of the test.
func stanConnect(t testing.TB, s *stanServer, clientID string, opts ...stan.Option) stan.Conn {
	t.Helper()
	sc, err := stan.Connect("test-cluster", clientID, append([]stan.Option{stan.NatsURL(s.url)}, opts...)...)
	if err != nil {
		t.Fatalf("stan connect %s: %v", clientID, err)
	}
	t.Cleanup(func() { _ = sc.Close() })
	return sc
}

// collector gathers delivered messages.
type collector struct {
	ch chan *stan.Msg
}

func newCollector() *collector { return &collector{ch: make(chan *stan.Msg, 200000)} }

func (c *collector) handler(m *stan.Msg) { c.ch <- m }

// seqs waits for n messages and returns their sequences.
func (c *collector) seqs(t testing.TB, n int, timeout time.Duration) []uint64 {
	t.Helper()
	out := make([]uint64, 0, n)
	deadline := time.After(timeout)
	for len(out) < n {
		select {
		case m := <-c.ch:
			out = append(out, m.Sequence)
		case <-deadline:
			t.Fatalf("got %d of %d messages: %v", len(out), n, out)
		}
	}
	return out
}

// none asserts nothing more arrives within d.
func (c *collector) none(t testing.TB, d time.Duration) {
	t.Helper()
	select {
	case m := <-c.ch:
		t.Fatalf("unexpected message seq %d (redelivered %v)", m.Sequence, m.Redelivered)
	case <-time.After(d):
	}
}

func publishN(t testing.TB, sc stan.Conn, channel string, from, to int) {
	t.Helper()
	for i := from; i <= to; i++ {
		must(t, sc.Publish(channel, []byte(fmt.Sprintf("m%d", i))))
	}
}

func seqRange(from, to uint64) []uint64 {
	var out []uint64
	for i := from; i <= to; i++ {
		out = append(out, i)
	}
	return out
}

func equalSeqs(a, b []uint64) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

var _ = nats.ErrTimeout
