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
// every PubAck, its default), plus replay rows measured in process (replay.go): on the file
// stores, and on both servers' memory stores.

const replayRunTimeout = 180 * time.Second // loading 1,000,000 messages, then reading them back

// durableScenario is one row of the durable table.
type durableScenario struct {
	name      string
	store     string // Starling's --store: file or bolt; memory (both servers') for a replay row
	size      int    // payload bytes
	subs      int    // stan-bench subscribers
	replay    bool   // replay.go's load-then-read run instead of stan-bench
	msgs      int
	quickMsgs int
	// target is Starling's rate over nats-streaming-server's: issue 5's on the 1-subscriber
	// rows (file ≥ 3×, bolt ≥ 1×), issue 13's on the others (never fewer msgs/s; replay ≥ 2×).
	target float64
}

// The 0-subscriber rows publish fewer messages than the 1-subscriber ones: their rate is the
// publisher's alone, stable sooner, and the whole section stays within a few minutes.
func durableScenarios() []durableScenario {
	return []durableScenario{
		{name: "async pub 16 B, 0 subs, starling file", store: "file", size: 16, msgs: 200_000, quickMsgs: 50_000, target: 1},
		{name: "async pub 16 B, 1 sub, starling file", store: "file", size: 16, subs: 1, msgs: 300_000, quickMsgs: 50_000, target: 3},
		{name: "async pub 1 KiB, 0 subs, starling file", store: "file", size: 1024, msgs: 120_000, quickMsgs: 30_000, target: 1},
		{name: "async pub 1 KiB, 1 sub, starling file", store: "file", size: 1024, subs: 1, msgs: 200_000, quickMsgs: 30_000, target: 3},
		{name: "async pub 16 B, 0 subs, starling bolt", store: "bolt", size: 16, msgs: 200_000, quickMsgs: 50_000, target: 1},
		{name: "async pub 16 B, 1 sub, starling bolt", store: "bolt", size: 16, subs: 1, msgs: 300_000, quickMsgs: 50_000, target: 1},
		{name: "async pub 1 KiB, 0 subs, starling bolt", store: "bolt", size: 1024, msgs: 120_000, quickMsgs: 30_000, target: 1},
		{name: "async pub 1 KiB, 1 sub, starling bolt", store: "bolt", size: 1024, subs: 1, msgs: 200_000, quickMsgs: 30_000, target: 1},
		{name: "replay 128 B from seq 1, starling file", store: "file", size: 128, replay: true,
			msgs: 1_000_000, quickMsgs: 100_000, target: 2},
		{name: "replay 128 B from seq 1, memory (both)", store: "memory", size: 128, replay: true,
			msgs: 1_000_000, quickMsgs: 100_000, target: 2},
	}
}

// bench is the stan-bench scenario a non-replay row runs.
func (d durableScenario) bench() stanScenario {
	return stanScenario{name: d.name, size: d.size, subs: d.subs}
}

func (d durableScenario) side() string {
	if d.replay {
		return "new subscriber (replay)"
	}
	return d.bench().side()
}

// storeServers are the two servers for a row on Starling's store kind store (memory, file or
// bolt); nats-streaming-server gets its FILE store for file and bolt. Every run adds --dir with
// a fresh directory, which the memory stores ignore.
func storeServers(o options, store string) [2]serverSpec {
	if o.baseline != "" {
		return [2]serverSpec{
			{name: baselineName, path: o.baseline, args: []string{"--store", store}},
			{name: "starling", path: o.starling, args: []string{"--store", store}},
		}
	}
	nssStore := "FILE"
	if store == "memory" {
		nssStore = "MEMORY"
	}
	return [2]serverSpec{
		{name: "nats-streaming-server", path: o.natsStreaming, args: []string{"-cid", stanCluster, "-st", nssStore}},
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
		if o.onlyReplay && !sc.replay {
			continue
		}
		rw := durableRow{sc: sc, msgs: sc.msgs, servers: storeServers(o, sc.store)}
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
	return onFreshStore(ctx, spec, logDir, func(s *server) (runResult, error) {
		if sc.replay {
			return runReplay(ctx, s, sc.size, msgs, max(timeout, replayRunTimeout))
		}
		return runStan(ctx, benchPath, s, sc.bench(), msgs, timeout)
	})
}

// onFreshStore starts spec with a fresh, empty --dir, measures it once and stops it.
func onFreshStore(ctx context.Context, spec serverSpec, logDir string, measure func(*server) (runResult, error)) (runResult, error) {
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
	res, err := measure(s)
	if err != nil {
		return res, fmt.Errorf("%w (server log: %s)", err, s.logPath)
	}
	return res, nil
}
