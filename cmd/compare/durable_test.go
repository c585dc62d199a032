package main

import (
	"bytes"
	"context"
	"fmt"
	"math"
	"os"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestDurableScenarios(t *testing.T) {
	replays := map[string]int{}
	async := map[string]int{} // store, size and subs of the stan-bench rows
	for _, sc := range durableScenarios() {
		if sc.store != "file" && sc.store != "bolt" && !(sc.replay && sc.store == "memory") {
			t.Errorf("%s: store %q", sc.name, sc.store)
		}
		if sc.target <= 0 || sc.msgs <= 0 || sc.quickMsgs <= 0 || sc.quickMsgs > sc.msgs {
			t.Errorf("%s: bad sizes or target: %+v", sc.name, sc)
		}
		if sc.replay {
			replays[sc.store]++
			// Starling's and nats-streaming-server's default channel limit is 1,000,000
			// messages, so a larger N would lose the oldest.
			if sc.msgs > 1_000_000 || sc.target != 2 {
				t.Errorf("%s: %d messages, target %g", sc.name, sc.msgs, sc.target)
			}
			continue
		}
		if b := sc.bench(); b.subs != sc.subs || b.size != sc.size || b.sync {
			t.Errorf("%s: bench() = %+v", sc.name, b)
		}
		async[fmt.Sprintf("%s %d %d", sc.store, sc.size, sc.subs)]++
	}
	if replays["file"] != 1 || replays["memory"] != 1 || len(replays) != 2 {
		t.Errorf("replay rows per store: %v, want one on file and one on memory", replays)
	}
	// Issue 13's matrix: 16 B and 1 KiB, 0 and 1 subscriber, on both durable stores.
	for _, store := range []string{"file", "bolt"} {
		for _, size := range []int{16, 1024} {
			for _, subs := range []int{0, 1} {
				if k := fmt.Sprintf("%s %d %d", store, size, subs); async[k] != 1 {
					t.Errorf("%d rows for %s", async[k], k)
				}
			}
		}
	}
}

func TestStoreServers(t *testing.T) {
	o := options{starling: "bin/starling", natsStreaming: "bin/nats-streaming-server"}
	sv := storeServers(o, "bolt")
	if sv[0].name != "nats-streaming-server" || !slices.Equal(sv[0].args, []string{"-cid", stanCluster, "-st", "FILE"}) {
		t.Errorf("nats-streaming-server spec %+v", sv[0])
	}
	if sv[1].name != "starling" || !slices.Equal(sv[1].args, []string{"--store", "bolt"}) {
		t.Errorf("starling spec %+v", sv[1])
	}
	sv = storeServers(o, "memory")
	if !slices.Equal(sv[0].args, []string{"-cid", stanCluster, "-st", "MEMORY"}) || !slices.Equal(sv[1].args, []string{"--store", "memory"}) {
		t.Errorf("memory specs %+v", sv)
	}
}

// durableScenarioNamed returns the durable scenario called name.
func durableScenarioNamed(t *testing.T, name string) durableScenario {
	t.Helper()
	for _, sc := range durableScenarios() {
		if sc.name == name {
			return sc
		}
	}
	t.Fatalf("no durable scenario %q", name)
	return durableScenario{}
}

func durableCell(rates ...float64) cell {
	var c cell
	for _, r := range rates {
		c.runs = append(c.runs, runResult{rate: benchRate{msgsPerSec: r}})
	}
	return c
}

func TestDurableReportTargets(t *testing.T) {
	o := options{starling: "bin/starling", natsStreaming: "bin/nats-streaming-server", stanBench: "bin/stan-bench"}
	file1 := durableScenarioNamed(t, "async pub 16 B, 1 sub, starling file")
	bolt0 := durableScenarioNamed(t, "async pub 1 KiB, 0 subs, starling bolt")
	replay := durableScenarioNamed(t, "replay 128 B from seq 1, starling file")
	rep := &durableReport{benchPath: o.stanBench, dataDir: "/tmp"}
	add := func(sc durableScenario, a, b cell) {
		rep.rows = append(rep.rows, durableRow{sc: sc, msgs: sc.quickMsgs, servers: storeServers(o, sc.store), cells: [2]cell{a, b}})
	}
	add(file1, durableCell(10, 30, 20), durableCell(60, 61, 59)) // 3.0× of 3: met
	add(bolt0, durableCell(100), durableCell(99))                // 0.99× of 1: missed
	failed := durableCell(500)
	failed.err = context.DeadlineExceeded
	add(replay, failed, durableCell(1000)) // a failure never meets the target
	if !rep.rows[0].meets() || rep.rows[1].meets() || rep.rows[2].meets() {
		t.Fatalf("meets: %v %v %v", rep.rows[0].meets(), rep.rows[1].meets(), rep.rows[2].meets())
	}
	var buf bytes.Buffer
	rep.write(&buf)
	rep.writeCommands(&buf)
	out := buf.String()
	for _, want := range []string{
		"## Streaming, durable stores (stan-bench)",
		"| " + file1.name + " | subscriber | 20 | 60 | 3.00 | ≥ 3× | yes |",
		"| " + bolt0.name + " | publisher (acked) | 100 | 99 | 0.99 | ≥ 1× | no |",
		"| " + replay.name + " | new subscriber (replay) | failed | 1,000 | – | ≥ 2× | no |",
		"targets (issue 5's on the 1-sub rows, issue 13's on the others): 1 of 3 rows meet theirs",
		"bin/starling -a 127.0.0.1 -p $PORT -m $HTTP_PORT --store bolt --dir $(mktemp -d)",
		"-cid test-cluster -st FILE --dir $(mktemp -d)",
		"(in-process, stan.go) load 100,000 × 128 B",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("report lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "Memory store, VmRSS") {
		t.Errorf("a footprint line without a memory replay row:\n%s", out)
	}
	if errs := rep.errors(); len(errs) != 1 || !strings.Contains(errs[0], "on nats-streaming-server") {
		t.Errorf("errors() = %q", errs)
	}
}

// TestDurableFootprint: the memory replay row's VmRSS growth against 1.5 × the payload.
func TestDurableFootprint(t *testing.T) {
	sc := durableScenarioNamed(t, "replay 128 B from seq 1, memory (both)")
	rss := func(mib ...float64) cell {
		var c cell
		for _, m := range mib {
			c.runs = append(c.runs, runResult{rate: benchRate{msgsPerSec: 1}, rssAdded: int64(m * (1 << 20))})
		}
		return c
	}
	for _, tc := range []struct {
		starling []float64
		met      bool
		want     string
	}{
		{[]float64{140, 150}, true, "nats-streaming-server 430.0 MiB, starling 145.0 MiB; issue 13 target ≤ 1.5× payload (183.1 MiB): yes"},
		{[]float64{190}, false, "nats-streaming-server 430.0 MiB, starling 190.0 MiB; issue 13 target ≤ 1.5× payload (183.1 MiB): no"},
	} {
		rep := &durableReport{rows: []durableRow{{sc: sc, msgs: 1_000_000, servers: storeServers(options{}, "memory"),
			cells: [2]cell{rss(430), rss(tc.starling...)}}}}
		if rep.footprintMet() != tc.met {
			t.Errorf("%v: footprintMet() = %v", tc.starling, !tc.met)
		}
		var buf bytes.Buffer
		rep.write(&buf)
		if out := buf.String(); !strings.Contains(out, "Memory store, VmRSS added by loading 1,000,000 × 128 B (122.1 MiB of payload; "+
			"median over the rounds): "+tc.want) {
			t.Errorf("report lacks %q:\n%s", tc.want, out)
		}
	}
	// A quick run's 100,000 messages are not held to the target.
	rep := &durableReport{rows: []durableRow{{sc: sc, msgs: 100_000, servers: storeServers(options{}, "memory"),
		cells: [2]cell{rss(43), rss(10)}}}}
	var buf bytes.Buffer
	rep.write(&buf)
	if rep.footprintMet() || !strings.Contains(buf.String(), "starling 10.0 MiB; issue 13's target (≤ 1.5× payload) is for 1,000,000 messages") {
		t.Errorf("quick footprint: met %v\n%s", rep.footprintMet(), buf.String())
	}
	if g := rep.goals(); len(g) != 2 || g[1].measured {
		t.Errorf("quick footprint goal %+v", g)
	}
}

func TestFsType(t *testing.T) {
	if got := fsType("/"); got == "unknown filesystem" || !strings.HasSuffix(got, " on /") {
		t.Errorf("fsType(/) = %q", got)
	}
}

// TestReplayStarling loads and replays a few thousand messages on a Starling file store, when
// bin/starling has been built.
func TestReplayStarling(t *testing.T) {
	const bin = "../../bin/starling"
	if _, err := os.Stat(bin); err != nil || testing.Short() {
		t.Skip("needs ../../bin/starling (go build -o bin/starling ./cmd/starling)")
	}
	ctx := context.Background()
	spec := serverSpec{name: "starling", path: bin, args: []string{"--store", "file"}}
	sc := durableScenario{name: "replay", store: "file", size: 128, replay: true}
	res, err := runDurableOnce(ctx, "", spec, sc, 5000, t.TempDir(), 30*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if res.rate.msgsPerSec <= 0 || res.pubRate <= 0 || math.Abs(res.rate.bytesPerSec/res.rate.msgsPerSec-128) > 1e-6 {
		t.Fatalf("result %+v", res)
	}
}

// With -baseline, another Starling build takes nats-streaming-server's place with Starling's
// own flags, on the memory-store and durable rows alike, and the report drops the targets.
func TestBaselineAB(t *testing.T) {
	o := options{starling: "bin/starling", natsStreaming: "bin/nats-streaming-server", baseline: "/tmp/old/starling", stanBench: "bin/stan-bench"}
	sv := storeServers(o, "file")
	if sv[0].name != baselineName || sv[0].path != o.baseline || !slices.Equal(sv[0].args, []string{"--store", "file"}) {
		t.Errorf("baseline spec %+v", sv[0])
	}
	if ss := stanServers(o); ss[0].path != o.baseline || len(ss[0].args) != 0 || ss[1].path != o.starling {
		t.Errorf("streaming servers %+v", ss)
	}
	sc := durableScenarioNamed(t, "async pub 16 B, 1 sub, starling file")
	rep := &durableReport{benchPath: o.stanBench, dataDir: "/tmp"}
	rep.rows = append(rep.rows, durableRow{sc: sc, msgs: 10, servers: sv, cells: [2]cell{durableCell(100), durableCell(95)}})
	var buf bytes.Buffer
	rep.write(&buf)
	out := buf.String()
	for _, want := range []string{
		"| scenario | rate measured at | starling-baseline msgs/s | starling msgs/s | ratio (starling/starling-baseline) | target | met |",
		"| " + sc.name + " | subscriber | 100 | 95 | 0.95 | – | – |",
		"- A/B run: starling-baseline and starling",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("report lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "targets:") {
		t.Errorf("an A/B report states targets:\n%s", out)
	}
	if _, err := parseFlags([]string{"-baseline", "/nonexistent/starling", "-starling", os.Args[0], "-stan-bench", os.Args[0], "-skip-core", "-skip-mem", "-skip-cluster"}, &bytes.Buffer{}); err == nil || !strings.Contains(err.Error(), "-baseline") {
		t.Errorf("a missing baseline binary: %v", err)
	}
}
