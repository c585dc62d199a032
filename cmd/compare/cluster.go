package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"
)

// The cluster rows: `nats bench` with the publisher on server A and the subscriber on server B
// of a two-server cluster, and the footprint of an idle three-server mesh holding 100,000
// subscriptions. Both servers get the same nats-server clustering flags (--cluster,
// --cluster_name, --routes); Starling also gets --no_streaming, as its streaming layer is not
// clustered.

const (
	clusterName    = "compare"
	routesTimeout  = 15 * time.Second // routes formed; interest known across them
	syncSubject    = "compare.sync"
	syncProbeEvery = 50 * time.Millisecond
	clusterSubject = "bench.cluster"
	// clusterMaxPending is the throughput rows' max_pending (bytes a client may have buffered
	// before it is cut off as a slow consumer). `nats bench pub` does not wait for anyone, and
	// a message crossing a route reaches B faster than one subscriber drains it, so with the
	// default 64 MiB both servers sometimes cut the subscriber off at 1 KiB, and the run
	// measures nothing. 1 GiB holds a whole run.
	clusterMaxPending = 1 << 30
	clusterConfFile   = "cluster-bench.conf"
)

// clusterScenario is one row of the cluster throughput table.
type clusterScenario struct {
	name      string
	size      int // payload bytes
	msgs      int // per run; sized for ~2-5 s against nats-server on 2 cores
	quickMsgs int
	target    float64 // Starling / nats-server, from issue 6
}

func clusterScenarios() []clusterScenario {
	return []clusterScenario{
		{name: "pub on A → 1 sub on B, 16 B", size: 16, msgs: 3_000_000, quickMsgs: 600_000, target: 1},
		{name: "pub on A → 1 sub on B, 1 KiB", size: 1024, msgs: 500_000, quickMsgs: 100_000, target: 1},
	}
}

// args are the `nats bench` processes of one run: the subscriber (on B) and the publisher (on A).
func (sc clusterScenario) args(pubURL, subURL string, msgs int) (sub, pub []string) {
	sub = append(append([]string{"bench", "sub"}, commonSized(subURL, sc.size)...),
		"--clients", "1", "--msgs", strconv.Itoa(msgs), clusterSubject)
	pub = append(append([]string{"bench", "pub"}, commonSized(pubURL, sc.size)...),
		"--msgs", strconv.Itoa(msgs), clusterSubject)
	return sub, pub
}

// clusterServers are the two servers compared; every node also gets clusterArgs.
func clusterServers(o options) [2]serverSpec {
	return [2]serverSpec{
		{name: "nats-server", path: o.natsServer},
		{name: "starling", path: o.starling, args: []string{"--no_streaming"}},
	}
}

// clusterArgs are one node's clustering flags: its route listener, the cluster name, and the
// first node's route URL as its only seed (none for the first node itself).
func clusterArgs(routePort, seedPort string) []string {
	args := []string{"--cluster", "nats://127.0.0.1:" + routePort, "--cluster_name", clusterName}
	if seedPort != "" {
		args = append(args, "--routes", "nats://127.0.0.1:"+seedPort)
	}
	return args
}

// cluster is n running servers of one kind, routed to each other.
type cluster struct {
	nodes []*server
}

// startCluster starts n servers of spec, each seeded with the first and given extra flags, and
// waits for the full mesh.
func startCluster(ctx context.Context, spec serverSpec, n int, logDir string, extra ...string) (*cluster, error) {
	ports, err := freePorts(n)
	if err != nil {
		return nil, err
	}
	c := &cluster{}
	for i := range n {
		seed := ""
		if i > 0 {
			seed = strconv.Itoa(ports[0])
		}
		s, err := startServer(ctx, spec, logDir, append(clusterArgs(strconv.Itoa(ports[i]), seed), extra...))
		if err != nil {
			c.stop()
			return nil, err
		}
		c.nodes = append(c.nodes, s)
	}
	if err := c.waitMesh(ctx); err != nil {
		c.stop()
		return nil, err
	}
	return c, nil
}

func (c *cluster) stop() {
	for _, s := range c.nodes {
		s.stop()
	}
}

// routezInfo is the part of /routez read here. nats-server keeps several route connections
// per peer (a pool of 3 plus one for the system account), so peers are counted by remote_id.
type routezInfo struct {
	NumRoutes int `json:"num_routes"`
	Routes    []struct {
		RemoteID string `json:"remote_id"`
	} `json:"routes"`
}

func (r routezInfo) peers() int {
	var ids []string
	for _, rt := range r.Routes {
		if !slices.Contains(ids, rt.RemoteID) {
			ids = append(ids, rt.RemoteID)
		}
	}
	return len(ids)
}

// waitMesh returns once every node has routes to all the others.
func (c *cluster) waitMesh(ctx context.Context) error {
	for _, s := range c.nodes {
		var r routezInfo
		err := pollUntil(ctx, routesTimeout, func() (bool, error) {
			return s.getJSON("/routez", &r) == nil && r.peers() == len(c.nodes)-1, nil
		})
		if err != nil {
			return fmt.Errorf("%s routes to %d of %d peers: %w (log: %s)", s.spec.name, r.peers(), len(c.nodes)-1, err, s.logPath)
		}
	}
	return nil
}

// awaitRouted returns once from knows every subscription made on to before the call. A raw
// connection on to subscribes a sentinel subject; interest crosses a route in order, so once a
// message published on from reaches it, the earlier subscriptions have crossed too.
func awaitRouted(ctx context.Context, from, to *server, timeout time.Duration) error {
	subject := fmt.Sprintf("%s.%d.%d", syncSubject, to.port, time.Now().UnixNano())
	sub, err := dialRaw(to.addr(), []byte("SUB "+subject+" 1\r\n"), 4096, dialTimeout)
	if err != nil {
		return fmt.Errorf("sentinel subscriber: %w", err)
	}
	defer sub.close()
	pub, err := dialRaw(from.addr(), nil, 4096, dialTimeout)
	if err != nil {
		return fmt.Errorf("sentinel publisher: %w", err)
	}
	defer pub.close()
	probe := []byte("PUB " + subject + " 0\r\n\r\n")
	err = pollUntil(ctx, timeout, func() (bool, error) {
		if _, err := pub.c.Write(probe); err != nil {
			return false, err
		}
		return sub.gotMsg(syncProbeEvery)
	})
	if err != nil {
		return fmt.Errorf("interest on %s not known on %s: %w", to.addr(), from.addr(), err)
	}
	return nil
}

// gotMsg reads for up to d and reports whether a MSG arrived; PINGs are answered.
func (rc *rawConn) gotMsg(d time.Duration) (bool, error) {
	_ = rc.c.SetReadDeadline(time.Now().Add(d))
	defer rc.c.SetReadDeadline(time.Time{})
	for {
		line, err := rc.readLine()
		if isTimeout(err) {
			return false, nil
		}
		if err != nil {
			return false, err
		}
		switch {
		case bytes.HasPrefix(line, []byte("MSG ")):
			return true, nil
		case bytes.HasPrefix(line, []byte("PING")):
			_, _ = rc.c.Write([]byte("PONG\r\n"))
		}
	}
}

func isTimeout(err error) bool {
	var te interface{ Timeout() bool }
	return errors.As(err, &te) && te.Timeout()
}

// clusterRow is one cluster scenario on both servers.
type clusterRow struct {
	sc    clusterScenario
	msgs  int
	cells [2]cell
}

// clusterReport is the cluster part of the report.
type clusterReport struct {
	natsPath string
	servers  [2]serverSpec
	rows     []clusterRow
	mesh     [2]meshCell
	window   time.Duration // the idle mesh's CPU sampling window
}

// measureCluster runs the throughput rows (alternating servers, like the core rows), then the
// idle mesh once per server.
func measureCluster(ctx context.Context, o options, r runner, logDir string, progress io.Writer) *clusterReport {
	rep := &clusterReport{natsPath: o.nats, servers: clusterServers(o), window: idleWindow}
	if o.quick {
		rep.window = quickIdleWindow
	}
	conf := filepath.Join(logDir, clusterConfFile)
	if err := os.WriteFile(conf, []byte(clusterConfText()), 0o644); err != nil {
		for _, sc := range clusterScenarios() {
			rep.rows = append(rep.rows, clusterRow{sc: sc, cells: [2]cell{{err: err}, {err: err}}})
		}
		return rep
	}
	for _, sc := range clusterScenarios() {
		if ctx.Err() != nil {
			break
		}
		rw := clusterRow{sc: sc, msgs: sc.msgs}
		if o.quick {
			rw.msgs = sc.quickMsgs
		}
		if o.msgs > 0 {
			rw.msgs = o.msgs
		}
		alternate(ctx, o.rounds, rw.cells[:], "cluster "+sc.name, rep.servers[:], progress, func(i int) (runResult, error) {
			return runClusterOnce(ctx, r, rep.servers[i], sc, rw.msgs, logDir, "-c", conf)
		})
		rep.rows = append(rep.rows, rw)
	}
	for i, s := range rep.servers {
		if ctx.Err() != nil {
			break
		}
		fmt.Fprintf(progress, "[cluster mesh] %s: 3 servers, %s subscriptions on %s connections...\n",
			s.name, fmtInt(meshConns*meshSubsPerConn), fmtInt(meshConns))
		res, err := measureMesh(ctx, s, logDir, rep.window)
		rep.mesh[i] = meshCell{res: res, err: err}
		if err != nil {
			fmt.Fprintf(progress, "[cluster mesh] %s: FAILED: %v\n", s.name, err)
			continue
		}
		fmt.Fprintf(progress, "[cluster mesh] %s: total VmRSS %s, CPU %.2f%%\n", s.name, fmtBytes(float64(res.totalRSS())), res.totalCPU())
	}
	return rep
}

// clusterConfText is the configuration file both servers load for the throughput rows.
func clusterConfText() string { return fmt.Sprintf("max_pending: %d\n", clusterMaxPending) }

// runClusterOnce measures sc once on a fresh two-server cluster started with extra flags:
// `nats bench sub` on B, then `nats bench pub` on A once A knows B's subscription; the rate is
// the subscriber's.
func runClusterOnce(ctx context.Context, r runner, spec serverSpec, sc clusterScenario, msgs int, logDir string, extra ...string) (runResult, error) {
	var res runResult
	start := time.Now()
	deadline := start.Add(r.timeout)
	cl, err := startCluster(ctx, spec, 2, logDir, extra...)
	if err != nil {
		return res, err
	}
	defer cl.stop()
	a, b := cl.nodes[0], cl.nodes[1]
	subArgs, pubArgs := sc.args(a.url(), b.url(), msgs)
	bg, err := r.nats.start(subArgs)
	if err != nil {
		return res, err
	}
	defer func() {
		if bg != nil {
			bg.kill()
		}
	}()
	if err := b.waitSubscribed(ctx, clusterSubject, 1, readyTimeout); err != nil {
		return res, err
	}
	if err := awaitRouted(ctx, a, b, routesTimeout); err != nil {
		return res, err
	}
	fg, err := r.nats.run(ctx, pubArgs, deadline)
	if err != nil {
		return res, fmt.Errorf("%w (logs: %s, %s)", err, a.logPath, b.logPath)
	}
	res.notes = fg.warnings()
	pub, err := parseBenchOutput(fg.stdout.String())
	if err != nil {
		return res, err
	}
	res.pubRate = pub.msgsPerSec
	err = r.finishSubs(ctx, b, bg, deadline, &res)
	bg = nil
	res.duration = time.Since(start)
	if err != nil {
		return res, fmt.Errorf("%w (logs: %s, %s)", err, a.logPath, b.logPath)
	}
	return res, nil
}

// clusterCommands lists the server and client invocations of the cluster rows.
func (c *clusterReport) writeCommands(w io.Writer) {
	fmt.Fprintf(w, "# cluster: every node (A has no --routes; B and C seed with A); the idle mesh without -c\n")
	for _, s := range c.servers {
		args := append(append(serverArgs("$PORT", "$HTTP_PORT"), s.args...), clusterArgs("$ROUTE_PORT", "$ROUTE_PORT_A")...)
		fmt.Fprintf(w, "%s %s -c $TMPDIR/%s\n", s.path, strings.Join(args, " "), clusterConfFile)
	}
	for _, row := range c.rows {
		sub, pub := row.sc.args("nats://127.0.0.1:$PORT_A", "nats://127.0.0.1:$PORT_B", row.msgs)
		fmt.Fprintf(w, "# cluster: %s\n%s %s &\n%s %s\n", row.sc.name, c.natsPath, strings.Join(sub, " "), c.natsPath, strings.Join(pub, " "))
	}
	fmt.Fprintf(w, "# cluster: idle mesh\n(in-process) %s raw TCP connections, connection i on node i%%3, each: %sSUB mesh.<i>.<j> <j>\\r\\n (j=1..%d) PING\\r\\n\n",
		fmtInt(meshConns), strings.TrimSuffix(connectLine, "\r\n")+`\r\n`, meshSubsPerConn)
}
