package app

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/starling-io/starling/core"
	"github.com/starling-io/starling/core/conf"
)

// Every configuration error names file:line:col and the key, and all of them are reported
// at once.
func TestConfigErrors(t *testing.T) {
	dir := t.TempDir()
	pki := newTestPKI(t, dir)
	for _, tc := range []struct {
		name string
		text string
		want []string // "line:col: key: message" after the file name, one per error
	}{
		{"unknown key", "port: 4222\nbogus: 1\n",
			[]string{`2:1: bogus: unknown configuration key`}},
		{"unknown nested key", "tls {\n  cert_file: \"@CERT@\"\n  key_file: \"@KEY@\"\n  verfy: true\n}\n",
			[]string{`4:3: tls.verfy: unknown configuration key`}},
		{"wrong type for max_payload", `max_payload: "lots"`,
			[]string{`1:1: max_payload: expected a size, got string "lots"`}},
		{"map for a string", "server_name { a: 1 }",
			[]string{`1:1: server_name: expected a string, got map`}},
		{"bad duration", "write_deadline: 1s\nping_interval: \"soon\"\n",
			[]string{`2:1: ping_interval: expected a duration, got string "soon"`}},
		// nats-server refuses names with spaces (they go into subjects and route INFO).
		{"server name with a space", "server_name: \"a b\"\n",
			[]string{`1:1: server_name: "a b" cannot contain spaces`}},
		{"cluster name with a space", "cluster {\n  listen: \"127.0.0.1:-1\"\n  name: \"a b\"\n}\n",
			[]string{`3:3: cluster.name: "a b" cannot contain spaces`}},
		// A nats-server feature Starling lacks is named as such, not as a typo.
		{"nats-server only key", "port: 4222\njetstream {\n  store_dir: /tmp/js\n}\n",
			[]string{`2:1: jetstream: a nats-server setting Starling does not support`}},
		{"nats-server only account key", "accounts {\n  A {\n    jetstream: enabled\n  }\n}\n",
			[]string{`3:5: accounts.A.jetstream: a nats-server setting Starling does not support`}},
		// Encryption asked for, which Starling's stores do not do: refused, not a warning
		// (the messages would be kept in plain text).
		{"streaming encrypt", "streaming {\n  encrypt: true\n  encryption_key: \"k\"\n}\n",
			[]string{`2:3: streaming.encrypt: is true, but Starling does not encrypt its stores: the messages would be kept in plain text; set it false (or remove it) and encrypt the file system instead`}},
		// Durations are read per key as nats-server and nats-streaming-server read them:
		// ping_interval and write_deadline take whole seconds but no fraction and no quoted
		// number; lame_duck_* and every streaming duration want a duration, not a number.
		{"fractional seconds", "ping_interval: 1.5\nwrite_deadline: \"2\"\n",
			[]string{`1:1: ping_interval: expected a duration or a whole number of seconds, got float 1.5 (write it with a unit: "1.5s")`,
				`2:1: write_deadline: expected a duration, got string "2" (write it with a unit: "2s")`}},
		{"number for a duration", "lame_duck_duration: 45\nlame_duck_grace_period: 2m\nstreaming {\n  hb_interval: 10\n}\n",
			[]string{`1:1: lame_duck_duration: expected a duration, got integer 45 (write it with a unit: "45s")`,
				`2:1: lame_duck_grace_period: expected a duration, got integer 2m (a bare 2m is the number 2000000, as in nats-server: write "2m")`,
				`4:3: streaming.hb_interval: expected a duration, got integer 10 (write it with a unit: "10s")`}},
		// nats-server refuses a lone route string (it wants a list).
		{"route as a string", "cluster {\n  listen: \"127.0.0.1:-1\"\n  routes: \"nats://127.0.0.1:1\"\n}\n",
			[]string{`3:3: cluster.routes: expected a list of strings, got string "nats://127.0.0.1:1" (write ["nats://127.0.0.1:1"], as nats-server requires)`}},
		{"port out of range", "port: 70000",
			[]string{`1:1: port: 70000 is out of range (-1..65535)`}},
		{"bad listen", "listen: \"nohostport\"",
			[]string{`1:1: listen: expected host:port or a port, got "nohostport"`}},
		// nats-server wants a boolean or a string: a bare 2m is the number 2000000 to it.
		{"number for handshake_first", "tls {\n  cert_file: \"@CERT@\"\n  key_file: \"@KEY@\"\n  handshake_first: 2m\n}\n",
			[]string{`4:3: tls.handshake_first: 2m is a number, not a boolean, auto or a duration (quote it: "2m")`}},
		{"bad handshake_first", "tls {\n  cert_file: \"@CERT@\"\n  key_file: \"@KEY@\"\n  handshake_first: sometimes\n}\n",
			[]string{`4:3: tls.handshake_first: sometimes is not a boolean, auto or a duration`}},
		{"bad allow_non_tls", "allow_non_tls: maybe\n",
			[]string{`1:1: allow_non_tls: `}},
		{"bad tls cipher name", "tls {\n  cert_file: \"@CERT@\"\n  key_file: \"@KEY@\"\n  cipher_suites: [TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256, TLS_NOPE]\n}\n",
			[]string{`4:58: tls.cipher_suites[1]: "TLS_NOPE" is not a cipher suite name`}},
		{"insecure tls cipher", "tls {\n  cert_file: \"@CERT@\"\n  key_file: \"@KEY@\"\n  cipher_suites: TLS_RSA_WITH_RC4_128_SHA\n}\n",
			[]string{`4:18: tls.cipher_suites: "TLS_RSA_WITH_RC4_128_SHA" is insecure`}},
		{"missing cert file", "tls {\n  cert_file: \"/nonexistent/cert.pem\"\n  key_file: \"@KEY@\"\n}\n",
			[]string{`2:3: tls.cert_file: open /nonexistent/cert.pem: no such file or directory`}},
		{"cert without key", "tls {\n  cert_file: \"@CERT@\"\n}\n",
			[]string{`1:1: tls: TLS needs both a certificate and its key`}},
		{"user without password and nkey", "authorization {\n  users: [\n    {user: alice, password: pw}\n    {user: bob}\n  ]\n}\n",
			[]string{`4:5: authorization.users[1]: user "bob" has neither a password nor an nkey`}},
		{"entry without user or nkey", "authorization {\n  users: [\n    {password: pw}\n  ]\n}\n",
			[]string{`3:5: authorization.users[0]: needs a user (with a password) or an nkey`}},
		{"duplicate user", "authorization {\n  users: [\n    {user: alice, password: a}\n    {user: alice, password: b}\n  ]\n}\n",
			[]string{`4:5: authorization.users[1]: duplicate user "alice" (first defined at authorization.users[0]`}},
		{"invalid nkey", "authorization {\n  users: [\n    {nkey: UNOTAKEY}\n  ]\n}\n",
			[]string{`3:6: authorization.users[0].nkey: "UNOTAKEY" is not a valid public user nkey`}},
		{"bad permission subject", "authorization {\n  users: [\n    {user: a, password: b, permissions: {publish: [\"ok.>\", \"bad..subject\"]}}\n  ]\n}\n",
			[]string{`3:60: authorization.users[0].permissions.publish[1]: "bad..subject" is not a valid subject`}},
		{"token with users", "authorization {\n  token: t\n  users: [ {user: a, password: b} ]\n}\n",
			[]string{`2:3: authorization.token: a token cannot be combined with a users list`}},
		{"unknown no_auth_user", "no_auth_user: zed\nauthorization { users: [ {user: a, password: b} ] }\n",
			[]string{`1:1: no_auth_user: "zed" is not a user or nkey`}},
		{"max_payload over max_pending", "max_pending: 1MB\nmax_payload: 2MB\n",
			[]string{`2:1: max_payload: 2097152 exceeds max_pending (1048576)`}},
		{"max_payload over the default max_pending", "max_payload: 100MB\n",
			[]string{`1:1: max_payload: 104857600 exceeds max_pending (67108864)`}},
		{"max_pending under the default max_payload", "max_pending: 1000\n",
			[]string{`1:1: max_pending: 1000 is less than max_payload (1048576)`}},
		// As nats-server: lame_duck_duration in a file is at least 30 s (opts.go), and the grace
		// period is strictly lower than the duration (validateOptions).
		{"lame duck grace over its duration", "lame_duck_duration: 40s\nlame_duck_grace_period: 50s\n",
			[]string{`2:1: lame_duck_grace_period: 50s is not less than lame_duck_duration (40s)`}},
		{"lame duck grace equal to its duration", "lame_duck_duration: \"30s\"\nlame_duck_grace_period: \"30s\"\n",
			[]string{`2:1: lame_duck_grace_period: 30s is not less than lame_duck_duration (30s)`}},
		{"lame duck duration under 30s", "lame_duck_duration: \"10s\"\n",
			[]string{`1:1: lame_duck_duration: invalid lame_duck_duration of 10s, minimum is 30 seconds`}},
		{"lame duck duration zero", "lame_duck_duration: 0s\n",
			[]string{`1:1: lame_duck_duration: invalid lame_duck_duration of 0s, minimum is 30 seconds`}},
		// The duration refused, the grace period is not also checked against the default
		// duration (2m), which the file did not write.
		{"lame duck duration under 30s with a long grace", "lame_duck_duration: 20s\nlame_duck_grace_period: \"3m\"\n",
			[]string{`1:1: lame_duck_duration: invalid lame_duck_duration of 20s, minimum is 30 seconds`}},
		{"https without tls", "https: 8443",
			[]string{`1:1: https: HTTPS monitoring needs a tls block`}},
		{"reserved block type", "cluster {\n  name: c1\n  port: \"six\"\n  pool_size: 3\n}\nstreaming {\n  store: paper\n  store_limits { max_age: soon }\n}\n",
			[]string{`3:3: cluster.port: expected an integer, got string "six"`,
				`7:3: streaming.store: "paper" is not a store type (memory, file or bolt)`,
				`8:18: streaming.store_limits.max_age: expected a duration`}},
		// A number or a boolean where a string is expected was taken as written; nats-server
		// and nats-streaming-server refuse it (server_name: 5, streaming { id: 5 }).
		{"number for a core string", "server_name: 5\nclient_advertise: 1.5\nno_auth_user: true\n",
			[]string{`1:1: server_name: expected a string, got integer 5 (quote it to give it as a string: "5")`,
				`2:1: client_advertise: expected a string, got float 1.5`,
				`3:1: no_auth_user: expected a string, got boolean true`}},
		{"number for a route string", "cluster {\n  name: 5\n}\n",
			[]string{`2:3: cluster.name: expected a string, got integer 5`}},
		{"number for a password", "authorization {\n  user: a\n  password: 0123\n}\n",
			[]string{`3:3: authorization.password: expected a string, got integer 0123 (quote it to give it as a string: "0123")`}},
		{"number in a list of strings", "authorization {\n  users: [ {user: a, password: b, permissions: {publish: [\"ok\", 5]}} ]\n}\n",
			[]string{`2:65: authorization.users[0].permissions.publish[1]: expected a string, got integer 5`}},
		{"number for a streaming string", "streaming {\n  id: 5\n  dir: 2MB\n}\n",
			[]string{`2:3: streaming.id: expected a string, got integer 5`,
				`3:3: streaming.dir: expected a string, got integer 2MB`}},
		{"number for a streaming cluster string", "streaming {\n  store: file\n  dir: d\n  cluster {\n    node_id: 1\n    peers: [a, 2]\n  }\n}\n",
			[]string{`5:5: streaming.cluster.node_id: expected a string, got integer 1`,
				`6:16: streaming.cluster.peers[1]: expected a string, got integer 2`,
				`6:5: streaming.cluster.peers: the peers are reached over the route mesh`}},
		{"syntax error from the parser", "port: 4222\nmax_payload: [1\n",
			[]string{`2:14: unterminated array`}},
		{"several errors at once", "port: \"x\"\nbogus: 1\ntls {\n  cert_file: \"/nonexistent/c.pem\"\n  key_file: \"/nonexistent/k.pem\"\n  curve_preferences: [P999]\n}\nauthorization { users: [ {user: u} ] }\n",
			[]string{
				`1:1: port: expected an integer, got string "x"`,
				`2:1: bogus: unknown configuration key`,
				`6:23: tls.curve_preferences[0]: "P999" is not a curve name`,
				`4:3: tls.cert_file: open /nonexistent/c.pem: no such file or directory`,
				`8:26: authorization.users[0]: user "u" has neither a password nor an nkey`,
			}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			text := strings.NewReplacer("@CERT@", pki.serverCert, "@KEY@", pki.serverKey).Replace(tc.text)
			path := writeFile(t, dir, strings.ReplaceAll(tc.name, " ", "_")+".conf", text)
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
			if !errors.As(err, &pe) {
				t.Errorf("no *conf.Error in %v", err)
			}
		})
	}
}

// The example of README.md's "Configuration file" section, with its paths pointed at
// certificates made here.
func readmeExample(t *testing.T, pki *testPKI) string {
	t.Helper()
	b, err := os.ReadFile("../../../README.md")
	check(t, err)
	readme := string(b)
	start := strings.Index(readme, "# starling.conf\n")
	if start < 0 {
		t.Fatal("README.md has no example starting with # starling.conf")
	}
	end := strings.Index(readme[start:], "```")
	if end < 0 {
		t.Fatal("README.md example is not closed")
	}
	text := readme[start : start+end]
	text = strings.ReplaceAll(text, "/etc/starling/tls/", pki.dir+"/")
	text = strings.ReplaceAll(text, "/var/run/starling.pid", filepath.Join(pki.dir, "starling.pid"))
	return text
}

func TestReadmeExampleConfig(t *testing.T) {
	dir := t.TempDir()
	pki := newTestPKI(t, dir)
	path := writeFile(t, dir, "starling.conf", readmeExample(t, pki))

	m := NewMain(&bytes.Buffer{}, &bytes.Buffer{})
	check(t, m.ParseFlags([]string{"-c", path}))
	c := m.cfg
	o := c.core
	if o.Auth == nil || !o.Auth.Required() || !o.Auth.NeedsNonce() {
		t.Fatalf("Auth %+v: want an Authenticator requiring auth, with nkey users", o.Auth)
	}
	if len(c.plain) != 0 {
		t.Errorf("plain-text passwords in the README example: %v", c.plain)
	}
	if o.TLS == nil || o.TLS.MinVersion != tls.VersionTLS12 || len(o.TLS.Certificates) != 1 ||
		!bytes.Equal(o.TLS.Certificates[0].Certificate[0], pki.serverDER) || o.TLS.ClientCAs == nil {
		t.Fatalf("TLS config %+v", o.TLS)
	}
	if o.TLS.ClientAuth != tls.NoClientCert || len(o.TLS.CipherSuites) != 2 || len(o.TLS.CurvePreferences) != 2 {
		t.Errorf("TLS client auth %v, ciphers %v, curves %v", o.TLS.ClientAuth, o.TLS.CipherSuites, o.TLS.CurvePreferences)
	}
	if o.TLSTimeout != 2*time.Second || o.AuthTimeout != 3*time.Second {
		t.Errorf("TLS timeout %v, auth timeout %v", o.TLSTimeout, o.AuthTimeout)
	}
	want := core.Options{Host: "0.0.0.0", Port: 4222, ServerName: "starling-1",
		MaxPayload: 1 << 20, MaxControlLine: 4 << 10, MaxConnections: 10000, MaxSubscriptions: 1000,
		MaxPending: 64 << 20, PingInterval: 2 * time.Minute, PingMax: 2, WriteDeadline: 10 * time.Second,
		LameDuckDuration: 2 * time.Minute, LameDuckGracePeriod: 10 * time.Second}
	got := o
	got.Auth, got.TLS, got.TLSTimeout, got.AuthTimeout = nil, nil, 0, 0
	if !reflect.DeepEqual(got, want) {
		t.Errorf("core options\n got %+v\nwant %+v", got, want)
	}
	if c.httpPort != 8222 || c.pidFile != filepath.Join(dir, "starling.pid") {
		t.Errorf("http port %d, pid file %q", c.httpPort, c.pidFile)
	}
	st := c.streaming
	if st.off || st.opts.ClusterID != "test-cluster" || st.storeType() != "memory" || st.limits.Global.MaxBytes != 1<<30 ||
		st.limits.Global.MaxAge != 24*time.Hour || st.limits.Channels["orders.>"].MaxMsgs != 10000 ||
		st.limits.Channels["orders.audit"].MaxAge >= 0 || len(st.warnings) != 0 {
		t.Errorf("streaming %+v", st)
	}
	if audit := st.limits.For("orders.audit"); audit.MaxMsgs != 10000 || audit.MaxAge != 0 {
		t.Errorf("orders.audit limits %+v", audit)
	}

	// Flags win over the file; what they do not name keeps the file's value.
	m = NewMain(&bytes.Buffer{}, &bytes.Buffer{})
	check(t, m.ParseFlags([]string{"-c", path, "--max_payload", "2KB", "-p", "5222", "-m", "0", "--server_name", "flagged"}))
	o = m.cfg.core
	if o.MaxPayload != 2048 || o.Port != 5222 || o.ServerName != "flagged" || m.cfg.httpPort != 0 ||
		o.MaxConnections != 10000 || o.Host != "0.0.0.0" || o.Auth == nil {
		t.Errorf("flags over file: %+v http %d", o, m.cfg.httpPort)
	}
}

// A quoted number is a string where one is expected, and so is a bare duration (nats-server's
// parser has none: server_name: 5s starts nats-server named "5s").
func TestStringKeysTakeQuotedNumbers(t *testing.T) {
	path := writeFile(t, t.TempDir(), "q.conf", "server_name: 5s\nauthorization { user: \"1\", password: \"0123\" }\nstreaming { id: \"5\" }\n")
	m := NewMain(&bytes.Buffer{}, &bytes.Buffer{})
	check(t, m.ParseFlags([]string{"-c", path}))
	c := m.cfg
	if c.core.ServerName != "5s" || c.auth.user != "1" || c.auth.pass != "0123" || c.streaming.opts.ClusterID != "5" {
		t.Errorf("server_name %q user %q password %q streaming.id %q", c.core.ServerName, c.auth.user, c.auth.pass, c.streaming.opts.ClusterID)
	}
}

func TestFlagsOverrideFile(t *testing.T) {
	dir := t.TempDir()
	pki := newTestPKI(t, dir)
	path := writeFile(t, dir, "a.conf", `
listen: "127.0.0.2:4333"
max_payload: 2KB
debug: true
authorization { user: fileuser, password: filepw }
tls { cert_file: "/nonexistent/c.pem", key_file: "/nonexistent/k.pem" }
`)
	m := NewMain(&bytes.Buffer{}, &bytes.Buffer{})
	check(t, m.ParseFlags([]string{"-c", path, "--max_payload", "4KB", "-a", "127.0.0.1",
		"--user", "flaguser", "--pass", "flagpw", "--tlscert", pki.serverCert, "--tlskey", pki.serverKey, "--tlscacert", pki.caFile, "--tlsverify"}))
	c := m.cfg
	if c.core.MaxPayload != 4096 || c.core.Host != "127.0.0.1" || c.core.Port != 4333 || !c.debug {
		t.Errorf("merged: %+v debug %v", c.core, c.debug)
	}
	if c.auth.user != "flaguser" || c.auth.pass != "flagpw" || len(c.plain) != 1 || c.plain[0] != "flaguser" {
		t.Errorf("auth %+v plain %v", c.auth, c.plain)
	}
	if c.core.TLS == nil || c.core.TLS.ClientAuth != tls.RequireAndVerifyClientCert || c.core.TLS.ClientCAs == nil {
		t.Errorf("TLS %+v", c.core.TLS)
	}

	// A flag's own problem names the flag.
	m = NewMain(&bytes.Buffer{}, &bytes.Buffer{})
	err := m.ParseFlags([]string{"--tlscert", "/nonexistent/c.pem", "--tlskey", pki.serverKey})
	if err == nil || !strings.Contains(err.Error(), "flag --tlscert: open /nonexistent/c.pem") {
		t.Errorf("got %v", err)
	}
	err = m.ParseFlags([]string{"--pass", "x"})
	if err == nil || !strings.Contains(err.Error(), "flag --pass: a password needs a user name") {
		t.Errorf("got %v", err)
	}
	err = m.ParseFlags([]string{"--tls"})
	if err == nil || !strings.Contains(err.Error(), "flag --tls: TLS needs both a certificate and its key") {
		t.Errorf("got %v", err)
	}
	err = m.ParseFlags([]string{"--max_payload", "2MB", "--max_pending", "1MB"})
	if err == nil || !strings.Contains(err.Error(), "flag --max_payload: 2097152 exceeds max_pending (1048576)") {
		t.Errorf("got %v", err)
	}
	err = m.ParseFlags([]string{"--lame_duck_grace_period", "3m"})
	if err == nil || !strings.Contains(err.Error(), "flag --lame_duck_grace_period: 3m0s is not less than lame_duck_duration (2m0s)") {
		t.Errorf("got %v", err)
	}
	// The flag takes a duration under the file's 30 s minimum, but not one the default grace
	// period (10s) is not strictly lower than: the problem says which flag to set too.
	err = m.ParseFlags([]string{"--lame_duck_duration", "10s"})
	if err == nil || !strings.Contains(err.Error(), "flag --lame_duck_duration: 10s is not greater than the default lame_duck_grace_period (10s): set --lame_duck_grace_period lower too") {
		t.Errorf("got %v", err)
	}
	if err := m.ParseFlags([]string{"--lame_duck_duration", "10s", "--lame_duck_grace_period", "5s"}); err != nil {
		t.Errorf("a 10s drain with a 5s grace period: %v", err)
	}
	// The flag given wins over the file: the problem names it, not the file's key.
	err = m.ParseFlags([]string{"-c", writeFile(t, dir, "pending.conf", "max_pending: 1MB\n"), "--max_payload", "2MB"})
	if err == nil || !strings.Contains(err.Error(), "flag --max_payload: 2097152 exceeds max_pending (1048576)") {
		t.Errorf("got %v", err)
	}
}

// Keys used only as $variables are not unknown keys; include works; aliases and the
// reserved blocks are accepted and kept.
func TestConfigVariablesIncludesAndReserved(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, dir, "limits.conf", "max_conn: 77\nmax_subs: 5\n")
	path := writeFile(t, dir, "main.conf", `
PORT = 4555
READONLY = { publish: { allow: [] }, subscribe: { allow: "public.>", deny: ["public.secret", "public.work workers"] } }
include limits.conf
net: 127.0.0.1
port: $PORT
monitor_port: "127.0.0.1:8999"
authorization {
  timeout: 0.5
  users: [
    {username: reader, pass: "", permission: $READONLY}
    {user: writer, password: w, permissions: { pub: "x.>", allow_responses: { max: -1, expires: "1m" } }}
  ]
}
no_auth_user: reader
cluster {
  name: c1
  listen: "0.0.0.0:6222"
  routes: ["nats-route://a:6222", "nats-route://b:6222"]
  authorization { user: route, password: pw, timeout: 2 }
  no_advertise: true
  pool_size: 3
  connect_retries: 5
}
streaming {
  cluster_id: test-cluster
  store: file
  store_limits { max_channels: 10, max_bytes: 1GB, channels { "orders.>": { max_msgs: 100 } } }
  cluster { node_id: a, peers: [b, c] }
  file_options { buffer_size: 4MB, sync: true }
}
`)
	m := NewMain(&bytes.Buffer{}, &bytes.Buffer{})
	check(t, m.ParseFlags([]string{"-c", path}))
	c := m.cfg
	if c.core.Port != 4555 || c.core.Host != "127.0.0.1" || c.core.MaxConnections != 77 || c.core.MaxSubscriptions != 5 {
		t.Errorf("core %+v", c.core)
	}
	if c.httpHost != "127.0.0.1" || c.httpPort != 8999 || c.core.AuthTimeout != 500*time.Millisecond {
		t.Errorf("http %s:%d auth timeout %v", c.httpHost, c.httpPort, c.core.AuthTimeout)
	}
	if c.core.Auth == nil || c.core.Auth.Required() {
		t.Errorf("no_auth_user: auth %+v", c.core.Auth)
	}
	reader := c.auth.users[0].user.Permissions
	if reader.Publish != nil || reader.Subscribe == nil || len(reader.Subscribe.Allow) != 1 || len(reader.Subscribe.Deny) != 2 {
		t.Errorf("reader permissions %+v", reader)
	}
	writer := c.auth.users[1].user.Permissions
	if writer.Publish.Allow[0] != "x.>" || writer.AllowResponses.MaxMsgs != -1 || writer.AllowResponses.Expires != time.Minute {
		t.Errorf("writer permissions %+v %+v", writer.Publish, writer.AllowResponses)
	}
	if c.cluster["name"] != "c1" || c.cluster["listen"] != "0.0.0.0:6222" || c.cluster["pool_size"] != 3 ||
		len(c.cluster["routes"].([]string)) != 2 {
		t.Errorf("cluster %+v", c.cluster)
	}
	if co := c.core.Cluster; co == nil || co.Name != "c1" || co.Port != 6222 || len(co.Routes) != 2 || co.Routes[1].Host != "b:6222" ||
		co.Username != "route" || co.Password != "pw" || co.AuthTimeout != 2*time.Second || !co.NoAdvertise {
		t.Errorf("core cluster options %+v", c.core.Cluster)
	}
	st := c.streaming
	if st.opts.ClusterID != "test-cluster" || st.storeType() != "file" || st.limits.Global.MaxBytes != 1<<30 ||
		st.limits.Global.MaxChannels != 10 || st.limits.Channels["orders.>"].MaxMsgs != 100 {
		t.Errorf("streaming %+v", st)
	}
	if cl := st.cluster; !cl.on || cl.nodeID != "a" || !slices.Equal(cl.peers, []string{"b", "c"}) || !cl.sync {
		t.Errorf("streaming cluster %+v", cl)
	}
	if st.file.bufferSize != 4<<20 || !st.file.sync {
		t.Errorf("file_options %+v", st.file)
	}
}

func TestMissingConfigFile(t *testing.T) {
	m := NewMain(&bytes.Buffer{}, &bytes.Buffer{})
	err := m.ParseFlags([]string{"-c", filepath.Join(t.TempDir(), "none.conf")})
	var ce *ConfigError
	if !errors.As(err, &ce) || !strings.Contains(err.Error(), "flag -c: ") || !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("got %v", err)
	}
}

// The cluster block's keys that nats-server has and routes here do not use are accepted,
// and each is a warning naming file:line:col, at start and with -t.
func TestClusterUnusedKeysWarn(t *testing.T) {
	dir := t.TempDir()
	path := writeFile(t, dir, "c.conf", `cluster {
  listen: "127.0.0.1:-1"
  pool_size: 3
  connect_retries: 5
  ping_interval: "1m"
  ping_max: 4
}
`)
	want := []string{
		path + ":3:3: cluster.pool_size is not used",
		path + ":4:3: cluster.connect_retries is not used",
		path + ":5:3: cluster.ping_interval is not used",
		path + ":6:3: cluster.ping_max is not used",
	}
	c := parse(t, "-c", path)
	if len(c.warnings) != len(want) {
		t.Fatalf("warnings %q", c.warnings)
	}
	for i, w := range want {
		if !strings.HasPrefix(c.warnings[i], w) {
			t.Errorf("warning %q, want %q…", c.warnings[i], w)
		}
	}
	var out, errOut bytes.Buffer
	if code := Execute(context.Background(), []string{"-c", path, "-t"}, &out, &errOut); code != 0 ||
		!strings.Contains(errOut.String(), "warning: "+want[0]) {
		t.Errorf("-t: code %d, stderr %q", code, errOut.String())
	}
	logs := &syncBuffer{}
	m := NewMain(io.Discard, logs)
	check(t, m.ParseFlags([]string{"-c", path, "-a", "127.0.0.1", "-p", "-1", "--no_streaming"}))
	check(t, m.Start())
	defer m.Close()
	if !strings.Contains(logs.String(), "level=WARN msg=\""+want[3]) {
		t.Errorf("not logged at start:\n%s", logs.String())
	}
	if len(parse(t).warnings) != 0 {
		t.Error("warnings without a cluster block")
	}
}

// An error about a key inside the cluster block names that key's line, not the block's.
func TestClusterErrorsNameTheKeysLine(t *testing.T) {
	dir := t.TempDir()
	path := writeFile(t, dir, "c.conf", `port: -1
cluster {
  listen: "127.0.0.1:-1"
  routes: [
    "nats://127.0.0.1:1"
    "not a url"
  ]
  authorization {
    user: r
    token: x
  }
}
`)
	var out, errOut bytes.Buffer
	if code := Execute(context.Background(), []string{"-c", path, "-t"}, &out, &errOut); code != 1 {
		t.Fatalf("-t: code %d, stderr %q", code, errOut.String())
	}
	for _, want := range []string{
		path + `:4:3: cluster.routes: route "not a url"`,
		path + ":10:5: cluster.authorization.token: routes authenticate",
	} {
		if !strings.Contains(errOut.String(), want) {
			t.Errorf("stderr %q, want %q…", errOut.String(), want)
		}
	}
}

// A ports_file_dir that does not exist is a configuration error that -t reports, naming
// the flag or file:line:col; it passed -t and stopped the server at start.
func TestPortsFileDirMustExist(t *testing.T) {
	dir := t.TempDir()
	missing := filepath.Join(dir, "nope")
	file := writeFile(t, dir, "p.conf", "port: -1\nports_file_dir: \""+missing+"\"\n")
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"-p", "-1", "--ports_file_dir", missing, "-t"}, "flag --ports_file_dir: stat " + missing},
		{[]string{"-c", file, "-t"}, file + ":2:1: ports_file_dir: stat " + missing},
		{[]string{"-p", "-1", "--ports_file_dir", file, "-t"}, "flag --ports_file_dir: " + file + " is not a directory"},
	} {
		var out, errOut bytes.Buffer
		if code := Execute(context.Background(), tc.args, &out, &errOut); code != 1 || !strings.Contains(errOut.String(), tc.want) {
			t.Errorf("%v: code %d, stderr %q, want %q", tc.args, code, errOut.String(), tc.want)
		}
	}
	var out, errOut bytes.Buffer
	if code := Execute(context.Background(), []string{"-p", "-1", "--ports_file_dir", dir, "-t"}, &out, &errOut); code != 0 {
		t.Fatalf("an existing directory: code %d, %s", code, errOut.String())
	}
}

// An explicit max_connections of 0 accepts no client connection, as nats-server's (its
// /varz shows -1); before, 0 meant the default of 65536. Unset keeps the default; the flag
// reads the same way, and a negative flag value is refused naming the flag.
func TestMaxConnectionsZeroMeansNone(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct {
		name string
		args []string
		want int
	}{
		{"file 0", []string{"-c", writeFile(t, dir, "zero.conf", "max_connections: 0\n")}, core.NoClientConnections},
		{"file alias 0", []string{"-c", writeFile(t, dir, "alias.conf", "max_conn: 0\n")}, core.NoClientConnections},
		{"file 5", []string{"-c", writeFile(t, dir, "five.conf", "max_connections: 5\n")}, 5},
		{"flag 0", []string{"--max_connections", "0"}, core.NoClientConnections},
		{"flag 7", []string{"--max_connections", "7"}, 7},
		{"unset", nil, 0},
	} {
		m := NewMain(&bytes.Buffer{}, &bytes.Buffer{})
		if err := m.ParseFlags(tc.args); err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		if got := m.cfg.core.MaxConnections; got != tc.want {
			t.Errorf("%s: MaxConnections %d, want %d", tc.name, got, tc.want)
		}
	}
	m := NewMain(&bytes.Buffer{}, &bytes.Buffer{})
	if err := m.ParseFlags([]string{"--max_connections", "-2"}); err == nil || !strings.Contains(err.Error(), "max_connections") {
		t.Errorf("a negative flag value: %v", err)
	}
}

// A negative max_subscriptions is unlimited, as nats-server takes it (its /varz shows -1);
// before, the file was refused as out of range.
func TestMaxSubscriptionsNegativeIsUnlimited(t *testing.T) {
	dir := t.TempDir()
	m := NewMain(&bytes.Buffer{}, &bytes.Buffer{})
	if err := m.ParseFlags([]string{"-c", writeFile(t, dir, "subs.conf", "max_subscriptions: -1\n")}); err != nil {
		t.Fatal(err)
	}
	if got := m.cfg.core.MaxSubscriptions; got != -1 {
		t.Errorf("MaxSubscriptions %d, want -1", got)
	}
}

// ping_interval and write_deadline take a whole number as seconds, as nats-server does, after
// its size suffix: a bare 2m is 2000000 seconds there and here (quote "2m" for two minutes).
// The timeouts take any number of seconds.
func TestDurationsAsNatsServerReadsThem(t *testing.T) {
	dir := t.TempDir()
	path := writeFile(t, dir, "d.conf", "ping_interval: 45\nwrite_deadline: 3\nauthorization { token: t, timeout: 0.5 }\n")
	m := NewMain(&bytes.Buffer{}, &bytes.Buffer{})
	check(t, m.ParseFlags([]string{"-c", path}))
	o := m.cfg.core
	if o.PingInterval != 45*time.Second || o.WriteDeadline != 3*time.Second || o.AuthTimeout != 500*time.Millisecond {
		t.Errorf("ping_interval %v, write_deadline %v, auth timeout %v", o.PingInterval, o.WriteDeadline, o.AuthTimeout)
	}
	// nats-server takes a bare 2m as 2000000 seconds; here it is an error that says to quote it.
	path = writeFile(t, dir, "m.conf", "ping_interval: 2m\n")
	err := NewMain(&bytes.Buffer{}, &bytes.Buffer{}).ParseFlags([]string{"-c", path})
	if err == nil || !strings.Contains(err.Error(), `m.conf:1:1: ping_interval: expected a duration`) || !strings.Contains(err.Error(), `write "2m"`) {
		t.Errorf("bare 2m ping_interval: %v", err)
	}
}

// Two spellings of a key are one key given twice: the later wins. nats-server keeps them
// apart and applies both in random order; reading both here made two accounts blocks define
// account A twice, an error nats-server does not give.
func TestCaseVariantKeysLastWins(t *testing.T) {
	dir := t.TempDir()
	path := writeFile(t, dir, "c.conf", "Accounts: { A { users: [{user: u, password: p}] } }\n"+
		"accounts { A: { users: [{user: u1, password: p1}] } }\nMax_Payload: 1000\nmax_payload: 2000\n")
	m := NewMain(&bytes.Buffer{}, &bytes.Buffer{})
	check(t, m.ParseFlags([]string{"-c", path}))
	if got := m.cfg.core.MaxPayload; got != 2000 {
		t.Errorf("max_payload %d, want the later 2000", got)
	}
	if n := len(m.cfg.auth.users); n != 1 || m.cfg.auth.users[0].user.Username != "u1" {
		t.Errorf("users %+v, want only u1 of the later accounts block", m.cfg.auth.users)
	}
}

// Channel names are case-sensitive: two per-channel blocks whose names differ only in case
// are two channels' limits, as nats-streaming-server keeps them. Before, the key folding of
// option names dropped the first of them without a word.
func TestChannelLimitsKeepNameCase(t *testing.T) {
	dir := t.TempDir()
	path := writeFile(t, dir, "c.conf", "streaming {\n  store_limits {\n    channels {\n"+
		"      Foo: { max_msgs: 10 }\n      foo: { max_msgs: 20 }\n      \"Bar.*\": { max_msgs: 30 }\n      \"bar.*\": { max_msgs: 40 }\n    }\n  }\n}\n")
	m := NewMain(&bytes.Buffer{}, &bytes.Buffer{})
	check(t, m.ParseFlags([]string{"-c", path}))
	ch := m.cfg.streaming.limits.Channels
	if len(ch) != 4 || ch["Foo"].MaxMsgs != 10 || ch["foo"].MaxMsgs != 20 || ch["Bar.*"].MaxMsgs != 30 || ch["bar.*"].MaxMsgs != 40 {
		t.Errorf("channel limits %+v", ch)
	}
}
