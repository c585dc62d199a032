package auth_test

import (
	"encoding/base64"
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/nats-io/nkeys"
	"golang.org/x/crypto/bcrypt"

	"github.com/starling-io/starling/core/auth"
)

// bcryptHash hashes pw at the minimum cost (tests only), with the given
// version prefix ("$2a$", "$2b$", "$2x$", "$2y$").
func bcryptHash(t testing.TB, pw, prefix string) string {
	t.Helper()
	h, err := bcrypt.GenerateFromPassword([]byte(pw), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	return prefix + strings.TrimPrefix(string(h), "$2a$")
}

// nkeyUser is a user key pair for tests.
type nkeyUser struct {
	kp  nkeys.KeyPair
	pub string
}

func newNkeyUser(t testing.TB) nkeyUser {
	t.Helper()
	kp, err := nkeys.CreateUser()
	if err != nil {
		t.Fatal(err)
	}
	pub, err := kp.PublicKey()
	if err != nil {
		t.Fatal(err)
	}
	return nkeyUser{kp, pub}
}

// sign returns the signature of nonce encoded with enc.
func (u nkeyUser) sign(t testing.TB, nonce []byte, enc *base64.Encoding) string {
	t.Helper()
	sig, err := u.kp.Sign(nonce)
	if err != nil {
		t.Fatal(err)
	}
	return enc.EncodeToString(sig)
}

func mustNew(t testing.TB, o auth.Options) *auth.Authenticator {
	t.Helper()
	a, err := auth.New(o)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return a
}

type checkCase struct {
	name string
	c    auth.Credentials
	want string // identity name; "-" for failure
}

func runChecks(t *testing.T, a *auth.Authenticator, cases []checkCase) {
	t.Helper()
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			id, err := a.Check(tc.c)
			if tc.want == "-" {
				if err == nil || !errors.Is(err, auth.ErrAuthorization) || id != nil {
					t.Fatalf("Check = %v, %v; want ErrAuthorization", id, err)
				}
				for _, s := range []string{tc.c.Pass, tc.c.Token} {
					if len(s) > 3 && strings.Contains(err.Error(), s) {
						t.Fatalf("error %q reveals a secret", err)
					}
				}
				return
			}
			if err != nil {
				t.Fatalf("Check: %v", err)
			}
			if id.Name != tc.want {
				t.Fatalf("identity %q, want %q", id.Name, tc.want)
			}
		})
	}
}

func TestCheckNoAuth(t *testing.T) {
	a := mustNew(t, auth.Options{})
	if a.Required() || a.NeedsNonce() {
		t.Fatalf("Required %v NeedsNonce %v, want false", a.Required(), a.NeedsNonce())
	}
	runChecks(t, a, []checkCase{
		{"nothing", auth.Credentials{}, ""},
		{"anything", auth.Credentials{User: "x", Pass: "y", Token: "z", Nkey: "U", Sig: "s"}, ""},
	})
}

func TestCheckToken(t *testing.T) {
	for _, tok := range []string{"s3cr3t", bcryptHash(t, "s3cr3t", "$2a$"), bcryptHash(t, "s3cr3t", "$2y$")} {
		t.Run(tok[:4], func(t *testing.T) {
			a := mustNew(t, auth.Options{Token: tok})
			if !a.Required() || a.NeedsNonce() {
				t.Fatalf("Required %v NeedsNonce %v", a.Required(), a.NeedsNonce())
			}
			runChecks(t, a, []checkCase{
				{"right", auth.Credentials{Token: "s3cr3t"}, ""},
				{"wrong", auth.Credentials{Token: "s3cr3T"}, "-"},
				{"prefix", auth.Credentials{Token: "s3cr3"}, "-"},
				{"longer", auth.Credentials{Token: "s3cr3tt"}, "-"},
				{"none", auth.Credentials{}, "-"},
				{"as password", auth.Credentials{User: "s3cr3t", Pass: "s3cr3t"}, "-"},
				{"the hash itself", auth.Credentials{Token: tok}, map[bool]string{true: "", false: "-"}[tok == "s3cr3t"]},
			})
		})
	}
}

func TestCheckSingleUser(t *testing.T) {
	for _, pw := range []string{"pw", bcryptHash(t, "pw", "$2b$")} {
		t.Run(pw[:2], func(t *testing.T) {
			a := mustNew(t, auth.Options{Username: "derek", Password: pw})
			runChecks(t, a, []checkCase{
				{"right", auth.Credentials{User: "derek", Pass: "pw"}, "derek"},
				{"wrong password", auth.Credentials{User: "derek", Pass: "pW"}, "-"},
				{"empty password", auth.Credentials{User: "derek"}, "-"},
				{"wrong user", auth.Credentials{User: "Derek", Pass: "pw"}, "-"},
				{"token", auth.Credentials{Token: "pw"}, "-"},
				{"none", auth.Credentials{}, "-"},
			})
		})
	}
}

// A malformed bcrypt hash is no error, as in nats-server (which takes the file and runs
// bcrypt at login): nothing matches it, the hash's own text included; MalformedBcrypt says
// why it is malformed, for the configuration reader's warning.
func TestMalformedBcryptLocksOut(t *testing.T) {
	bad := []string{"$2a$10$disabled", "$2a$99$" + strings.Repeat("x", 53), "$2y$04$"}
	for _, h := range bad {
		if auth.MalformedBcrypt(h) == nil {
			t.Errorf("MalformedBcrypt(%q) = nil", h)
		}
	}
	for _, ok := range []string{bcryptHash(t, "pw", "$2a$"), "plain", "$2q$10$notbcrypt", ""} {
		if err := auth.MalformedBcrypt(ok); err != nil {
			t.Errorf("MalformedBcrypt(%q) = %v", ok, err)
		}
	}
	a := mustNew(t, auth.Options{Users: []*auth.User{
		{Username: "locked", Password: bad[0]},
		{Username: "cost", Password: bad[1]},
		{Username: "bob", Password: "bobpw"},
	}})
	mustNew(t, auth.Options{Token: bad[2]})
	runChecks(t, a, []checkCase{
		{"locked, its text", auth.Credentials{User: "locked", Pass: bad[0]}, "-"},
		{"locked, empty", auth.Credentials{User: "locked"}, "-"},
		{"locked, a word", auth.Credentials{User: "locked", Pass: "disabled"}, "-"},
		{"bad cost, its text", auth.Credentials{User: "cost", Pass: bad[1]}, "-"},
		{"others log in", auth.Credentials{User: "bob", Pass: "bobpw"}, "bob"},
	})
}

func TestCheckUsersList(t *testing.T) {
	nk, other := newNkeyUser(t), newNkeyUser(t)
	a := mustNew(t, auth.Options{Users: []*auth.User{
		{Username: "alice", Password: bcryptHash(t, "al1ce-pw", "$2a$")},
		{Username: "bob", Password: "bobpw"},
		{Username: "carol"}, // empty password
		{Nkey: nk.pub},
	}})
	if !a.Required() || !a.NeedsNonce() {
		t.Fatalf("Required %v NeedsNonce %v, want true", a.Required(), a.NeedsNonce())
	}
	nonce := auth.NewNonce(nil)
	otherNonce := auth.NewNonce(nil)
	good := nk.sign(t, nonce, base64.RawURLEncoding)
	runChecks(t, a, []checkCase{
		{"bcrypt right", auth.Credentials{User: "alice", Pass: "al1ce-pw"}, "alice"},
		{"bcrypt wrong", auth.Credentials{User: "alice", Pass: "al1ce-pW"}, "-"},
		{"bcrypt the hash", auth.Credentials{User: "alice", Pass: "$2a$04$xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"}, "-"},
		{"plain right", auth.Credentials{User: "bob", Pass: "bobpw"}, "bob"},
		{"plain wrong", auth.Credentials{User: "bob", Pass: "bobpW"}, "-"},
		{"plain empty", auth.Credentials{User: "bob"}, "-"},
		{"alice's password for bob", auth.Credentials{User: "bob", Pass: "al1ce-pw"}, "-"},
		{"empty password", auth.Credentials{User: "carol"}, "carol"},
		{"empty password given one", auth.Credentials{User: "carol", Pass: "x"}, "-"},
		{"unknown user", auth.Credentials{User: "mallory", Pass: "bobpw"}, "-"},
		{"token only", auth.Credentials{Token: "bobpw"}, "-"},
		{"nothing", auth.Credentials{}, "-"},
		{"nkey", auth.Credentials{Nkey: nk.pub, Sig: good, Nonce: nonce}, nk.pub},
		{"nkey std base64", auth.Credentials{Nkey: nk.pub, Sig: nk.sign(t, nonce, base64.StdEncoding), Nonce: nonce}, nk.pub},
		{"nkey raw std base64", auth.Credentials{Nkey: nk.pub, Sig: nk.sign(t, nonce, base64.RawStdEncoding), Nonce: nonce}, nk.pub},
		{"nkey wrong key's sig", auth.Credentials{Nkey: nk.pub, Sig: other.sign(t, nonce, base64.RawURLEncoding), Nonce: nonce}, "-"},
		{"nkey sig for another nonce", auth.Credentials{Nkey: nk.pub, Sig: nk.sign(t, otherNonce, base64.RawURLEncoding), Nonce: nonce}, "-"},
		{"nkey no sig", auth.Credentials{Nkey: nk.pub, Nonce: nonce}, "-"},
		{"nkey no nonce", auth.Credentials{Nkey: nk.pub, Sig: good}, "-"},
		{"nkey garbage sig", auth.Credentials{Nkey: nk.pub, Sig: "!!!not base64!!!", Nonce: nonce}, "-"},
		{"nkey truncated sig", auth.Credentials{Nkey: nk.pub, Sig: good[:40], Nonce: nonce}, "-"},
		{"unknown nkey", auth.Credentials{Nkey: other.pub, Sig: other.sign(t, nonce, base64.RawURLEncoding), Nonce: nonce}, "-"},
		{"nkey wins over user", auth.Credentials{Nkey: nk.pub, Sig: good, Nonce: nonce, User: "bob", Pass: "bobpw"}, nk.pub},
		{"bad nkey loses despite user", auth.Credentials{Nkey: other.pub, Sig: good, Nonce: nonce, User: "bob", Pass: "bobpw"}, "-"},
	})
}

func TestCheckNkeyIgnoredWithoutNkeyUsers(t *testing.T) {
	// As in the reference server, a CONNECT nkey only selects the nkey path
	// when nkey users exist; otherwise user/password decide.
	a := mustNew(t, auth.Options{Users: []*auth.User{{Username: "bob", Password: "pw"}}})
	if a.NeedsNonce() {
		t.Fatal("NeedsNonce without nkey users")
	}
	runChecks(t, a, []checkCase{
		{"user with nkey", auth.Credentials{Nkey: "UABC", User: "bob", Pass: "pw"}, "bob"},
		{"nkey alone", auth.Credentials{Nkey: "UABC", Sig: "x"}, "-"},
	})
}

func TestNoAuthUser(t *testing.T) {
	nk := newNkeyUser(t)
	users := []*auth.User{{Username: "bob", Password: "pw"}, {Nkey: nk.pub}}
	a := mustNew(t, auth.Options{Users: users, NoAuthUser: "bob"})
	if a.Required() {
		t.Fatal("Required with a NoAuthUser")
	}
	runChecks(t, a, []checkCase{
		{"no credentials", auth.Credentials{}, "bob"},
		{"sig alone is no credential", auth.Credentials{Sig: "x"}, "bob"},
		{"right credentials", auth.Credentials{User: "bob", Pass: "pw"}, "bob"},
		{"wrong password", auth.Credentials{User: "bob", Pass: "x"}, "-"},
		{"password alone", auth.Credentials{Pass: "pw"}, "-"},
		{"token", auth.Credentials{Token: "pw"}, "-"},
		{"nkey without sig", auth.Credentials{Nkey: nk.pub}, "-"},
	})

	a = mustNew(t, auth.Options{Users: users, NoAuthUser: nk.pub})
	if !a.NeedsNonce() {
		t.Fatal("NeedsNonce false with nkey users")
	}
	runChecks(t, a, []checkCase{
		{"nkey no-auth user needs no signature", auth.Credentials{}, nk.pub},
		{"other user still works", auth.Credentials{User: "bob", Pass: "pw"}, "bob"},
	})
}

func TestAlwaysEnableNonce(t *testing.T) {
	if !mustNew(t, auth.Options{Token: "x", AlwaysEnableNonce: true}).NeedsNonce() {
		t.Fatal("NeedsNonce false with AlwaysEnableNonce")
	}
}

func TestIdentitiesAndPermissions(t *testing.T) {
	shared := &auth.Permissions{Publish: &auth.SubjectPermission{Allow: []string{"a.>"}}}
	def := &auth.Permissions{Publish: &auth.SubjectPermission{Deny: []string{"secret"}}}
	nk := newNkeyUser(t)
	a := mustNew(t, auth.Options{
		Users: []*auth.User{
			{Username: "u1", Permissions: shared},
			{Username: "u2", Permissions: shared},
			{Username: "u3"},
			{Nkey: nk.pub},
		},
		DefaultPermissions: def,
	})
	id := func(user string) *auth.Identity {
		t.Helper()
		i, err := a.Check(auth.Credentials{User: user})
		if err != nil {
			t.Fatal(err)
		}
		return i
	}
	u1, u2, u3 := id("u1"), id("u1"), id("u3")
	if u1 != u2 {
		t.Fatal("identities of one user are not shared")
	}
	if id("u2").Checker != u1.Checker || u1.Checker == nil {
		t.Fatal("users with the same Permissions do not share a Checker")
	}
	if u1.Permissions != shared || u3.Permissions != def {
		t.Fatal("wrong Permissions")
	}
	if u3.Checker.CanPublish([]byte("secret")) || !u3.Checker.CanPublish([]byte("public")) {
		t.Fatal("default permissions not applied")
	}
	nonce := auth.NewNonce(nil)
	nid, err := a.Check(auth.Credentials{Nkey: nk.pub, Nonce: nonce, Sig: nk.sign(t, nonce, base64.RawURLEncoding)})
	if err != nil || nid.Checker != u3.Checker {
		t.Fatalf("nkey user without permissions: %v, checker %p want %p", err, nid.Checker, u3.Checker)
	}

	// Single user, token and no auth have no permissions.
	for _, o := range []auth.Options{{Username: "x", Password: "y", DefaultPermissions: def}, {Token: "y"}, {}} {
		a := mustNew(t, o)
		i, err := a.Check(auth.Credentials{User: "x", Pass: "y", Token: "y"})
		if err != nil || i.Checker != nil || i.Permissions != nil {
			t.Fatalf("%+v: identity %+v, %v", o, i, err)
		}
	}
}

func TestPlainPasswords(t *testing.T) {
	a := mustNew(t, auth.Options{Users: []*auth.User{
		{Username: "alice", Password: bcryptHash(t, "pw", "$2a$")},
		{Username: "bob", Password: "plain"},
		{Username: "carol"},
		{Username: "dave", Password: "$2q$10$notbcrypt"},
	}})
	if got, want := a.PlainPasswords(), []string{"bob", "dave"}; !slices.Equal(got, want) {
		t.Fatalf("PlainPasswords = %q, want %q", got, want)
	}
	if got := mustNew(t, auth.Options{Token: "t"}).PlainPasswords(); !slices.Equal(got, []string{"token"}) {
		t.Fatalf("token: %q", got)
	}
	if got := mustNew(t, auth.Options{Token: bcryptHash(t, "t", "$2x$")}).PlainPasswords(); len(got) != 0 {
		t.Fatalf("bcrypt token: %q", got)
	}
	if got := mustNew(t, auth.Options{Username: "u", Password: "p"}).PlainPasswords(); !slices.Equal(got, []string{"u"}) {
		t.Fatalf("single user: %q", got)
	}
}

func TestNewErrors(t *testing.T) {
	nk := newNkeyUser(t)
	acct, _ := nkeys.CreateAccount()
	acctPub, _ := acct.PublicKey()
	badPerm := &auth.Permissions{Subscribe: &auth.SubjectPermission{Allow: []string{"foo..bar"}}}
	cases := []struct {
		name string
		o    auth.Options
		is   error
		want []string // substrings of the error
	}{
		{"token and users", auth.Options{Token: "t", Users: []*auth.User{{Username: "a"}}}, auth.ErrInvalidOptions, []string{"token"}},
		{"user and users", auth.Options{Username: "u", Password: "p", Users: []*auth.User{{Username: "a"}}}, auth.ErrInvalidOptions, []string{"single user"}},
		{"user and token", auth.Options{Username: "u", Password: "p", Token: "t"}, auth.ErrInvalidOptions, []string{"token"}},
		{"password without user", auth.Options{Password: "p"}, auth.ErrInvalidOptions, []string{"password without"}},
		{"nil user", auth.Options{Users: []*auth.User{{Username: "a"}, nil}}, auth.ErrInvalidOptions, []string{"users[1]"}},
		{"nameless user", auth.Options{Users: []*auth.User{{Password: "p"}}}, auth.ErrInvalidOptions, []string{"users[0]", "neither"}},
		{"nkey with name", auth.Options{Users: []*auth.User{{Nkey: nk.pub, Username: "n"}}}, auth.ErrInvalidOptions, []string{nk.pub}},
		{"bad nkey", auth.Options{Users: []*auth.User{{Nkey: "UBAD"}}}, auth.ErrInvalidOptions, []string{`"UBAD"`, "not a valid"}},
		{"account nkey", auth.Options{Users: []*auth.User{{Nkey: acctPub}}}, auth.ErrInvalidOptions, []string{acctPub}},
		{"duplicate user", auth.Options{Users: []*auth.User{{Username: "a"}, {Username: "a"}}}, auth.ErrInvalidOptions, []string{`user "a"`, "duplicate"}},
		{"duplicate nkey", auth.Options{Users: []*auth.User{{Nkey: nk.pub}, {Nkey: nk.pub}}}, auth.ErrInvalidOptions, []string{nk.pub, "duplicate"}},
		{"unknown no-auth user", auth.Options{Users: []*auth.User{{Username: "a"}}, NoAuthUser: "b"}, auth.ErrInvalidOptions, []string{`"b"`}},
		{"no-auth user without users", auth.Options{Username: "b", Password: "p", NoAuthUser: "b"}, auth.ErrInvalidOptions, []string{`"b"`}},
		{"bad user permission", auth.Options{Users: []*auth.User{{Username: "a", Permissions: badPerm}}}, auth.ErrInvalidPermission, []string{`user "a"`, `"foo..bar"`, "subscribe allow"}},
		{"bad default permission", auth.Options{DefaultPermissions: badPerm}, auth.ErrInvalidPermission, []string{"default permissions", `"foo..bar"`}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			a, err := auth.New(tc.o)
			if err == nil || a != nil {
				t.Fatalf("New = %v, %v; want an error", a, err)
			}
			if !errors.Is(err, tc.is) {
				t.Fatalf("error %q is not %v", err, tc.is)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Fatalf("error %q does not mention %q", err, w)
				}
			}
		})
	}
}

func TestNewReportsAllErrors(t *testing.T) {
	_, err := auth.New(auth.Options{Users: []*auth.User{
		{Username: "a", Password: "pw"},
		{Username: "a"},
		{Username: "b", Permissions: &auth.Permissions{Publish: &auth.SubjectPermission{Deny: []string{"x y"}}}},
	}})
	if err == nil {
		t.Fatal("no error")
	}
	for _, w := range []string{"duplicate", `user "b"`, `"x y"`} {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("error %q does not mention %q", err, w)
		}
	}
	if !errors.Is(err, auth.ErrInvalidOptions) || !errors.Is(err, auth.ErrInvalidPermission) {
		t.Errorf("error %q does not wrap both sentinels", err)
	}
}

func TestCheckConcurrent(t *testing.T) {
	nk := newNkeyUser(t)
	a := mustNew(t, auth.Options{Users: []*auth.User{{Username: "bob", Password: "pw"}, {Nkey: nk.pub}}})
	done := make(chan error)
	for g := range 4 {
		go func() {
			var err error
			for i := range 50 {
				nonce := auth.NewNonce(nil)
				sig, e := nk.kp.Sign(nonce)
				if e != nil {
					err = e
				}
				c := auth.Credentials{Nkey: nk.pub, Nonce: nonce, Sig: base64.RawURLEncoding.EncodeToString(sig)}
				if (g+i)%2 == 0 {
					c = auth.Credentials{User: "bob", Pass: "pw"}
				}
				if _, e := a.Check(c); e != nil {
					err = e
				}
			}
			done <- err
		}()
	}
	for range 4 {
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	}
}

// A user's account travels with its identity, whichever way it logs in: password,
// no_auth_user, or a mapped TLS certificate (verify_and_map); Accounts lists them.
func TestUserAccounts(t *testing.T) {
	a, err := auth.New(auth.Options{NoAuthUser: "anon", Users: []*auth.User{
		{Username: "alice", Password: "pw", Account: "A"},
		{Username: "CN=bob", Account: "B"},
		{Username: "anon", Account: "B"},
		{Username: "global", Password: "pw"},
	}})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		cred auth.Credentials
		want string
	}{
		{auth.Credentials{User: "alice", Pass: "pw"}, "A"},
		{auth.Credentials{}, "B"},
		{auth.Credentials{User: "global", Pass: "pw"}, ""},
	} {
		id, err := a.Check(c.cred)
		if err != nil || id.Account != c.want {
			t.Errorf("%+v: account %q, %v; want %q", c.cred, id.Account, err, c.want)
		}
	}
	id, err := a.CheckNames([]string{"CN=bob"})
	if err != nil || id.Account != "B" {
		t.Errorf("certificate: %+v %v", id, err)
	}
	got := a.Accounts()
	slices.Sort(got)
	if strings.Join(got, ",") != "A,B" {
		t.Errorf("Accounts() = %v", got)
	}
}
