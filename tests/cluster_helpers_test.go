package tests

import (
	"bufio"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
)

// The cluster tests run real server processes joined by routes, with real nats.go clients.
// With CLUSTER_REF_SERVER=/path/to/nats-server they run the same flags against the reference
// server instead of starling, to validate the tests themselves.

const (
	meshTimeout  = 10 * time.Second // routes formed or healed
	readyTimeout = 10 * time.Second // a server accepting clients
	quiet        = 150 * time.Millisecond
)

// clusterServer is the binary under test and whether it is the reference nats-server.
func clusterServer(t *testing.T) (string, bool) {
	t.Helper()
	if p := os.Getenv("CLUSTER_REF_SERVER"); p != "" {
		return p, true
	}
	return starlingBinary(t), false
}

// node is one server process of a test cluster, on ports chosen by the test so that it can be
// restarted on the same ones.
type node struct {
	t                  *testing.T
	name               string
	port, cport, mport int      // client, route, monitoring
	rport              int      // raft (streaming clusters)
	extra              []string // flags given to start, kept for restart
	args               []string // the full command line
	p                  *proc
	ref                bool
	stan               bool   // runs streaming (clustered); else started with --no_streaming
	bin                string // the binary to run, when not the one under test (mixed versions)
	lives              int    // processes started (logOnFailure)
}

// newNode picks free ports for a server; nothing runs until start.
func newNode(t *testing.T, name string) *node {
	t.Helper()
	p := nodePorts(t)
	return &node{t: t, name: name, port: p[0], cport: p[1], mport: p[2]}
}

// handedOut are the ports nodePorts has returned in this test process: the kernel may offer
// a released port again, and a node's ports are chosen long before it binds them (and bound
// again on restart), so no two nodes of a run ever get the same one.
var handedOut = struct {
	sync.Mutex
	ports map[int]bool
}{ports: map[int]bool{}}

// nodePorts returns three distinct free loopback ports never returned before.
func nodePorts(t *testing.T) [3]int {
	t.Helper()
	var out [3]int
	for i := range out {
		out[i] = freePort(t)
	}
	return out
}

// freePort returns a free loopback port never returned before in this process, below the
// kernel's ephemeral range: a port is chosen long before its server binds it (and bound
// again on a restart), and one from the ephemeral range could meanwhile become the local
// port of any outgoing connection (a route dial, a client), failing the start with
// "address already in use".
func freePort(t *testing.T) int {
	t.Helper()
	lo, hi := 10000, ephemeralLow()
	handedOut.Lock()
	defer handedOut.Unlock()
	for range 1000 {
		p := lo + rand.IntN(hi-lo)
		if handedOut.ports[p] {
			continue
		}
		l, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", p))
		if err != nil {
			continue // taken
		}
		l.Close()
		handedOut.ports[p] = true
		return p
	}
	t.Fatalf("no free port in %d..%d", lo, hi)
	return 0
}

// ephemeralLow is the first port of the kernel's ephemeral range (32768 when unknown).
func ephemeralLow() int {
	b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range")
	if err != nil {
		return 32768
	}
	f := strings.Fields(string(b))
	if len(f) == 0 {
		return 32768
	}
	n, err := strconv.Atoi(f[0])
	if err != nil || n <= 12000 {
		return 32768
	}
	return n
}

func (n *node) url() string      { return fmt.Sprintf("nats://127.0.0.1:%d", n.port) }
func (n *node) hostPort() string { return fmt.Sprintf("127.0.0.1:%d", n.port) }
func (n *node) routeURL() string { return fmt.Sprintf("nats://127.0.0.1:%d", n.cport) }
func (n *node) routeAddr() string {
	return fmt.Sprintf("127.0.0.1:%d", n.cport)
}

// clusterArgs are the nats-server clustering flags: route listener, cluster name, seeds.
func (n *node) clusterArgs(cluster string, seeds ...*node) []string {
	args := []string{"--cluster", n.routeURL(), "--cluster_name", cluster}
	if len(seeds) > 0 {
		urls := make([]string, len(seeds))
		for i, s := range seeds {
			urls[i] = s.routeURL()
		}
		args = append(args, "--routes", strings.Join(urls, ","))
	}
	return args
}

// start runs the server with the usual flags plus args and waits until it accepts clients.
func (n *node) start(args ...string) *node {
	n.t.Helper()
	bin, ref := clusterServer(n.t)
	if n.bin != "" {
		bin, ref = n.bin, false
	}
	n.ref, n.extra = ref, args
	n.args = append([]string{"-a", "127.0.0.1", "-p", fmt.Sprint(n.port), "-m", fmt.Sprint(n.mport), "-n", n.name}, args...)
	if !ref && !n.stan {
		n.args = append(n.args, "--no_streaming") // these tests are about the core mesh
	}
	n.p = startProc(n.t, bin, n.args...)
	n.logOnFailure(bin)
	waitFor(n.t, readyTimeout, func() error {
		select {
		case err := <-n.p.done:
			n.p.done <- err
			n.t.Fatalf("server %s exited during start: %v\n%s", n.name, err, n.p.out.String())
		default:
		}
		nc, err := nats.Connect(n.url(), nats.Timeout(time.Second), nats.NoReconnect())
		if err != nil {
			return err
		}
		nc.Close()
		_, err = n.routez()
		return err
	})
	return n
}

// logOnFailure prints this lifetime's output if the test fails: the last two lifetimes of
// each node (a fault test restarts nodes dozens of times), every one in full to files under
// $STARLING_TEST_LOGDIR when set. Each lifetime's own process: the output of the node's
// latest run, printed once per restart, hid what the node said before it was killed.
func (n *node) logOnFailure(bin string) {
	p, life, args := n.p, n.lives, strings.Join(n.args, " ")
	n.lives++
	n.t.Cleanup(func() {
		if !n.t.Failed() {
			return
		}
		out := p.out.String()
		if dir := os.Getenv("STARLING_TEST_LOGDIR"); dir != "" {
			name := fmt.Sprintf("%s-%s-%03d.log", strings.ReplaceAll(n.t.Name(), "/", "_"), n.name, life)
			if err := os.WriteFile(filepath.Join(dir, name), []byte(args+"\n"+out), 0o644); err != nil {
				n.t.Logf("keeping %s's output: %v", n.name, err)
			}
		}
		if life >= n.lives-2 {
			n.t.Logf("server %s, run %d of %d (%s %s) output:\n%s", n.name, life+1, n.lives, bin, args, tail(out, 4000))
		}
	})
}

// restart starts the server again with the same flags and ports.
func (n *node) restart() {
	n.t.Helper()
	n.start(n.extra...)
}

// kill sends SIGKILL and reaps the process.
func (n *node) kill() {
	_ = n.p.cmd.Process.Kill()
	err := <-n.p.done
	n.p.done <- err // for the cleanup registered by startProc
}

func tail(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return "…" + s[len(s)-n:]
}

// routezInfo is the part of /routez the tests read.
type routezInfo struct {
	ServerID  string `json:"server_id"`
	NumRoutes int    `json:"num_routes"`
	Routes    []struct {
		RemoteID   string `json:"remote_id"`
		RemoteName string `json:"remote_name"`
		DidSolicit bool   `json:"did_solicit"`
	} `json:"routes"`
}

// peers are the distinct servers this one has routes to, by name. nats-server keeps a pool of
// route connections per peer (3 by default, plus one for the system account), so num_routes
// is 4 × peers there; starling keeps one.
func (r routezInfo) peers() []string {
	var names []string
	for _, rt := range r.Routes {
		if !slices.Contains(names, rt.RemoteName) {
			names = append(names, rt.RemoteName)
		}
	}
	slices.Sort(names)
	return names
}

func (n *node) monGet(path string, v any) error {
	c := http.Client{Timeout: 2 * time.Second}
	resp, err := c.Get(fmt.Sprintf("http://127.0.0.1:%d%s", n.mport, path))
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %s", path, resp.Status)
	}
	return json.NewDecoder(resp.Body).Decode(v)
}

func (n *node) routez() (routezInfo, error) {
	var r routezInfo
	return r, n.monGet("/routez", &r)
}

// checkPeers reports whether n has routes to exactly the servers named want.
func (n *node) checkPeers(want ...string) error {
	r, err := n.routez()
	if err != nil {
		return err
	}
	slices.Sort(want)
	if got := r.peers(); !slices.Equal(got, want) {
		return fmt.Errorf("%s routes to %v (num_routes %d), want %v", n.name, got, r.NumRoutes, want)
	}
	if !n.ref && r.NumRoutes != len(want) {
		return fmt.Errorf("%s num_routes %d, want %d (one route per peer)", n.name, r.NumRoutes, len(want))
	}
	return nil
}

// waitMesh waits until every node has a route to every other one, and to no one else.
func waitMesh(t *testing.T, nodes ...*node) {
	t.Helper()
	waitFor(t, meshTimeout, func() error {
		for _, n := range nodes {
			var others []string
			for _, o := range nodes {
				if o != n {
					others = append(others, o.name)
				}
			}
			if err := n.checkPeers(others...); err != nil {
				return err
			}
		}
		return nil
	})
}

// startMesh starts a three-server cluster, B and C seeded with A only, and waits for the full
// mesh.
func startMesh(t *testing.T) (a, b, c *node) {
	t.Helper()
	a, b, c = newNode(t, "A"), newNode(t, "B"), newNode(t, "C")
	a.start(a.clusterArgs("c1")...)
	b.start(b.clusterArgs("c1", a)...)
	c.start(c.clusterArgs("c1", a)...)
	waitMesh(t, a, b, c)
	return a, b, c
}

// dial connects a nats.go client to n only, closed when the test ends.
func (n *node) dial(opts ...nats.Option) *nats.Conn {
	n.t.Helper()
	nc, err := nats.Connect(n.url(), append([]nats.Option{nats.Name("client-of-" + n.name)}, opts...)...)
	if err != nil {
		n.t.Fatalf("connect to %s: %v", n.name, err)
	}
	n.t.Cleanup(nc.Close)
	return nc
}

// awaitInterest returns once pub's server knows every subscription each of subs made (or
// removed) before the call. Each sub connection answers a fresh sentinel subject, subscribed
// after its other operations: interest travels over the route in order, so once pub's
// request on the sentinel is answered, the earlier subscriptions have arrived too. A request
// before that fails fast with no responders (or times out when the reply is not routable yet).
func awaitInterest(t *testing.T, pub *nats.Conn, subs ...*nats.Conn) {
	t.Helper()
	for _, s := range subs {
		subject := nats.NewInbox()
		sub, err := s.Subscribe(subject, func(m *nats.Msg) { _ = m.Respond(nil) })
		must(t, err)
		must(t, s.Flush())
		waitFor(t, meshTimeout, func() error {
			_, err := pub.Request(subject, nil, 300*time.Millisecond)
			return err
		})
		must(t, sub.Unsubscribe())
	}
}

// counter counts messages per payload on one subscription, to find loss and duplicates.
type counter struct {
	ch chan string
}

func newCounter() *counter { return &counter{ch: make(chan string, 1<<16)} }

func (c *counter) handle(m *nats.Msg) { c.ch <- string(m.Data) }

func (c *counter) subscribe(t *testing.T, nc *nats.Conn, subject string) *nats.Subscription {
	t.Helper()
	sub, err := nc.Subscribe(subject, c.handle)
	must(t, err)
	must(t, sub.SetPendingLimits(-1, -1))
	return sub
}

func (c *counter) queueSubscribe(t *testing.T, nc *nats.Conn, subject, queue string) *nats.Subscription {
	t.Helper()
	sub, err := nc.QueueSubscribe(subject, queue, c.handle)
	must(t, err)
	return sub
}

// take collects payloads for up to d, stopping early once n have arrived; then a short quiet
// period catches extras.
func (c *counter) take(n int, d time.Duration) map[string]int {
	got := map[string]int{}
	total := 0
	deadline := time.After(d)
	for total < n {
		select {
		case s := <-c.ch:
			got[s]++
			total++
		case <-deadline:
			return got
		}
	}
	for {
		select {
		case s := <-c.ch:
			got[s]++
		case <-time.After(quiet):
			return got
		}
	}
}

// exactlyOnce checks that got holds every payload of want once and nothing else.
func exactlyOnce(t *testing.T, who string, got map[string]int, want []string) {
	t.Helper()
	var missing, dup []string
	wanted := make(map[string]bool, len(want))
	for _, w := range want {
		wanted[w] = true
		switch got[w] {
		case 0:
			missing = append(missing, w)
		case 1:
		default:
			dup = append(dup, fmt.Sprintf("%s×%d", w, got[w]))
		}
	}
	extra := 0
	for k := range got {
		if !wanted[k] {
			extra++
		}
	}
	if len(missing)+len(dup)+extra > 0 {
		t.Fatalf("%s: %d of %d missing (%v), duplicates %v, %d unexpected", who, len(missing), len(want),
			clipList(missing), clipList(dup), extra)
	}
}

func clipList(s []string) []string {
	if len(s) > 10 {
		return append(s[:10:10], "…")
	}
	return s
}

func payloads(prefix string, n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("%s-%d", prefix, i)
	}
	return out
}

func publishAll(t *testing.T, nc *nats.Conn, subject string, data []string) {
	t.Helper()
	for _, d := range data {
		must(t, nc.Publish(subject, []byte(d)))
	}
	must(t, nc.Flush())
}

// rawRoute dials n's route port and reads the server's first line (its route INFO).
func rawRoute(t *testing.T, n *node) (net.Conn, *bufio.Reader, string) {
	t.Helper()
	c, err := net.DialTimeout("tcp", n.routeAddr(), 2*time.Second)
	must(t, err)
	t.Cleanup(func() { c.Close() })
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	r := bufio.NewReader(c)
	line, err := r.ReadString('\n')
	if err != nil {
		t.Fatalf("route port of %s: no INFO: %v", n.name, err)
	}
	return c, r, line
}

// writeConf writes a config file for the test and returns its path.
func writeConf(t *testing.T, name, text string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	must(t, os.WriteFile(p, []byte(text), 0o600))
	return p
}
