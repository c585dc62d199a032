package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// The streaming cluster rows: stan-bench against three nodes of one Raft group, each with
// its own file store, routed together: Starling (fsync on, its default) against
// nats-streaming-server clustered with its default (no fsync) and with -cluster_sync. The
// same clustering flags serve both servers (Starling takes nats-streaming-server's names).
// stan-bench connects to the first node, leader or not. On this 2-core machine the client
// competes with three servers, so the servers' CPU per message, summed over the three, is
// reported beside the rates.

// stanClusterScenarios are the rows: stan-bench async (or -sync) with subs subscribers.
func stanClusterScenarios() []stanScenario {
	return []stanScenario{
		{name: "cluster async pub 16 B, 0 subs", size: 16, msgs: 250_000, quickMsgs: 10_000},
		{name: "cluster async pub 16 B, 1 sub", size: 16, subs: 1, msgs: 200_000, quickMsgs: 10_000},
		{name: "cluster async pub 1 KiB, 0 subs", size: 1024, msgs: 120_000, quickMsgs: 8_000},
		{name: "cluster async pub 1 KiB, 1 sub", size: 1024, subs: 1, msgs: 100_000, quickMsgs: 6_000},
		{name: "cluster sync pub 16 B, 0 subs", size: 16, msgs: 3_000, quickMsgs: 500, sync: true},
	}
}

// Targets of the cluster issue: against nats-streaming-server with -cluster_sync, and
// against its default (no fsync), while Starling fsyncs.
const (
	stanClusterSyncTarget   = 3.0
	stanClusterNoSyncTarget = 1.5
)

// stanClusterServers are the kinds compared; the last is the Starling under test.
func stanClusterServers(o options) []serverSpec {
	if o.baseline != "" {
		return []serverSpec{{name: baselineName, path: o.baseline, args: []string{"--store", "file"}},
			{name: "starling", path: o.starling, args: []string{"--store", "file"}}}
	}
	nss := []string{"-cid", stanCluster, "-store", "file"}
	return []serverSpec{
		{name: "nats-streaming-server", path: o.natsStreaming, args: nss},
		{name: "nats-streaming-server -cluster_sync", path: o.natsStreaming, args: append(append([]string(nil), nss...), "-cluster_sync")},
		{name: "starling", path: o.starling, args: []string{"--store", "file"}},
	}
}

type stanClusterRow struct {
	sc    stanScenario
	msgs  int
	cells []cell // indexed like stanClusterReport.servers
}

type stanClusterReport struct {
	servers   []serverSpec
	benchPath string
	rows      []stanClusterRow
}

// measureStanCluster runs every row, rotating which server kind goes first each round.
func measureStanCluster(ctx context.Context, o options, timeout time.Duration, logDir string, progress io.Writer) *stanClusterReport {
	rep := &stanClusterReport{servers: stanClusterServers(o), benchPath: o.stanBench}
	for _, sc := range stanClusterScenarios() {
		if ctx.Err() != nil {
			break
		}
		rw := stanClusterRow{sc: sc, msgs: sc.msgs, cells: make([]cell, len(rep.servers))}
		if o.quick {
			rw.msgs = sc.quickMsgs
		}
		if o.msgs > 0 {
			rw.msgs = o.msgs
		}
		alternate(ctx, o.rounds, rw.cells, sc.name, rep.servers, progress, func(i int) (runResult, error) {
			return runStanClusterOnce(ctx, o.stanBench, rep.servers[i], sc, rw.msgs, logDir, timeout)
		})
		rep.rows = append(rep.rows, rw)
	}
	return rep
}

// stanClusterArgs are one node's clustering flags, the same for both servers.
func stanClusterArgs(i int, routePorts []int, dir string) []string {
	var routes []string
	for j, p := range routePorts {
		if j != i {
			routes = append(routes, "nats://127.0.0.1:"+strconv.Itoa(p))
		}
	}
	return []string{"-cluster", "nats://127.0.0.1:" + strconv.Itoa(routePorts[i]), "-routes", strings.Join(routes, ","),
		"-dir", dir, "-clustered", "-cluster_node_id", fmt.Sprint("n", i+1), "-cluster_peers", "n1,n2,n3",
		"-cluster_log_path", filepath.Join(dir, "raft")}
}

// runStanClusterOnce starts a fresh three-node cluster of spec, runs stan-bench against the
// first node and sums the three servers' CPU over the run.
func runStanClusterOnce(ctx context.Context, benchPath string, spec serverSpec, sc stanScenario, msgs int, logDir string, timeout time.Duration) (runResult, error) {
	routePorts, err := freePorts(3)
	if err != nil {
		return runResult{}, err
	}
	var nodes []*server
	defer func() {
		for _, s := range nodes {
			s.stop()
		}
	}()
	for i := range 3 {
		dir, err := os.MkdirTemp("", "starling-compare-cluster-")
		if err != nil {
			return runResult{}, err
		}
		defer os.RemoveAll(dir)
		s, err := startServer(ctx, spec, logDir, stanClusterArgs(i, routePorts, dir))
		if err != nil {
			return runResult{}, err
		}
		nodes = append(nodes, s)
	}
	// The CPU window opens once the streaming layer answers, as runStan's for one server:
	// nats-streaming-server starts it (stores, Raft, the election) after its client port.
	if err := waitStanReady(ctx, nodes[0].addr(), readyTimeout); err != nil {
		return runResult{}, err
	}
	before := make([]int64, len(nodes))
	for i, s := range nodes {
		if before[i], err = cpuTicks(s.pid()); err != nil {
			return runResult{}, err
		}
	}
	res, err := runStan(ctx, benchPath, nodes[0], sc, msgs, timeout)
	if err != nil {
		return res, fmt.Errorf("%w (server logs: %s, %s, %s)", err, nodes[0].logPath, nodes[1].logPath, nodes[2].logPath)
	}
	var ticks int64
	for i, s := range nodes {
		t, err := cpuTicks(s.pid())
		if err != nil {
			return res, err
		}
		ticks += t - before[i]
	}
	if msgs > 0 {
		res.serverCPUPerMsg = ticksDuration(ticks) / time.Duration(msgs)
	}
	return res, nil
}

// write prints the cluster streaming section.
func (r *stanClusterReport) write(w io.Writer) {
	fmt.Fprintf(w, "## Streaming cluster (stan-bench against three nodes)\n\n")
	fmt.Fprintf(w, "- every run on a fresh cluster of three nodes of one server kind, routed together, each with its own file store "+
		"(flags: `%s` plus the kind's own); stan-bench (`%s`) connects to node 1, leader or not\n",
		strings.Join(stanClusterArgs(0, []int{1, 2, 3}, "$DIR"), " "), r.benchPath)
	for _, s := range r.servers {
		fmt.Fprintf(w, "- %s: `%s %s`\n", s.name, s.path, strings.Join(s.args, " "))
	}
	fmt.Fprintf(w, "- server µs/msg: the three servers' CPU (user+system) summed, per published message\n\n")
	fmt.Fprintf(w, "| scenario | rate at |")
	for _, s := range r.servers {
		fmt.Fprintf(w, " %s msgs/s | µs/msg |", s.name)
	}
	last := len(r.servers) - 1
	for _, s := range r.servers[:last] {
		fmt.Fprintf(w, " rate ratio vs %s | CPU ratio |", s.name)
	}
	fmt.Fprintf(w, "\n|---|---|%s\n", strings.Repeat("---:|", 2*len(r.servers)+2*last))
	us := func(c cell) float64 {
		return usOf(c, func(x runResult) time.Duration { return x.serverCPUPerMsg })
	}
	var misses []string
	for _, row := range r.rows {
		fmt.Fprintf(w, "| %s | %s |", row.sc.name, row.sc.side())
		for _, c := range row.cells {
			fmt.Fprintf(w, " %s | %.2f |", c.cellRate(), us(c))
		}
		me := row.cells[last]
		for i := range r.servers[:last] {
			other := row.cells[i]
			fmt.Fprintf(w, " %s | %s |", fmtRatio(me.okMedian(), other.okMedian()), fmtRatio(us(other), us(me)))
			if target := r.target(i); target > 0 && (me.okMedian() <= 0 || other.okMedian() <= 0 || me.okMedian() < target*other.okMedian()) {
				misses = append(misses, fmt.Sprintf("%s vs %s", row.sc.name, r.servers[i].name))
			}
		}
		fmt.Fprintln(w)
	}
	if r.servers[0].name != baselineName {
		fmt.Fprintf(w, "\ntargets (msgs/s): ≥ %g× %s, ≥ %g× %s", stanClusterNoSyncTarget, r.servers[0].name,
			stanClusterSyncTarget, r.servers[1].name)
		if len(misses) == 0 {
			fmt.Fprintf(w, ": every row meets them")
		} else {
			fmt.Fprintf(w, "; below: %s", strings.Join(misses, "; "))
		}
	}
	fmt.Fprintf(w, "\n\n")
}

// target is the rate ratio the Starling under test must reach against server kind i.
func (r *stanClusterReport) target(i int) float64 {
	if r.servers[0].name == baselineName {
		return 0
	}
	if i == 0 {
		return stanClusterNoSyncTarget
	}
	return stanClusterSyncTarget
}

func (r *stanClusterReport) writeCommands(w io.Writer) {
	for _, row := range r.rows {
		args := stanArgs("nats://127.0.0.1:$PORT_OF_NODE_1", row.sc, row.msgs)
		fmt.Fprintf(w, "# streaming cluster: %s\n%s %s\n", row.sc.name, r.benchPath, strings.Join(args, " "))
	}
}

func (r *stanClusterReport) errors() []string {
	var errs []string
	for _, row := range r.rows {
		for i, c := range row.cells {
			if c.err != nil {
				errs = append(errs, fmt.Sprintf("- streaming cluster %s on %s: %v", row.sc.name, r.servers[i].name, c.err))
			}
		}
	}
	return errs
}
