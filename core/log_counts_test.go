package core

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
)

type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// The reload and lame duck log lines count client connections only: an in-process
// connection (the streaming layer's) is none, as /varz and /connz say.
func TestLogLinesCountClientsOnly(t *testing.T) {
	var logs lockedBuffer
	opts := Options{Host: "127.0.0.1", Port: -1, Logger: slog.New(slog.NewTextHandler(&logs, nil)),
		LameDuckDuration: 200 * time.Millisecond, LameDuckGracePeriod: 10 * time.Millisecond}
	s, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Shutdown(context.Background()) })
	in, err := s.Connect("in-process")
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	nc, err := nats.Connect(fmt.Sprintf("nats://%s", s.Addr()), nats.NoReconnect())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	waitFor(t, 2*time.Second, func() bool { return s.NumClients() == 2 })
	if err := s.Reload(opts); err != nil {
		t.Fatal(err)
	}
	if err := s.LameDuck(context.Background()); err != nil {
		t.Fatal(err)
	}
	for _, msg := range []string{"configuration reloaded", "entering lame duck mode"} {
		var line string
		for _, l := range strings.Split(logs.String(), "\n") {
			if strings.Contains(l, msg) {
				line = l
			}
		}
		if !strings.Contains(line, " clients=1 ") {
			t.Errorf("log line %q: %q, want clients=1 (the in-process connection is no client)", msg, line)
		}
	}
}

// With no client to move elsewhere, lame duck mode shuts down at once, as nats-server's does,
// instead of sitting out the grace period; an in-process connection (streaming's) is no client.
func TestLameDuckWithoutClientsStopsAtOnce(t *testing.T) {
	s, err := New(Options{Host: "127.0.0.1", Port: -1, LameDuckDuration: 20 * time.Second, LameDuckGracePeriod: 10 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Shutdown(context.Background()) })
	in, err := s.Connect("in-process")
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	start := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	if err := s.LameDuck(ctx); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Fatalf("lame duck mode without clients took %v to shut down, want no grace period", d)
	}
	select {
	case <-s.Done():
	default:
		t.Fatal("server not shut down after lame duck mode")
	}
}

// As nats-server's validateOptions (server.go): the lame duck grace period must be strictly
// lower than the duration; an equal one leaves no time to spread the closes over.
func TestLameDuckGraceStrictlyLower(t *testing.T) {
	for _, grace := range []time.Duration{30 * time.Second, 31 * time.Second} {
		_, err := New(Options{Host: "127.0.0.1", Port: -1, LameDuckDuration: 30 * time.Second, LameDuckGracePeriod: grace})
		if !errors.Is(err, ErrInvalidOptions) || !strings.Contains(err.Error(), "is not less than lame_duck_duration") {
			t.Errorf("grace %v: %v", grace, err)
		}
	}
}
