package app

import (
	"bytes"
	"context"
	"errors"
	"net"
	"strconv"
	"strings"
	"testing"
)

func TestFlagErrorsNameTheFlag(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--max_payload", "lots"}, "max_payload"},
		{[]string{"-p", "abc"}, "-p"},
		{[]string{"--ping_interval", "soon"}, "ping_interval"},
		{[]string{"extra"}, "unexpected argument"},
		{[]string{"-c", "x.conf"}, "flag -c"},
		{[]string{"--bogus"}, "bogus"},
	} {
		var errOut bytes.Buffer
		m := NewMain(&bytes.Buffer{}, &errOut)
		err := m.ParseFlags(tc.args)
		if err == nil || !strings.Contains(err.Error()+errOut.String(), tc.want) {
			t.Errorf("%v: got %v (%s), want mention of %q", tc.args, err, errOut.String(), tc.want)
		}
	}
}

func TestInvalidOptionsRefuseToStart(t *testing.T) {
	m := NewMain(&bytes.Buffer{}, &bytes.Buffer{})
	err := m.ParseFlags([]string{"-p", "-1", "--max_payload", "2MB", "--max_pending", "1MB"})
	var ce *ConfigError
	if !errors.As(err, &ce) || !strings.Contains(err.Error(), "max_payload") {
		t.Fatalf("want a configuration error about max_payload, got %v", err)
	}
	// A port already taken fails at Start.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	check(t, err)
	defer ln.Close()
	m = NewMain(&bytes.Buffer{}, &bytes.Buffer{})
	check(t, m.ParseFlags([]string{"-a", "127.0.0.1", "-p", strconv.Itoa(ln.Addr().(*net.TCPAddr).Port)}))
	if err := m.Start(); err == nil || !strings.Contains(err.Error(), "listen") {
		t.Fatalf("want a listen error, got %v", err)
	}
	_ = m.Close()
}

// Size flags read sizes as the configuration file does (and nats-streaming-server, which
// reads its size flags with the NATS configuration parser): K M G are powers of 1000, KB
// KiB GB ... of 1024, in any case; a size that overflows is refused.
func TestSizes(t *testing.T) {
	for in, want := range map[string]int{"1024": 1024, "64KB": 64 << 10, "1MB": 1 << 20, "2G": 2e9, "2GB": 2 << 30,
		"1gb": 1 << 30, "1Mi": 1 << 20, "10K": 10000, "10B": 10, "0": 0} {
		got, err := parseSize(in)
		if err != nil || got != want {
			t.Errorf("parseSize(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, bad := range []string{"", "MB", "-1", "1XB", "1.5GB", "B", "1BB", "17179869184GB", "99999999999999999999"} {
		if _, err := parseSize(bad); err == nil {
			t.Errorf("parseSize(%q) accepted", bad)
		}
	}
}

func TestVersionAndRunStop(t *testing.T) {
	var out bytes.Buffer
	if code := Execute(context.Background(), []string{"-v"}, &out, &bytes.Buffer{}); code != 0 || !strings.Contains(out.String(), "starling version") {
		t.Fatalf("-v: code %d output %q", code, out.String())
	}
	m := NewMain(&bytes.Buffer{}, &bytes.Buffer{})
	if err := m.ParseFlags([]string{"-a", "127.0.0.1", "-p", "-1", "-m", "-1", "-DV"}); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- m.Run(ctx) }()
	<-m.Ready()
	if m.Server().ClientURL() == "" || m.MonitorAddr() == "" {
		t.Fatal("server or monitor not listening")
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("run: %v", err)
	}
}
