package tests

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
)

// startAccountsMesh runs three servers with the accounts of accountsConf (text) joined in
// a mesh.
func startAccountsMesh(t *testing.T, text string) (a, b, c *node) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "accounts.conf")
	must(t, os.WriteFile(path, []byte(text), 0o600))
	a, b, c = newNode(t, "A"), newNode(t, "B"), newNode(t, "C")
	a.start(append(a.clusterArgs("acc"), "-c", path)...)
	b.start(append(b.clusterArgs("acc", a), "-c", path)...)
	c.start(append(c.clusterArgs("acc", a), "-c", path)...)
	waitMesh(t, a, b, c)
	return a, b, c
}

// probe publishes on pub until sub's channel gets a message on subj: interest travels in
// order over a route, so subscriptions made before the probe's are known by then.
func probe(t *testing.T, pub *nats.Conn, pubSubj string, sub *nats.Conn, subSubj string) {
	t.Helper()
	ch := make(chan *nats.Msg, 64)
	s, err := sub.ChanSubscribe(subSubj, ch)
	must(t, err)
	must(t, sub.Flush())
	waitFor(t, meshTimeout, func() error {
		must(t, pub.Publish(pubSubj, nil))
		must(t, pub.Flush())
		select {
		case <-ch:
			return nil
		case <-time.After(50 * time.Millisecond):
			return os.ErrDeadlineExceeded
		}
	})
	must(t, s.Unsubscribe())
}

// Accounts work the same on every server of a mesh: the account travels with interest and
// messages over the routes.
func TestClusterAccounts(t *testing.T) {
	n1, n2, n3 := startAccountsMesh(t, accountsConf)
	a1 := n1.dial(nats.UserInfo("a", "a"))
	a3 := n3.dial(nats.UserInfo("a", "a"))
	b1 := n1.dial(nats.UserInfo("b", "b"))
	b2 := n2.dial(nats.UserInfo("b", "b"))
	b3 := n3.dial(nats.UserInfo("b", "b"))

	// Isolation: B's wildcard subscribers on other servers see none of A's own subjects.
	aAll, bAll := newCounter(), newCounter()
	aAll.subscribe(t, a3, "secret.>")
	bAll.subscribe(t, b2, "secret.>")
	// Stream import: B's subscribers on two servers, and a queue group spread over them.
	imp, q := newCounter(), newCounter()
	imp.subscribe(t, b2, "from_a.public.news")
	q.queueSubscribe(t, b2, "from_a.*.news", "workers")
	q.queueSubscribe(t, b3, "from_a.*.news", "workers")
	must(t, b2.Flush())
	must(t, b3.Flush())
	awaitInterest(t, a1, a3)
	probe(t, a1, "public.probe", b2, "from_a.public.probe")
	probe(t, a1, "public.probe", b3, "from_a.public.probe")

	secret := payloads("secret", 200)
	publishAll(t, a1, "secret.x", secret)
	exactlyOnce(t, "A on another server", aAll.take(len(secret), 5*time.Second), secret)
	if got := bAll.take(1, 300*time.Millisecond); len(got) > 0 {
		t.Fatalf("B saw A's messages: %v", got)
	}
	news := payloads("news", 200)
	publishAll(t, a1, "public.news", news)
	exactlyOnce(t, "B through the stream import", imp.take(len(news), 5*time.Second), news)
	exactlyOnce(t, "B's queue group through the stream import", q.take(len(news), 5*time.Second), news)

	// Service import: B's requests on server 1 reach A's responder on server 3, and the
	// replies find their way back.
	_, err := a3.Subscribe("help.>", func(m *nats.Msg) { _ = m.Respond(append([]byte("re:"), m.Data...)) })
	must(t, err)
	must(t, a3.Flush())
	awaitInterest(t, a1, a3)
	for i := range 50 {
		resp, err := b1.Request("ask.x", msgf("%d", i), 2*time.Second)
		if err != nil {
			t.Fatalf("request %d: %v", i, err)
		}
		if string(resp.Data) != string(msgf("re:%d", i)) {
			t.Fatalf("reply %q", resp.Data)
		}
	}
}

// Servers whose account configurations differ say so when their routes connect.
func TestClusterAccountsMismatchLogged(t *testing.T) {
	if _, ref := clusterServer(t); ref {
		t.Skip("Starling's own log line")
	}
	dir := t.TempDir()
	p1, p2 := filepath.Join(dir, "1.conf"), filepath.Join(dir, "2.conf")
	must(t, os.WriteFile(p1, []byte(`accounts { A {}, B {} }`), 0o600))
	must(t, os.WriteFile(p2, []byte(`accounts { A {} }`), 0o600))
	n1, n2 := newNode(t, "A"), newNode(t, "B")
	n1.start(append(n1.clusterArgs("acc"), "-c", p1)...)
	n2.start(append(n2.clusterArgs("acc", n1), "-c", p2)...)
	waitMesh(t, n1, n2)
	for _, n := range []*node{n1, n2} {
		waitFor(t, 5*time.Second, func() error {
			if !strings.Contains(n.p.out.String(), "different account configuration") {
				return os.ErrNotExist
			}
			return nil
		})
	}
}

// Every server of a mesh answers the system account's requests, wherever the system user
// is connected; `nats server list` shows them all.
func TestClusterSystemAccount(t *testing.T) {
	n1, n2, n3 := startAccountsMesh(t, sysConf)
	sys := n2.dial(nats.UserInfo("sys", "sys"))
	inbox := nats.NewInbox()
	ch := make(chan *nats.Msg, 16)
	_, err := sys.ChanSubscribe(inbox, ch)
	must(t, err)
	must(t, sys.Flush())
	var names map[string]bool
	waitFor(t, meshTimeout, func() error {
		must(t, sys.PublishRequest("$SYS.REQ.SERVER.PING", inbox, nil))
		names = map[string]bool{}
		deadline := time.After(500 * time.Millisecond)
		for len(names) < 3 {
			select {
			case m := <-ch:
				r := struct {
					Server struct{ Name string } `json:"server"`
				}{}
				_ = json.Unmarshal(m.Data, &r)
				names[r.Server.Name] = true
			case <-deadline:
				return fmt.Errorf("answers from %v", names)
			}
		}
		return nil
	})
	for _, n := range []*node{n1, n2, n3} {
		if !names[n.name] {
			t.Fatalf("no answer from %s: %v", n.name, names)
		}
	}
	if _, ref := clusterServer(t); ref {
		return
	}
	cli := natsCLI(t)
	out, err := exec.Command(cli, "-s", n3.url(), "--user", "sys", "--password", "sys", "--timeout", "2s", "server", "list", "3").CombinedOutput()
	if err != nil {
		t.Fatalf("nats server list: %v\n%s", err, out)
	}
	for _, n := range []*node{n1, n2, n3} {
		if !strings.Contains(string(out), "│ "+n.name+" ") {
			t.Fatalf("nats server list does not show %s:\n%s", n.name, out)
		}
	}
}

// An ordinary account's CONNZ and STATZ requests are answered by every server of a mesh,
// as nats-server's (they are service imports of the system account's per-account
// requests, which every server serves): each server lists its own connections of the
// account; STATZ comes only from servers where the account has some. Before, only the
// requester's server answered.
func TestClusterAccountRequestsGatherEveryServer(t *testing.T) {
	n1, n2, n3 := startAccountsMesh(t, sysConf)
	a := n1.dial(nats.UserInfo("a", "a"))
	n3.dial(nats.UserInfo("a", "a"))
	n2.dial(nats.UserInfo("b", "b"))
	inbox := nats.NewInbox()
	ch := make(chan *nats.Msg, 64)
	_, err := a.ChanSubscribe(inbox, ch)
	must(t, err)
	must(t, a.Flush())
	type answer struct {
		Server struct {
			Name string `json:"name"`
		} `json:"server"`
		Data struct {
			Conns []struct {
				Account string `json:"account"`
			} `json:"connections"`
			Stats []struct {
				Account string `json:"acc"`
				Conns   int    `json:"conns"`
			} `json:"account_statz"`
		} `json:"data"`
	}
	gather := func(subj string, want int) map[string]string {
		t.Helper()
		var got map[string]string
		waitFor(t, meshTimeout, func() error {
			must(t, a.PublishRequest(subj, inbox, []byte(`{"acc":"B","accounts":["B"],"auth":true}`)))
			got = map[string]string{}
			deadline := time.After(500 * time.Millisecond)
			for {
				select {
				case m := <-ch:
					var r answer
					must(t, json.Unmarshal(m.Data, &r))
					var seen []string
					for _, c := range r.Data.Conns {
						seen = append(seen, c.Account)
					}
					for _, s := range r.Data.Stats {
						seen = append(seen, fmt.Sprintf("%s:%d", s.Account, s.Conns))
					}
					got[r.Server.Name] = strings.Join(seen, ",")
					continue
				case <-deadline:
				}
				break
			}
			if len(got) != want {
				return fmt.Errorf("%s: answers %v", subj, got)
			}
			return nil
		})
		return got
	}
	for _, subj := range []string{"$SYS.REQ.ACCOUNT.PING.CONNZ", "$SYS.REQ.SERVER.PING.CONNZ"} {
		got := gather(subj, 3)
		if got[n1.name] != "A" || got[n2.name] != "" || got[n3.name] != "A" {
			t.Fatalf("%s: %v", subj, got)
		}
	}
	got := gather("$SYS.REQ.ACCOUNT.PING.STATZ", 2)
	if got[n1.name] != "A:1" || got[n3.name] != "A:1" {
		t.Fatalf("STATZ: %v", got)
	}
}

// A server going into lame duck mode or shutting down says so on
// $SYS.SERVER.<id>.LAMEDUCK / SHUTDOWN before it disconnects anyone, as nats-server does:
// the other servers' system users hear it.
func TestClusterServerShutdownEvents(t *testing.T) {
	n1, n2, n3 := startAccountsMesh(t, sysConf)
	sys := n1.dial(nats.UserInfo("sys", "sys"))
	ch := make(chan *nats.Msg, 16)
	for _, subj := range []string{"$SYS.SERVER.*.SHUTDOWN", "$SYS.SERVER.*.LAMEDUCK"} {
		_, err := sys.ChanSubscribe(subj, ch)
		must(t, err)
	}
	must(t, sys.Flush())
	// Interest travels in order: once a later subscription is known, so are these.
	probe(t, n2.dial(nats.UserInfo("sys", "sys")), "probe.x", sys, "probe.x")
	probe(t, n3.dial(nats.UserInfo("sys", "sys")), "probe.x", sys, "probe.x")
	for _, c := range []struct {
		n    *node
		sig  syscall.Signal
		kind string
	}{{n3, syscall.SIGUSR2, "LAMEDUCK"}, {n2, syscall.SIGTERM, "SHUTDOWN"}} {
		must(t, c.n.p.cmd.Process.Signal(c.sig))
		var m *nats.Msg
		select {
		case m = <-ch:
		case <-time.After(5 * time.Second):
			t.Fatalf("no %s event from %s", c.kind, c.n.name)
		}
		var info struct {
			Name string `json:"name"`
			ID   string `json:"id"`
		}
		must(t, json.Unmarshal(m.Data, &info))
		if info.Name != c.n.name || m.Subject != "$SYS.SERVER."+info.ID+"."+c.kind {
			t.Fatalf("%s of %s: %s %s", c.kind, c.n.name, m.Subject, m.Data)
		}
	}
}

// $SYS.REQ.ACCOUNT.<acc>.CONNS and $SYS.REQ.ACCOUNT.NSUBS are answered by every server of a
// mesh where the account has connections, and only by those, as nats-server's (this test
// passes with CLUSTER_REF_SERVER too).
func TestClusterSystemAccountConnsAndNumSubs(t *testing.T) {
	n1, n2, n3 := startAccountsMesh(t, sysConf)
	a1 := n1.dial(nats.UserInfo("a", "a"))
	a3 := n3.dial(nats.UserInfo("a", "a"))
	for _, nc := range []*nats.Conn{a1, a3, a3} {
		_, err := nc.SubscribeSync("foo")
		must(t, err)
		must(t, nc.Flush())
	}
	sys := n2.dial(nats.UserInfo("sys", "sys"))
	inbox := nats.NewInbox()
	ch := make(chan *nats.Msg, 16)
	_, err := sys.ChanSubscribe(inbox, ch)
	must(t, err)
	must(t, sys.Flush())
	gather := func(subj, body, want string) {
		t.Helper()
		waitFor(t, meshTimeout, func() error {
			must(t, sys.PublishRequest(subj, inbox, []byte(body)))
			var got []string
			deadline := time.After(500 * time.Millisecond)
			for done := false; !done; {
				select {
				case m := <-ch:
					var ev struct {
						Server struct{ Name string } `json:"server"`
						Conns  int                   `json:"conns"`
					}
					if json.Unmarshal(m.Data, &ev) == nil && ev.Server.Name != "" {
						got = append(got, fmt.Sprintf("%s:%d", ev.Server.Name, ev.Conns))
					} else {
						got = append(got, string(m.Data))
					}
				case <-deadline:
					done = true
				}
			}
			slices.Sort(got)
			if s := strings.Join(got, ","); s != want {
				return fmt.Errorf("%s: %s, want %s", subj, s, want)
			}
			return nil
		})
	}
	gather("$SYS.REQ.ACCOUNT.NSUBS", `{"acc":"A","subject":"foo"}`, "1,2")
	gather("$SYS.REQ.ACCOUNT.A.CONNS", "", n1.name+":1,"+n3.name+":1")
	gather("$SYS.REQ.ACCOUNT.C.CONNS", "", "")
}
