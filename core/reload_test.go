package core_test

import (
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/starling-io/starling/core"
	"github.com/starling-io/starling/core/auth"
)

// A reload that lowers max_connections below the clients connected closes the newest ones
// until the rest fit, each told "maximum connections exceeded", as nats-server does; the
// in-process connections are not counted. Before, every client stayed and the new limit
// only applied to later accepts.
func TestReloadLowersMaxConnections(t *testing.T) {
	s := startCore(t, func(o *core.Options) { o.MaxConnections = 10 })
	if _, err := s.Connect("in-process"); err != nil {
		t.Fatal(err)
	}
	type conn struct {
		nc     *nats.Conn
		errs   chan error
		closed chan struct{}
	}
	var conns []conn
	for range 5 {
		c := conn{errs: make(chan error, 4), closed: make(chan struct{})}
		nc, err := nats.Connect(s.ClientURL(), nats.NoReconnect(),
			nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) { c.errs <- err }),
			nats.ClosedHandler(func(*nats.Conn) { close(c.closed) }))
		if err != nil {
			t.Fatal(err)
		}
		defer nc.Close()
		c.nc = nc
		conns = append(conns, c)
	}
	if err := s.Reload(core.Options{Host: "127.0.0.1", Port: -1, MaxConnections: 2}); err != nil {
		t.Fatal(err)
	}
	for i, c := range conns[2:] {
		select {
		case <-c.closed:
		case <-time.After(5 * time.Second):
			t.Fatalf("client %d still connected over the lowered max_connections", i+2)
		}
		if err := c.nc.LastError(); err == nil || !strings.Contains(err.Error(), "maximum connections exceeded") {
			t.Errorf("client %d closed with %v, want maximum connections exceeded", i+2, err)
		}
	}
	for i, c := range conns[:2] {
		if err := c.nc.Flush(); err != nil {
			t.Fatalf("client %d within the limit: %v", i, err)
		}
	}
	if n := s.Varz().Connections; n != 2 {
		t.Fatalf("%d connections after the reload, want 2", n)
	}
	cz, err := s.Connz(core.ConnzOptions{State: "closed"})
	if err != nil {
		t.Fatal(err)
	}
	for _, ci := range cz.Conns {
		if ci.Reason != "Maximum Connections Exceeded" {
			t.Errorf("closed connection %d: reason %q", ci.Cid, ci.Reason)
		}
	}
	// Still the limit for new connections (refused at once: nats.go may see the -ERR or,
	// as against nats-server, a broken pipe writing its CONNECT).
	if nc, err := nats.Connect(s.ClientURL(), nats.NoReconnect()); err == nil {
		nc.Close()
		t.Fatal("a third connection was accepted")
	}
}

// A reload to NoClientConnections closes every client (routes and in-process connections
// stay). Before, closeOverMaxConnections sliced its list at -1 and panicked.
func TestReloadToNoClientConnections(t *testing.T) {
	s := startCore(t, func(o *core.Options) { o.MaxConnections = 10 })
	if _, err := s.Connect("in-process"); err != nil {
		t.Fatal(err)
	}
	closed := make(chan struct{})
	nc, err := nats.Connect(s.ClientURL(), nats.NoReconnect(), nats.ClosedHandler(func(*nats.Conn) { close(closed) }))
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	if err := s.Reload(core.Options{Host: "127.0.0.1", Port: -1, MaxConnections: core.NoClientConnections}); err != nil {
		t.Fatal(err)
	}
	select {
	case <-closed:
	case <-time.After(5 * time.Second):
		t.Fatal("a client stayed connected after a reload to no client connections")
	}
	if err := nc.LastError(); err == nil || !strings.Contains(err.Error(), "maximum connections exceeded") {
		t.Errorf("closed with %v, want maximum connections exceeded", err)
	}
	c, _ := dial(t, s)
	c.expect("-ERR 'maximum connections exceeded'\r\n")
}

// Reloads that overlap end with every client under the options in force: the last one
// stored. Before, each Reload stored its options and then re-checked the clients, so an
// earlier Reload's re-check could run after a later one's and leave a client with the
// permissions of options no longer in force.
func TestConcurrentReloadsEndConsistent(t *testing.T) {
	perms := func(subj string) *auth.Authenticator {
		a, err := auth.New(auth.Options{Users: []*auth.User{
			{Username: "u", Password: "pw", Permissions: &auth.Permissions{Publish: &auth.SubjectPermission{Allow: []string{subj}}}},
			{Username: "watch", Password: "pw"},
		}})
		if err != nil {
			t.Fatal(err)
		}
		return a
	}
	s := startCore(t, func(o *core.Options) { o.Auth = perms("x") })
	watch, err := nats.Connect(s.ClientURL(), nats.UserInfo("watch", "pw"))
	if err != nil {
		t.Fatal(err)
	}
	defer watch.Close()
	seen, err := watch.SubscribeSync("x")
	if err != nil {
		t.Fatal(err)
	}
	if err := watch.Flush(); err != nil {
		t.Fatal(err)
	}
	var clients []*nats.Conn
	for range 10 {
		nc, err := nats.Connect(s.ClientURL(), nats.UserInfo("u", "pw"), nats.ErrorHandler(func(*nats.Conn, *nats.Subscription, error) {}))
		if err != nil {
			t.Fatal(err)
		}
		defer nc.Close()
		clients = append(clients, nc)
	}
	// Whether the server lets nc publish to "x": once nc's PONG and then watch's are back,
	// what nc sent is delivered or was refused.
	mayPublishX := func(nc *nats.Conn) bool {
		if err := nc.Publish("x", nil); err != nil {
			t.Fatal(err)
		}
		if err := nc.Flush(); err != nil {
			t.Fatal(err)
		}
		if err := watch.Flush(); err != nil {
			t.Fatal(err)
		}
		_, err := seen.NextMsg(0)
		return err == nil
	}
	for round := range 1000 {
		a, b := perms("x"), perms("y")
		if round%2 == 1 {
			a, b = b, a
		}
		var wg sync.WaitGroup
		for _, au := range []*auth.Authenticator{a, b} {
			wg.Add(1)
			go func() {
				defer wg.Done()
				if err := s.Reload(core.Options{Host: "127.0.0.1", Port: -1, Auth: au}); err != nil {
					t.Error(err)
				}
			}()
		}
		wg.Wait()
		fresh, err := nats.Connect(s.ClientURL(), nats.UserInfo("u", "pw"), nats.ErrorHandler(func(*nats.Conn, *nats.Subscription, error) {}))
		if err != nil {
			t.Fatal(err)
		}
		want := mayPublishX(fresh)
		fresh.Close()
		for i, nc := range clients {
			if got := mayPublishX(nc); got != want {
				t.Fatalf("round %d: client %d may publish to x: %v, a new client: %v", round, i, got, want)
			}
		}
	}
}

// The same accounts written in another order are the same accounts (as for the route
// digest): a reload of a file that only moved an account block is not refused as
// changing them.
func TestReloadAccountsInAnotherOrder(t *testing.T) {
	accs := []core.AccountConfig{
		{Name: "A", Exports: []core.Export{{Subject: "a.>"}}},
		{Name: "B", Imports: []core.Import{{Account: "A", Subject: "a.>"}}},
	}
	s := startCore(t, func(o *core.Options) { o.Accounts = accs })
	moved := []core.AccountConfig{accs[1], accs[0]}
	if err := s.Reload(core.Options{Host: "127.0.0.1", Port: -1, Accounts: moved}); err != nil {
		t.Fatalf("reload with the accounts in another order: %v", err)
	}
	// Exports, imports and an export's accounts are lists whose order means nothing either
	// (they were compared in order: this reload was refused).
	accs = []core.AccountConfig{
		{Name: "A", Exports: []core.Export{{Subject: "a.>"}, {Service: true, Subject: "s.>", Accounts: []string{"B", "C"}}}},
		{Name: "B", Imports: []core.Import{{Account: "A", Subject: "a.>"}, {Service: true, Account: "A", Subject: "s.>"}}},
		{Name: "C", Imports: []core.Import{{Service: true, Account: "A", Subject: "s.x"}}, Exports: []core.Export{}},
	}
	s = startCore(t, func(o *core.Options) { o.Accounts = accs })
	moved = []core.AccountConfig{
		{Name: "C", Imports: []core.Import{{Service: true, Account: "A", Subject: "s.x"}}},
		{Name: "B", Imports: []core.Import{{Service: true, Account: "A", Subject: "s.>"}, {Account: "A", Subject: "a.>"}}},
		{Name: "A", Exports: []core.Export{{Service: true, Subject: "s.>", Accounts: []string{"C", "B"}}, {Subject: "a.>"}}},
	}
	if err := s.Reload(core.Options{Host: "127.0.0.1", Port: -1, Accounts: moved}); err != nil {
		t.Fatalf("reload with the exports and imports in another order: %v", err)
	}
	changed := []core.AccountConfig{accs[1], accs[2], {Name: "A", Exports: append(accs[0].Exports, core.Export{Subject: "b.>"})}}
	if err := s.Reload(core.Options{Host: "127.0.0.1", Port: -1, Accounts: changed}); err == nil || !strings.Contains(err.Error(), "accounts cannot change") {
		t.Fatalf("reload changing an account's exports: %v", err)
	}
}
