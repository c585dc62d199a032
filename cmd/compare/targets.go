package main

import (
	"fmt"
	"io"
	"strings"
)

// Issue 13 (streaming efficiency) asks make compare to show its targets side by side with
// nats-streaming-server v0.25.6 in one run; this gathers them from the streaming, durable and
// synchronous publish sections into one list.

// goal is one target of the issue as this run measured it.
type goal struct {
	name     string // what the issue asks
	result   string // what this run measured
	measured bool   // false: its section was skipped or its rows failed to produce a figure
	met      bool
}

// issue13Goals evaluates the targets from the sections that ran (nil for a skipped one).
func issue13Goals(stan *stanReport, durable *durableReport, sync *syncReport) []goal {
	var async []cpuRow
	if stan != nil {
		async = append(async, stan.asyncRows()...)
	}
	if durable != nil {
		async = append(async, durable.asyncRows()...)
	}
	cpuMisses, rateMisses := misses(async)
	cpuResult, rateResult := "skipped", "skipped"
	if len(async) > 0 {
		cpuResult, rateResult = ofRows(len(async), cpuMisses), ofRows(len(async), rateMisses)
	}
	goals := []goal{
		{name: "every async row: server CPU per message ≤ 1/3 of nats-streaming-server's",
			result: cpuResult, measured: len(async) > 0, met: len(async) > 0 && len(cpuMisses) == 0},
		{name: "every async row: never fewer msgs/s than nats-streaming-server",
			result: rateResult, measured: len(async) > 0, met: len(async) > 0 && len(rateMisses) == 0},
	}
	goals = append(goals, sync.goals()...)
	goals = append(goals, durable.goals()...)
	return goals
}

// goals are the synchronous publish rows' targets: one per row that has one.
func (r *syncReport) goals() []goal {
	if r == nil {
		return []goal{
			{name: "sync publish, file (fsync) 1 KiB: ≥ 2/3 of the disk's write+fsync rate", result: "skipped"},
			{name: "sync publish, memory 16 B: ≥ 2× nats-streaming-server", result: "skipped"},
		}
	}
	var gs []goal
	for _, row := range r.rows {
		applies, met := r.meets(row)
		if !applies {
			continue
		}
		b := row.cells[1].okMedian()
		g := goal{name: row.sc.name + ": " + r.target(row), measured: b > 0, met: met}
		if row.sc.vsDisk > 0 {
			g.result = fmt.Sprintf("%s msgs/s, %s× the disk's %s/s", fmtRate(b), fmtRatio(b, r.diskRate()), fmtRate(r.diskRate()))
			g.measured = g.measured && r.diskRate() > 0
		} else {
			a := row.cells[0].okMedian()
			g.result = fmt.Sprintf("%s msgs/s, %s×", fmtRate(b), fmtRatio(b, a))
			g.measured = g.measured && a > 0
		}
		gs = append(gs, g)
	}
	return gs
}

// goals are the replay rows' targets and the memory store's footprint.
func (d *durableReport) goals() []goal {
	if d == nil {
		return []goal{
			{name: "replay 128 B from seq 1, memory and file: ≥ 2× nats-streaming-server", result: "skipped"},
			{name: "memory store: messages held in ≤ 1.5× their payload", result: "skipped"},
		}
	}
	var gs []goal
	for _, row := range d.rows {
		if !row.sc.replay {
			continue
		}
		a, b := row.cells[0].okMedian(), row.cells[1].okMedian()
		gs = append(gs, goal{name: fmt.Sprintf("%s (%s msgs): ≥ %g× nats-streaming-server", row.sc.name, fmtInt(int64(row.msgs)), row.sc.target),
			result: fmtRatio(b, a) + "×", measured: a > 0 && b > 0, met: row.meets()})
	}
	if row, added, bound := d.footprint(); row != nil {
		gs = append(gs, goal{name: fmt.Sprintf("memory store: %s × %d B held in ≤ %g× their payload (VmRSS added ≤ %s)",
			fmtInt(int64(row.msgs)), row.sc.size, footprintTarget, fmtBytes(bound)),
			result:   "starling " + fmtBytes(added[1]) + ", nats-streaming-server " + fmtBytes(added[0]),
			measured: added[1] > 0 && row.msgs == footprintMsgs, met: d.footprintMet()})
	}
	return gs
}

// writeIssue13 prints the targets and the one-line summary. An A/B run of two Starling builds has
// no nats-streaming-server to compare with, so it prints nothing.
func writeIssue13(w io.Writer, goals []goal, ab bool) {
	if ab {
		return
	}
	fmt.Fprintf(w, "## Issue 13 targets (streaming efficiency)\n\n")
	var met, missed, unmeasured []string
	for _, g := range goals {
		mark := "[ ]"
		switch {
		case !g.measured:
			mark = "[?]"
			unmeasured = append(unmeasured, g.name)
		case g.met:
			mark = "[x]"
			met = append(met, g.name)
		default:
			missed = append(missed, g.name)
		}
		fmt.Fprintf(w, "- %s %s: %s\n", mark, g.name, g.result)
	}
	fmt.Fprintf(w, "\nissue 13: %d of %d targets met", len(met), len(goals))
	if len(missed) > 0 {
		fmt.Fprintf(w, "; not met: %s", strings.Join(missed, "; "))
	}
	if len(unmeasured) > 0 {
		fmt.Fprintf(w, "; not measured: %s", strings.Join(unmeasured, "; "))
	}
	fmt.Fprintf(w, "\n\nNot measured by this tool: a GC cycle's cost at 100 k and 10 M stored messages "+
		"(`go test -run '^$' -bench Footprint ./stores/memstore/`), limits and expiry, 0 allocs/op on the hot paths "+
		"(Go benchmarks), the core rows (the nats bench section) and `make soak`.\n\n")
}
