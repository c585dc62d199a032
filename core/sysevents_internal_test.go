package core

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"golang.org/x/crypto/bcrypt"

	"github.com/starling-io/starling/core/auth"
)

// A client closed while its CONNECT is being accepted leaves its account's connection
// count as it was: here the system account KICKs it while its bcrypt check runs, and the
// check, once started, still succeeds. Before, the CONNECT announced the closed client
// anyway, whose close had found nothing to uncount: account A counted 2 connections for
// good with one client left ($SYS.REQ.ACCOUNT.A.CONNS said conns 2).
func TestConnectOfClosedClientNotCounted(t *testing.T) {
	hash, err := bcrypt.GenerateFromPassword([]byte("slow"), 10) // ~50 ms, ~0.7 s with -race
	if err != nil {
		t.Fatal(err)
	}
	au, err := auth.New(auth.Options{Users: []*auth.User{
		{Username: "slow", Password: string(hash), Account: "A"}, {Username: "a", Password: "a", Account: "A"},
		{Username: "sys", Password: "sys", Account: "SYS"}}})
	if err != nil {
		t.Fatal(err)
	}
	s, err := New(Options{Host: "127.0.0.1", Port: -1, Auth: au, SystemAccount: "SYS", AuthTimeout: time.Minute,
		Accounts: []AccountConfig{{Name: "A"}, {Name: "SYS"}}})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Shutdown(context.Background()) })
	sys, err := nats.Connect(s.ClientURL(), nats.UserInfo("sys", "sys"))
	if err != nil {
		t.Fatal(err)
	}
	defer sys.Close()
	sysCID, err := sys.GetClientID()
	if err != nil {
		t.Fatal(err)
	}

	raw, err := net.Dial("tcp", s.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	if _, err := fmt.Fprintf(raw, "CONNECT {\"verbose\":false,\"user\":\"slow\",\"pass\":\"slow\"}\r\n"); err != nil {
		t.Fatal(err)
	}
	var c *client
	checking := func() bool {
		c.mu.Lock()
		defer c.mu.Unlock()
		return c.authChecking
	}
	for deadline := time.Now().Add(5 * time.Second); c == nil || !checking(); time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the CONNECT's password check never started")
		}
		s.mu.Lock()
		for _, cl := range s.clients {
			if cl.kind == kindClient && cl.cid != sysCID {
				c = cl
			}
		}
		s.mu.Unlock()
	}
	r, err := sys.Request("$SYS.REQ.SERVER."+s.ID()+".KICK", fmt.Appendf(nil, `{"cid":%d}`, c.cid), 2*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	_ = raw.SetReadDeadline(time.Now().Add(5 * time.Second))
	if out, _ := io.ReadAll(raw); !c.isClosed() {
		t.Fatalf("the kicked client is still open (%s); it read %q", r.Data, out)
	}
	// The CONNECT goes on after the close: wait until its check is over.
	waitFor(t, 10*time.Second, func() bool { return !checking() })
	time.Sleep(100 * time.Millisecond) // and it has announced (or not) the client

	a, err := nats.Connect(s.ClientURL(), nats.UserInfo("a", "a"))
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	msg, err := sys.Request("$SYS.REQ.ACCOUNT.A.CONNS", nil, 2*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	var ev struct {
		Conns int `json:"conns"`
	}
	if err := json.Unmarshal(msg.Data, &ev); err != nil {
		t.Fatal(err)
	}
	if ev.Conns != 1 || s.account("A").conns.Load() != 1 {
		t.Fatalf("account A counts %d connections (CONNS says %d), want 1", s.account("A").conns.Load(), ev.Conns)
	}
}
