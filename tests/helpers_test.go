package tests

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/starling-io/starling/cmd/starling/app"
	"github.com/starling-io/starling/core"
)

// syncBuffer collects server logs so a failing test can show them.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// startServer runs Starling in-process exactly as the binary does (app.Main), on random
// ports, and stops it when the test ends.
func startServer(t testing.TB, args ...string) *app.Main {
	t.Helper()
	logs := &syncBuffer{}
	m := app.NewMain(io.Discard, logs)
	// Core tests run core alone: the streaming layer's own connection and subscriptions
	// would otherwise show in their counts (streaming tests use startStan or the binary).
	all := append([]string{"-a", "127.0.0.1", "-p", "-1", "-m", "-1", "--no_streaming"}, args...)
	if err := m.ParseFlags(all); err != nil {
		t.Fatalf("parse flags %v: %v", all, err)
	}
	if err := m.Start(); err != nil {
		t.Fatalf("start: %v", err)
	}
	t.Cleanup(func() {
		_ = m.Close()
		if t.Failed() && os.Getenv("STARLING_TEST_LOGS") != "" {
			t.Logf("server log:\n%s", logs.String())
		}
	})
	return m
}

func clientURL(m *app.Main) string { return m.Server().ClientURL() }

// connect dials with nats.go and closes the connection when the test ends.
func connect(t testing.TB, m *app.Main, opts ...nats.Option) *nats.Conn {
	t.Helper()
	nc, err := nats.Connect(clientURL(m), opts...)
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	t.Cleanup(nc.Close)
	return nc
}

// waitFor polls cond until it returns nil or the timeout passes.
func waitFor(t testing.TB, timeout time.Duration, cond func() error) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	var err error
	for time.Now().Before(deadline) {
		if err = cond(); err == nil {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("condition not met after %v: %v", timeout, err)
}

// getJSON fetches a monitoring endpoint into v.
func getJSON(t testing.TB, m *app.Main, path string, v any) int {
	t.Helper()
	resp, err := http.Get("http://" + m.MonitorAddr() + path)
	if err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if v != nil && resp.StatusCode == http.StatusOK {
		if err := json.Unmarshal(body, v); err != nil {
			t.Fatalf("GET %s: decode %q: %v", path, body, err)
		}
	}
	return resp.StatusCode
}

// recvN reads n messages from a channel subscription or fails.
func recvN(t testing.TB, ch <-chan *nats.Msg, n int, timeout time.Duration) []*nats.Msg {
	t.Helper()
	out := make([]*nats.Msg, 0, n)
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	for len(out) < n {
		select {
		case m := <-ch:
			out = append(out, m)
		case <-timer.C:
			t.Fatalf("received %d of %d messages in %v", len(out), n, timeout)
		}
	}
	return out
}

// expectNone asserts nothing arrives on ch within d.
func expectNone(t testing.TB, ch <-chan *nats.Msg, d time.Duration) {
	t.Helper()
	select {
	case m := <-ch:
		t.Fatalf("unexpected message on %q: %q", m.Subject, m.Data)
	case <-time.After(d):
	}
}

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func msgf(format string, a ...any) []byte { return []byte(fmt.Sprintf(format, a...)) }

// numClientSubs is the server's subscription count less the system's own (the system
// account's, and the $SYS. requests it answers in every account, as nats-server's; those
// of the other servers of a mesh too): the clients'.
func numClientSubs(m *app.Main) int {
	sz, err := m.Server().Subsz(core.SubszOptions{Subs: true, Limit: 1 << 20})
	if err != nil {
		panic(err)
	}
	n := 0
	for _, sub := range sz.Subs {
		if sub.Account != core.DefaultSystemAccount && !strings.HasPrefix(sub.Subject, "$SYS.") {
			n++
		}
	}
	return n
}
