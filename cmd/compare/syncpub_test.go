package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestPercentiles(t *testing.T) {
	var xs []time.Duration
	for i := 100; i >= 1; i-- { // 100 µs ... 1 µs, unsorted
		xs = append(xs, time.Duration(i)*time.Microsecond)
	}
	if p50, p99 := percentiles(xs); p50 != 50*time.Microsecond || p99 != 99*time.Microsecond {
		t.Errorf("1..100 µs: p50 %v, p99 %v", p50, p99)
	}
	if p50, p99 := percentiles([]time.Duration{7}); p50 != 7 || p99 != 7 {
		t.Errorf("one sample: %v %v", p50, p99)
	}
	if p50, p99 := percentiles(nil); p50 != 0 || p99 != 0 {
		t.Errorf("none: %v %v", p50, p99)
	}
}

func TestMeasureDiskRate(t *testing.T) {
	d, err := measureDiskRate(t.TempDir(), 1024, 50*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	if d.records < 1 || d.rate() <= 0 || d.p50 <= 0 || d.p99 < d.p50 {
		t.Fatalf("result %+v", d)
	}
	if _, err := measureDiskRate("/nonexistent/compare-test-dir", 1024, time.Millisecond); err == nil {
		t.Error("no error for a missing directory")
	}
}

// The preallocated probe writes into blocks allocated ahead: the file's size is the
// allocation, not the records (it would be the records if it appended).
func TestMeasurePreallocatedDiskRate(t *testing.T) {
	d, err := measurePreallocatedDiskRate(t.TempDir(), 1024, 50*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	if d.records < 1 || d.rate() <= 0 || d.p50 <= 0 || d.p99 < d.p50 {
		t.Fatalf("result %+v", d)
	}
	dir := t.TempDir()
	f, err := os.Create(filepath.Join(dir, "f"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := allocate(f, diskProbePrealloc); err != nil {
		t.Fatal(err)
	}
	if _, err := f.Write(make([]byte, 1024)); err != nil {
		t.Fatal(err)
	}
	if st, _ := f.Stat(); st.Size() != diskProbePrealloc {
		t.Errorf("size %d after a write into a preallocated file, want %d", st.Size(), diskProbePrealloc)
	}
}

func TestSyncScenarios(t *testing.T) {
	targets := map[string]bool{}
	for _, sc := range syncScenarios() {
		if sc.store != "memory" && sc.store != "file" || sc.msgs < 3000 || sc.quickMsgs <= 0 || sc.quickMsgs > sc.msgs {
			t.Errorf("%s: %+v", sc.name, sc)
		}
		if sc.vsNSS > 0 {
			targets["nss "+sc.store] = true
		}
		if sc.vsDisk > 0 {
			targets["disk "+sc.store] = sc.size == 1024
		}
	}
	if !targets["nss memory"] || !targets["disk file"] || len(targets) != 2 {
		t.Errorf("issue 13's targets: %v, want ≥ 2× nss on memory and ≥ 2/3 of the disk on file, 1 KiB", targets)
	}
}

// syncCell is one server's rounds: msgs/s with p50 and p99 latencies in µs.
func syncCell(runs ...[3]float64) cell {
	var c cell
	for _, r := range runs {
		c.runs = append(c.runs, runResult{rate: benchRate{msgsPerSec: r[0]},
			p50: time.Duration(r[1] * float64(time.Microsecond)), p99: time.Duration(r[2] * float64(time.Microsecond))})
	}
	return c
}

func testSyncReport(o options) *syncReport {
	scs := syncScenarios()
	rep := &syncReport{dataDir: "/tmp", disk: []diskResult{
		{records: 4500, duration: time.Second, p50: 190 * time.Microsecond, p99: 400 * time.Microsecond},
		{records: 5500, duration: time.Second, p50: 180 * time.Microsecond, p99: 350 * time.Microsecond},
	}, diskPre: []diskResult{{records: 8000, duration: time.Second, p50: 120 * time.Microsecond, p99: 200 * time.Microsecond}}}
	add := func(sc syncScenario, a, b cell) {
		rep.rows = append(rep.rows, syncRow{sc: sc, msgs: sc.msgs, servers: storeServers(o, sc.store), cells: [2]cell{a, b}})
	}
	add(scs[0], syncCell([3]float64{6000, 150, 300}, [3]float64{7000, 140, 320}), syncCell([3]float64{13000, 70, 150}))
	add(scs[1], syncCell([3]float64{1100, 880, 2000}), syncCell([3]float64{1800, 540, 1200}))
	add(scs[2], syncCell([3]float64{1000, 950, 2100}), syncCell([3]float64{3400, 290, 800}))
	return rep
}

func TestSyncReport(t *testing.T) {
	o := options{starling: "bin/starling", natsStreaming: "bin/nats-streaming-server"}
	rep := testSyncReport(o)
	if rep.diskRate() != 5000 {
		t.Fatalf("diskRate() = %v", rep.diskRate())
	}
	var buf bytes.Buffer
	rep.write(&buf)
	rep.writeCommands(&buf)
	out := buf.String()
	for _, want := range []string{
		"## Synchronous publish (stan.go Publish, one publisher)",
		"| scenario | nats-streaming-server msgs/s | p50 | p99 | starling msgs/s | p50 | p99 | ratio (starling/nats-streaming-server) | target | met |",
		"| sync pub 16 B, memory | 6,500 | 145 µs | 310 µs | 13,000 | 70 µs | 150 µs | 2.00 | ≥ 2× nats-streaming-server | yes |",
		"| sync pub 16 B, file (fsync) | 1,100 | 880 µs | 2,000 µs | 1,800 | 540 µs | 1,200 µs | 1.64 | – | – |",
		"| sync pub 1 KiB, file (fsync) | 1,000 | 950 µs | 2,100 µs | 3,400 | 290 µs | 800 µs | 3.40 | ≥ 0.67× the disk (3,333 msgs/s) | yes |",
		"The disk, 1024 B write + fsync: 5,000 records/s (median of 4,500/s (p50 190 µs, p99 400 µs); 5,500/s (p50 180 µs, p99 350 µs))",
		"- sync pub 1 KiB, file (fsync): starling 3,400 msgs/s / the disk's 5,000 = 0.68 (target ≥ 0.67): yes",
		"The disk into preallocated blocks (as Starling's tail segments are written): 8,000 records/s, 1.60× the appending rate",
		"- sync pub 1 KiB, file (fsync): starling 3,400 msgs/s / 8,000 = 0.42",
		"`-st FILE` with its default `--file_sync=true`",
		"| sync pub 1 KiB, file (fsync) | starling | 4,000 | 3,400 | 800 µs | – |",
		"bin/nats-streaming-server -a 127.0.0.1 -p $PORT -m $HTTP_PORT -cid test-cluster -st MEMORY --dir $(mktemp -d)",
		`(in-process, stan.go) 4,000 × Publish("bench.sync", 1024 B), one after another`,
	} {
		if !strings.Contains(out, want) {
			t.Errorf("report lacks %q:\n%s", want, out)
		}
	}
	if len(rep.errors()) != 0 {
		t.Errorf("errors() = %q", rep.errors())
	}

	// Below the disk's 2/3, a failed round, and no disk figure: each fails its target.
	rep.rows[2].cells[1] = syncCell([3]float64{3300, 300, 800})
	if _, met := rep.meets(rep.rows[2]); met {
		t.Error("3,300 msgs/s meets 2/3 of 5,000/s")
	}
	rep.rows[0].cells[0].err = context.DeadlineExceeded
	if applies, met := rep.meets(rep.rows[0]); !applies || met {
		t.Errorf("a failed round: applies %v, met %v", applies, met)
	}
	if errs := rep.errors(); len(errs) != 1 || !strings.Contains(errs[0], "sync pub 16 B, memory on nats-streaming-server") {
		t.Errorf("errors() = %q", errs)
	}
	rep.rows[2].cells[1] = syncCell([3]float64{3400, 300, 800})
	rep.disk = nil
	if _, met := rep.meets(rep.rows[2]); met {
		t.Error("met without a disk figure")
	}
}

// In an A/B run the memory row has no target (nats-streaming-server is not running); the disk's
// still applies.
func TestSyncReportAB(t *testing.T) {
	rep := testSyncReport(options{starling: "bin/starling", baseline: "/tmp/old/starling"})
	if applies, _ := rep.meets(rep.rows[0]); applies {
		t.Error("a target against nats-streaming-server in an A/B run")
	}
	if applies, met := rep.meets(rep.rows[2]); !applies || !met {
		t.Errorf("disk target: applies %v, met %v", applies, met)
	}
	var buf bytes.Buffer
	rep.write(&buf)
	if out := buf.String(); !strings.Contains(out, "| sync pub 16 B, memory | 6,500 | 145 µs | 310 µs | 13,000 | 70 µs | 150 µs | 2.00 | – | – |") {
		t.Errorf("A/B report:\n%s", out)
	}
}

// TestSyncPubAgainstNSS publishes a few hundred messages synchronously to the installed
// nats-streaming-server's file store.
func TestSyncPubAgainstNSS(t *testing.T) {
	const nss = "../../bin/nats-streaming-server"
	if _, err := os.Stat(nss); err != nil || testing.Short() {
		t.Skip("needs", nss, "(make tools)")
	}
	spec := storeServers(options{natsStreaming: nss}, "file")[0]
	res, err := onFreshStore(context.Background(), spec, t.TempDir(), func(s *server) (runResult, error) {
		return runSyncPub(context.Background(), s, 1024, 300, 30*time.Second)
	})
	if err != nil {
		t.Fatal(err)
	}
	if res.rate.msgsPerSec <= 0 || res.p50 <= 0 || res.p99 < res.p50 || res.rate.bytesPerSec != 1024*res.rate.msgsPerSec {
		t.Fatalf("result %+v", res)
	}
}
