package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"time"

	stan "github.com/nats-io/stan.go"
)

// The synchronous publish rows: one stan.go connection calling Publish, which returns once the
// server's PubAck has arrived, N times one after another (stan-bench -sync prints only a rate;
// these rows need each call's latency too). Before each file-store row, the disk's own
// write+fsync rate (diskrate.go), which bounds what a synchronous publish with fsync can reach.

const (
	syncPubSubject = "bench.sync"
	syncClientID   = "compare-sync"
	syncAckWait    = 10 * time.Second // one Publish; far beyond any round trip here
)

// syncScenario is one row of the synchronous publish table. Its targets are issue 13's.
type syncScenario struct {
	name      string
	store     string // both servers' store kind: memory or file (fsync on, both servers' default)
	size      int    // payload bytes
	msgs      int    // per run: a few seconds against nats-streaming-server, enough for a stable p99
	quickMsgs int
	vsNSS     float64 // target: Starling's msgs/s over nats-streaming-server's; 0 for none
	vsDisk    float64 // target: Starling's msgs/s over the disk's write+fsync rate; 0 for none
}

func syncScenarios() []syncScenario {
	return []syncScenario{
		{name: "sync pub 16 B, memory", store: "memory", size: 16, msgs: 10_000, quickMsgs: 1_000, vsNSS: 2},
		{name: "sync pub 16 B, file (fsync)", store: "file", size: 16, msgs: 3_000, quickMsgs: 500},
		{name: "sync pub 1 KiB, file (fsync)", store: "file", size: 1024, msgs: 4_000, quickMsgs: 500, vsDisk: 2.0 / 3},
	}
}

// syncRow is one synchronous publish scenario on both servers.
type syncRow struct {
	sc      syncScenario
	msgs    int
	servers [2]serverSpec
	cells   [2]cell
}

// syncReport is the synchronous publish part of the report.
type syncReport struct {
	dataDir string       // where the stores and the disk probe write
	disk    []diskResult // one probe before each file-store row
	diskPre []diskResult // and one into preallocated blocks (informative: targets use disk)
	diskErr error
	rows    []syncRow
}

// measureSync runs every synchronous publish scenario, alternating the servers like the other
// rows, each run on a fresh server with a fresh store directory.
func measureSync(ctx context.Context, o options, timeout time.Duration, logDir string, progress io.Writer) *syncReport {
	rep := &syncReport{dataDir: os.TempDir()}
	for _, sc := range syncScenarios() {
		if ctx.Err() != nil {
			break
		}
		if sc.store != "memory" && rep.diskErr == nil {
			rep.probeDisk(o.quick, progress)
		}
		rw := syncRow{sc: sc, msgs: sc.msgs, servers: storeServers(o, sc.store)}
		if o.quick {
			rw.msgs = sc.quickMsgs
		}
		if o.msgs > 0 {
			rw.msgs = o.msgs
		}
		alternate(ctx, o.rounds, rw.cells[:], sc.name, rw.servers[:], progress, func(i int) (runResult, error) {
			return onFreshStore(ctx, rw.servers[i], logDir, func(s *server) (runResult, error) {
				return runSyncPub(ctx, s, sc.size, rw.msgs, timeout)
			})
		})
		rep.rows = append(rep.rows, rw)
	}
	return rep
}

// probeDisk measures the disk's write+fsync rate once, while no server runs.
func (r *syncReport) probeDisk(quick bool, progress io.Writer) {
	dur := diskProbeTime
	if quick {
		dur /= 3
	}
	d, err := measureDiskRate(r.dataDir, diskProbeSize, dur)
	if err != nil {
		r.diskErr = err
		fmt.Fprintf(progress, "[disk] FAILED: %v\n", err)
		return
	}
	r.disk = append(r.disk, d)
	fmt.Fprintf(progress, "[disk] %d B write + fsync: %s records/s (p50 %s, p99 %s)\n",
		diskProbeSize, fmtRate(d.rate()), fmtMicros(d.p50), fmtMicros(d.p99))
	if d, err = measurePreallocatedDiskRate(r.dataDir, diskProbeSize, dur); err != nil {
		fmt.Fprintf(progress, "[disk] preallocated: FAILED: %v\n", err)
		return
	}
	r.diskPre = append(r.diskPre, d)
	fmt.Fprintf(progress, "[disk] %d B write + fsync into preallocated blocks: %s records/s (p50 %s, p99 %s)\n",
		diskProbeSize, fmtRate(d.rate()), fmtMicros(d.p50), fmtMicros(d.p99))
}

// runSyncPub publishes msgs messages of size bytes with Publish, one after another, and times
// each call. The first publish creates the channel; at thousands of messages per run that does
// not move the p99.
func runSyncPub(ctx context.Context, s *server, size, msgs int, timeout time.Duration) (runResult, error) {
	if err := waitStanReady(ctx, s.addr(), readyTimeout); err != nil {
		return runResult{}, err
	}
	deadline := time.Now().Add(timeout)
	sc, err := stanConnect(s.url(), syncClientID, stan.PubAckWait(syncAckWait))
	if err != nil {
		return runResult{}, err
	}
	defer sc.Close()
	payload := make([]byte, size)
	lat := make([]time.Duration, 0, msgs)
	cpu := startCPU(s.pid())
	start := time.Now()
	for i := range msgs {
		if err := ctx.Err(); err != nil {
			return runResult{}, err
		}
		t0 := time.Now()
		if t0.After(deadline) {
			return runResult{}, fmt.Errorf("run timeout reached after %d of %d publishes", i, msgs)
		}
		if err := sc.Publish(syncPubSubject, payload); err != nil {
			return runResult{}, fmt.Errorf("publish %d: %w", i+1, err)
		}
		lat = append(lat, time.Since(t0))
	}
	d := time.Since(start)
	res := runResult{
		rate:     benchRate{msgsPerSec: float64(msgs) / d.Seconds(), bytesPerSec: float64(msgs*size) / d.Seconds()},
		duration: d,
	}
	res.pubRate = res.rate.msgsPerSec
	res.serverCPUPerMsg = cpu.perMsg(msgs)
	res.p50, res.p99 = percentiles(lat)
	return res, nil
}
