package core_test

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nkeys"
	"golang.org/x/crypto/bcrypt"

	"github.com/starling-io/starling/core"
	"github.com/starling-io/starling/core/auth"
)

// aliceBob is the spec's appendix A4 configuration: alice (bcrypt) with permissions, bob
// plain.
func aliceBob(t *testing.T) *auth.Authenticator {
	t.Helper()
	hash, err := bcrypt.GenerateFromPassword([]byte("password"), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	a, err := auth.New(auth.Options{Users: []*auth.User{
		{Username: "alice", Password: string(hash), Permissions: &auth.Permissions{
			Publish:   &auth.SubjectPermission{Allow: []string{"pub.>"}, Deny: []string{"pub.secret"}},
			Subscribe: &auth.SubjectPermission{Allow: []string{"sub.*", "q.foo grp"}},
		}},
		{Username: "bob", Password: "bobpw"},
	}})
	if err != nil {
		t.Fatal(err)
	}
	return a
}

func TestTranscriptAuthAndPermissions(t *testing.T) {
	a := aliceBob(t)
	// No CONNECT in time. A server of its own: with a timeout this short, a bcrypt check
	// under the race detector on a loaded machine can outlast it (the cases below).
	quick := startCore(t, func(o *core.Options) {
		o.Auth = a
		o.AuthTimeout = 300 * time.Millisecond
	})
	c, _ := dial(t, quick)
	c.expect("-ERR 'Authentication Timeout'\r\n")
	c.expectClosed()

	s := startCore(t, func(o *core.Options) { o.Auth = a })
	// Anything but CONNECT first: violation.
	c, info := dial(t, s)
	if info["auth_required"] != true {
		t.Fatalf("INFO lacks auth_required: %v", info)
	}
	c.send("PING\r\n")
	c.expect("-ERR 'Authorization Violation'\r\n")
	c.expectClosed()

	// Wrong password.
	c, _ = dial(t, s)
	c.send(`CONNECT {"verbose":false,"user":"alice","pass":"wrong"}` + "\r\nPING\r\n")
	c.expect("-ERR 'Authorization Violation'\r\n")
	c.expectClosed()

	// Right password; permissions apply and the connection stays open.
	c, _ = dial(t, s)
	c.send(`CONNECT {"verbose":false,"user":"alice","pass":"password"}` + "\r\nPING\r\n")
	c.expect("PONG\r\n")
	c.send("PUB pub.secret 1\r\nx\r\nPUB other 1\r\nx\r\nSUB sub.bad.x 1\r\nSUB q.foo 2\r\nSUB q.foo grp 3\r\nSUB q.foo other 4\r\nSUB sub.x 5\r\nSUB sub.* 6\r\nPUB pub.a 1\r\nx\r\nPING\r\n")
	c.expect("-ERR 'Permissions Violation for Publish to \"pub.secret\"'\r\n")
	c.expect("-ERR 'Permissions Violation for Publish to \"other\"'\r\n")
	c.expect("-ERR 'Permissions Violation for Subscription to \"sub.bad.x\"'\r\n")
	c.expect("-ERR 'Permissions Violation for Subscription to \"q.foo\"'\r\n")
	c.expect("-ERR 'Permissions Violation for Subscription to \"q.foo\" using queue \"other\"'\r\n")
	c.expect("PONG\r\n")
	if n := s.NumSubscriptions(); n != 3 {
		t.Fatalf("%d subscriptions, want 3 (q.foo grp, sub.x, sub.*)", n)
	}

	// bob: plain password, no permissions.
	b, _ := dial(t, s)
	b.send(`CONNECT {"verbose":false,"user":"bob","pass":"bobpw"}` + "\r\nPUB sub.x 2\r\nhi\r\nPING\r\n")
	b.expect("PONG\r\n")
	// One copy per matching subscription (sub.x and sub.*), in either order.
	got := c.line() + c.line() + c.line() + c.line()
	if !strings.Contains(got, "MSG sub.x 5 2\r\nhi\r\n") || !strings.Contains(got, "MSG sub.x 6 2\r\nhi\r\n") {
		t.Fatalf("alice got %q", got)
	}
}

func TestTokenAndNonce(t *testing.T) {
	a, err := auth.New(auth.Options{Token: "s3cr3t"})
	if err != nil {
		t.Fatal(err)
	}
	s := startCore(t, func(o *core.Options) { o.Auth = a })
	c, info := dial(t, s)
	if _, ok := info["nonce"]; ok {
		t.Fatal("nonce sent without nkey users")
	}
	c.send(`CONNECT {"verbose":false,"auth_token":"s3cr3t"}` + "\r\nPING\r\n")
	c.expect("PONG\r\n")
	c, _ = dial(t, s)
	c.send(`CONNECT {"verbose":false,"auth_token":"nope"}` + "\r\nPING\r\n")
	c.expect("-ERR 'Authorization Violation'\r\n")
	c.expectClosed()
}

// Reload: removing a user closes that user's connection with an Authorization Violation;
// a tightened permission applies at once to an open connection; others go on untouched.
func TestReloadUsersAndPermissions(t *testing.T) {
	s := startCore(t, func(o *core.Options) { o.Auth = aliceBob(t) })
	alice, _ := dial(t, s)
	alice.send(`CONNECT {"verbose":false,"user":"alice","pass":"password"}` + "\r\nSUB sub.x 1\r\nPING\r\n")
	alice.expect("PONG\r\n")
	bob, _ := dial(t, s)
	bob.send(`CONNECT {"verbose":false,"user":"bob","pass":"bobpw"}` + "\r\nPING\r\n")
	bob.expect("PONG\r\n")

	// New config: alice is gone, bob may only publish to "only.this".
	next, err := auth.New(auth.Options{Users: []*auth.User{{Username: "bob", Password: "bobpw",
		Permissions: &auth.Permissions{Publish: &auth.SubjectPermission{Allow: []string{"only.this"}}}}}})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Reload(core.Options{Host: "127.0.0.1", Port: -1, Auth: next}); err != nil {
		t.Fatal(err)
	}
	alice.expect("-ERR 'Authorization Violation'\r\n")
	alice.expectClosed()
	bob.send("PUB other 1\r\nx\r\nPUB only.this 1\r\nx\r\nPING\r\n")
	bob.expect("-ERR 'Permissions Violation for Publish to \"other\"'\r\nPONG\r\n")

	// Changing the listen address is refused and changes nothing.
	if err := s.Reload(core.Options{Host: "127.0.0.2", Port: -1, Auth: next}); err == nil || !strings.Contains(err.Error(), "listen") {
		t.Fatalf("reload with a new host: %v", err)
	}
}

// No credential ever reaches a log line or /connz, even at trace level.
func TestCredentialsNeverLogged(t *testing.T) {
	var logs syncLog
	a, err := auth.New(auth.Options{Users: []*auth.User{{Username: "carl", Password: "right-pass-4711"}}})
	if err != nil {
		t.Fatal(err)
	}
	s := startCore(t, func(o *core.Options) {
		o.Auth = a
		o.Logger = slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug - 4}))
	})
	c, _ := dial(t, s)
	c.send(`CONNECT {"verbose":false,"user":"carl","pass":"wrong-pass-0815"}` + "\r\nPING\r\n")
	c.expect("-ERR 'Authorization Violation'\r\n")
	c.expectClosed()
	c, _ = dial(t, s)
	c.send(`CONNECT {"verbose":false,"user":"carl","pass":"right-pass-4711","auth_token":"tok-9999"}` + "\r\nPING\r\n")
	c.expect("PONG\r\n")
	cz, err := s.Connz(core.ConnzOptions{Auth: true, State: "any", Subs: true})
	if err != nil {
		t.Fatal(err)
	}
	dump, _ := json.Marshal(cz)
	for _, secret := range []string{"wrong-pass-0815", "right-pass-4711", "tok-9999"} {
		if strings.Contains(logs.String(), secret) || strings.Contains(string(dump), secret) {
			t.Fatalf("secret %q leaked:\nlogs: %s\nconnz: %s", secret, logs.String(), dump)
		}
	}
	if !strings.Contains(string(dump), `"authorized_user":"carl"`) {
		t.Fatalf("connz lacks authorized_user: %s", dump)
	}
}

type syncLog struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *syncLog) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *syncLog) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// A signature is good for the nonce of one connection only: replaying it on another
// connection (which got a fresh nonce) is refused.
func TestNkeyNonceNotReusable(t *testing.T) {
	kp, err := nkeys.CreateUser()
	if err != nil {
		t.Fatal(err)
	}
	pub, _ := kp.PublicKey()
	a, err := auth.New(auth.Options{Users: []*auth.User{{Nkey: pub}}})
	if err != nil {
		t.Fatal(err)
	}
	s := startCore(t, func(o *core.Options) { o.Auth = a })
	first, info := dial(t, s)
	nonce, _ := info["nonce"].(string)
	if len(nonce) != auth.NonceLen {
		t.Fatalf("nonce %q", nonce)
	}
	sig, _ := kp.Sign([]byte(nonce))
	connect := fmt.Sprintf(`CONNECT {"verbose":false,"nkey":%q,"sig":%q}`+"\r\nPING\r\n", pub, base64.RawURLEncoding.EncodeToString(sig))
	first.send(connect)
	first.expect("PONG\r\n")

	second, info2 := dial(t, s)
	if info2["nonce"] == nonce {
		t.Fatal("nonce reused across connections")
	}
	second.send(connect)
	second.expect("-ERR 'Authorization Violation'\r\n")
	second.expectClosed()
}

// A flood of refused logins logs at most authLogBurst (10) lines a second, each naming
// the user and the cause; a later line counts the ones left out.
func TestRefusedLoginsLogRateLimited(t *testing.T) {
	var logs syncLog
	a, err := auth.New(auth.Options{Users: []*auth.User{{Username: "carl", Password: "right-pass"}}})
	if err != nil {
		t.Fatal(err)
	}
	s := startCore(t, func(o *core.Options) {
		o.Auth = a
		o.Logger = slog.New(slog.NewTextHandler(&logs, nil))
	})
	refuse := func() {
		c, _ := dial(t, s)
		c.send(`CONNECT {"verbose":false,"user":"carl","pass":"wrong"}` + "\r\nPING\r\n")
		c.expect("-ERR 'Authorization Violation'\r\n")
		c.expectClosed()
	}
	start := time.Now()
	const attempts = 60
	for range attempts {
		refuse()
	}
	lines := func() []string {
		var out []string
		for _, l := range strings.Split(logs.String(), "\n") {
			if strings.Contains(l, "authentication failed") {
				out = append(out, l)
			}
		}
		return out
	}
	got := lines()
	windows := int(time.Since(start)/time.Second) + 1
	if len(got) == 0 || len(got) > 10*windows || len(got) == attempts {
		t.Fatalf("%d log lines for %d refused logins in %d window(s)", len(got), attempts, windows)
	}
	for _, l := range got {
		if !strings.Contains(l, "user=carl") || !strings.Contains(l, "wrong password") || strings.Contains(l, "pass=") {
			t.Fatalf("log line %q lacks the user or the cause", l)
		}
	}
	// Once a new second starts, the next refusal is logged with the count left out.
	deadline := time.Now().Add(5 * time.Second)
	for !strings.Contains(logs.String(), "suppressed=") {
		if time.Now().After(deadline) {
			t.Fatalf("no line counts the suppressed ones:\n%s", logs.String())
		}
		refuse()
	}
}

// A SUB that races a reload revoking it must not survive: either the reload's recheck
// sees it, or it is checked against the new permissions itself.
func TestReloadRevokesSubscriptionRacingIt(t *testing.T) {
	users := func(allow string) *auth.Authenticator {
		a, err := auth.New(auth.Options{Users: []*auth.User{
			{Username: "u", Password: "pw", Permissions: &auth.Permissions{Subscribe: &auth.SubjectPermission{Allow: []string{allow}}}},
			{Username: "p", Password: "pw"},
		}})
		if err != nil {
			t.Fatal(err)
		}
		return a
	}
	open, closed := users("x.>"), users("y")
	s := startCore(t, func(o *core.Options) { o.Auth = open })
	pub, _ := dial(t, s)
	pub.send(`CONNECT {"verbose":false,"user":"p","pass":"pw"}` + "\r\nPING\r\n")
	pub.expect("PONG\r\n")
	var flood strings.Builder
	for i := range 5000 {
		fmt.Fprintf(&flood, "SUB x.> %d\r\n", i)
	}
	for round := range 20 {
		c, _ := dial(t, s)
		c.send(`CONNECT {"verbose":false,"user":"u","pass":"pw"}` + "\r\nPING\r\n")
		c.expect("PONG\r\n")
		done := make(chan struct{})
		go func() {
			defer close(done)
			_, _ = c.nc.Write([]byte(flood.String()))
			_, _ = c.nc.Write([]byte("PING\r\n"))
		}()
		reloaded := make(chan struct{})
		go func() {
			defer close(reloaded)
			time.Sleep(time.Duration(round%5) * 200 * time.Microsecond)
			if err := s.Reload(core.Options{Host: "127.0.0.1", Port: -1, Auth: closed}); err != nil {
				t.Error(err)
			}
		}()
		for !strings.HasPrefix(c.line(), "PONG") {
		}
		<-done
		<-reloaded
		pub.send("PUB x.a 1\r\nz\r\nPING\r\n")
		pub.expect("PONG\r\n") // rawConn answers the server's own PING, which may come first
		c.send("PING\r\n")
		for {
			l := c.line()
			if strings.HasPrefix(l, "MSG") {
				t.Fatalf("round %d: a subscription the reload revoked got %q", round, l)
			}
			if strings.HasPrefix(l, "PONG") {
				break
			}
		}
		c.nc.Close()
		if err := s.Reload(core.Options{Host: "127.0.0.1", Port: -1, Auth: open}); err != nil {
			t.Fatal(err)
		}
	}
}

// A reload that removes a user while that user's CONNECT is being checked (bcrypt takes
// a while) closes the client: the reload skipped it as not yet authenticated, so the
// CONNECT must apply the new users itself.
func TestReloadDuringConnectCheck(t *testing.T) {
	hash, err := bcrypt.GenerateFromPassword([]byte("pw"), 12)
	if err != nil {
		t.Fatal(err)
	}
	old, err := auth.New(auth.Options{Users: []*auth.User{{Username: "gone", Password: string(hash)}, {Username: "stay", Password: "x"}}})
	if err != nil {
		t.Fatal(err)
	}
	next, err := auth.New(auth.Options{Users: []*auth.User{{Username: "stay", Password: "x"}}})
	if err != nil {
		t.Fatal(err)
	}
	s := startCore(t, func(o *core.Options) { o.Auth = old; o.AuthTimeout = time.Minute })
	c, _ := dial(t, s)
	start := time.Now()
	c.send(`CONNECT {"verbose":false,"user":"gone","pass":"pw"}` + "\r\nPING\r\n")
	time.Sleep(50 * time.Millisecond) // bcrypt at cost 12 takes several times that
	if err := s.Reload(core.Options{Host: "127.0.0.1", Port: -1, Auth: next, AuthTimeout: time.Minute}); err != nil {
		t.Fatal(err)
	}
	_ = c.nc.SetReadDeadline(time.Now().Add(time.Minute)) // bcrypt under -race is slow
	if l, _ := c.r.ReadString('\n'); l != "-ERR 'Authorization Violation'\r\n" {
		t.Fatalf("after %v: got %q, want the removed user refused", time.Since(start), l)
	}
	c.expectClosed()
}

// A reload that changes allow_responses limits applies them to connected clients.
func TestReloadChangesResponseLimits(t *testing.T) {
	users := func(max int) *auth.Authenticator {
		a, err := auth.New(auth.Options{Users: []*auth.User{
			{Username: "svc", Password: "pw", Permissions: &auth.Permissions{AllowResponses: &auth.ResponsePermission{MaxMsgs: max}}},
			{Username: "cl", Password: "pw"},
		}})
		if err != nil {
			t.Fatal(err)
		}
		return a
	}
	s := startCore(t, func(o *core.Options) { o.Auth = users(1) })
	svc, _ := dial(t, s)
	svc.send(`CONNECT {"verbose":false,"user":"svc","pass":"pw"}` + "\r\nSUB req 1\r\nPING\r\n")
	svc.expect("PONG\r\n")
	if err := s.Reload(core.Options{Host: "127.0.0.1", Port: -1, Auth: users(3)}); err != nil {
		t.Fatal(err)
	}
	cl, _ := dial(t, s)
	cl.send(`CONNECT {"verbose":false,"user":"cl","pass":"pw"}` + "\r\nSUB rep 1\r\nPUB req rep 1\r\nq\r\nPING\r\n")
	cl.expect("PONG\r\n")
	svc.expect("MSG req 1 rep 1\r\nq\r\n")
	svc.send("PUB rep 1\r\na\r\nPUB rep 1\r\nb\r\nPUB rep 1\r\nc\r\nPING\r\n")
	svc.expect("PONG\r\n")
}

// A second CONNECT drops the subscriptions made under the first, as nats-server does:
// kept, they went on delivering what the first user subscribed to (here bob's "secret",
// which carol may not subscribe to) to a connection now logged in as someone else,
// which a reload removing the first user did not close; and with accounts, a client
// moved to another account kept receiving its first account's messages.
func TestSecondConnectDropsSubscriptions(t *testing.T) {
	a, err := auth.New(auth.Options{Users: []*auth.User{
		{Username: "bob", Password: "bobpw"},
		{Username: "carol", Password: "carolpw", Permissions: &auth.Permissions{
			Subscribe: &auth.SubjectPermission{Allow: []string{"sub.*"}},
		}},
	}})
	if err != nil {
		t.Fatal(err)
	}
	s := startCore(t, func(o *core.Options) { o.Auth = a })
	c, _ := dial(t, s)
	c.send(`CONNECT {"verbose":false,"user":"bob","pass":"bobpw"}` + "\r\nSUB secret 1\r\nSUB sub.x 2\r\nPING\r\n")
	c.expect("PONG\r\n")
	c.send(`CONNECT {"verbose":false,"user":"carol","pass":"carolpw"}` + "\r\nPING\r\n")
	c.expect("PONG\r\n")
	if n := s.NumSubscriptions(); n != 0 {
		t.Fatalf("%d subscriptions after the second CONNECT, want 0", n)
	}
	p, _ := dial(t, s)
	p.send(`CONNECT {"verbose":false,"user":"bob","pass":"bobpw"}` + "\r\nPUB secret 1\r\nx\r\nPUB sub.x 1\r\ny\r\nPING\r\n")
	p.expect("PONG\r\n")
	// The sid is free again, under carol's permissions.
	c.send("SUB secret 1\r\nSUB sub.x 1\r\nPING\r\n")
	c.expect("-ERR 'Permissions Violation for Subscription to \"secret\"'\r\nPONG\r\n")
	p.send("PUB sub.x 1\r\nz\r\n")
	c.expect("MSG sub.x 1 1\r\nz\r\n")
}

// With a no_auth_user, INFO does not ask for credentials and a client may work without
// CONNECT (telnet): it does so as the no_auth_user, with its permissions, as in
// nats-server. It had no permissions at all until a CONNECT: subscribe to and publish on
// anything.
func TestNoAuthUserAppliesBeforeConnect(t *testing.T) {
	a, err := auth.New(auth.Options{Users: []*auth.User{
		{Username: "a", Password: "pa", Permissions: &auth.Permissions{
			Publish:   &auth.SubjectPermission{Allow: []string{"x"}},
			Subscribe: &auth.SubjectPermission{Allow: []string{"x"}},
		}},
		{Username: "b", Password: "pb"},
	}, NoAuthUser: "a"})
	if err != nil {
		t.Fatal(err)
	}
	s := startCore(t, func(o *core.Options) { o.Auth = a })
	c, info := dial(t, s)
	if info["auth_required"] != nil {
		t.Fatalf("INFO asks for credentials: %v", info)
	}
	c.send("SUB secret 1\r\nPUB secret 2\r\nhi\r\nSUB x 2\r\nPING\r\n")
	c.expect("-ERR 'Permissions Violation for Subscription to \"secret\"'\r\n")
	c.expect("-ERR 'Permissions Violation for Publish to \"secret\"'\r\n")
	c.expect("+OK\r\nPONG\r\n")
	p, _ := dial(t, s)
	p.send(`CONNECT {"verbose":false,"user":"b","pass":"pb"}` + "\r\nPUB secret 3\r\nbye\r\nPUB x 2\r\nok\r\nPING\r\n")
	p.expect("PONG\r\n")
	c.expect("MSG x 2 2\r\nok\r\n")
}

// A reload that starts asking for credentials closes a client that has not sent CONNECT
// (it was accepted when none were asked for, so nothing makes it send one), as nats-server
// does; with a no_auth_user instead, a client without identity (no CONNECT yet, or one
// without credentials while none were asked for) gets that user's permissions. Both went
// on with no permissions at all, whatever the new users were allowed.
func TestReloadAuthAppliesToClientsWithoutConnect(t *testing.T) {
	s := startCore(t, nil)
	raw, _ := dial(t, s)
	raw.send("SUB secret 1\r\nPING\r\n")
	raw.expect("+OK\r\nPONG\r\n")
	withNoAuth, _ := dial(t, s)
	withNoAuth.send("PING\r\n")
	withNoAuth.expect("PONG\r\n")
	connected, _ := dial(t, s) // sent CONNECT, without credentials: none were asked for
	connected.send(`CONNECT {"verbose":false}` + "\r\nSUB secret 1\r\nSUB x 2\r\nPING\r\n")
	connected.expect("PONG\r\n")

	users := []*auth.User{
		{Username: "a", Password: "pa", Permissions: &auth.Permissions{Subscribe: &auth.SubjectPermission{Allow: []string{"x"}}}},
		{Username: "b", Password: "pb"},
	}
	required, err := auth.New(auth.Options{Users: users})
	if err != nil {
		t.Fatal(err)
	}
	noAuth, err := auth.New(auth.Options{Users: users, NoAuthUser: "a"})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Reload(core.Options{Host: "127.0.0.1", Port: -1, Auth: noAuth}); err != nil {
		t.Fatal(err)
	}
	withNoAuth.send("SUB secret 2\r\nPING\r\n")
	withNoAuth.expect("-ERR 'Permissions Violation for Subscription to \"secret\"'\r\nPONG\r\n")
	// The subscription made before is re-checked against the new permissions.
	raw.expect("-ERR 'Permissions Violation for Subscription to \"secret\" (sid \"1\")'\r\n")
	connected.expect("-ERR 'Permissions Violation for Subscription to \"secret\" (sid \"1\")'\r\n")

	if err := s.Reload(core.Options{Host: "127.0.0.1", Port: -1, Auth: required}); err != nil {
		t.Fatal(err)
	}
	for _, c := range []*rawConn{raw, withNoAuth, connected} {
		c.expect("-ERR 'Authorization Violation'\r\n")
		c.expectClosed()
	}
}

// Reloads racing accepts: a client is complete (its nonce, whether CONNECT must come first,
// its pre-CONNECT identity) before Reload can find it. Under -race this reported a race
// on the accept's writes, and a client accepted while credentials were required could be
// read as not needing CONNECT and escape the auth timeout.
func TestReloadRacingAcceptsSeesCompleteClients(t *testing.T) {
	users := []*auth.User{{Username: "a", Password: "pa"}}
	required, err := auth.New(auth.Options{Users: users})
	if err != nil {
		t.Fatal(err)
	}
	noAuth, err := auth.New(auth.Options{Users: users, NoAuthUser: "a"})
	if err != nil {
		t.Fatal(err)
	}
	s := startCore(t, func(o *core.Options) { o.Auth = required })
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			a := required
			if i%2 == 1 {
				a = noAuth
			}
			_ = s.Reload(core.Options{Host: "127.0.0.1", Port: -1, Auth: a})
		}
	}()
	for range 300 {
		nc, err := net.Dial("tcp", s.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		defer nc.Close()
	}
	close(stop)
	<-done
}

// /varz config_load_time is when the configuration in force was loaded: a reload moves it.
func TestVarzConfigLoadTimeOnReload(t *testing.T) {
	s := startCore(t, nil)
	first := s.Varz().ConfigLoadTime
	time.Sleep(2 * time.Millisecond) // the clock must move for the test to see it
	if err := s.Reload(core.Options{Host: "127.0.0.1", Port: -1}); err != nil {
		t.Fatal(err)
	}
	if v := s.Varz(); !v.ConfigLoadTime.After(first) || !v.Start.Equal(first) {
		t.Fatalf("after a reload: config_load_time %v (first %v), start %v", v.ConfigLoadTime, first, v.Start)
	}
}

// /varz auth_required says whether credentials are configured, as nats-server's does, even
// with a no_auth_user (which only INFO leaves auth_required out for); a reload follows.
func TestVarzAuthRequiredWithNoAuthUser(t *testing.T) {
	users := []*auth.User{{Username: "a", Password: "pa"}}
	noAuth, err := auth.New(auth.Options{Users: users, NoAuthUser: "a"})
	if err != nil {
		t.Fatal(err)
	}
	s := startCore(t, func(o *core.Options) { o.Auth = noAuth })
	if !s.Varz().AuthRequired {
		t.Fatal("/varz auth_required false with users and a no_auth_user")
	}
	_, info := dial(t, s)
	if info["auth_required"] != nil {
		t.Fatalf("INFO auth_required %v with a no_auth_user", info["auth_required"])
	}
	open, err := auth.New(auth.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Reload(core.Options{Host: "127.0.0.1", Port: -1, Auth: open}); err != nil {
		t.Fatal(err)
	}
	if s.Varz().AuthRequired {
		t.Fatal("/varz auth_required true without credentials configured")
	}
}

// CONNECT is authenticated before its other checks, as in nats-server: a client with wrong
// credentials gets the authorization violation whatever else is wrong with its CONNECT,
// and an authenticated one naming an account gets it too.
func TestConnectAuthenticatedFirst(t *testing.T) {
	s := startCore(t, func(o *core.Options) { o.Auth = aliceBob(t) })
	for _, connect := range []string{
		`{"verbose":false,"user":"bob","pass":"wrong","protocol":2}`,
		`{"verbose":false,"user":"bob","pass":"wrong","no_responders":true}`,
		`{"verbose":false,"user":"nobody","account":"A"}`,
		`{"verbose":false,"user":"bob","pass":"bobpw","account":"A","protocol":2}`,
	} {
		c, _ := dial(t, s)
		c.send("CONNECT " + connect + "\r\n")
		c.expect("-ERR 'Authorization Violation'\r\n")
		c.expectClosed()
	}
	c, _ := dial(t, s)
	c.send(`CONNECT {"verbose":false,"user":"bob","pass":"bobpw","protocol":2}` + "\r\n")
	c.expect("-ERR 'invalid client protocol'\r\n")
	c.expectClosed()
}

// A second CONNECT refused for another fault than its credentials leaves the connection
// as it was: its user stays the first one (as the closed connection's record shows).
// Before, the valid credentials of the refused CONNECT were adopted first.
func TestRefusedSecondConnectKeepsTheIdentity(t *testing.T) {
	s := startCore(t, func(o *core.Options) { o.Auth = aliceBob(t) })
	c, _ := dial(t, s)
	c.send(`CONNECT {"verbose":false,"user":"alice","pass":"password"}` + "\r\nPING\r\n")
	c.expect("PONG\r\n")
	c.send(`CONNECT {"verbose":false,"user":"bob","pass":"bobpw","protocol":2}` + "\r\n")
	c.expect("-ERR 'invalid client protocol'\r\n")
	c.expectClosed()
	var z *core.Connz
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		var err error
		if z, err = s.Connz(core.ConnzOptions{State: "closed", Auth: true}); err == nil && len(z.Conns) == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no closed connection recorded: %v %+v", err, z)
		}
	}
	if u := z.Conns[0].AuthorizedUser; u != "alice" {
		t.Fatalf("the closed connection's user is %q, want alice", u)
	}
}
