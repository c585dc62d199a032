package main

import (
	"bytes"
	"context"
	"math"
	"os"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestDurableScenarios(t *testing.T) {
	var replays int
	for _, sc := range durableScenarios() {
		if sc.store != "file" && sc.store != "bolt" {
			t.Errorf("%s: store %q", sc.name, sc.store)
		}
		if sc.target <= 0 || sc.msgs <= 0 || sc.quickMsgs <= 0 || sc.quickMsgs > sc.msgs {
			t.Errorf("%s: bad sizes or target: %+v", sc.name, sc)
		}
		if sc.replay {
			replays++
			continue
		}
		if b := sc.bench(); b.subs != 1 || b.size != sc.size {
			t.Errorf("%s: bench() = %+v", sc.name, b)
		}
	}
	if replays != 1 {
		t.Errorf("%d replay rows, want 1", replays)
	}
	// The replay row loads up to its full size: Starling's and nats-streaming-server's default
	// channel limit is 1,000,000 messages, so a larger N would lose the oldest.
	for _, sc := range durableScenarios() {
		if sc.replay && sc.msgs > 1_000_000 {
			t.Errorf("%s: %d messages exceed the default channel limit", sc.name, sc.msgs)
		}
	}
}

func TestDurableServers(t *testing.T) {
	o := options{starling: "bin/starling", natsStreaming: "bin/nats-streaming-server"}
	sv := durableServers(o, "bolt")
	if sv[0].name != "nats-streaming-server" || !slices.Equal(sv[0].args, []string{"-cid", stanCluster, "-st", "FILE"}) {
		t.Errorf("nats-streaming-server spec %+v", sv[0])
	}
	if sv[1].name != "starling" || !slices.Equal(sv[1].args, []string{"--store", "bolt"}) {
		t.Errorf("starling spec %+v", sv[1])
	}
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
	scs := durableScenarios()
	rep := &durableReport{benchPath: o.stanBench, dataDir: "/tmp"}
	add := func(sc durableScenario, a, b cell) {
		rep.rows = append(rep.rows, durableRow{sc: sc, msgs: sc.quickMsgs, servers: durableServers(o, sc.store), cells: [2]cell{a, b}})
	}
	add(scs[0], durableCell(10, 30, 20), durableCell(60, 61, 59)) // 3.0× of 3: met
	add(scs[2], durableCell(100), durableCell(99))                // 0.99× of 1: missed
	failed := durableCell(500)
	failed.err = context.DeadlineExceeded
	add(scs[4], failed, durableCell(1000)) // a failure never meets the target
	if !rep.rows[0].meets() || rep.rows[1].meets() || rep.rows[2].meets() {
		t.Fatalf("meets: %v %v %v", rep.rows[0].meets(), rep.rows[1].meets(), rep.rows[2].meets())
	}
	var buf bytes.Buffer
	rep.write(&buf)
	rep.writeCommands(&buf)
	out := buf.String()
	for _, want := range []string{
		"## Streaming, durable stores (stan-bench)",
		"| " + scs[0].name + " | subscriber | 20 | 60 | 3.00 | ≥ 3× | yes |",
		"| " + scs[2].name + " | subscriber | 100 | 99 | 0.99 | ≥ 1× | no |",
		"| " + scs[4].name + " | new subscriber (replay) | failed | 1,000 | – | ≥ 2× | no |",
		"targets: 1 of 3 rows meet theirs",
		"bin/starling -a 127.0.0.1 -p $PORT -m $HTTP_PORT --store bolt --dir $(mktemp -d)",
		"-cid test-cluster -st FILE --dir $(mktemp -d)",
		"(in-process, stan.go) load 100,000 × 128 B",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("report lacks %q:\n%s", want, out)
		}
	}
	if errs := rep.errors(); len(errs) != 1 || !strings.Contains(errs[0], "on nats-streaming-server") {
		t.Errorf("errors() = %q", errs)
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
	sv := durableServers(o, "file")
	if sv[0].name != baselineName || sv[0].path != o.baseline || !slices.Equal(sv[0].args, []string{"--store", "file"}) {
		t.Errorf("baseline spec %+v", sv[0])
	}
	if ss := stanServers(o); ss[0].path != o.baseline || len(ss[0].args) != 0 || ss[1].path != o.starling {
		t.Errorf("streaming servers %+v", ss)
	}
	scs := durableScenarios()
	rep := &durableReport{benchPath: o.stanBench, dataDir: "/tmp"}
	rep.rows = append(rep.rows, durableRow{sc: scs[0], msgs: 10, servers: sv, cells: [2]cell{durableCell(100), durableCell(95)}})
	var buf bytes.Buffer
	rep.write(&buf)
	out := buf.String()
	for _, want := range []string{
		"| scenario | rate measured at | starling-baseline msgs/s | starling msgs/s | ratio (starling/starling-baseline) | target | met |",
		"| " + scs[0].name + " | subscriber | 100 | 95 | 0.95 | – | – |",
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
