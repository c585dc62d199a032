package main

import (
	"fmt"
	"io"
	"strings"
)

// write prints the durable-store section: the summary table with each row's target, then
// per-round details.
func (d *durableReport) write(w io.Writer) {
	fmt.Fprintf(w, "## Streaming, durable stores (stan-bench)\n\n")
	fmt.Fprintf(w, "- every run on a fresh server with a fresh, empty `--dir` under %s (%s)\n", d.dataDir, fsType(d.dataDir))
	names := [2]string{"nats-streaming-server", "starling"}
	if len(d.rows) > 0 {
		names = [2]string{d.rows[0].servers[0].name, d.rows[0].servers[1].name}
	}
	ab := names[0] == baselineName
	if ab {
		fmt.Fprintf(w, "- A/B run: %s and starling, both `--store file|bolt --dir DIR`, default settings "+
			"(fsync before every PubAck); the rows' targets (against nats-streaming-server) do not apply\n", names[0])
	} else {
		fmt.Fprintf(w, "- nats-streaming-server: `-st FILE --dir DIR`, default file settings (fsync on flush); "+
			"starling: `--store file|bolt --dir DIR`, default settings (fsync before every PubAck); "+
			"the memory replay row: `-st MEMORY` and `--store memory`\n")
	}
	fmt.Fprintf(w, "- pub rows: stan-bench as in the streaming table, 1 publisher, 0 or 1 subscriber; "+
		"rate at the subscriber, or the acked publish rate with none\n")
	fmt.Fprintf(w, "- replay row: stan.go publishes N messages (PublishAsync, ≤ %d acks in flight, untimed) and waits "+
		"for every ack; then a new connection subscribes with DeliverAllAvailable, MaxInflight %d, auto-ack; "+
		"rate = N / (Subscribe call to N-th message)\n\n", replayPubInfl, replayMaxInfl)
	fmt.Fprintf(w, "| scenario | rate measured at | %[1]s msgs/s | %[2]s msgs/s | ratio (%[2]s/%[1]s) | target | met |\n", names[0], names[1])
	fmt.Fprintf(w, "|---|---|---:|---:|---:|---:|---|\n")
	met := 0
	var misses []string
	for _, row := range d.rows {
		ok := row.meets()
		if ab {
			fmt.Fprintf(w, "| %s | %s | %s | %s | %s | – | – |\n", row.sc.name, row.sc.side(),
				row.cells[0].cellRate(), row.cells[1].cellRate(), fmtRatio(row.cells[1].okMedian(), row.cells[0].okMedian()))
			continue
		}
		if ok {
			met++
		} else {
			misses = append(misses, row.sc.name)
		}
		fmt.Fprintf(w, "| %s | %s | %s | %s | %s | ≥ %g× | %s |\n", row.sc.name, row.sc.side(),
			row.cells[0].cellRate(), row.cells[1].cellRate(),
			fmtRatio(row.cells[1].okMedian(), row.cells[0].okMedian()), row.sc.target, yesNo(ok))
	}
	if !ab {
		fmt.Fprintf(w, "\ntargets (issue 5's on the 1-sub rows, issue 13's on the others): %d of %d rows meet theirs", met, len(d.rows))
		if len(misses) > 0 {
			fmt.Fprintf(w, " (below: %s)", strings.Join(misses, "; "))
		}
	}
	fmt.Fprintf(w, "\n\n")
	d.writeFootprint(w, names, ab)
	if len(d.rows) > 0 {
		writeCPUTable(w, [2]serverSpec{{name: names[0]}, {name: names[1]}}, d.asyncRows())
	}
	d.writeDetails(w)
}

// asyncRows are the stan-bench rows, for the CPU table and issue 13's async-row targets.
func (d *durableReport) asyncRows() []cpuRow {
	var rows []cpuRow
	for _, row := range d.rows {
		if !row.sc.replay {
			rows = append(rows, cpuRow{name: row.sc.name, cells: row.cells})
		}
	}
	return rows
}

// Issue 13's memory store target: 1,000,000 messages held in at most 1.5 times their payload.
// The issue writes it "≤ 192 MiB" for 128 B messages, reading 128 MB as 128 MiB; this is the
// stricter 1.5 × 128,000,000 B (183.1 MiB). A smaller load (-quick) is not held to it: the
// server's fixed costs weigh more there.
const (
	footprintTarget = 1.5
	footprintMsgs   = 1_000_000
)

// footprint is the memory replay row: its VmRSS added by the load on each server (median over
// the rounds; 0 when not measured) and the bound for Starling's.
func (d *durableReport) footprint() (row *durableRow, added [2]float64, bound float64) {
	for i := range d.rows {
		if r := &d.rows[i]; r.sc.replay && r.sc.store == "memory" {
			for j, c := range r.cells {
				if c.err == nil {
					added[j] = c.medianOf(func(res runResult) float64 { return float64(res.rssAdded) })
				}
			}
			return r, added, footprintTarget * float64(r.msgs*r.sc.size)
		}
	}
	return nil, added, 0
}

// footprintMet: Starling's VmRSS grew by at most footprintTarget times the payload of
// footprintMsgs messages.
func (d *durableReport) footprintMet() bool {
	row, added, bound := d.footprint()
	return row != nil && row.msgs == footprintMsgs && added[1] > 0 && added[1] <= bound
}

// writeFootprint prints what holding the memory replay row's messages cost each server.
func (d *durableReport) writeFootprint(w io.Writer, names [2]string, ab bool) {
	row, added, bound := d.footprint()
	if row == nil {
		return
	}
	fmt.Fprintf(w, "Memory store, VmRSS added by loading %s × %d B (%s of payload; median over the rounds): %s %s, %s %s",
		fmtInt(int64(row.msgs)), row.sc.size, fmtBytes(float64(row.msgs*row.sc.size)),
		names[0], fmtBytes(added[0]), names[1], fmtBytes(added[1]))
	switch {
	case ab:
	case row.msgs != footprintMsgs:
		fmt.Fprintf(w, "; issue 13's target (≤ %g× payload) is for %s messages", footprintTarget, fmtInt(footprintMsgs))
	default:
		fmt.Fprintf(w, "; issue 13 target ≤ %g× payload (%s): %s", footprintTarget, fmtBytes(bound), yesNo(d.footprintMet()))
	}
	fmt.Fprintf(w, "\n\n")
}

// meets reports whether both servers measured every round and the ratio reaches the target.
func (r durableRow) meets() bool {
	a, b := r.cells[0].okMedian(), r.cells[1].okMedian()
	return a > 0 && b > 0 && b/a >= r.sc.target
}

func yesNo(ok bool) string {
	if ok {
		return "yes"
	}
	return "no"
}

func (d *durableReport) writeDetails(w io.Writer) {
	fmt.Fprintf(w, "### Durable stores details\n\n")
	fmt.Fprintf(w, "Pub: stan-bench's acked publish rate, or the replay row's (untimed) load rate.\n\n")
	fmt.Fprintf(w, "| scenario | server | msgs/run | msgs/s per round | median pub msgs/s | median bytes/s |\n")
	fmt.Fprintf(w, "|---|---|---:|---|---:|---:|\n")
	for _, row := range d.rows {
		for i, c := range row.cells {
			rounds := make([]string, len(c.runs))
			for j, run := range c.runs {
				rounds[j] = fmtRate(run.rate.msgsPerSec)
			}
			if c.err != nil {
				rounds = append(rounds, "failed")
			}
			fmt.Fprintf(w, "| %s | %s | %s | %s | %s | %s |\n", row.sc.name, row.servers[i].name,
				fmtInt(int64(row.msgs)), strings.Join(rounds, ", "), fmtRate(c.medianOf(pubOf)), fmtBytes(c.medianOf(bytesOf)))
		}
	}
	fmt.Fprintln(w)
	for _, row := range d.rows {
		for i, c := range row.cells {
			for j, run := range c.runs {
				for _, n := range run.notes {
					fmt.Fprintf(w, "- %s, %s, round %d: %s\n", row.sc.name, row.servers[i].name, j+1, n)
				}
			}
		}
	}
	fmt.Fprintln(w)
}

// writeCommands adds the durable rows' server and client invocations to the Commands block.
func (d *durableReport) writeCommands(w io.Writer) {
	for _, row := range d.rows {
		fmt.Fprintf(w, "# durable: %s\n", row.sc.name)
		for _, sv := range row.servers {
			args := append(append(serverArgs("$PORT", "$HTTP_PORT"), sv.args...), "--dir", "$(mktemp -d)")
			fmt.Fprintf(w, "%s %s\n", sv.path, strings.Join(args, " "))
		}
		if row.sc.replay {
			fmt.Fprintf(w, "(in-process, stan.go) load %s × %d B on %s, then replay from sequence 1\n",
				fmtInt(int64(row.msgs)), row.sc.size, replaySubject)
			continue
		}
		fmt.Fprintf(w, "%s %s\n", d.benchPath, strings.Join(stanArgs("nats://127.0.0.1:$PORT", row.sc.bench(), row.msgs), " "))
	}
}

func (d *durableReport) errors() []string {
	var errs []string
	for _, row := range d.rows {
		for i, c := range row.cells {
			if c.err != nil {
				errs = append(errs, fmt.Sprintf("- durable %s on %s: %v", row.sc.name, row.servers[i].name, c.err))
			}
		}
	}
	return errs
}

// fsType names the filesystem holding dir, from /proc/mounts (longest matching mount point):
// a tmpfs would make every fsync free.
func fsType(dir string) string {
	best, typ := "", "unknown filesystem"
	for _, line := range strings.Split(readTrim("/proc/mounts"), "\n") {
		f := strings.Fields(line)
		if len(f) < 3 {
			continue
		}
		mp := f[1]
		under := dir == mp || mp == "/" || strings.HasPrefix(dir, strings.TrimSuffix(mp, "/")+"/")
		if under && len(mp) > len(best) {
			best, typ = mp, f[2]+" on "+mp
		}
	}
	return typ
}
