package main

import (
	"fmt"
	"io"
	"strings"
	"time"
)

// write prints the cluster section: the throughput table with each row's target and the
// per-round details, then the idle mesh side by side.
func (c *clusterReport) write(w io.Writer) {
	fmt.Fprintf(w, "## Cluster (nats bench across a route)\n\n")
	fmt.Fprintf(w, "- every run on a fresh two-server cluster: A with `--cluster`, B seeded with A (`--routes`); "+
		"starling also gets `--no_streaming`\n")
	fmt.Fprintf(w, "- both servers load `%s`: `%s` (the publisher is unthrottled; with the default 64 MiB both servers "+
		"sometimes cut the subscriber off as a slow consumer at 1 KiB)\n", clusterConfFile, strings.TrimSpace(clusterConfText()))
	fmt.Fprintf(w, "- `nats bench sub` (1 client) on B, started first; `nats bench pub` on A once a message published on A "+
		"reaches a subscription made on B after the bench's; rate at the subscriber\n\n")
	if len(c.rows) > 0 {
		fmt.Fprintf(w, "| scenario | %s msgs/s | %s msgs/s | ratio (%s/%s) | target | met |\n|---|---:|---:|---:|---:|---|\n",
			c.servers[0].name, c.servers[1].name, c.servers[1].name, c.servers[0].name)
		for _, row := range c.rows {
			fmt.Fprintf(w, "| %s | %s | %s | %s | ≥ %g× | %s |\n", row.sc.name, row.cells[0].cellRate(), row.cells[1].cellRate(),
				fmtRatio(row.cells[1].okMedian(), row.cells[0].okMedian()), row.sc.target, yesNo(row.meets()))
		}
		fmt.Fprintln(w)
		c.writeDetails(w)
	}
	c.writeMesh(w)
}

// meets reports whether both servers measured every round and the ratio reaches the target.
func (r clusterRow) meets() bool {
	a, b := r.cells[0].okMedian(), r.cells[1].okMedian()
	return a > 0 && b > 0 && b/a >= r.sc.target
}

func (c *clusterReport) writeDetails(w io.Writer) {
	fmt.Fprintf(w, "### Cluster details\n\n")
	fmt.Fprintf(w, "| scenario | server | msgs/run | msgs/s per round | median bytes/s | median publisher msgs/s |\n")
	fmt.Fprintf(w, "|---|---|---:|---|---:|---:|\n")
	for _, row := range c.rows {
		for i, cl := range row.cells {
			rounds := make([]string, len(cl.runs))
			for j, run := range cl.runs {
				rounds[j] = fmtRate(run.rate.msgsPerSec)
			}
			if cl.err != nil {
				rounds = append(rounds, "failed")
			}
			fmt.Fprintf(w, "| %s | %s | %s | %s | %s | %s |\n", row.sc.name, c.servers[i].name, fmtInt(int64(row.msgs)),
				strings.Join(rounds, ", "), fmtBytes(cl.medianOf(bytesOf)), fmtRate(cl.medianOf(pubOf)))
		}
	}
	fmt.Fprintln(w)
	for _, row := range c.rows {
		for i, cl := range row.cells {
			for j, run := range cl.runs {
				for _, n := range run.notes {
					fmt.Fprintf(w, "- %s, %s, round %d: %s\n", row.sc.name, c.servers[i].name, j+1, n)
				}
			}
		}
	}
	fmt.Fprintln(w)
}

// writeMesh prints one row per server process of the idle mesh, both kinds side by side, and
// the totals.
func (c *clusterReport) writeMesh(w io.Writer) {
	fmt.Fprintf(w, "### Idle %d-server mesh, %s subscriptions\n\n", meshNodes, fmtInt(meshConns*meshSubsPerConn))
	fmt.Fprintf(w, "%s raw connections spread round-robin over the nodes, %d subscriptions each on subjects of their own; "+
		"after every node's interest reached every other node and %s of settling, CPU over %s of idleness "+
		"(utime+stime from /proc, %% of one core), then VmRSS.\n\n", fmtInt(meshConns), meshSubsPerConn, settleTime, c.window)
	fmt.Fprintf(w, "| node | %[1]s VmRSS | %[2]s VmRSS | %[1]s CPU | %[2]s CPU | %[1]s conns / subs (/varz) | %[2]s conns / subs (/varz) |\n",
		c.servers[0].name, c.servers[1].name)
	fmt.Fprintf(w, "|---|---:|---:|---:|---:|---:|---:|\n")
	for i := range meshNodes {
		cells := make([]string, 0, 6)
		for _, col := range []func(meshNode) string{
			func(n meshNode) string { return fmtBytes(float64(n.rss)) },
			func(n meshNode) string { return fmtPercent(n.cpu) },
			func(n meshNode) string { return fmtInt(int64(n.conns)) + " / " + fmtInt(int64(n.subs)) },
		} {
			for _, m := range c.mesh {
				cells = append(cells, m.cellFor(i, col))
			}
		}
		fmt.Fprintf(w, "| %s | %s |\n", string(rune('A'+i)), strings.Join(cells, " | "))
	}
	total := func(m meshCell, f func(meshResult) string) string {
		if m.err != nil || len(m.res.nodes) == 0 {
			return "failed"
		}
		return f(m.res)
	}
	rss := func(r meshResult) string { return fmtBytes(float64(r.totalRSS())) }
	cpu := func(r meshResult) string { return fmtPercent(r.totalCPU()) }
	setup := func(r meshResult) string { return "setup " + r.setup.Round(time.Millisecond).String() }
	a, b := c.mesh[0], c.mesh[1]
	fmt.Fprintf(w, "| total | %s | %s | %s | %s | %s | %s |\n\n", total(a, rss), total(b, rss), total(a, cpu), total(b, cpu),
		total(a, setup), total(b, setup))
	if a.err == nil && b.err == nil && len(a.res.nodes) > 0 && len(b.res.nodes) > 0 {
		fmt.Fprintf(w, "Total RSS ratio (%s/%s): %s\n\n", c.servers[1].name, c.servers[0].name,
			fmtRatio(float64(b.res.totalRSS()), float64(a.res.totalRSS())))
	}
}

// cellFor formats node i of this mesh with f, or "failed".
func (m meshCell) cellFor(i int, f func(meshNode) string) string {
	if m.err != nil || i >= len(m.res.nodes) {
		return "failed"
	}
	return f(m.res.nodes[i])
}

func fmtPercent(v float64) string { return fmt.Sprintf("%.2f%%", v) }

func (c *clusterReport) errors() []string {
	var errs []string
	for _, row := range c.rows {
		for i, cl := range row.cells {
			if cl.err != nil {
				errs = append(errs, fmt.Sprintf("- cluster %s on %s: %v", row.sc.name, c.servers[i].name, cl.err))
			}
		}
	}
	for i, m := range c.mesh {
		if m.err != nil {
			errs = append(errs, fmt.Sprintf("- cluster idle mesh on %s: %v", c.servers[i].name, m.err))
		}
	}
	return errs
}
