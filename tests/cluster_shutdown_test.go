package tests

import (
	"fmt"
	"slices"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
)

// A server leaving the mesh on purpose (SIGTERM, lame duck) must not tell its own clients that
// the other servers left. It closes its routes before its clients, and each route closed
// would otherwise send an INFO whose connect_urls lacks that peer: nats.go and nats.js drop
// the discovered servers missing from connect_urls and then retry only the server that is
// going away (issue 14).

// failoverRounds is how many graceful shutdowns a client must survive, every one of them.
const failoverRounds = 20

// startSeededMesh starts three servers, each seeded with the other two (what a deployment
// configures), so that any of them restarted dials its peers at once; it waits for the mesh.
func startSeededMesh(t *testing.T) []*node {
	t.Helper()
	nodes := []*node{newNode(t, "A"), newNode(t, "B"), newNode(t, "C")}
	for i, n := range nodes {
		n.start(n.clusterArgs("c1", others(nodes, nodes[i])...)...)
	}
	waitMesh(t, nodes...)
	return nodes
}

func others(nodes []*node, n *node) []*node {
	return slices.DeleteFunc(slices.Clone(nodes), func(o *node) bool { return o == n })
}

func hostPorts(nodes []*node) []string {
	hp := make([]string, len(nodes))
	for i, n := range nodes {
		hp[i] = n.hostPort()
	}
	return hp
}

// A client given one server's URL and none other learns the rest from connect_urls; that
// server is SIGTERMed and the client must reconnect to one of the others, 20 times of 20. The
// server stopped rotates over the mesh and is restarted on the same ports each round.
func TestClusterGracefulShutdownFailover(t *testing.T) {
	nodes := startSeededMesh(t)
	var failures []string
	start := time.Now()
	for i := range failoverRounds {
		x := nodes[i%len(nodes)]
		if err := sigtermFailover(t, x, others(nodes, x)); err != nil {
			failures = append(failures, fmt.Sprintf("round %d (SIGTERM %s): %v", i+1, x.name, err))
		}
		x.restart()
		waitMesh(t, nodes...)
	}
	t.Logf("%d rounds in %v", failoverRounds, time.Since(start).Round(time.Millisecond))
	if len(failures) > 0 {
		t.Fatalf("the client failed over in %d of %d graceful shutdowns:\n%s",
			failoverRounds-len(failures), failoverRounds, strings.Join(failures, "\n"))
	}
}

// sigtermFailover connects a client to x only, waits until it has discovered peers, SIGTERMs
// x and reports whether the client reconnected to a peer. The client gives up after a few
// refused attempts, so a pool that lost the peers shows at once as a closed connection.
func sigtermFailover(t *testing.T, x *node, peers []*node) error {
	t.Helper()
	reconnected := make(chan string, 1)
	closed := make(chan struct{})
	var failed atomic.Int32 // reconnect attempts refused
	nc := x.dial(nats.MaxReconnects(5), nats.ReconnectWait(20*time.Millisecond), nats.ReconnectJitter(0, 0),
		nats.ReconnectHandler(func(nc *nats.Conn) { reconnected <- nc.ConnectedUrl() }),
		nats.ReconnectErrHandler(func(*nats.Conn, error) { failed.Add(1) }),
		nats.ClosedHandler(func(*nats.Conn) { close(closed) }))
	defer nc.Close()
	waitDiscovered(t, nc, hostPorts(peers)...)

	must(t, x.p.cmd.Process.Signal(syscall.SIGTERM))
	if err := x.p.wait(t, 10*time.Second); err != nil {
		t.Fatalf("%s exited with %v after SIGTERM\n%s", x.name, err, tail(x.p.out.String(), 4000))
	}
	select {
	case u := <-reconnected:
		if !slices.ContainsFunc(peers, func(p *node) bool { return strings.HasSuffix(u, "//"+p.hostPort()) }) {
			return fmt.Errorf("client reconnected to %s, want one of %v", u, hostPorts(peers))
		}
		return nil
	case <-closed:
		return fmt.Errorf("client gave up after %d refused attempts with %v up: it no longer knew them",
			failed.Load(), hostPorts(peers))
	case <-time.After(5 * time.Second):
		return fmt.Errorf("client neither reconnected nor gave up in 5s (servers %v)", nc.Servers())
	}
}

// A server in lame duck mode does not tell its clients that a peer left either: the client
// is about to be sent away and needs every server it knows. The client of A sees the lame
// duck INFO, B then stops while A is still in its grace period, and A's client keeps B among
// its discovered servers until A closes it; it then fails over to C.
func TestClusterLameDuckKeepsPeers(t *testing.T) {
	if _, ref := clusterServer(t); ref {
		t.Skip("nats-server has no lame duck flags, and tells lame duck clients of peers that left")
	}
	a, b, c := newNode(t, "A"), newNode(t, "B"), newNode(t, "C")
	a.start(append(a.clusterArgs("c1", b, c), "--lame_duck_grace_period", "2s", "--lame_duck_duration", "3s")...)
	b.start(b.clusterArgs("c1", a, c)...)
	c.start(c.clusterArgs("c1", a, b)...)
	waitMesh(t, a, b, c)

	ldm := make(chan struct{}, 1)
	reconnected := make(chan string, 2)
	nc := a.dial(nats.MaxReconnects(-1), nats.ReconnectWait(20*time.Millisecond), nats.ReconnectJitter(0, 0),
		nats.LameDuckModeHandler(func(*nats.Conn) {
			select {
			case ldm <- struct{}{}:
			default:
			}
		}),
		nats.ReconnectHandler(func(nc *nats.Conn) { reconnected <- nc.ConnectedUrl() }))
	waitDiscovered(t, nc, b.hostPort(), c.hostPort())

	must(t, a.p.cmd.Process.Signal(syscall.SIGUSR2))
	select {
	case <-ldm:
	case <-time.After(5 * time.Second):
		t.Fatal("no lame duck INFO from A")
	}
	must(t, b.p.cmd.Process.Signal(syscall.SIGTERM))
	if err := b.p.wait(t, 10*time.Second); err != nil {
		t.Fatalf("B exited with %v after SIGTERM", err)
	}
	waitFor(t, meshTimeout, func() error { return a.checkPeers("C") })
	// Until A closes the client (the end of its 2 s grace period), watch what the client
	// knows: an INFO dropping B would arrive within milliseconds of the route's end. A pool
	// read counts only while the client is still connected to A, since after the failover
	// C's INFO legitimately drops B.
	for deadline := time.Now().Add(10 * time.Second); ; {
		if time.Now().After(deadline) {
			t.Fatal("A in lame duck did not close its client")
		}
		found := nc.DiscoveredServers()
		if !strings.HasSuffix(nc.ConnectedUrl(), "//"+a.hostPort()) {
			break
		}
		if !slices.ContainsFunc(found, func(u string) bool { return strings.HasSuffix(u, "//"+b.hostPort()) }) {
			t.Fatalf("A in lame duck told its client that B left: discovered servers %v", found)
		}
		time.Sleep(10 * time.Millisecond)
	}
	select {
	case u := <-reconnected:
		if !strings.HasSuffix(u, "//"+c.hostPort()) {
			t.Fatalf("A's client reconnected to %s, want C (%s)", u, c.hostPort())
		}
	case <-time.After(10 * time.Second):
		t.Fatal("A's client did not fail over to C")
	}
}
