package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"time"
)

// The durable-store rows: the streaming benchmarks again, with nats-streaming-server's FILE store
// (its default file settings, fsync on flush) against Starling's file or bolt store (fsync before
// every PubAck, its default), plus a replay row measured in process (replay.go).

const replayRunTimeout = 180 * time.Second // loading 1,000,000 messages, then reading them back

// durableScenario is one row of the durable table.
type durableScenario struct {
	name      string
	store     string // Starling's --store: file or bolt
	size      int    // payload bytes
	replay    bool   // replay.go's load-then-read run instead of stan-bench with 1 subscriber
	msgs      int
	quickMsgs int
	target    float64 // Starling / nats-streaming-server, from issue 5
}

func durableScenarios() []durableScenario {
	return []durableScenario{
		{name: "async pub 16 B, 1 sub, starling file", store: "file", size: 16, msgs: 300_000, quickMsgs: 50_000, target: 3},
		{name: "async pub 1 KiB, 1 sub, starling file", store: "file", size: 1024, msgs: 200_000, quickMsgs: 30_000, target: 3},
		{name: "async pub 16 B, 1 sub, starling bolt", store: "bolt", size: 16, msgs: 300_000, quickMsgs: 50_000, target: 1},
		{name: "async pub 1 KiB, 1 sub, starling bolt", store: "bolt", size: 1024, msgs: 200_000, quickMsgs: 30_000, target: 1},
		{name: "replay 128 B from seq 1, starling file", store: "file", size: 128, replay: true,
			msgs: 1_000_000, quickMsgs: 100_000, target: 2},
	}
}

// bench is the stan-bench scenario a non-replay row runs.
func (d durableScenario) bench() stanScenario {
	return stanScenario{name: d.name, size: d.size, subs: 1}
}

func (d durableScenario) side() string {
	if d.replay {
		return "new subscriber (replay)"
	}
	return "subscriber"
}

// durableServers are the two servers for a row; every run adds --dir with a fresh directory.
func durableServers(o options, store string) [2]serverSpec {
	if o.baseline != "" {
		return [2]serverSpec{
			{name: baselineName, path: o.baseline, args: []string{"--store", store}},
			{name: "starling", path: o.starling, args: []string{"--store", store}},
		}
	}
	return [2]serverSpec{
		{name: "nats-streaming-server", path: o.natsStreaming, args: []string{"-cid", stanCluster, "-st", "FILE"}},
		{name: "starling", path: o.starling, args: []string{"--store", store}},
	}
}

// baselineName labels the -baseline build in the report.
const baselineName = "starling-baseline"

// durableRow is one durable scenario on both servers.
type durableRow struct {
	sc      durableScenario
	msgs    int
	servers [2]serverSpec
	cells   [2]cell
}

// durableReport is the durable-store part of the report.
type durableReport struct {
	benchPath string
	dataDir   string // parent of the per-run store directories
	rows      []durableRow
}

// measureDurable runs every durable scenario, alternating the servers like the other rows.
func measureDurable(ctx context.Context, o options, timeout time.Duration, logDir string, progress io.Writer) *durableReport {
	rep := &durableReport{benchPath: o.stanBench, dataDir: os.TempDir()}
	for _, sc := range durableScenarios() {
		if ctx.Err() != nil {
			break
		}
		rw := durableRow{sc: sc, msgs: sc.msgs, servers: durableServers(o, sc.store)}
		if o.quick {
			rw.msgs = sc.quickMsgs
		}
		if o.msgs > 0 {
			rw.msgs = o.msgs
		}
		alternate(ctx, o.rounds, rw.cells[:], "durable "+sc.name, rw.servers[:], progress, func(i int) (runResult, error) {
			return runDurableOnce(ctx, o.stanBench, rw.servers[i], sc, rw.msgs, logDir, timeout)
		})
		rep.rows = append(rep.rows, rw)
	}
	return rep
}

// runDurableOnce measures sc once on a fresh server with a fresh, empty store directory.
func runDurableOnce(ctx context.Context, benchPath string, spec serverSpec, sc durableScenario, msgs int, logDir string, timeout time.Duration) (runResult, error) {
	dir, err := os.MkdirTemp("", "starling-compare-store-")
	if err != nil {
		return runResult{}, err
	}
	defer os.RemoveAll(dir)
	s, err := startServer(ctx, spec, logDir, []string{"--dir", dir})
	if err != nil {
		return runResult{}, err
	}
	defer s.stop()
	var res runResult
	if sc.replay {
		res, err = runReplay(ctx, s, sc.size, msgs, max(timeout, replayRunTimeout))
	} else {
		res, err = runStan(ctx, benchPath, s, sc.bench(), msgs, timeout)
	}
	if err != nil {
		return res, fmt.Errorf("%w (server log: %s)", err, s.logPath)
	}
	return res, nil
}
