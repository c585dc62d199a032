package tests

import (
	"crypto/tls"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nkeys"
	"golang.org/x/crypto/bcrypt"

	"github.com/starling-io/starling/cmd/starling/app"
)

// writeConfig writes a config file and returns its path.
func writeConfig(t *testing.T, dir, text string) string {
	t.Helper()
	path := filepath.Join(dir, "starling.conf")
	must(t, os.WriteFile(path, []byte(text), 0o600))
	return path
}

func bcryptHash(t *testing.T, pw string) string {
	t.Helper()
	h, err := bcrypt.GenerateFromPassword([]byte(pw), bcrypt.MinCost)
	must(t, err)
	return string(h)
}

// expectAuthError asserts that connecting fails with nats.go's authorization error.
func expectAuthError(t *testing.T, m *app.Main, opts ...nats.Option) {
	t.Helper()
	nc, err := nats.Connect(clientURL(m), append(opts, nats.NoReconnect())...)
	if err == nil {
		nc.Close()
		t.Fatal("connected with wrong credentials")
	}
	if !errors.Is(err, nats.ErrAuthorization) && !strings.Contains(strings.ToLower(err.Error()), "authorization violation") {
		t.Fatalf("want authorization violation, got %v", err)
	}
}

func TestAuthUserPasswordAndToken(t *testing.T) {
	dir := t.TempDir()
	conf := writeConfig(t, dir, fmt.Sprintf(`
authorization {
  users = [
    {user: alice, password: %q}
    {user: bob, password: bobpw}
  ]
}`, bcryptHash(t, "alicepw")))
	m := startServer(t, "-c", conf)
	connect(t, m, nats.UserInfo("alice", "alicepw"))
	connect(t, m, nats.UserInfo("bob", "bobpw"))
	expectAuthError(t, m, nats.UserInfo("alice", "wrong"))
	expectAuthError(t, m, nats.UserInfo("mallory", "x"))
	expectAuthError(t, m)

	tok := startServer(t, "--auth", "s3cr3t")
	connect(t, tok, nats.Token("s3cr3t"))
	expectAuthError(t, tok, nats.Token("guess"))

	single := startServer(t, "--user", "u", "--pass", "p")
	connect(t, single, nats.UserInfo("u", "p"))
	expectAuthError(t, single, nats.UserInfo("u", "q"))
}

func TestAuthNkeys(t *testing.T) {
	kp, err := nkeys.CreateUser()
	must(t, err)
	pub, _ := kp.PublicKey()
	seed, _ := kp.Seed()
	other, _ := nkeys.CreateUser()
	dir := t.TempDir()
	seedFile := filepath.Join(dir, "user.nk")
	must(t, os.WriteFile(seedFile, seed, 0o600))
	m := startServer(t, "-c", writeConfig(t, dir, fmt.Sprintf("authorization { users = [ {nkey: %s} ] }", pub)))

	// From a seed file.
	opt, err := nats.NkeyOptionFromSeed(seedFile)
	must(t, err)
	connect(t, m, opt)
	// With a signature callback.
	connect(t, m, nats.Nkey(pub, func(nonce []byte) ([]byte, error) { return kp.Sign(nonce) }))
	// Signed by the wrong key.
	expectAuthError(t, m, nats.Nkey(pub, func(nonce []byte) ([]byte, error) { return other.Sign(nonce) }))
}

func TestTLS(t *testing.T) {
	pki := newPKI(t)
	dir := t.TempDir()
	plain := startServer(t, "-c", writeConfig(t, dir, fmt.Sprintf(`tls { cert_file: %q, key_file: %q }`, pki.serverCert, pki.serverKey)))
	nc := connect(t, plain, nats.RootCAs(pki.caFile))
	if st, err := nc.TLSConnectionState(); err != nil || st.Version < tls.VersionTLS12 {
		t.Fatalf("TLS state %v %v", st.Version, err)
	}
	ch := make(chan *nats.Msg, 1)
	_, err := nc.ChanSubscribe("tls.x", ch)
	must(t, err)
	must(t, nc.Publish("tls.x", []byte("secret")))
	recvN(t, ch, 1, 2*time.Second)
	// A client that does not trust the CA fails.
	if c, err := nats.Connect(clientURL(plain), nats.NoReconnect()); err == nil {
		c.Close()
		t.Fatal("connected without trusting the server certificate")
	}

	// With client verification: a certificate signed by the CA is required.
	vdir := t.TempDir()
	verify := startServer(t, "-c", writeConfig(t, vdir, fmt.Sprintf(`tls { cert_file: %q, key_file: %q, ca_file: %q, verify: true }`,
		pki.serverCert, pki.serverKey, pki.caFile)))
	connect(t, verify, nats.RootCAs(pki.caFile), nats.ClientCert(pki.clientCert, pki.clientKey))
	if c, err := nats.Connect(clientURL(verify), nats.RootCAs(pki.caFile), nats.NoReconnect()); err == nil {
		c.Close()
		t.Fatal("connected without a client certificate")
	}

	// verify_and_map: the certificate's e-mail names the user.
	mdir := t.TempDir()
	mapped := startServer(t, "-c", writeConfig(t, mdir, fmt.Sprintf(`
tls { cert_file: %q, key_file: %q, ca_file: %q, verify_and_map: true }
authorization { users = [ {user: "carol@example.com", permissions: { publish: ["carol.>"] } } ] }`,
		pki.serverCert, pki.serverKey, pki.caFile)))
	connect(t, mapped, nats.RootCAs(pki.caFile), nats.ClientCert(pki.clientCert, pki.clientKey))
}

// Permission violations reach nats.go's error handler while the connection lives on.
func TestPermissionViolationsKeepConnection(t *testing.T) {
	dir := t.TempDir()
	m := startServer(t, "-c", writeConfig(t, dir, `
authorization { users = [
  {user: limited, password: pw, permissions: {
     publish: { allow: ["ok.>", "_INBOX.>"], deny: ["ok.secret"] }
     subscribe: { allow: ["ok.>", "_INBOX.>"] }
  }}
]}`))
	errs := make(chan error, 8)
	nc := connect(t, m, nats.UserInfo("limited", "pw"), nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) { errs <- err }))
	ch := make(chan *nats.Msg, 4)
	_, err := nc.ChanSubscribe("ok.>", ch)
	must(t, err)
	must(t, nc.Publish("ok.secret", []byte("no")))
	must(t, nc.Publish("forbidden", []byte("no")))
	_, _ = nc.SubscribeSync("nope.x")
	for range 3 {
		select {
		case err := <-errs:
			if !errors.Is(err, nats.ErrPermissionViolation) {
				t.Fatalf("want permissions violation, got %v", err)
			}
		case <-time.After(2 * time.Second):
			t.Fatal("no permission error reported")
		}
	}
	must(t, nc.Publish("ok.fine", []byte("yes")))
	if got := recvN(t, ch, 1, 2*time.Second)[0]; got.Subject != "ok.fine" {
		t.Fatalf("got %s", got.Subject)
	}
	if !nc.IsConnected() {
		t.Fatal("connection closed by a permission violation")
	}
}

// allow_responses lets a responder with no publish rights answer requests.
func TestAllowResponses(t *testing.T) {
	dir := t.TempDir()
	m := startServer(t, "-c", writeConfig(t, dir, `
authorization { users = [
  {user: svc, password: pw, permissions: { subscribe: ["svc.>"], allow_responses: true }}
  {user: client, password: pw}
]}`))
	errs := make(chan error, 4)
	svc := connect(t, m, nats.UserInfo("svc", "pw"), nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) { errs <- err }))
	_, err := svc.Subscribe("svc.echo", func(msg *nats.Msg) {
		_ = msg.Respond(msg.Data)
		_ = msg.Respond(msg.Data) // a second answer exceeds max (1) and is refused
	})
	must(t, err)
	must(t, svc.Flush())
	cl := connect(t, m, nats.UserInfo("client", "pw"))
	resp, err := cl.Request("svc.echo", []byte("ping"), 2*time.Second)
	must(t, err)
	if string(resp.Data) != "ping" {
		t.Fatalf("got %q", resp.Data)
	}
	select {
	case err := <-errs:
		if !errors.Is(err, nats.ErrPermissionViolation) {
			t.Fatalf("second response: %v", err)
		}
	case <-time.After(2 * time.Second):
		t.Fatal("second response was not refused")
	}
	// And svc cannot publish anywhere else.
	must(t, svc.Publish("elsewhere", nil))
	select {
	case err := <-errs:
		if !errors.Is(err, nats.ErrPermissionViolation) {
			t.Fatalf("publish elsewhere: %v", err)
		}
	case <-time.After(2 * time.Second):
		t.Fatal("publish elsewhere not refused")
	}
}

// Reload adds a user, removes a user (their connection drops) and tightens a permission,
// while a publisher on another user keeps running with no message lost.
func TestReloadWhilePublishing(t *testing.T) {
	dir := t.TempDir()
	base := `authorization { users = [
  {user: pub, password: pw}
  {user: sub, password: pw}
  %s
]}`
	conf := writeConfig(t, dir, fmt.Sprintf(base, `{user: bob, password: pw}
  {user: alice, password: pw, permissions: { publish: [">"] }}`))
	m := startServer(t, "-c", conf)

	sub := connect(t, m, nats.UserInfo("sub", "pw"))
	var got atomic.Int64
	_, err := sub.Subscribe("stream", func(*nats.Msg) { got.Add(1) })
	must(t, err)
	must(t, sub.Flush())
	bobClosed := make(chan struct{})
	bob := connect(t, m, nats.UserInfo("bob", "pw"), nats.NoReconnect(), nats.ClosedHandler(func(*nats.Conn) { close(bobClosed) }))
	_ = bob
	aliceErrs := make(chan error, 4)
	alice := connect(t, m, nats.UserInfo("alice", "pw"), nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) { aliceErrs <- err }))

	pub := connect(t, m, nats.UserInfo("pub", "pw"))
	stop := make(chan struct{})
	var sent atomic.Int64
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			select {
			case <-stop:
				_ = pub.Flush()
				return
			default:
			}
			if pub.Publish("stream", []byte("x")) == nil {
				sent.Add(1)
			}
			if sent.Load()%100 == 0 {
				time.Sleep(time.Millisecond)
			}
		}
	}()
	waitFor(t, 5*time.Second, func() error {
		if got.Load() < 500 {
			return fmt.Errorf("only %d received so far", got.Load())
		}
		return nil
	})

	// New file: bob removed, dave added, alice may only publish to "alice.>".
	must(t, os.WriteFile(conf, []byte(fmt.Sprintf(base, `{user: dave, password: pw}
  {user: alice, password: pw, permissions: { publish: ["alice.>"] }}`)), 0o600))
	must(t, m.Reload())

	select {
	case <-bobClosed:
	case <-time.After(5 * time.Second):
		t.Fatal("bob's connection survived his removal")
	}
	connect(t, m, nats.UserInfo("dave", "pw"))
	must(t, alice.Publish("general", nil))
	select {
	case err := <-aliceErrs:
		if !errors.Is(err, nats.ErrPermissionViolation) {
			t.Fatalf("alice: %v", err)
		}
	case <-time.After(2 * time.Second):
		t.Fatal("alice's tightened permission not applied")
	}
	if !alice.IsConnected() {
		t.Fatal("alice was disconnected by the reload")
	}

	time.Sleep(100 * time.Millisecond) // keep publishing across the reload for a moment
	close(stop)
	<-done
	must(t, pub.Flush())
	waitFor(t, 10*time.Second, func() error {
		if got.Load() != sent.Load() {
			return fmt.Errorf("received %d of %d", got.Load(), sent.Load())
		}
		return nil
	})
	if !pub.IsConnected() || pub.Stats().Reconnects != 0 || sub.Stats().Reconnects != 0 {
		t.Fatal("publisher or subscriber reconnected during the reload")
	}
}

// A reload that revokes a subscription tells the client which one, as nats-server does:
// the -ERR carries the sid after the subject (and queue).
func TestReloadRevokedSubscriptionNamesSid(t *testing.T) {
	dir := t.TempDir()
	base := `authorization { users = [ {user: u, password: pw, permissions: { subscribe: { allow: [%s] } }} ] }`
	conf := writeConfig(t, dir, fmt.Sprintf(base, `"keep", "rl.>", "rq.> g1"`))
	m := startServer(t, "-c", conf)
	errs := make(chan error, 4)
	nc := connect(t, m, nats.UserInfo("u", "pw"), nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) { errs <- err }))
	_, err := nc.SubscribeSync("keep")
	must(t, err)
	_, err = nc.SubscribeSync("rl.>") // sid 2
	must(t, err)
	_, err = nc.QueueSubscribeSync("rq.x", "g1") // sid 3
	must(t, err)
	must(t, nc.Flush())

	writeConfig(t, dir, fmt.Sprintf(base, `"keep"`))
	must(t, m.Reload())
	want := []string{
		`Permissions Violation for Subscription to "rl.>" (sid "2")`,
		`Permissions Violation for Subscription to "rq.x" using queue "g1" (sid "3")`,
	}
	var got []string
	for range want {
		select {
		case err := <-errs:
			got = append(got, err.Error())
		case <-time.After(2 * time.Second):
			t.Fatalf("got %q, want errors for %q", got, want)
		}
	}
	slices.Sort(got)
	for i, w := range want {
		if !strings.HasSuffix(got[i], w) {
			t.Fatalf("error %d is %q, want it to end with %q", i, got[i], w)
		}
	}
}
