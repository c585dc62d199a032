package tests

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/stan.go"
)

// The example configurations under examples/ (see examples/README.md): every one passes
// `starling -t`, and each example does what its comments say when started.
// Paths inside the examples are relative to the repository root, as the README runs them.

const repoRoot = ".."

// exampleEnv is what the examples take from the environment.
var exampleEnv = []string{"STARLING_ROUTE_PASSWORD=example-route-password"}

// checkConfig runs `starling -t` with args from the repository root and returns its exit
// code and output.
func checkConfig(t *testing.T, env []string, args ...string) (int, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, starlingBinary(t), append([]string{"-t"}, args...)...)
	cmd.Dir = repoRoot
	cmd.Env = append(os.Environ(), env...)
	out, err := cmd.CombinedOutput()
	var exit *exec.ExitError
	switch {
	case err == nil:
		return 0, string(out)
	case errors.As(err, &exit):
		return exit.ExitCode(), string(out)
	default:
		t.Fatalf("starling -t %v: %v\n%s", args, err, out)
		return -1, ""
	}
}

// exampleConfigs are the *.conf files under examples/, relative to the repository root.
func exampleConfigs(t *testing.T) []string {
	t.Helper()
	var confs []string
	err := filepath.WalkDir(filepath.Join(repoRoot, "examples"), func(path string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() && strings.HasSuffix(path, ".conf") {
			rel, _ := filepath.Rel(repoRoot, path)
			confs = append(confs, filepath.ToSlash(rel))
		}
		return err
	})
	must(t, err)
	return confs
}

func TestExamplesPassCheck(t *testing.T) {
	confs := exampleConfigs(t)
	// The walk must find what the README lists, so that a moved file cannot pass unchecked.
	for _, want := range []string{"examples/single-node/starling.conf", "examples/cluster/node-1.conf",
		"examples/cluster/node-2.conf", "examples/cluster/node-3.conf", "examples/tls/starling.conf",
		"examples/accounts/starling.conf"} {
		if !slices.Contains(confs, want) {
			t.Errorf("%s not found under examples/ (found %v)", want, confs)
		}
	}
	for _, c := range confs {
		if code, out := checkConfig(t, exampleEnv, "-c", c); code != 0 || strings.TrimSpace(out) != "configuration OK" {
			t.Errorf("starling -t -c %s: exit %d\n%s", c, code, out)
		}
	}
	// The check does refuse: a file with an unknown key, and the cluster example without
	// the route password it takes from the environment.
	bad := writeConf(t, "bad.conf", "port: 4222\nno_such_key: 1\n")
	if code, out := checkConfig(t, nil, "-c", bad); code != 1 || !strings.Contains(out, "no_such_key") {
		t.Errorf("starling -t on a bad file: exit %d\n%s", code, out)
	}
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "STARLING_ROUTE_PASSWORD=") {
			env = append(env, kv)
		}
	}
	cmd := exec.Command(starlingBinary(t), "-t", "-c", "examples/cluster/node-1.conf")
	cmd.Dir, cmd.Env = repoRoot, env
	if out, err := cmd.CombinedOutput(); err == nil || !strings.Contains(string(out), "STARLING_ROUTE_PASSWORD") {
		t.Errorf("node-1.conf without STARLING_ROUTE_PASSWORD: %v\n%s", err, out)
	}
}

// startExample runs the binary from the repository root with env added to the
// environment, and kills it when the test ends.
func startExample(t *testing.T, env []string, args ...string) *proc {
	t.Helper()
	p := &proc{cmd: exec.Command(starlingBinary(t), args...), out: &syncBuffer{}, done: make(chan error, 1)}
	p.cmd.Dir = repoRoot
	p.cmd.Env = append(os.Environ(), env...)
	p.cmd.Stdout, p.cmd.Stderr = p.out, p.out
	must(t, p.cmd.Start())
	go func() { p.done <- p.cmd.Wait() }()
	t.Cleanup(func() {
		_ = p.cmd.Process.Kill()
		<-p.done
		if t.Failed() {
			t.Logf("starling %s output:\n%s", strings.Join(args, " "), tail(p.out.String(), 4000))
		}
	})
	return p
}

var (
	routeURLRe   = regexp.MustCompile(`"nats://(starling-\d):6222"`)
	serverNameRe = regexp.MustCompile(`(?m)^server_name: (\S+)`)
)

// The cluster example: each node routes to the two others, and the three started from the
// files (their addresses moved to loopback ports by flags) form a mesh whose routes
// authenticate with the password from the environment, with streaming one Raft cluster of
// the three, reachable from every node.
func TestExampleCluster(t *testing.T) {
	names := []string{"starling-1", "starling-2", "starling-3"}
	for i, name := range names {
		b, err := os.ReadFile(filepath.Join(repoRoot, "examples", "cluster", fmt.Sprintf("node-%d.conf", i+1)))
		must(t, err)
		text := string(b)
		if m := serverNameRe.FindStringSubmatch(text); m == nil || m[1] != name {
			t.Errorf("node-%d.conf: server_name %v, want %s", i+1, m, name)
		}
		var routes []string
		for _, m := range routeURLRe.FindAllStringSubmatch(text, -1) {
			routes = append(routes, m[1])
		}
		others := slices.DeleteFunc(slices.Clone(names), func(n string) bool { return n == name })
		if !slices.Equal(routes, others) {
			t.Errorf("node-%d.conf routes to %v, want %v", i+1, routes, others)
		}
		if !strings.Contains(text, "node_id: "+name) || !strings.Contains(text, "peers: [starling-1, starling-2, starling-3]") {
			t.Errorf("node-%d.conf: streaming is not clustered as node %s of the three", i+1, name)
		}
	}

	t.Setenv("STARLING_ROUTE_PASSWORD", "example-route-password")
	nodes := make([]*node, 3)
	for i, name := range names {
		nodes[i] = newNode(t, name)
	}
	for i, n := range nodes {
		var seeds []string
		for _, o := range nodes {
			if o != n {
				seeds = append(seeds, o.routeURL())
			}
		}
		// A reserved raft port, like the other cluster tests: the default (a free port the
		// kernel picks) could take the monitoring port reserved for this node before the node
		// binds it, which happened once under the whole suite ("address already in use").
		n.rport = nodePorts(t)[0]
		args := []string{"-c", fmt.Sprintf("examples/cluster/node-%d.conf", i+1), "-a", "127.0.0.1",
			"-p", fmt.Sprint(n.port), "-m", fmt.Sprint(n.mport), "--cluster", n.routeURL(), "--routes", strings.Join(seeds, ","),
			"--cluster_raft_listen", n.raftAddr()}
		args = append(args, "--dir", t.TempDir())
		n.p = startExample(t, nil, args...)
	}
	waitMesh(t, nodes...)

	// Core across the mesh.
	sub := nodes[2].dial()
	msgs := make(chan *nats.Msg, 1)
	_, err := sub.ChanSubscribe("orders.new", msgs)
	must(t, err)
	must(t, sub.Flush())
	pub := nodes[1].dial()
	awaitInterest(t, pub, sub)
	must(t, pub.Publish("orders.new", []byte("crosses a route")))
	recvN(t, msgs, 1, 5*time.Second)

	// Streaming, served by the raft leader, through starling-3.
	var sc stan.Conn
	waitFor(t, 10*time.Second, func() (err error) {
		sc, err = stan.Connect("test-cluster", "example-client", stan.NatsURL(nodes[2].url()), stan.ConnectWait(time.Second))
		return err
	})
	defer sc.Close()
	must(t, sc.Publish("orders", []byte("stored on a majority")))
	got := make(chan *stan.Msg, 1)
	s, err := sc.Subscribe("orders", func(m *stan.Msg) { got <- m }, stan.DeliverAllAvailable())
	must(t, err)
	defer s.Close()
	select {
	case m := <-got:
		if string(m.Data) != "stored on a majority" {
			t.Fatalf("streaming message %q", m.Data)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no streaming message through starling-3")
	}

	// A server with another route password is refused by the one it dials.
	intruder := newNode(t, "intruder")
	startExample(t, []string{"STARLING_ROUTE_PASSWORD=wrong"}, "-c", "examples/cluster/node-3.conf", "-n", "intruder",
		"-a", "127.0.0.1", "-p", fmt.Sprint(intruder.port), "-m", fmt.Sprint(intruder.mport),
		"--cluster", intruder.routeURL(), "--routes", nodes[0].routeURL())
	waitFor(t, 10*time.Second, func() error {
		if !strings.Contains(nodes[0].p.out.String(), "wrong credentials") {
			return errors.New("starling-1 has not refused the intruder's route yet")
		}
		return nil
	})
	must(t, nodes[0].checkPeers("starling-2", "starling-3"))
}

// The TLS example: TLS required (plain clients refused), HTTPS monitoring, bcrypt users,
// and the permissions its comments describe, with the example CA; its streaming user keeps
// a streaming connection through several heartbeats.
func TestExampleTLS(t *testing.T) {
	caPEM, err := os.ReadFile(filepath.Join(repoRoot, "examples", "tls", "example-only-ca.pem"))
	must(t, err)
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(caPEM) {
		t.Fatal("no certificate in example-only-ca.pem")
	}
	port, mport := freePort(t), freePort(t)
	p := startExample(t, nil, "-c", "examples/tls/starling.conf", "-a", "127.0.0.1", "-p", fmt.Sprint(port),
		"-ms", fmt.Sprint(mport), "--hb_interval", "100ms", "--hb_timeout", "100ms", "--hb_fail_count", "2")
	url := fmt.Sprintf("nats://127.0.0.1:%d", port)
	secure := nats.Secure(&tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12})
	login := func(user string) nats.Option { return nats.UserInfo(user, user+"-example-only") }
	errs := make(chan error, 16)
	onErr := nats.ErrorHandler(func(nc *nats.Conn, _ *nats.Subscription, err error) { errs <- fmt.Errorf("%s: %w", nc.Opts.User, err) })
	dial := func(opts ...nats.Option) (*nats.Conn, error) {
		nc, err := nats.Connect(url, append([]nats.Option{nats.NoReconnect(), nats.Timeout(2 * time.Second)}, opts...)...)
		if err == nil {
			t.Cleanup(nc.Close)
		}
		return nc, err
	}

	// HTTPS monitoring, once the server is up.
	https := &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	waitFor(t, 10*time.Second, func() error {
		select {
		case err := <-p.done:
			p.done <- err
			t.Fatalf("server exited: %v", err)
		default:
		}
		resp, err := https.Get(fmt.Sprintf("https://localhost:%d/healthz", mport))
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("/healthz: %s", resp.Status)
		}
		return nil
	})

	if _, err := dial(login("app")); err == nil {
		t.Error("a client without the example CA connected")
	}
	if _, err := dial(secure, nats.UserInfo("app", "wrong")); err == nil {
		t.Error("a wrong password was accepted")
	}
	if _, err := dial(secure); err == nil {
		t.Error("a client without credentials was accepted")
	}

	// orders answers requests in its queue group; app asks.
	svc, err := dial(secure, login("orders"), onErr)
	must(t, err)
	_, err = svc.QueueSubscribe("orders.*", "orders", func(m *nats.Msg) { _ = m.Respond([]byte("accepted " + m.Subject)) })
	must(t, err)
	must(t, svc.Flush())
	app, err := dial(secure, login("app"), onErr)
	must(t, err)
	reply, err := app.Request("orders.new", []byte("1 book"), 5*time.Second)
	must(t, err)
	if string(reply.Data) != "accepted orders.new" {
		t.Fatalf("reply %q", reply.Data)
	}

	// What the permissions forbid: orders subscribing outside its queue group, app
	// publishing to orders.admin.
	expectViolation := func(what string) {
		t.Helper()
		select {
		case err := <-errs:
			if !strings.Contains(strings.ToLower(err.Error()), "permissions violation") {
				t.Fatalf("%s: %v", what, err)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("%s: no permissions violation", what)
		}
	}
	_, err = svc.Subscribe("orders.*", func(*nats.Msg) {})
	must(t, err)
	_ = svc.Flush()
	expectViolation("orders subscribing to orders.* without its queue group")
	must(t, app.Publish("orders.admin", []byte("x")))
	_ = app.Flush()
	expectViolation("app publishing to orders.admin")

	// The admin may do anything.
	admin, err := dial(secure, login("admin"), onErr)
	must(t, err)
	_, err = admin.Subscribe(">", func(*nats.Msg) {})
	must(t, err)
	must(t, admin.Flush())

	// app as a streaming client, over more than hb_fail_count heartbeats: it answers them
	// (its _STAN.> publish permission covers the replies) and stays registered.
	sc, err := stan.Connect("test-cluster", "example-app", stan.NatsConn(app))
	must(t, err)
	defer sc.Close()
	got := make(chan *stan.Msg, 4)
	sub, err := sc.Subscribe("orders", func(m *stan.Msg) { got <- m }, stan.DeliverAllAvailable())
	must(t, err)
	defer sub.Close()
	must(t, sc.Publish("orders", []byte("first")))
	time.Sleep(time.Second) // ten heartbeat intervals: a client that could not answer is closed by now
	must(t, sc.Publish("orders", []byte("second")))
	for _, want := range []string{"first", "second"} {
		select {
		case m := <-got:
			if string(m.Data) != want {
				t.Fatalf("streaming message %q, want %q", m.Data, want)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("no streaming message %q", want)
		}
	}
	select {
	case err := <-errs:
		t.Fatalf("unexpected error: %v", err)
	default:
	}
}

// waitReady waits until the example's monitoring port answers /healthz with 200, failing
// at once if the server exits.
func waitReady(t *testing.T, p *proc, mport int) {
	t.Helper()
	waitFor(t, 10*time.Second, func() error {
		select {
		case err := <-p.done:
			p.done <- err
			t.Fatalf("server exited: %v", err)
		default:
		}
		resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/healthz", mport))
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("/healthz: %s", resp.Status)
		}
		return nil
	})
}

// The single-node example, the configuration the systemd unit runs (its store moved to a
// temporary directory by --dir, as its comment shows): it starts, serves streaming on the
// file store with the file's limits, and keeps a message and a durable's position across a
// graceful restart.
func TestExampleSingleNode(t *testing.T) {
	dir := t.TempDir()
	port, mport := freePort(t), freePort(t)
	start := func() *proc {
		p := startExample(t, nil, "-c", "examples/single-node/starling.conf", "--dir", dir,
			"-a", "127.0.0.1", "-p", fmt.Sprint(port), "-m", fmt.Sprint(mport))
		waitReady(t, p, mport)
		return p
	}
	url := fmt.Sprintf("nats://127.0.0.1:%d", port)
	p := start()

	var storez struct {
		Type   string `json:"type"`
		Limits struct {
			MaxChannels int           `json:"max_channels"`
			MaxMsgs     int           `json:"max_msgs"`
			MaxAge      time.Duration `json:"max_age"`
			MaxSubs     int           `json:"max_subscriptions"`
		} `json:"limits"`
	}
	resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/streaming/storez", mport))
	must(t, err)
	must(t, json.NewDecoder(resp.Body).Decode(&storez))
	resp.Body.Close()
	if l := storez.Limits; storez.Type != "FILE" || l.MaxChannels != 100 || l.MaxMsgs != 1000000 || l.MaxAge != 72*time.Hour || l.MaxSubs != 1000 {
		t.Fatalf("storez: %+v, want the file store with the example's store_limits", storez)
	}

	sc, err := stan.Connect("test-cluster", "example-single", stan.NatsURL(url))
	must(t, err)
	must(t, sc.Publish("orders", []byte("kept")))
	got := make(chan *stan.Msg, 1)
	// Acked before it is handed over: stan.go's auto-ack goes out after the callback
	// returns, which could be after the Close below, and the durable would then get the
	// message again after the restart.
	sub, err := sc.Subscribe("orders", func(m *stan.Msg) { _ = m.Ack(); got <- m }, stan.DeliverAllAvailable(),
		stan.DurableName("billing"), stan.SetManualAckMode())
	must(t, err)
	select {
	case <-got:
	case <-time.After(5 * time.Second):
		t.Fatal("no streaming message")
	}
	must(t, sub.Close())
	must(t, sc.Close())

	// SIGTERM: a graceful stop, then the same store again.
	must(t, p.cmd.Process.Signal(syscall.SIGTERM))
	if err := p.wait(t, 15*time.Second); err != nil {
		t.Fatalf("exit after SIGTERM: %v", err)
	}
	start()
	sc, err = stan.Connect("test-cluster", "example-single", stan.NatsURL(url))
	must(t, err)
	defer sc.Close()
	must(t, sc.Publish("orders", []byte("after the restart")))
	got = make(chan *stan.Msg, 2)
	sub, err = sc.Subscribe("orders", func(m *stan.Msg) { got <- m }, stan.DeliverAllAvailable(), stan.DurableName("billing"))
	must(t, err)
	defer sub.Close()
	select {
	case m := <-got:
		if m.Sequence != 2 || string(m.Data) != "after the restart" {
			t.Fatalf("the durable resumed at %d %q, want 2 \"after the restart\"", m.Sequence, m.Data)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no streaming message after the restart")
	}
}

// The accounts example, as README runs it: the service import answers the shop's price
// requests, a client without credentials is the shop (no_auth_user), the stream imports
// deliver under their own names, and the system account's user gets answers to
// $SYS.REQ.SERVER.PING.
func TestExampleAccounts(t *testing.T) {
	port, mport := freePort(t), freePort(t)
	p := startExample(t, nil, "-c", "examples/accounts/starling.conf", "-a", "127.0.0.1", "-p", fmt.Sprint(port), "-m", fmt.Sprint(mport))
	waitReady(t, p, mport)
	url := fmt.Sprintf("nats://127.0.0.1:%d", port)
	dial := func(opts ...nats.Option) *nats.Conn {
		t.Helper()
		nc, err := nats.Connect(url, append([]nats.Option{nats.NoReconnect(), nats.Timeout(2 * time.Second)}, opts...)...)
		must(t, err)
		t.Cleanup(nc.Close)
		return nc
	}
	login := func(user string) nats.Option { return nats.UserInfo(user, user+"-example-only") }

	orders := dial(login("orders"))
	_, err := orders.Subscribe("price.*", func(m *nats.Msg) { _ = m.Respond([]byte("42 for " + m.Subject)) })
	must(t, err)
	must(t, orders.Flush())
	for _, shop := range []*nats.Conn{dial(login("shop")), dial()} { // dial(): no_auth_user
		reply, err := shop.Request("ask.price.apple", nil, 5*time.Second)
		must(t, err)
		if string(reply.Data) != "42 for price.apple" {
			t.Fatalf("price reply %q", reply.Data)
		}
	}

	// Stream imports: the shop sees order events under its prefix, the audit account the
	// audit events it alone may import.
	shopEvents, auditEvents := make(chan *nats.Msg, 4), make(chan *nats.Msg, 4)
	shop := dial(login("shop"))
	_, err = shop.ChanSubscribe("upstream.orders.>", shopEvents)
	must(t, err)
	must(t, shop.Flush())
	audit := dial(login("audit"))
	_, err = audit.ChanSubscribe("orders.audit.>", auditEvents)
	must(t, err)
	must(t, audit.Flush())
	must(t, orders.Publish("orders.audit.1", []byte("audited")))
	must(t, orders.Flush())
	if m := recvN(t, shopEvents, 1, 5*time.Second)[0]; m.Subject != "upstream.orders.audit.1" {
		t.Fatalf("shop got %q", m.Subject)
	}
	if m := recvN(t, auditEvents, 1, 5*time.Second)[0]; m.Subject != "orders.audit.1" {
		t.Fatalf("audit got %q", m.Subject)
	}

	// The system account: what `nats server list` asks.
	admin := dial(login("admin"))
	reply, err := admin.Request("$SYS.REQ.SERVER.PING", nil, 5*time.Second)
	must(t, err)
	if !strings.Contains(string(reply.Data), `"server"`) {
		t.Fatalf("$SYS.REQ.SERVER.PING reply %s", reply.Data)
	}
}
