package tests

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/nats-io/nats.go"
	"golang.org/x/crypto/bcrypt"
)

// A bcrypt hash written without quotes in the authorization block: nats-server's parser
// takes a bare $2a$... as the hash (conf/parse.go, lookupVariable: bcryptPrefix), not as a
// variable reference, so a nats-server configuration written that way starts here too and
// its users log in.
func TestConfBareBcryptHash(t *testing.T) {
	hash, err := bcrypt.GenerateFromPassword([]byte("s3cret"), bcrypt.MinCost)
	must(t, err)
	if !strings.HasPrefix(string(hash), "$2a$") {
		t.Fatalf("hash %s", hash)
	}
	m := startAccounts(t, "authorization {\n  users: [\n    {user: u, password: "+string(hash)+"}\n  ]\n}\n")
	connect(t, m, nats.UserInfo("u", "s3cret")).Close()
	if nc, err := nats.Connect(clientURL(m), nats.UserInfo("u", "wrong"), nats.NoReconnect()); err == nil {
		nc.Close()
		t.Fatal("a wrong password logged in")
	}
}

// A password that looks like a bcrypt hash ($2a$NN$...) but is not a valid one: nats-server
// takes the file (no error, no warning: isBcrypt holds, auth.go) and refuses every login as
// that user, the literal text included (comparePasswords runs bcrypt, which fails). A
// nats-server configuration locking a user that way starts here too; Starling warns, naming
// the password's file:line:col.
func TestConfMalformedBcryptHash(t *testing.T) {
	good, err := bcrypt.GenerateFromPassword([]byte("s3cret"), bcrypt.MinCost)
	must(t, err)
	const locked = "$2a$10$disabled"
	text := "authorization {\n  users: [\n    {user: u, password: \"" + string(good) + "\"}\n" +
		"    {user: locked, password: \"" + locked + "\"}\n  ]\n}\n"
	m := startAccounts(t, text)
	connect(t, m, nats.UserInfo("u", "s3cret")).Close()
	for _, p := range []string{locked, "disabled", ""} {
		if nc, err := nats.Connect(clientURL(m), nats.UserInfo("locked", p), nats.NoReconnect()); err == nil {
			nc.Close()
			t.Fatalf("user locked logged in with %q", p)
		}
	}
	conf := filepath.Join(t.TempDir(), "locked.conf")
	must(t, os.WriteFile(conf, []byte(text), 0o600))
	r := runCheck(starlingBinary(t), nil, "-t", "--no_streaming", "-c", conf)
	if !r.ok || !strings.Contains(r.out, "locked.conf:4:20: authorization.users[1].password is a malformed bcrypt hash") {
		t.Fatalf("-t: ok=%v\n%s", r.ok, r.out)
	}
	single := filepath.Join(t.TempDir(), "single.conf")
	must(t, os.WriteFile(single, []byte("authorization {\n  user: a\n  password: \""+locked+"\"\n}\n"), 0o600))
	r = runCheck(starlingBinary(t), nil, "-t", "--no_streaming", "-c", single)
	if !r.ok || !strings.Contains(r.out, "single.conf:3:3: authorization.password is a malformed bcrypt hash") {
		t.Fatalf("-t single user: ok=%v\n%s", r.ok, r.out)
	}
	r = runCheck(starlingBinary(t), nil, "-t", "--no_streaming", "--user", "a", "--pass", locked)
	if !r.ok || !strings.Contains(r.out, "flag --pass is a malformed bcrypt hash") {
		t.Fatalf("-t --pass: ok=%v\n%s", r.ok, r.out)
	}
}
