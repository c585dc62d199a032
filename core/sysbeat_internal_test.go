package core

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/starling-io/starling/core/auth"
)

// While an account has connections its CONNS event is repeated at the heartbeat interval
// (30 s, shortened here), as nats-server's; an account without any is quiet. STATSZ
// counts the accounts with connections as active.
func TestAccountConnsHeartbeat(t *testing.T) {
	au, err := auth.New(auth.Options{Users: []*auth.User{
		{Username: "a", Password: "a", Account: "A"}, {Username: "sys", Password: "sys", Account: "SYS"}}})
	if err != nil {
		t.Fatal(err)
	}
	s, err := New(Options{Host: "127.0.0.1", Port: -1, Auth: au, SystemAccount: "SYS",
		Accounts: []AccountConfig{{Name: "A"}, {Name: "B"}, {Name: "SYS"}}})
	if err != nil {
		t.Fatal(err)
	}
	s.sys.connsEvery = 50 * time.Millisecond
	if err := s.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Shutdown(context.Background()) })
	sys, err := nats.Connect(s.ClientURL(), nats.UserInfo("sys", "sys"))
	if err != nil {
		t.Fatal(err)
	}
	defer sys.Close()
	a, err := nats.Connect(s.ClientURL(), nats.UserInfo("a", "a"))
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	ch := make(chan *nats.Msg, 64)
	if _, err := sys.ChanSubscribe("$SYS.ACCOUNT.*.SERVER.CONNS", ch); err != nil {
		t.Fatal(err)
	}
	seen := map[string]int{}
	deadline := time.After(3 * time.Second)
	for seen["A"] < 3 || seen["SYS"] < 3 {
		select {
		case m := <-ch:
			var ev struct {
				Account string `json:"acc"`
				Conns   int    `json:"conns"`
			}
			if err := json.Unmarshal(m.Data, &ev); err != nil || ev.Conns != 1 {
				t.Fatalf("%s: %s", m.Subject, m.Data)
			}
			seen[ev.Account]++
		case <-deadline:
			t.Fatalf("heartbeats: %v", seen)
		}
	}
	if seen["B"] != 0 || seen["$G"] != 0 {
		t.Fatalf("heartbeats of accounts without connections: %v", seen)
	}
	if n := s.statsz().ActiveAccounts; n != 2 {
		t.Fatalf("active accounts %d, want 2 (A and SYS)", n)
	}
}
