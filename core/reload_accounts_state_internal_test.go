package core

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/starling-io/starling/core/auth"
)

// respTargets counts the entries of account a's reply map whose reply goes to account to.
func respTargets(a, to *account) int {
	a.resp.mu.Lock()
	defer a.resp.mu.Unlock()
	n := 0
	for _, t := range a.resp.m {
		if t.acc == to {
			n++
		}
	}
	return n
}

// serviceAccounts is B exporting the service "svc", with A importing it when withA.
func serviceAccounts(t *testing.T, withA bool) (*auth.Authenticator, []AccountConfig) {
	us := []*auth.User{{Username: "b", Password: "b", Account: "B"}}
	accs := []AccountConfig{{Name: "B", Exports: []Export{{Service: true, Subject: "svc"}}}}
	if withA {
		us = append(us, &auth.User{Username: "a", Password: "a", Account: "A"})
		accs = append(accs, AccountConfig{Name: "A", Imports: []Import{{Service: true, Account: "B", Subject: "svc"}}})
	}
	au, err := auth.New(auth.Options{Users: us})
	if err != nil {
		t.Fatal(err)
	}
	return au, accs
}

func connectUser(t *testing.T, s *Server, user string) *nats.Conn {
	t.Helper()
	nc, err := nats.Connect(s.ClientURL(), nats.UserInfo(user, user), nats.NoReconnect())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	return nc
}

// A reload that removes a service importer drops the exporter's reply map entries that
// lead into it, and the account added back under the same name gets none of the old
// replies. Before, a request left unanswered when its importer went kept its entry — and
// through it the whole removed account — until a later request of another importer swept
// it after the response threshold, forever when none came ("1 entries into the removed
// account").
func TestReloadRemovedImporterLeavesNoReplyEntry(t *testing.T) {
	au, accs := serviceAccounts(t, true)
	s, err := New(Options{Host: "127.0.0.1", Port: -1, Auth: au, Accounts: accs})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Shutdown(context.Background()) })
	svc := connectUser(t, s, "b")
	reqs, err := svc.SubscribeSync("svc")
	if err != nil {
		t.Fatal(err)
	}
	if err := svc.Flush(); err != nil {
		t.Fatal(err)
	}
	a := connectUser(t, s, "a")
	if err := a.PublishRequest("svc", "answer", []byte("q")); err != nil {
		t.Fatal(err)
	}
	req, err := reqs.NextMsg(2 * time.Second)
	if err != nil {
		t.Fatal(err)
	}
	b, oldA := s.account("B"), s.account("A")
	if n := respTargets(b, oldA); n != 1 {
		t.Fatalf("%d reply entries into A before the reload, want 1", n)
	}

	au, accs = serviceAccounts(t, false)
	if err := s.Reload(Options{Host: "127.0.0.1", Port: -1, Auth: au, Accounts: accs}); err != nil {
		t.Fatal(err)
	}
	if n := respTargets(b, oldA); n != 0 {
		t.Fatalf("%d entries into the removed account left in the exporter's reply map, want 0", n)
	}

	// A back under the same name: the old request's reply reaches nobody of it.
	au, accs = serviceAccounts(t, true)
	if err := s.Reload(Options{Host: "127.0.0.1", Port: -1, Auth: au, Accounts: accs}); err != nil {
		t.Fatal(err)
	}
	a2 := connectUser(t, s, "a")
	answers, err := a2.SubscribeSync("answer")
	if err != nil {
		t.Fatal(err)
	}
	if err := a2.Flush(); err != nil {
		t.Fatal(err)
	}
	if err := req.Respond([]byte("old")); err != nil {
		t.Fatal(err)
	}
	if m, err := answers.NextMsg(300 * time.Millisecond); err == nil {
		t.Fatalf("the removed account's reply %q reached the account added back", m.Data)
	}
	// The new A's own requests are served.
	go func() {
		if m, err := reqs.NextMsg(2 * time.Second); err == nil {
			_ = m.Respond([]byte("new"))
		}
	}()
	if m, err := a2.Request("svc", nil, 2*time.Second); err != nil || string(m.Data) != "new" {
		t.Fatalf("request of the account added back: %v %v", m, err)
	}
}

// An account a reload removes and adds back on one server, while the other server keeps
// it, still reaches the other server's subscribers of before: their interest, which the
// other server does not announce again, moves to the account added back. Before, it
// stayed in the removed account's index, the route's record of it blocked its later RS+
// (weight updates), and the new account's messages never crossed ("nats: timeout").
func TestRouteInterestMovesToAccountAddedBack(t *testing.T) {
	au, accs := serviceAccounts(t, true)
	srvs := startMesh(t, 2, func(i int, o *Options) { o.Auth, o.Accounts = au, accs })
	sub, plain, queue := plainAndQueueSubs(t, srvs[1])
	routeInterest := func(subj string) int {
		a := srvs[0].account("A")
		if a == nil {
			return 0
		}
		r := a.subs.Match([]byte(subj))
		n := len(r.Plain)
		for _, g := range r.Queues {
			n += len(g.Members)
		}
		return n
	}
	waitFor(t, 5*time.Second, func() bool { return routeInterest("x") == 1 && routeInterest("q") == 1 })

	for _, withA := range []bool{false, true} {
		au, accs := serviceAccounts(t, withA)
		o := *srvs[0].o()
		o.Auth, o.Accounts = au, accs
		if err := srvs[0].Reload(o); err != nil {
			t.Fatal(err)
		}
	}
	if n := routeInterest("x"); n != 1 {
		t.Fatalf("the account added back knows %d route subscriptions on x, want 1", n)
	}
	reachesPlainAndQueue(t, srvs[0], plain, queue)
	// The other server's unsubscribe reaches the subscriptions moved.
	if err := plain.Unsubscribe(); err != nil {
		t.Fatal(err)
	}
	if err := sub.Flush(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 5*time.Second, func() bool { return routeInterest("x") == 0 })
}

// An in-process connection opened in an account while a reload removes it is either
// refused or closed by the reload, never left open in the removed account. Before, one
// that found the account just before the reload took it out of force, and registered just
// after the reload's sweep of the connections, stayed open there for good: its
// subscriptions and publishes in an index nothing else reaches.
func TestConnectAccountRacingItsRemoval(t *testing.T) {
	accs := func(withC bool) []AccountConfig {
		out := []AccountConfig{{Name: "B"}}
		if withC {
			out = append(out, AccountConfig{Name: "C"})
		}
		return out
	}
	s, err := New(Options{Host: "127.0.0.1", Port: -1, Accounts: accs(true)})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Shutdown(context.Background()) })
	stop := make(chan struct{})
	var open []*Conn // those not seen closed yet
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			select {
			case <-stop:
				return
			default:
			}
			if nc, err := s.ConnectAccount("racer", "C"); err == nil {
				open = append(open, nc)
			}
			if len(open) >= 256 {
				open = slices.DeleteFunc(open, func(nc *Conn) bool { return nc.c.isClosed() })
			}
		}
	}()
	for i := range 1000 {
		if err := s.Reload(Options{Host: "127.0.0.1", Port: -1, Accounts: accs(i%2 == 0)}); err != nil {
			t.Fatal(err)
		}
	}
	close(stop)
	<-done
	// The last reload removed C.
	left := 0
	for _, nc := range open {
		if !nc.c.isClosed() {
			left++
		}
		nc.Close()
	}
	if left > 0 {
		t.Fatalf("%d in-process connections left open in the removed account", left)
	}
}

// An account added by a reload on one server after another server of the mesh had it
// reaches that server's subscribers of before, as a rolling reload that adds an account
// does: their interest, which came while this server did not have the account, is kept
// aside and taken over when it comes. Before, it was dropped, and this server's clients of
// the new account never reached them ("nats: timeout").
func TestRouteInterestKeptForAnAccountAddedLater(t *testing.T) {
	srvs := startMesh(t, 2, func(i int, o *Options) {
		o.Auth, o.Accounts = serviceAccounts(t, i == 1)
	})
	sub, plain, queue := plainAndQueueSubs(t, srvs[1])
	time.Sleep(100 * time.Millisecond) // the RS+ reach server 0, which has no A yet
	o := *srvs[0].o()
	o.Auth, o.Accounts = serviceAccounts(t, true)
	if err := srvs[0].Reload(o); err != nil {
		t.Fatal(err)
	}
	reachesPlainAndQueue(t, srvs[0], plain, queue)
	if err := plain.Unsubscribe(); err != nil {
		t.Fatal(err)
	}
	if err := sub.Flush(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 5*time.Second, func() bool { return len(srvs[0].account("A").subs.MatchString("x").Plain) == 0 })
}

// A request the importer's client had sent when a reload removed its account, and that the
// client's reader handles after the reload closed it, leaves no reply entry either. Before,
// the reader went on through its last buffer after the reload had cleaned the reply map
// ("1624 entries into the removed account left").
func TestReloadRemovedImporterInFlightRequests(t *testing.T) {
	for round := range 10 {
		au, accs := serviceAccounts(t, true)
		s, err := New(Options{Host: "127.0.0.1", Port: -1, Auth: au, Accounts: accs})
		if err != nil {
			t.Fatal(err)
		}
		if err := s.Start(); err != nil {
			t.Fatal(err)
		}
		svc := connectUser(t, s, "b")
		if _, err := svc.Subscribe("svc", func(*nats.Msg) {}); err != nil {
			t.Fatal(err)
		}
		if err := svc.Flush(); err != nil {
			t.Fatal(err)
		}
		a := connectUser(t, s, "a")
		stop := make(chan struct{})
		done := make(chan struct{})
		go func() {
			defer close(done)
			for {
				select {
				case <-stop:
					return
				default:
				}
				if a.PublishRequest("svc", "answer", []byte("q")) != nil {
					return
				}
			}
		}()
		b, oldA := s.account("B"), s.account("A")
		waitFor(t, 2*time.Second, func() bool { return respTargets(b, oldA) > 1000 })
		au, accs = serviceAccounts(t, false)
		if err := s.Reload(Options{Host: "127.0.0.1", Port: -1, Auth: au, Accounts: accs}); err != nil {
			t.Fatal(err)
		}
		close(stop)
		<-done
		time.Sleep(50 * time.Millisecond) // the closed client's reader ends its last buffer
		n := respTargets(b, oldA)
		_ = s.Shutdown(context.Background())
		if n != 0 {
			t.Fatalf("round %d: %d entries into the removed account left in the exporter's reply map, want 0", round, n)
		}
	}
}

// plainAndQueueSubs connects user a to srv with a plain subscriber on x and a queue
// subscriber on q (group workers).
func plainAndQueueSubs(t *testing.T, srv *Server) (*nats.Conn, *nats.Subscription, *nats.Subscription) {
	t.Helper()
	nc := connectUser(t, srv, "a")
	plain, err := nc.SubscribeSync("x")
	if err != nil {
		t.Fatal(err)
	}
	queue, err := nc.QueueSubscribeSync("q", "workers")
	if err != nil {
		t.Fatal(err)
	}
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	return nc, plain, queue
}

// reachesPlainAndQueue publishes on x and q as user a of srv and expects plain and queue
// (plainAndQueueSubs, on the other server) to get them.
func reachesPlainAndQueue(t *testing.T, srv *Server, plain, queue *nats.Subscription) {
	t.Helper()
	pub := connectUser(t, srv, "a")
	for _, subj := range []string{"x", "q"} {
		if err := pub.Publish(subj, []byte("hi")); err != nil {
			t.Fatal(err)
		}
	}
	if err := pub.Flush(); err != nil {
		t.Fatal(err)
	}
	if _, err := plain.NextMsg(2 * time.Second); err != nil {
		t.Fatalf("plain subscriber of the other server: %v", err)
	}
	if _, err := queue.NextMsg(2 * time.Second); err != nil {
		t.Fatalf("queue subscriber of the other server: %v", err)
	}
}
