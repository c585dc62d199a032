package app

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/starling-io/starling/core"
)

// syncBuffer is a log sink that the server goroutines and the test share.
type syncBuffer struct {
	mu sync.Mutex
	b  strings.Builder
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

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// Reload puts a changed file in force (limits, log level) while the server keeps running,
// and rejects a broken one with all its errors, keeping the running configuration.
func TestReload(t *testing.T) {
	dir := t.TempDir()
	conf := writeFile(t, dir, "r.conf", "server_name: r1\nmax_payload: 1KB\n")
	logs := &syncBuffer{}
	m := NewMain(io.Discard, logs)
	check(t, m.ParseFlags([]string{"-c", conf, "-a", "127.0.0.1", "-p", "-1"}))
	check(t, m.Start())
	defer m.Close()
	srv := m.Server()
	if got := srv.Varz().MaxPayload; got != 1024 {
		t.Fatalf("max_payload %d", got)
	}
	base := srv.NumClients() // streaming's in-process connection
	nc, err := net.Dial("tcp", srv.Addr().String())
	check(t, err)
	defer nc.Close()
	waitFor(t, "the connection", func() bool { return srv.NumClients() == base+1 })

	check(t, os.WriteFile(conf, []byte("server_name: r1\nmax_payload: 2KB\ndebug: true\n"), 0o600))
	check(t, m.Reload())
	if got := srv.Varz().MaxPayload; got != 2048 {
		t.Fatalf("max_payload after reload: %d", got)
	}
	if m.level.Level() != slog.LevelDebug {
		t.Errorf("log level %v after reload with debug: true", m.level.Level())
	}
	if srv.NumClients() != base+1 {
		t.Errorf("clients after reload: %d, want %d", srv.NumClients(), base+1)
	}

	// A broken file: every error returned and logged; the running configuration stays.
	check(t, os.WriteFile(conf, []byte("server_name: r1\nmax_payload: 4KB\nbogus: 1\nping_max: many\n"), 0o600))
	err = m.Reload()
	var ce *ConfigError
	if !errors.As(err, &ce) || len(ce.Errs) != 2 {
		t.Fatalf("want 2 configuration errors, got %v", err)
	}
	for _, w := range []string{conf + ":3:1: bogus", conf + ":4:1: ping_max"} {
		if !strings.Contains(err.Error(), w) || !strings.Contains(logs.String(), w) {
			t.Errorf("%q missing from the error or the log:\n%v\n%s", w, err, logs.String())
		}
	}
	if got := srv.Varz().MaxPayload; got != 2048 {
		t.Fatalf("max_payload after a failed reload: %d", got)
	}

	// What core cannot change live is refused and reported.
	check(t, os.WriteFile(conf, []byte("server_name: r2\n"), 0o600))
	if err := m.Reload(); !errors.Is(err, core.ErrReload) || !strings.Contains(logs.String(), "server_name cannot change") {
		t.Fatalf("server_name change: %v", err)
	}
	check(t, os.WriteFile(conf, []byte("server_name: r1\nhttp: 8222\n"), 0o600))
	if err := m.Reload(); err == nil || !strings.Contains(err.Error(), "monitoring address") {
		t.Fatalf("monitoring change: %v", err)
	}
	if got := srv.Varz(); got.MaxPayload != 2048 || got.ServerName != "r1" {
		t.Fatalf("after refused reloads: %d %s", got.MaxPayload, got.ServerName)
	}
	if srv.NumClients() != base+1 {
		t.Errorf("clients after the refused reloads: %d, want %d", srv.NumClients(), base+1)
	}
}

// Run reloads on SIGHUP.
func TestRunReloadsOnSIGHUP(t *testing.T) {
	dir := t.TempDir()
	conf := writeFile(t, dir, "h.conf", "max_payload: 1KB\n")
	m := NewMain(io.Discard, &syncBuffer{})
	m.HandleSignals = true
	check(t, m.ParseFlags([]string{"-c", conf, "-a", "127.0.0.1", "-p", "-1"}))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- m.Run(ctx) }()
	<-m.Ready()
	check(t, os.WriteFile(conf, []byte("max_payload: 3KB\n"), 0o600))
	check(t, syscall.Kill(os.Getpid(), syscall.SIGHUP))
	waitFor(t, "max_payload 3KB", func() bool { return m.Server().Varz().MaxPayload == 3072 })
	cancel()
	check(t, <-done)
}

func TestReloadWithoutFile(t *testing.T) {
	m := NewMain(io.Discard, &syncBuffer{})
	if err := m.Reload(); !errors.Is(err, ErrNotStarted) {
		t.Fatalf("before start: %v", err)
	}
	check(t, m.ParseFlags([]string{"-a", "127.0.0.1", "-p", "-1"}))
	check(t, m.Start())
	defer m.Close()
	if err := m.Reload(); !errors.Is(err, ErrNoConfigFile) {
		t.Fatalf("without -c: %v", err)
	}
}

// The cluster block cannot change live (routes keep what they started with): a reload
// that changes it is refused and says so, rather than reported as applied. The same
// block reloads fine.
func TestReloadRefusesClusterChanges(t *testing.T) {
	dir := t.TempDir()
	base := "server_name: c1\nmax_payload: 1KB\n"
	block := "cluster {\n  listen: 127.0.0.1:-1\n  name: a\n  authorization { user: r, password: pw }\n}\n"
	conf := writeFile(t, dir, "c.conf", base+block)
	logs := &syncBuffer{}
	m := NewMain(io.Discard, logs)
	check(t, m.ParseFlags([]string{"-c", conf, "-a", "127.0.0.1", "-p", "-1", "--no_streaming"}))
	check(t, m.Start())
	defer m.Close()

	check(t, os.WriteFile(conf, []byte("server_name: c1\nmax_payload: 2KB\n"+block), 0o600))
	check(t, m.Reload())
	if got := m.Server().Varz().MaxPayload; got != 2048 {
		t.Fatalf("max_payload after reload: %d", got)
	}
	for _, changed := range []string{
		strings.Replace(block, "name: a", "name: b", 1),
		strings.Replace(block, "password: pw", "password: other", 1),
		strings.Replace(block, "name: a", "name: a\n  routes: [nats://127.0.0.1:1]", 1),
		strings.Replace(block, "name: a", "name: a\n  no_advertise: true", 1),
	} {
		check(t, os.WriteFile(conf, []byte("server_name: c1\nmax_payload: 4KB\n"+changed), 0o600))
		err := m.Reload()
		if !errors.Is(err, core.ErrReload) || !strings.Contains(err.Error(), "cluster") {
			t.Errorf("reload changing the cluster block to\n%s: %v", changed, err)
		}
		if got := m.Server().Varz().MaxPayload; got != 2048 {
			t.Fatalf("max_payload after a refused reload: %d", got)
		}
	}
}

// client_advertise is taken once, when the listener starts (connect_urls): a reload that
// changes it is refused and says so, rather than reported as applied.
func TestReloadRefusesClientAdvertiseChange(t *testing.T) {
	dir := t.TempDir()
	conf := writeFile(t, dir, "a.conf", "client_advertise: \"10.0.0.1:4222\"\n")
	m := NewMain(io.Discard, &syncBuffer{})
	check(t, m.ParseFlags([]string{"-c", conf, "-a", "127.0.0.1", "-p", "-1", "--no_streaming"}))
	check(t, m.Start())
	defer m.Close()
	check(t, m.Reload())
	check(t, os.WriteFile(conf, []byte("client_advertise: \"10.0.0.2:4222\"\n"), 0o600))
	if err := m.Reload(); !errors.Is(err, core.ErrReload) || !strings.Contains(err.Error(), "client_advertise") {
		t.Fatalf("reload changing client_advertise: %v", err)
	}
}

// The profiling listener (prof_port) starts once: a reload that changes it is refused and
// says so, rather than reported as applied.
func TestReloadRefusesProfPortChange(t *testing.T) {
	dir := t.TempDir()
	conf := writeFile(t, dir, "p.conf", "max_payload: 1KB\n")
	m := NewMain(io.Discard, &syncBuffer{})
	check(t, m.ParseFlags([]string{"-c", conf, "-a", "127.0.0.1", "-p", "-1", "--no_streaming"}))
	check(t, m.Start())
	defer m.Close()
	check(t, os.WriteFile(conf, []byte("max_payload: 2KB\nprof_port: -1\n"), 0o600))
	if err := m.Reload(); err == nil || !strings.Contains(err.Error(), "prof_port") {
		t.Fatalf("reload changing prof_port: %v", err)
	}
	if got := m.Server().Varz().MaxPayload; got != 1024 {
		t.Fatalf("max_payload after a refused reload: %d", got)
	}
}

// A ports_file_dir removed after the start (a tmp cleaner) does not refuse a reload: it is
// checked at a start and by -t only, as it cannot change at a reload.
func TestReloadWithItsPortsDirGone(t *testing.T) {
	dir := t.TempDir()
	ports := filepath.Join(dir, "ports")
	check(t, os.Mkdir(ports, 0o755))
	conf := writeFile(t, dir, "r.conf", "max_payload: 1KB\nports_file_dir: \""+ports+"\"\n")
	m := NewMain(io.Discard, io.Discard)
	check(t, m.ParseFlags([]string{"-c", conf, "-a", "127.0.0.1", "-p", "-1", "--no_streaming"}))
	check(t, m.Start())
	defer m.Close()
	check(t, os.RemoveAll(ports))
	check(t, os.WriteFile(conf, []byte("max_payload: 2KB\nports_file_dir: \""+ports+"\"\n"), 0o600))
	check(t, m.Reload())
	if got := m.Server().Varz().MaxPayload; got != 2048 {
		t.Fatalf("max_payload after reload: %d", got)
	}
}
