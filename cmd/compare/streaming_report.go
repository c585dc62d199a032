package main

import (
	"fmt"
	"io"
	"strings"
	"time"
)

// stanTarget is the goal: Starling at least twice nats-streaming-server on every row.
const stanTarget = 2.0

// write prints the streaming section: the summary table with the target line, then per-round
// details with every rate stan-bench printed.
func (s *stanReport) write(w io.Writer) {
	fmt.Fprintf(w, "## Streaming (stan-bench)\n\n")
	fmt.Fprintf(w, "- stan-bench: `%s` (%s); 1 publisher, async (PublishAsync, ≤ 512 acks in flight); "+
		"subscribers connect first and subscribe with DeliverAllAvailable\n", s.benchPath, orUnknown(s.benchVersion))
	for i, sv := range s.servers {
		fmt.Fprintf(w, "- %s: `%s` (%s), memory store, cluster %s\n", sv.name, sv.path, orUnknown(s.versions[i]), stanCluster)
	}
	fmt.Fprintf(w, "\n| scenario | rate measured at | %s msgs/s | %s msgs/s | ratio (%s/%s) |\n|---|---|---:|---:|---:|\n",
		s.servers[0].name, s.servers[1].name, s.servers[1].name, s.servers[0].name)
	var misses []string
	for _, row := range s.rows {
		a, b := row.cells[0].okMedian(), row.cells[1].okMedian()
		if a <= 0 || b <= 0 || b/a < stanTarget {
			misses = append(misses, row.sc.name)
		}
		fmt.Fprintf(w, "| %s | %s | %s | %s | %s |\n", row.sc.name, row.sc.side(),
			row.cells[0].cellRate(), row.cells[1].cellRate(), fmtRatio(b, a))
	}
	if s.servers[0].name != baselineName { // an A/B run of two builds has no target
		fmt.Fprintf(w, "\ntarget ≥ %g× %s on each row: %d of %d rows meet it", stanTarget, s.servers[0].name,
			len(s.rows)-len(misses), len(s.rows))
		if len(misses) > 0 {
			fmt.Fprintf(w, " (below: %s)", strings.Join(misses, "; "))
		}
	}
	fmt.Fprintf(w, "\n\n")
	writeCPUTable(w, s.servers, s.asyncRows())
	s.writeDetails(w)
}

// asyncRows are the rows for the CPU table and issue 13's async-row targets: all of them.
func (s *stanReport) asyncRows() []cpuRow {
	rows := make([]cpuRow, len(s.rows))
	for i, row := range s.rows {
		rows[i] = cpuRow{name: "memory, " + row.sc.name, cells: row.cells}
	}
	return rows
}

// cpuRow is one scenario's cells for the CPU table.
type cpuRow struct {
	name  string
	cells [2]cell
}

// Issue 13's targets for every async row: the server's CPU per message at most a third of
// nats-streaming-server's, and never fewer msgs/s.
const (
	cpuTarget  = 3.0 // nats-streaming-server's server µs/msg over Starling's
	rateTarget = 1.0 // Starling's msgs/s over nats-streaming-server's
)

// serverUs is server i's median CPU per message in µs; 0 when not measured.
func (r cpuRow) serverUs(i int) float64 {
	return usOf(r.cells[i], func(res runResult) time.Duration { return res.serverCPUPerMsg })
}

// usOf is the median of f over c's rounds in µs, over the rounds where it was measured
// (f > 0): an unmeasured round is not a round that cost nothing.
func usOf(c cell, f func(runResult) time.Duration) float64 {
	xs := make([]float64, 0, len(c.runs))
	for _, r := range c.runs {
		if d := f(r); d > 0 {
			xs = append(xs, float64(d)/float64(time.Microsecond))
		}
	}
	return median(xs)
}

// cpuMet: both servers measured every round (a median over fewer rounds is not comparable, as
// for the rate), and the first spends at least cpuTarget times the second's CPU.
func (r cpuRow) cpuMet() bool {
	if r.cells[0].err != nil || r.cells[1].err != nil {
		return false
	}
	if !everyRoundCPU(r.cells[0]) || !everyRoundCPU(r.cells[1]) {
		return false
	}
	a, b := r.serverUs(0), r.serverUs(1)
	return a > 0 && b > 0 && a/b >= cpuTarget
}

// everyRoundCPU: the server's CPU was read in every round of c (a round whose /proc read
// failed reports 0, and a median counting it would flatter that server).
func everyRoundCPU(c cell) bool {
	for _, r := range c.runs {
		if r.serverCPUPerMsg <= 0 {
			return false
		}
	}
	return len(c.runs) > 0
}

// rateMet: both servers measured every round, and the second is at least as fast.
func (r cpuRow) rateMet() bool {
	a, b := r.cells[0].okMedian(), r.cells[1].okMedian()
	return a > 0 && b > 0 && b/a >= rateTarget
}

// writeCPUTable prints the CPU each server and the benchmark client spent per message
// (medians over the rounds), and whether each row meets issue 13's targets (not in an A/B run
// of two Starling builds). On a machine where the client shares the cores with the server, the
// throughput ratio is capped by the client's own cost; this table shows the servers' work
// directly.
func writeCPUTable(w io.Writer, servers [2]serverSpec, rows []cpuRow) {
	targets := servers[0].name != baselineName
	cli := func(r runResult) time.Duration { return r.clientCPUPerMsg }
	fmt.Fprintf(w, "Server CPU per published message (user+system, median): how much work each server does; "+
		"stan-bench's own CPU per message beside it.\n\n")
	fmt.Fprintf(w, "| scenario | %s server µs/msg | %s server µs/msg | server CPU ratio (%s/%s) | stan-bench µs/msg with %s | with %s |",
		servers[0].name, servers[1].name, servers[0].name, servers[1].name, servers[0].name, servers[1].name)
	if targets {
		fmt.Fprintf(w, " msgs/s ratio (%s/%s) | CPU ≤ 1/3 | msgs/s ≥ |\n|---|---:|---:|---:|---:|---:|---:|---|---|\n",
			servers[1].name, servers[0].name)
	} else {
		fmt.Fprintf(w, "\n|---|---:|---:|---:|---:|---:|\n")
	}
	for _, row := range rows {
		a, b := row.serverUs(0), row.serverUs(1)
		if a <= 0 || b <= 0 {
			continue
		}
		fmt.Fprintf(w, "| %s | %.2f | %.2f | %s | %.2f | %.2f |", row.name, a, b, fmtRatio(a, b),
			usOf(row.cells[0], cli), usOf(row.cells[1], cli))
		if targets {
			fmt.Fprintf(w, " %s | %s | %s |", fmtRatio(row.cells[1].okMedian(), row.cells[0].okMedian()),
				yesNo(row.cpuMet()), yesNo(row.rateMet()))
		}
		fmt.Fprintln(w)
	}
	if targets && len(rows) > 0 {
		cpuMisses, rateMisses := misses(rows)
		fmt.Fprintf(w, "\nissue 13, every async row: server CPU per message ≤ 1/3 of %s's on %s; never fewer msgs/s on %s\n",
			servers[0].name, ofRows(len(rows), cpuMisses), ofRows(len(rows), rateMisses))
	}
	fmt.Fprintln(w)
}

// misses names the rows that miss the CPU target and those that miss the rate target.
func misses(rows []cpuRow) (cpu, rate []string) {
	for _, row := range rows {
		if !row.cpuMet() {
			cpu = append(cpu, row.name)
		}
		if !row.rateMet() {
			rate = append(rate, row.name)
		}
	}
	return cpu, rate
}

// ofRows says how many of n rows meet a target, naming the others: "3 of 4 rows (below: x)".
func ofRows(n int, misses []string) string {
	s := fmt.Sprintf("%d of %d rows", n-len(misses), n)
	if len(misses) > 0 {
		s += " (below: " + strings.Join(misses, "; ") + ")"
	}
	return s
}

func (s *stanReport) writeDetails(w io.Writer) {
	fmt.Fprintf(w, "### Streaming details\n\n")
	fmt.Fprintf(w, "Pub: acked messages from first publish to last ack. Sub: messages from first to last received. "+
		"Pub+sub: both counts over the whole span (stan-bench's \"Pub/Sub stats\").\n\n")
	fmt.Fprintf(w, "| scenario | server | msgs/run | msgs/s per round | median pub msgs/s | median sub msgs/s | median pub+sub msgs/s | median bytes/s |\n")
	fmt.Fprintf(w, "|---|---|---:|---|---:|---:|---:|---:|\n")
	for _, row := range s.rows {
		for i, c := range row.cells {
			rounds := make([]string, len(c.runs))
			for j, run := range c.runs {
				rounds[j] = fmtRate(run.rate.msgsPerSec)
			}
			if c.err != nil {
				rounds = append(rounds, "failed") // later rounds were skipped
			}
			fmt.Fprintf(w, "| %s | %s | %s | %s | %s | %s | %s | %s |\n", row.sc.name, s.servers[i].name,
				fmtInt(int64(row.msgs)), strings.Join(rounds, ", "),
				fmtRate(c.medianOf(func(r runResult) float64 { return r.stan.pub.msgsPerSec })),
				fmtRate(c.medianOf(func(r runResult) float64 { return r.stan.sub.msgsPerSec })),
				fmtRate(c.medianOf(func(r runResult) float64 { return r.stan.agg.msgsPerSec })),
				fmtBytes(c.medianOf(bytesOf)))
		}
	}
	fmt.Fprintln(w)
	for _, row := range s.rows {
		for i, c := range row.cells {
			for j, run := range c.runs {
				for _, n := range run.notes {
					fmt.Fprintf(w, "- %s, %s, round %d: %s\n", row.sc.name, s.servers[i].name, j+1, n)
				}
			}
		}
	}
	fmt.Fprintln(w)
}

// writeCommands adds the streaming servers' and stan-bench's invocations to the Commands block.
func (s *stanReport) writeCommands(w io.Writer) {
	for _, sv := range s.servers {
		fmt.Fprintf(w, "%s %s\n", sv.path, strings.Join(append(serverArgs("$PORT", "$HTTP_PORT"), sv.args...), " "))
	}
	for _, row := range s.rows {
		fmt.Fprintf(w, "# streaming: %s\n%s %s\n", row.sc.name, s.benchPath,
			strings.Join(stanArgs("nats://127.0.0.1:$PORT", row.sc, row.msgs), " "))
	}
}

func (s *stanReport) errors() []string {
	var errs []string
	for _, row := range s.rows {
		for i, c := range row.cells {
			if c.err != nil {
				errs = append(errs, fmt.Sprintf("- streaming %s on %s: %v", row.sc.name, s.servers[i].name, c.err))
			}
		}
	}
	return errs
}
