package tests

import (
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
