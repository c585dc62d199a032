package main

import (
	"bytes"
	"context"
	"io"
	"os"
	"strings"
	"testing"
	"time"
)

// Outputs captured from stan-bench v0.10.4 (stdout only; "Starting benchmark ..." goes to
// stderr) against nats-streaming-server v0.25.6 and Starling, memory store, on loopback.
const (
	// -np 1 -ns 0 -n 100000 -ms 16, nats-streaming-server
	stanPubOutput = "Pub stats: 156,000 msgs/sec ~ 2.38 MB/sec\n"
	// -np 1 -ns 1 -n 100000 -ms 16, nats-streaming-server
	stanPubSubOutput = `NATS Streaming Pub/Sub stats: 210,815 msgs/sec ~ 3.22 MB/sec
 Pub stats: 105,407 msgs/sec ~ 1.61 MB/sec
 Sub stats: 105,558 msgs/sec ~ 1.61 MB/sec
`
	// -np 1 -ns 1 -n 100000 -ms 1024, Starling
	stanPubSub1KOutput = `NATS Streaming Pub/Sub stats: 172,084 msgs/sec ~ 168.05 MB/sec
 Pub stats: 86,042 msgs/sec ~ 84.03 MB/sec
 Sub stats: 86,646 msgs/sec ~ 84.62 MB/sec
`
)

func TestParseStanBench(t *testing.T) {
	const mb = 1 << 20
	for _, tc := range []struct {
		name          string
		out           string
		pub, sub, agg benchRate
	}{
		{"publisher only", stanPubOutput, benchRate{156_000, 2.38 * mb}, benchRate{}, benchRate{}},
		{"publisher and subscriber", stanPubSubOutput,
			benchRate{105_407, 1.61 * mb}, benchRate{105_558, 1.61 * mb}, benchRate{210_815, 3.22 * mb}},
		{"1 KiB", stanPubSub1KOutput,
			benchRate{86_042, 84.03 * mb}, benchRate{86_646, 84.62 * mb}, benchRate{172_084, 168.05 * mb}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := parseStanBench(tc.out)
			if err != nil {
				t.Fatal(err)
			}
			want := stanResult{pub: tc.pub, sub: tc.sub, agg: tc.agg}
			if got != want {
				t.Fatalf("got %+v, want %+v", got, want)
			}
		})
	}
}

func TestParseStanBenchRejects(t *testing.T) {
	for _, out := range []string{
		"",
		"No publisher or subscribers. Nothing to report.",
		" Sub stats: 105,558 msgs/sec ~ 1.61 MB/sec\n", // no publisher line
		"Pub stats: many msgs/sec ~ 1 MB/sec\n",
		"Pub stats: 1,000 msg/s\n",
	} {
		if _, err := parseStanBench(out); err == nil {
			t.Errorf("parseStanBench(%q): no error", out)
		}
	}
}

func TestParseHumanBytes(t *testing.T) {
	for in, want := range map[string]float64{"512.00 B": 512, "1.50 KB": 1536, "2.38 MB": 2.38 * (1 << 20), "1.00 GB": 1 << 30} {
		if got, err := parseHumanBytes(in); err != nil || got != want {
			t.Errorf("parseHumanBytes(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	for _, in := range []string{"3 MiB", "12", "x MB"} {
		if _, err := parseHumanBytes(in); err == nil {
			t.Errorf("parseHumanBytes(%q): no error", in)
		}
	}
}

func TestStanArgs(t *testing.T) {
	got := strings.Join(stanArgs("nats://127.0.0.1:4222", stanScenario{size: 1024, subs: 1}, 5000), " ")
	want := "-s nats://127.0.0.1:4222 -c test-cluster -id bench -np 1 -ns 1 -n 5000 -ms 1024 bench.stan"
	if got != want {
		t.Fatalf("got  %s\nwant %s", got, want)
	}
}

func TestStanReport(t *testing.T) {
	run := func(rate float64) runResult { return runResult{rate: benchRate{msgsPerSec: rate}} }
	s := &stanReport{
		servers: [2]serverSpec{{name: "nats-streaming-server"}, {name: "starling"}},
		rows: []stanRow{
			{sc: stanScenarios()[0], cells: [2]cell{{runs: []runResult{run(100), run(120)}}, {runs: []runResult{run(250), run(230)}}}},
			{sc: stanScenarios()[1], cells: [2]cell{{runs: []runResult{run(100)}}, {runs: []runResult{run(150)}}}},
		},
	}
	var b bytes.Buffer
	s.write(&b)
	out := b.String()
	for _, want := range []string{
		"| async pub 16 B, 0 subs | publisher (acked) | 110 | 240 | 2.18 |",
		"| async pub 16 B, 1 sub | subscriber | 100 | 150 | 1.50 |",
		"target ≥ 2× nats-streaming-server on each row: 1 of 2 rows meet it (below: async pub 16 B, 1 sub)",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("report lacks %q:\n%s", want, out)
		}
	}
	if len(s.errors()) != 0 {
		t.Errorf("errors() = %v", s.errors())
	}
}

// TestStanBenchAgainstNSS runs the whole streaming path once, small, against the installed
// nats-streaming-server: readiness probe, stan-bench, output parsing.
func TestStanBenchAgainstNSS(t *testing.T) {
	const nss, bench = "../../bin/nats-streaming-server", "../../bin/stan-bench"
	for _, p := range []string{nss, bench} {
		if _, err := os.Stat(p); err != nil {
			t.Skip("no", p, "(make tools)")
		}
	}
	spec := stanServers(options{natsStreaming: nss})[0]
	s, err := startServer(context.Background(), spec, t.TempDir(), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s.stop()
	sc := stanScenario{name: "test", size: 16, subs: 1}
	res, err := runStan(context.Background(), bench, s, sc, 2000, 30*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if res.stan.pub.msgsPerSec <= 0 || res.stan.sub.msgsPerSec <= 0 || res.rate != res.stan.sub {
		t.Fatalf("unexpected result %+v", res)
	}
}

// TestStanProbeNoStreaming: a plain NATS server has no responder on the discover subject.
func TestStanProbeNoStreaming(t *testing.T) {
	const natsServer = "../../bin/nats-server"
	if _, err := os.Stat(natsServer); err != nil {
		t.Skip("no", natsServer)
	}
	s, err := startServer(context.Background(), serverSpec{name: "nats-server", path: natsServer}, t.TempDir(), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s.stop()
	if err := waitStanReady(context.Background(), s.addr(), 600*time.Millisecond); err == nil {
		t.Fatal("plain nats-server reported as a ready streaming server")
	}
}

// TestParseFlagsStreaming: stan-bench is required unless -skip-streaming, -skip-durable and
// -skip-stan-cluster, nats-streaming-server unless -skip-sync too, and the nats CLI unless both
// -skip-core and -skip-cluster.
func TestParseFlagsStreaming(t *testing.T) {
	base := []string{"-starling", "true", "-nats-server", "true"}
	missing := "/nonexistent/compare-test-binary"
	for _, tc := range []struct {
		args    []string
		wantErr string
	}{
		{[]string{"-nats", "true", "-stan-bench", "true", "-nats-streaming-server", "true"}, ""},
		{[]string{"-nats", "true", "-stan-bench", missing, "-nats-streaming-server", "true"}, "-stan-bench"},
		{[]string{"-nats", "true", "-stan-bench", "true", "-nats-streaming-server", missing}, "-nats-streaming-server"},
		{[]string{"-nats", "true", "-stan-bench", missing, "-nats-streaming-server", "true", "-skip-streaming"}, "-stan-bench"},
		{[]string{"-nats", "true", "-stan-bench", missing, "-nats-streaming-server", "true", "-skip-durable"}, "-stan-bench"},
		{[]string{"-nats", "true", "-stan-bench", missing, "-nats-streaming-server", missing, "-skip-streaming", "-skip-durable", "-skip-stan-cluster", "-skip-sync"}, ""},
		// the synchronous publish rows run stan.go in process: nats-streaming-server, no stan-bench
		{[]string{"-nats", "true", "-stan-bench", missing, "-nats-streaming-server", "true", "-skip-streaming", "-skip-durable", "-skip-stan-cluster"}, ""},
		{[]string{"-nats", "true", "-stan-bench", "true", "-nats-streaming-server", missing, "-skip-streaming", "-skip-durable", "-skip-stan-cluster"}, "-nats-streaming-server"},
		{[]string{"-nats", "true", "-stan-bench", missing, "-nats-streaming-server", "true", "-skip-streaming", "-skip-durable"}, "-stan-bench"},
		{[]string{"-nats", missing, "-stan-bench", "true", "-nats-streaming-server", "true", "-skip-core", "-skip-cluster"}, ""},
		{[]string{"-nats", missing, "-stan-bench", "true", "-nats-streaming-server", "true", "-skip-core"}, "-nats"},
	} {
		_, err := parseFlags(append(append([]string{}, base...), tc.args...), io.Discard)
		switch {
		case tc.wantErr == "" && err != nil:
			t.Errorf("%v: %v", tc.args, err)
		case tc.wantErr != "" && (err == nil || !strings.HasPrefix(err.Error(), tc.wantErr+":")):
			t.Errorf("%v: got %v, want an error about %s", tc.args, err, tc.wantErr)
		}
	}
}

func TestWriteCPUTable(t *testing.T) {
	run := func(rate float64, srv, cli time.Duration) runResult {
		return runResult{rate: benchRate{msgsPerSec: rate}, serverCPUPerMsg: srv, clientCPUPerMsg: cli}
	}
	rows := []cpuRow{{name: "async pub 1 KiB, 0 subs", cells: [2]cell{
		{runs: []runResult{run(100, 8*time.Microsecond, 4*time.Microsecond), run(120, 9*time.Microsecond, 5*time.Microsecond)}},
		{runs: []runResult{run(150, 3*time.Microsecond, 4*time.Microsecond)}},
	}}, {name: "async pub 16 B, 1 sub", cells: [2]cell{
		{runs: []runResult{run(200, 9*time.Microsecond, time.Microsecond)}},
		{runs: []runResult{run(190, 3*time.Microsecond, time.Microsecond)}},
	}}, {name: "no cpu", cells: [2]cell{{runs: []runResult{{}}}, {runs: []runResult{{}}}}}}
	var b strings.Builder
	writeCPUTable(&b, [2]serverSpec{{name: "nss"}, {name: "starling"}}, rows)
	out := b.String()
	for _, want := range []string{
		"| async pub 1 KiB, 0 subs | 8.50 | 3.00 | 2.83 | 4.50 | 4.00 | 1.36 | no | yes |",
		"| async pub 16 B, 1 sub | 9.00 | 3.00 | 3.00 | 1.00 | 1.00 | 0.95 | yes | no |",
		"issue 13, every async row: server CPU per message ≤ 1/3 of nss's on 1 of 3 rows (below: async pub 1 KiB, 0 subs; no cpu); " +
			"never fewer msgs/s on 1 of 3 rows (below: async pub 16 B, 1 sub; no cpu)",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("table lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "| no cpu |") {
		t.Errorf("a row without CPU figures is printed:\n%s", out)
	}
	// An A/B run of two builds has no target columns.
	b.Reset()
	writeCPUTable(&b, [2]serverSpec{{name: baselineName}, {name: "starling"}}, rows[:1])
	if out := b.String(); !strings.Contains(out, "| async pub 1 KiB, 0 subs | 8.50 | 3.00 | 2.83 | 4.50 | 4.00 |\n") || strings.Contains(out, "issue 13") {
		t.Errorf("A/B table:\n%s", out)
	}
}

// -only-replay runs the replay rows alone: every other section is skipped, the durable one is
// not (whatever -skip-durable says), and stan-bench is not needed.
func TestParseFlagsOnlyReplay(t *testing.T) {
	o, err := parseFlags([]string{"-starling", "true", "-nats-streaming-server", "true", "-stan-bench", "/nonexistent/stan-bench",
		"-nats-server", "/nonexistent/nats-server", "-nats", "/nonexistent/nats", "-skip-durable", "-only-replay"}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if !o.skipCore || !o.skipMem || !o.skipStreaming || !o.skipSync || !o.skipCluster || !o.skipStanClust || o.skipDurable {
		t.Errorf("-only-replay: %+v", o)
	}
}
