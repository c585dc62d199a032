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
	cpuRows := make([]cpuRow, len(s.rows))
	for i, row := range s.rows {
		cpuRows[i] = cpuRow{name: row.sc.name, cells: row.cells}
	}
	writeCPUTable(w, s.servers, cpuRows)
	s.writeDetails(w)
}

// cpuRow is one scenario's cells for the CPU table.
type cpuRow struct {
	name  string
	cells [2]cell
}

// writeCPUTable prints the CPU each server and the benchmark client spent per message
// (medians over the rounds). On a machine where the client shares the cores with the server,
// the throughput ratio is capped by the client's own cost; this table shows the servers' work
// directly.
func writeCPUTable(w io.Writer, servers [2]serverSpec, rows []cpuRow) {
	us := func(c cell, f func(runResult) time.Duration) float64 {
		return c.medianOf(func(r runResult) float64 { return float64(f(r)) / float64(time.Microsecond) })
	}
	srv := func(r runResult) time.Duration { return r.serverCPUPerMsg }
	cli := func(r runResult) time.Duration { return r.clientCPUPerMsg }
	fmt.Fprintf(w, "Server CPU per published message (user+system, median): how much work each server does; "+
		"stan-bench's own CPU per message beside it.\n\n")
	fmt.Fprintf(w, "| scenario | %s server µs/msg | %s server µs/msg | server CPU ratio (%s/%s) | stan-bench µs/msg with %s | with %s |\n|---|---:|---:|---:|---:|---:|\n",
		servers[0].name, servers[1].name, servers[0].name, servers[1].name, servers[0].name, servers[1].name)
	for _, row := range rows {
		a, b := us(row.cells[0], srv), us(row.cells[1], srv)
		if a <= 0 || b <= 0 {
			continue
		}
		fmt.Fprintf(w, "| %s | %.2f | %.2f | %s | %.2f | %.2f |\n", row.name, a, b, fmtRatio(a, b),
			us(row.cells[0], cli), us(row.cells[1], cli))
	}
	fmt.Fprintln(w)
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
