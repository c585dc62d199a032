package core_test

import (
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/starling-io/starling/core"
	"github.com/starling-io/starling/core/auth"
)

// Accounts added and removed by reloads while their users connect, publish and request
// through the system account's imports: no race, no client of a removed account left in
// any account, and the other accounts' traffic never stops.
func TestReloadAccountsUnderLoad(t *testing.T) {
	users := func(withC bool) *auth.Authenticator {
		us := []*auth.User{{Username: "a", Password: "a", Account: "A"}, {Username: "sys", Password: "sys", Account: "SYS"}}
		if withC {
			us = append(us, &auth.User{Username: "c", Password: "c", Account: "C"})
		}
		au, err := auth.New(auth.Options{Users: us})
		if err != nil {
			t.Fatal(err)
		}
		return au
	}
	accs := func(withC bool) []core.AccountConfig {
		out := []core.AccountConfig{{Name: "A", Exports: []core.Export{{Subject: "a.>"}}}, {Name: "SYS"}}
		if withC {
			out = append(out, core.AccountConfig{Name: "C", Imports: []core.Import{{Account: "A", Subject: "a.>"}}})
		}
		return out
	}
	s := startCore(t, func(o *core.Options) { o.Auth, o.Accounts, o.SystemAccount = users(true), accs(true), "SYS" })
	a, err := nats.Connect(s.ClientURL(), nats.UserInfo("a", "a"))
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	got := make(chan *nats.Msg, 1024)
	if _, err := a.ChanSubscribe("a.x", got); err != nil {
		t.Fatal(err)
	}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	var cConns atomic.Int64
	wg.Add(1)
	go func() { // c comes and goes, subscribing and asking its CONNZ
		defer wg.Done()
		for {
			select {
			case <-stop:
				return
			default:
			}
			nc, err := nats.Connect(s.ClientURL(), nats.UserInfo("c", "c"), nats.NoReconnect())
			if err != nil {
				continue
			}
			cConns.Add(1)
			_, _ = nc.Subscribe("a.>", func(*nats.Msg) {})
			_, _ = nc.Request("$SYS.REQ.ACCOUNT.PING.CONNZ", nil, 50*time.Millisecond)
			nc.Close()
		}
	}()
	for i := range 200 {
		time.Sleep(time.Millisecond) // c's goroutine gets its turns
		if err := s.Reload(core.Options{Host: "127.0.0.1", Port: -1, Auth: users(i%2 == 0), Accounts: accs(i%2 == 0), SystemAccount: "SYS"}); err != nil {
			t.Fatalf("reload %d: %v", i, err)
		}
		if err := a.Publish("a.x", nil); err != nil {
			t.Fatal(err)
		}
		select {
		case <-got:
		case <-time.After(2 * time.Second):
			t.Fatalf("reload %d: A's own message did not come", i)
		}
	}
	close(stop)
	wg.Wait()
	// C is gone (the last reload removed it): none of its users is connected anywhere.
	cz, err := s.Connz(core.ConnzOptions{Auth: true})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range cz.Conns {
		if c.AuthorizedUser == "c" {
			t.Fatalf("a client of c stays, in account %q", c.Account)
		}
	}
	if n := cConns.Load(); n < 10 {
		t.Fatalf("c connected %d times only", n)
	}
}

// A reload whose accounts are unchanged still refuses users of an account not configured.
// Before, the check ran only when the accounts changed: the reload succeeded and the
// user's CONNECTs were then refused as if a reload had removed its account.
func TestReloadRefusesUserOfUnknownAccountWithSameAccounts(t *testing.T) {
	users := func(acc string) *auth.Authenticator {
		au, err := auth.New(auth.Options{Users: []*auth.User{{Username: "a", Password: "a", Account: acc}}})
		if err != nil {
			t.Fatal(err)
		}
		return au
	}
	accs := []core.AccountConfig{{Name: "A"}}
	s := startCore(t, func(o *core.Options) { o.Auth, o.Accounts = users("A"), accs })
	err := s.Reload(core.Options{Host: "127.0.0.1", Port: -1, Auth: users("Z"), Accounts: accs})
	if err == nil || !strings.Contains(err.Error(), `account "Z"`) {
		t.Fatalf("reload with a user of an unknown account: %v", err)
	}
}
