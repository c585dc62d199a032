package app

import (
	"bytes"
	"context"
	"crypto/tls"
	"io"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

func TestCheckConfig(t *testing.T) {
	dir := t.TempDir()
	pki := newTestPKI(t, dir)
	good := writeFile(t, dir, "good.conf", readmeExample(t, pki))
	var out, errOut bytes.Buffer
	if code := Execute(context.Background(), []string{"-c", good, "-t"}, &out, &errOut); code != 0 || strings.TrimSpace(out.String()) != "configuration OK" {
		t.Fatalf("-t on a good file: code %d, stdout %q, stderr %q", code, out.String(), errOut.String())
	}

	bad := writeFile(t, dir, "bad.conf", "max_payload: lots\nauthorization { users: [ {nkey: UXYZ} ] }\n")
	out.Reset()
	errOut.Reset()
	code := Execute(context.Background(), []string{"-t", "-c", bad}, &out, &errOut)
	if code != 1 || out.Len() != 0 {
		t.Fatalf("-t on a bad file: code %d, stdout %q", code, out.String())
	}
	for _, w := range []string{"configuration has 2 error(s)", bad + `:1:1: max_payload: expected a size`, bad + `:2:27: authorization.users[0].nkey: "UXYZ"`} {
		if !strings.Contains(errOut.String(), w) {
			t.Errorf("stderr lacks %q:\n%s", w, errOut.String())
		}
	}

	// Plain passwords are a warning that names the user, never the password.
	out.Reset()
	errOut.Reset()
	if code := Execute(context.Background(), []string{"-t", "--user", "carol", "--pass", "hunter2-secret"}, &out, &errOut); code != 0 {
		t.Fatalf("code %d: %s", code, errOut.String())
	}
	if !strings.Contains(errOut.String(), `plain-text passwords for ["carol"]`) || strings.Contains(errOut.String(), "hunter2") {
		t.Errorf("warning: %q", errOut.String())
	}
}

func TestExitCodes(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"--bogus"}, 2, "bogus"},
		{[]string{"--signal", "explode"}, 2, "signal"},
		{[]string{"--tls=maybe"}, 2, "tls"},
		{[]string{"-h"}, 0, ""},
		{[]string{"-c", filepath.Join(dir, "missing.conf")}, 1, "flag -c"},
		{[]string{"--tlscert", filepath.Join(dir, "missing.pem"), "--tlskey", "x"}, 1, "flag --tlscert"},
		{[]string{"-t", "-n", "a b"}, 1, `flag --server_name: "a b" cannot contain spaces`},
		{[]string{"-t", "--cluster", "nats://127.0.0.1:-1", "--cluster_name", "a b"}, 1, `flag --cluster_name: "a b" cannot contain spaces`},
		{[]string{"-t", "--jetstream"}, 2, "flag --jetstream: a nats-server flag Starling does not support"},
		{[]string{"-t", "-js"}, 2, "flag -js: a nats-server flag Starling does not support"},
		{[]string{"-t", "-r=syslog://x"}, 2, "flag -r: a nats-server flag Starling does not support"},
		{[]string{"-t", "-p", "70000"}, 1, "flag --port: 70000 is out of range (-1..65535)"},
		{[]string{"--signal", "reload"}, 1, "no process to signal"},
		{[]string{"--signal", "reload=" + filepath.Join(dir, "none.pid")}, 1, "PID file"},
	} {
		var errOut bytes.Buffer
		code := Execute(context.Background(), tc.args, io.Discard, &errOut)
		if code != tc.code || !strings.Contains(errOut.String(), tc.want) {
			t.Errorf("%v: code %d (want %d), stderr %q (want %q)", tc.args, code, tc.code, errOut.String(), tc.want)
		}
	}
}

// --signal finds the server through -P, the configuration's pid_file, or CMD=PID.
func TestSignal(t *testing.T) {
	dir := t.TempDir()
	pidFile := writeFile(t, dir, "starling.pid", strconv.Itoa(os.Getpid())+"\n")
	conf := writeFile(t, dir, "s.conf", "pid_file: \""+pidFile+"\"\n")
	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, syscall.SIGHUP, syscall.SIGUSR1, syscall.SIGUSR2)
	defer signal.Stop(sigs)
	for _, tc := range []struct {
		args []string
		sig  os.Signal
	}{
		{[]string{"--signal", "reload", "-P", pidFile}, syscall.SIGHUP},
		{[]string{"-c", conf, "--signal", "reload"}, syscall.SIGHUP},
		{[]string{"--signal", "ldm=" + strconv.Itoa(os.Getpid())}, syscall.SIGUSR2},
		{[]string{"--signal", "reload=" + pidFile}, syscall.SIGHUP},
		{[]string{"-sl", "reopen=" + pidFile}, syscall.SIGUSR1},
	} {
		var out, errOut bytes.Buffer
		if code := Execute(context.Background(), tc.args, &out, &errOut); code != 0 {
			t.Fatalf("%v: code %d: %s", tc.args, code, errOut.String())
		}
		select {
		case got := <-sigs:
			if got != tc.sig {
				t.Errorf("%v: got %v, want %v", tc.args, got, tc.sig)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("%v: no signal arrived", tc.args)
		}
	}
}

// https serves monitoring over TLS with the tls block's certificate.
func TestHTTPSMonitoring(t *testing.T) {
	dir := t.TempDir()
	pki := newTestPKI(t, dir)
	conf := writeFile(t, dir, "https.conf", `
https: -1
tls { cert_file: "`+pki.serverCert+`", key_file: "`+pki.serverKey+`" }
`)
	m := NewMain(io.Discard, io.Discard)
	check(t, m.ParseFlags([]string{"-c", conf, "-a", "127.0.0.1", "-p", "-1"}))
	check(t, m.Start())
	defer m.Close()
	hc := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pki.pool}}}
	resp, err := hc.Get("https://" + m.MonitorAddr() + "/varz")
	check(t, err)
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !strings.Contains(string(body), `"tls_required": true`) {
		t.Fatalf("GET /varz over HTTPS: %d %s", resp.StatusCode, body)
	}
}

// TestEmptyConfigWarns: a file with no values (empty, or comments only) is accepted with a
// warning naming it, as nats-server warns "config has no values or is empty": a file read
// in place of the intended one (an empty mount, a wrong path's placeholder) should not go
// unnoticed.
func TestEmptyConfigWarns(t *testing.T) {
	dir := t.TempDir()
	for name, text := range map[string]string{"empty.conf": "", "comments.conf": "# nothing yet\n// nor here\n"} {
		f := writeFile(t, dir, name, text)
		var out, errOut bytes.Buffer
		if code := Execute(context.Background(), []string{"-t", "-c", f}, &out, &errOut); code != 0 {
			t.Fatalf("%s: code %d: %s", name, code, errOut.String())
		}
		if want := f + ": the configuration has no values or is empty"; !strings.Contains(errOut.String(), want) {
			t.Errorf("%s: stderr %q lacks %q", name, errOut.String(), want)
		}
	}
	good := writeFile(t, dir, "one.conf", "port: 4333\n")
	var out, errOut bytes.Buffer
	if code := Execute(context.Background(), []string{"-t", "-c", good}, &out, &errOut); code != 0 || strings.Contains(errOut.String(), "no values") {
		t.Errorf("a file with a value: code %d, stderr %q", code, errOut.String())
	}
}
