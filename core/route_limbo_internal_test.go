package core

import (
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/starling-io/starling/core/auth"
)

// limboAccounts is accounts A0..A<n-1> and B when all, else B alone; user a (password a)
// is in the last A, user b in B.
func limboAccounts(t *testing.T, n int, all bool) (*auth.Authenticator, []AccountConfig) {
	us := []*auth.User{{Username: "b", Password: "b", Account: "B"}}
	accs := []AccountConfig{{Name: "B"}}
	if all {
		for i := range n {
			accs = append(accs, AccountConfig{Name: fmt.Sprintf("A%d", i)})
		}
		us = append(us, &auth.User{Username: "a", Password: "a", Account: fmt.Sprintf("A%d", n-1)})
	}
	au, err := auth.New(auth.Options{Users: us})
	if err != nil {
		t.Fatal(err)
	}
	return au, accs
}

// fillLimbo subscribes x in n-1 accounts A0.. of srv1 (in-process), then plain and queue
// subscribers of user a (the last account; the queue group twice, a weight change), and
// waits until srv0, which has none of them, has heard it all.
func fillLimbo(t *testing.T, srvs []*Server, n int) (fillers []*Conn, plain, queue func() error) {
	for i := range n - 1 {
		nc, err := srvs[1].ConnectAccount("filler", fmt.Sprintf("A%d", i))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(nc.Close)
		if _, err := nc.Subscribe("x", "", func(Msg) {}); err != nil {
			t.Fatal(err)
		}
		fillers = append(fillers, nc)
	}
	nc, p, q := plainAndQueueSubs(t, srvs[1])
	q2, err := nc.QueueSubscribeSync("q", "workers")
	if err != nil {
		t.Fatal(err)
	}
	if err := nc.Flush(); err != nil { // srv1 has it before b's sentinel below
		t.Fatal(err)
	}
	// Interest travels in order: once srv0 knows b's, it has heard the rest.
	b := connectUser(t, srvs[1], "b")
	if _, err := b.SubscribeSync("sentinel"); err != nil {
		t.Fatal(err)
	}
	if err := b.Flush(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 5*time.Second, func() bool { return len(srvs[0].account("B").subs.MatchString("sentinel").Plain) == 1 })
	return fillers, func() error { _, err := p.NextMsg(2 * time.Second); return err },
		func() error { // either member
			var err error
			for deadline := time.Now().Add(2 * time.Second); time.Now().Before(deadline); {
				if _, err = q.NextMsg(10 * time.Millisecond); err == nil {
					return nil
				}
				if _, err = q2.NextMsg(10 * time.Millisecond); err == nil {
					return nil
				}
			}
			return err
		}
}

// A rolling reload that adds more than 64 accounts: the server reloaded last still
// reaches the subscribers of every one of them on the server reloaded first, queue
// weights included. Before, a route kept the interest of at most 64 accounts it did not
// have: the RS+ of the 70th were dropped, and once it was added its clients never reached
// that account's subscribers on the other server ("nats: timeout").
func TestRouteInterestKeptForManyAccountsAddedLater(t *testing.T) {
	const n = 70
	srvs := startMesh(t, 2, func(i int, o *Options) { o.Auth, o.Accounts = limboAccounts(t, n, i == 1) })
	_, plain, queue := fillLimbo(t, srvs, n)
	o := *srvs[0].o()
	o.Auth, o.Accounts = limboAccounts(t, n, true)
	if err := srvs[0].Reload(o); err != nil {
		t.Fatal(err)
	}
	pub := connectUser(t, srvs[0], "a")
	for _, subj := range []string{"x", "q"} {
		if err := pub.Publish(subj, []byte("hi")); err != nil {
			t.Fatal(err)
		}
	}
	if err := pub.Flush(); err != nil {
		t.Fatal(err)
	}
	if err := plain(); err != nil {
		t.Fatalf("plain subscriber of the other server: %v", err)
	}
	if err := queue(); err != nil {
		t.Fatalf("queue subscriber of the other server: %v", err)
	}
	last := srvs[0].account(fmt.Sprintf("A%d", n-1))
	r := last.subs.MatchString("q")
	if len(r.Queues) != 1 || len(r.Queues[0].Members) != 1 || r.Queues[0].Members[0].weight.Load() != 2 {
		t.Fatalf("the account added knows the other server's queue group as %+v, want one route member of weight 2", r.Queues)
	}
}

// Past the bound on the accounts a route keeps aside, the interest dropped is logged with
// its account's name. Before, it was dropped without a word.
func TestRouteInterestDroppedIsLogged(t *testing.T) {
	const maxLimbo = 3
	logs := &routeLogs{}
	const n = 5
	srvs := startMesh(t, 2, func(i int, o *Options) {
		o.Auth, o.Accounts = limboAccounts(t, n, i == 1)
		o.Cluster.MaxLimboAccounts = maxLimbo
		if i == 0 {
			o.Logger = slog.New(slog.NewTextHandler(logs, nil))
		}
	})
	fillers, _, _ := fillLimbo(t, srvs, n)
	logs.mu.Lock()
	text := logs.b.String()
	logs.mu.Unlock()
	for _, name := range []string{"A3", "A4"} {
		found := false
		for _, line := range strings.Split(text, "\n") {
			found = found || strings.Contains(line, "interest dropped") && strings.Contains(line, "account="+name+" ")
		}
		if !found {
			t.Fatalf("no warning names the interest in %s dropped; the log:\n%s", name, text)
		}
	}
	// An account left without interest gives its place up.
	limbo := func() int {
		srvs[0].rmu.Lock()
		defer srvs[0].rmu.Unlock()
		for _, c := range srvs[0].routeConns {
			c.mu.Lock()
			defer c.mu.Unlock()
			return len(c.route.limbo)
		}
		return -1
	}
	if n := limbo(); n != maxLimbo {
		t.Fatalf("the route keeps %d accounts aside, want %d", n, maxLimbo)
	}
	fillers[0].Close()
	waitFor(t, 5*time.Second, func() bool { return limbo() == maxLimbo-1 })

	// With room made, a drop is news again: A4 takes the place, and A3's next interest,
	// dropped once more, is logged once more. Before, each account was named once per route.
	for _, acc := range []string{"A4", "A3"} {
		nc, err := srvs[1].ConnectAccount("again", acc)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(nc.Close)
		if _, err := nc.Subscribe("again", "", func(Msg) {}); err != nil {
			t.Fatal(err)
		}
	}
	b := connectUser(t, srvs[1], "b")
	if _, err := b.SubscribeSync("sentinel2"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 5*time.Second, func() bool { return len(srvs[0].account("B").subs.MatchString("sentinel2").Plain) == 1 })
	logs.mu.Lock()
	text = logs.b.String()
	logs.mu.Unlock()
	named := 0
	for _, line := range strings.Split(text, "\n") {
		if strings.Contains(line, "interest dropped") && strings.Contains(line, "account=A3 ") {
			named++
		}
	}
	if named != 2 {
		t.Fatalf("the interest in A3 dropped twice is named %d times, want 2; the log:\n%s", named, text)
	}
}

// The warnings start again when the limbo makes room, but at most every
// droppedRenamedEvery: interest churning at the bound does not log 65 lines each time.
func TestLimboFreedRenamesAtMostEveryMinute(t *testing.T) {
	st := &routeState{droppedAccs: map[string]bool{"A": true}}
	st.limboFreed()
	if len(st.droppedAccs) != 0 {
		t.Fatal("the first room made did not clear the accounts named")
	}
	st.droppedAccs["A"] = true
	st.limboFreed()
	if !st.droppedAccs["A"] {
		t.Fatal("cleared again within a minute")
	}
	st.droppedReset = time.Now().Add(-droppedRenamedEvery)
	st.limboFreed()
	if len(st.droppedAccs) != 0 {
		t.Fatal("not cleared a minute later")
	}
}
