package auth_test

import (
	"encoding/base64"
	"errors"
	"testing"

	"github.com/starling-io/starling/core/auth"
)

func TestCheckNames(t *testing.T) {
	nk := newNkeyUser(t)
	a := mustNew(t, auth.Options{Users: []*auth.User{
		{Username: "CN=alice,O=Acme"},
		{Username: "bob@example.com", Password: "pw"},
		{Nkey: nk.pub},
	}})
	cases := []struct {
		names []string
		want  string
	}{
		{[]string{"carol@example.com", "bob@example.com", "CN=alice,O=Acme"}, "bob@example.com"},
		{[]string{"host.example.com", "CN=alice,O=Acme"}, "CN=alice,O=Acme"},
		{[]string{nk.pub}, "-"},
		{[]string{"nobody"}, "-"},
		{nil, "-"},
	}
	for _, tc := range cases {
		id, err := a.CheckNames(tc.names)
		if tc.want == "-" {
			if err == nil || !errors.Is(err, auth.ErrAuthorization) {
				t.Errorf("CheckNames(%q) = %v, %v; want ErrAuthorization", tc.names, id, err)
			}
			continue
		}
		if err != nil || id.Name != tc.want {
			t.Errorf("CheckNames(%q) = %v, %v; want %q", tc.names, id, err, tc.want)
		}
	}
	if _, err := mustNew(t, auth.Options{Token: "t"}).CheckNames([]string{"x"}); !errors.Is(err, auth.ErrAuthorization) {
		t.Errorf("token mode mapped a certificate: %v", err)
	}
	if id, err := mustNew(t, auth.Options{}).CheckNames(nil); err != nil || id == nil {
		t.Errorf("no auth: %v, %v", id, err)
	}
}

func TestRevalidate(t *testing.T) {
	nk, nk2 := newNkeyUser(t), newNkeyUser(t)
	hash := bcryptHash(t, "pw", "$2a$")
	perms := &auth.Permissions{Publish: &auth.SubjectPermission{Allow: []string{"a"}}}
	old := mustNew(t, auth.Options{Users: []*auth.User{
		{Username: "alice", Password: hash},
		{Username: "bob", Password: "bobpw"},
		{Username: "carol", Password: "carolpw"},
		{Username: "dave", Password: "davepw"},
		{Nkey: nk.pub},
		{Nkey: nk2.pub},
	}, NoAuthUser: "dave"})
	next := mustNew(t, auth.Options{Users: []*auth.User{
		{Username: "alice", Password: hash, Permissions: perms}, // same hash, new permissions
		{Username: "bob", Password: "changed"},
		// carol removed
		{Username: "dave", Password: "davepw"}, // no longer the no-auth user
		{Nkey: nk.pub},
		// nk2 removed
	}})
	login := func(c auth.Credentials) *auth.Identity {
		t.Helper()
		id, err := old.Check(c)
		if err != nil {
			t.Fatal(err)
		}
		return id
	}
	nonce := auth.NewNonce(nil)
	nkLogin := func(u nkeyUser) *auth.Identity {
		return login(auth.Credentials{Nkey: u.pub, Nonce: nonce, Sig: u.sign(t, nonce, base64.RawURLEncoding)})
	}
	cases := []struct {
		name string
		id   *auth.Identity
		keep bool
	}{
		{"alice unchanged", login(auth.Credentials{User: "alice", Pass: "pw"}), true},
		{"bob's password changed", login(auth.Credentials{User: "bob", Pass: "bobpw"}), false},
		{"carol removed", login(auth.Credentials{User: "carol", Pass: "carolpw"}), false},
		{"dave was the no-auth user", login(auth.Credentials{}), false},
		{"nkey kept", nkLogin(nk), true},
		{"nkey removed", nkLogin(nk2), false},
		{"foreign identity", &auth.Identity{Name: "alice"}, false},
		{"nil identity", nil, false},
	}
	for _, tc := range cases {
		nid, ok := next.Revalidate(old, tc.id)
		if ok != tc.keep || (ok && (nid == nil || nid.Name != tc.id.Name)) {
			t.Errorf("%s: Revalidate = %v, %v; want keep %v", tc.name, nid, ok, tc.keep)
		}
	}
	if nid, _ := next.Revalidate(old, cases[0].id); nid.Checker == nil || nid.Permissions != perms {
		t.Error("revalidated identity lacks the new permissions")
	}

	// Mechanism changes.
	none, none2 := mustNew(t, auth.Options{}), mustNew(t, auth.Options{})
	tok, tok2, tokNew := mustNew(t, auth.Options{Token: "t"}), mustNew(t, auth.Options{Token: "t"}), mustNew(t, auth.Options{Token: "u"})
	single := mustNew(t, auth.Options{Username: "bob", Password: "bobpw"})
	anon, _ := none.Check(auth.Credentials{})
	tid, _ := tok.Check(auth.Credentials{Token: "t"})
	sid, _ := single.Check(auth.Credentials{User: "bob", Pass: "bobpw"})
	bob := login(auth.Credentials{User: "bob", Pass: "bobpw"})
	for _, tc := range []struct {
		name      string
		old, next *auth.Authenticator
		id        *auth.Identity
		keep      bool
	}{
		{"none to none", none, none2, anon, true},
		{"none to token", none, tok, anon, false},
		{"token unchanged", tok, tok2, tid, true},
		{"token changed", tok, tokNew, tid, false},
		{"token to none", tok, none, tid, false},
		{"single to users, same password", single, old, sid, true},
		{"users to single, same password", old, single, bob, true},
		{"single to users, changed", single, next, sid, false},
	} {
		if _, ok := tc.next.Revalidate(tc.old, tc.id); ok != tc.keep {
			t.Errorf("%s: keep %v, want %v", tc.name, ok, tc.keep)
		}
	}
}
