package main

import (
	"fmt"
	"io"
	"strings"
	"time"
)

// diskRate is the median write+fsync rate of the probes; 0 without one.
func (r *syncReport) diskRate() float64 { return medianRate(r.disk) }

func medianRate(ds []diskResult) float64 {
	rates := make([]float64, len(ds))
	for i, d := range ds {
		rates[i] = d.rate()
	}
	return median(rates)
}

// names are the row's servers; nats-streaming-server and starling when there is no row.
func (r *syncReport) names() [2]string {
	if len(r.rows) == 0 {
		return [2]string{"nats-streaming-server", "starling"}
	}
	return [2]string{r.rows[0].servers[0].name, r.rows[0].servers[1].name}
}

// target describes the row's target, "–" for none; against nats-streaming-server, none in an
// A/B run.
func (r *syncReport) target(row syncRow) string {
	switch {
	case row.sc.vsDisk > 0:
		return fmt.Sprintf("≥ %.2f× the disk (%s msgs/s)", row.sc.vsDisk, fmtRate(row.sc.vsDisk*r.diskRate()))
	case row.sc.vsNSS > 0 && r.names()[0] != baselineName:
		return fmt.Sprintf("≥ %g× %s", row.sc.vsNSS, r.names()[0])
	}
	return "–"
}

// meets reports whether the row has a target here and whether it is met: both servers measured
// every round (and the disk was measured) and Starling's rate reaches it.
func (r *syncReport) meets(row syncRow) (applies, met bool) {
	a, b := row.cells[0].okMedian(), row.cells[1].okMedian()
	switch {
	case row.sc.vsDisk > 0:
		disk := r.diskRate()
		return true, b > 0 && disk > 0 && b/disk >= row.sc.vsDisk
	case row.sc.vsNSS > 0 && r.names()[0] != baselineName:
		return true, a > 0 && b > 0 && b/a >= row.sc.vsNSS
	}
	return false, false
}

// write prints the synchronous publish section: the table with latencies and targets, the
// disk's rate and the ratio to it, then per-round details.
func (r *syncReport) write(w io.Writer) {
	names := r.names()
	fmt.Fprintf(w, "## Synchronous publish (stan.go Publish, one publisher)\n\n")
	fmt.Fprintf(w, "- one stan.go v0.10.4 connection calls `Publish` (returns once its PubAck arrives) N times, one after "+
		"another; rate = N / the loop's time; latency = one Publish call, p50 and p99 of the run, median over the rounds\n")
	if names[0] == baselineName {
		fmt.Fprintf(w, "- A/B run: %s and starling, both `--store memory|file --dir DIR`, default settings\n", names[0])
	} else {
		fmt.Fprintf(w, "- memory rows: nats-streaming-server `-st MEMORY`, starling `--store memory`; file rows: "+
			"nats-streaming-server `-st FILE` with its default `--file_sync=true` (File.Sync, i.e. fsync(2), on every flush), "+
			"starling `--store file` with its default `--file_sync` (fsync before every PubAck)\n")
	}
	fmt.Fprintf(w, "- every run on a fresh server with a fresh `--dir` under %s (%s)\n", r.dataDir, fsType(r.dataDir))
	fmt.Fprintf(w, "- the disk: before each file row, this process appends %d B records to a new file under %s, "+
		"`f.Sync()` (fsync(2), the call both file stores make) after each, for %s; then the same into blocks "+
		"allocated ahead (fallocate, as Starling's tail segments), for information\n\n", diskProbeSize, r.dataDir, diskProbeTime)
	fmt.Fprintf(w, "| scenario | %[1]s msgs/s | p50 | p99 | %[2]s msgs/s | p50 | p99 | ratio (%[2]s/%[1]s) | target | met |\n", names[0], names[1])
	fmt.Fprintf(w, "|---|---:|---:|---:|---:|---:|---:|---:|---|---|\n")
	lat := func(c cell, f func(runResult) time.Duration) string {
		if c.err != nil {
			return "–"
		}
		return fmtMicros(time.Duration(c.medianOf(func(res runResult) float64 { return float64(f(res)) })))
	}
	p50 := func(res runResult) time.Duration { return res.p50 }
	p99 := func(res runResult) time.Duration { return res.p99 }
	for _, row := range r.rows {
		met := "–"
		if applies, ok := r.meets(row); applies {
			met = yesNo(ok)
		}
		a, b := row.cells[0], row.cells[1]
		fmt.Fprintf(w, "| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |\n", row.sc.name,
			a.cellRate(), lat(a, p50), lat(a, p99), b.cellRate(), lat(b, p50), lat(b, p99),
			fmtRatio(b.okMedian(), a.okMedian()), r.target(row), met)
	}
	fmt.Fprintln(w)
	r.writeDisk(w)
	r.writeDetails(w)
}

// writeDisk prints the disk's rate and each disk-bound row's ratio to it.
func (r *syncReport) writeDisk(w io.Writer) {
	if len(r.disk) == 0 {
		return
	}
	samples := make([]string, len(r.disk))
	for i, d := range r.disk {
		samples[i] = fmt.Sprintf("%s/s (p50 %s, p99 %s)", fmtRate(d.rate()), fmtMicros(d.p50), fmtMicros(d.p99))
	}
	disk := r.diskRate()
	fmt.Fprintf(w, "The disk, %d B write + fsync: %s records/s (median of %s)\n", diskProbeSize, fmtRate(disk), strings.Join(samples, "; "))
	for _, row := range r.rows {
		if row.sc.vsDisk <= 0 {
			continue
		}
		_, met := r.meets(row)
		fmt.Fprintf(w, "- %s: %s %s msgs/s / the disk's %s = %s (target ≥ %.2f): %s\n", row.sc.name, r.names()[1],
			fmtRate(row.cells[1].okMedian()), fmtRate(disk), fmtRatio(row.cells[1].okMedian(), disk), row.sc.vsDisk, yesNo(met))
	}
	if pre := medianRate(r.diskPre); pre > 0 {
		// Informative: Starling's tail segments are written so, and the disk does more
		// fsyncs per second into them than appending; the target stays the appending rate.
		fmt.Fprintf(w, "\nThe disk into preallocated blocks (as Starling's tail segments are written): %s records/s, %s× the appending rate\n",
			fmtRate(pre), fmtRatio(pre, disk))
		for _, row := range r.rows {
			if row.sc.vsDisk > 0 {
				fmt.Fprintf(w, "- %s: %s %s msgs/s / %s = %s\n", row.sc.name, r.names()[1],
					fmtRate(row.cells[1].okMedian()), fmtRate(pre), fmtRatio(row.cells[1].okMedian(), pre))
			}
		}
	}
	fmt.Fprintln(w)
}

func (r *syncReport) writeDetails(w io.Writer) {
	fmt.Fprintf(w, "### Synchronous publish details\n\n")
	fmt.Fprintf(w, "| scenario | server | msgs/run | msgs/s per round | p99 per round | median server µs/msg |\n|---|---|---:|---|---|---:|\n")
	for _, row := range r.rows {
		for i, c := range row.cells {
			rounds, p99s := make([]string, len(c.runs)), make([]string, len(c.runs))
			for j, run := range c.runs {
				rounds[j], p99s[j] = fmtRate(run.rate.msgsPerSec), fmtMicros(run.p99)
			}
			if c.err != nil {
				rounds = append(rounds, "failed")
			}
			us := "–"
			if v := usOf(c, func(res runResult) time.Duration { return res.serverCPUPerMsg }); v > 0 {
				us = fmt.Sprintf("%.2f", v)
			}
			fmt.Fprintf(w, "| %s | %s | %s | %s | %s | %s |\n", row.sc.name, row.servers[i].name, fmtInt(int64(row.msgs)),
				strings.Join(rounds, ", "), strings.Join(p99s, ", "), us)
		}
	}
	fmt.Fprintln(w)
}

// writeCommands adds the synchronous publish rows' invocations to the Commands block.
func (r *syncReport) writeCommands(w io.Writer) {
	if len(r.disk) > 0 || r.diskErr != nil {
		fmt.Fprintf(w, "# the disk\n(in-process) %d B appends to $TMPDIR/starling-compare-disk-*/records, f.Sync() after each, for %s\n",
			diskProbeSize, diskProbeTime)
	}
	for _, row := range r.rows {
		fmt.Fprintf(w, "# sync: %s\n", row.sc.name)
		for _, sv := range row.servers {
			args := append(append(serverArgs("$PORT", "$HTTP_PORT"), sv.args...), "--dir", "$(mktemp -d)")
			fmt.Fprintf(w, "%s %s\n", sv.path, strings.Join(args, " "))
		}
		fmt.Fprintf(w, "(in-process, stan.go) %s × Publish(%q, %d B), one after another\n", fmtInt(int64(row.msgs)), syncPubSubject, row.sc.size)
	}
}

func (r *syncReport) errors() []string {
	var errs []string
	if r.diskErr != nil {
		errs = append(errs, fmt.Sprintf("- the disk's write+fsync rate: %v", r.diskErr))
	}
	for _, row := range r.rows {
		for i, c := range row.cells {
			if c.err != nil {
				errs = append(errs, fmt.Sprintf("- %s on %s: %v", row.sc.name, row.servers[i].name, c.err))
			}
		}
	}
	return errs
}

// fmtMicros prints a latency in whole microseconds, "–" for none.
func fmtMicros(d time.Duration) string {
	if d <= 0 {
		return "–"
	}
	return fmtInt(int64((d+500)/time.Microsecond)) + " µs"
}
