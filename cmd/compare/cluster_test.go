package main

import (
	"bytes"
	"context"
	"errors"
	"os"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestParseStatTicks(t *testing.T) {
	// A command name with spaces and a ')' must not shift the fields.
	const stat = "4242 (nats (x) srv) S 1 4242 4242 0 -1 4194560 9021 0 0 0 " +
		"157 43 0 0 20 0 7 0 123456 1234567 8901 18446744073709551615 1 1 0 0 0 0 0 0 0 0 0 0 17 1 0 0 0 0 0"
	got, err := parseStatTicks(stat)
	if err != nil || got != 200 {
		t.Fatalf("parseStatTicks = %d, %v; want 157+43", got, err)
	}
	for _, bad := range []string{"", "4242 nats S 1", "4242 (nats) S 1 2 3", "4242 (n) S 1 1 1 0 -1 0 0 0 0 0 x 43"} {
		if _, err := parseStatTicks(bad); err == nil {
			t.Errorf("parseStatTicks(%q) accepted", bad)
		}
	}
	self, err := cpuTicks(os.Getpid())
	if err != nil || self < 0 {
		t.Fatalf("cpuTicks(self) = %d, %v", self, err)
	}
}

func TestCPUPercent(t *testing.T) {
	if got := cpuPercent(50, 5*time.Second); got != 10 {
		t.Errorf("50 ticks over 5 s = %v%%, want 10", got)
	}
	if got := cpuPercent(10, 0); got != 0 {
		t.Errorf("zero window = %v", got)
	}
	if got := fmtPercent(1.234); got != "1.23%" {
		t.Errorf("fmtPercent = %q", got)
	}
}

func TestClusterArgs(t *testing.T) {
	if got := clusterArgs("6222", ""); !slices.Equal(got, []string{"--cluster", "nats://127.0.0.1:6222", "--cluster_name", clusterName}) {
		t.Errorf("first node: %v", got)
	}
	got := clusterArgs("6223", "6222")
	if !slices.Equal(got[len(got)-2:], []string{"--routes", "nats://127.0.0.1:6222"}) {
		t.Errorf("seeded node: %v", got)
	}
	sv := clusterServers(options{starling: "s", natsServer: "n"})
	if len(sv[0].args) != 0 || !slices.Equal(sv[1].args, []string{"--no_streaming"}) {
		t.Errorf("servers %+v", sv)
	}
	for _, sc := range clusterScenarios() {
		if sc.target <= 0 || sc.quickMsgs <= 0 || sc.quickMsgs > sc.msgs {
			t.Errorf("%s: %+v", sc.name, sc)
		}
		sub, pub := sc.args("nats://a", "nats://b", 10)
		if !slices.Contains(sub, "nats://b") || !slices.Contains(pub, "nats://a") ||
			!slices.Contains(pub, "--size") || sub[len(sub)-1] != clusterSubject || pub[len(pub)-1] != clusterSubject {
			t.Errorf("%s: sub %v pub %v", sc.name, sub, pub)
		}
	}
}

func TestRoutezPeers(t *testing.T) {
	var r routezInfo
	r.Routes = make([]struct {
		RemoteID string `json:"remote_id"`
	}, 5)
	for i, id := range []string{"X", "X", "Y", "X", "Y"} { // nats-server's pooled routes
		r.Routes[i].RemoteID = id
	}
	if r.peers() != 2 {
		t.Fatalf("peers = %d", r.peers())
	}
}

func TestClusterReport(t *testing.T) {
	o := options{starling: "bin/starling", natsServer: "bin/nats-server", nats: "bin/nats"}
	scs := clusterScenarios()
	rep := &clusterReport{natsPath: o.nats, servers: clusterServers(o), window: 5 * time.Second}
	rep.rows = []clusterRow{
		{sc: scs[0], msgs: 1000, cells: [2]cell{durableCell(100, 300, 200), durableCell(250, 260)}},
		{sc: scs[1], msgs: 1000, cells: [2]cell{durableCell(100), {err: errors.New("boom")}}},
	}
	node := func(rss int64, cpu float64) meshNode {
		return meshNode{conns: 334, subs: 100_167, rss: rss, cpu: cpu}
	}
	rep.mesh[0] = meshCell{res: meshResult{nodes: []meshNode{node(100<<20, 1), node(100<<20, 0.5), node(100<<20, 0)}, setup: time.Second}}
	rep.mesh[1] = meshCell{res: meshResult{nodes: []meshNode{node(50<<20, 0), node(50<<20, 0), node(50<<20, 0.25)}, setup: 2 * time.Second}}
	var buf bytes.Buffer
	rep.write(&buf)
	rep.writeCommands(&buf)
	out := buf.String()
	for _, want := range []string{
		"## Cluster (nats bench across a route)",
		"| " + scs[0].name + " | 200 | 255 | 1.27 | ≥ 1× | yes |",
		"| " + scs[1].name + " | 100 | failed | – | ≥ 1× | no |",
		"| " + scs[0].name + " | starling | 1,000 | 250, 260 |",
		"| " + scs[1].name + " | starling | 1,000 | failed |",
		"### Idle 3-server mesh, 100,000 subscriptions",
		"| A | 100.0 MiB | 50.0 MiB | 1.00% | 0.00% | 334 / 100,167 | 334 / 100,167 |",
		"| total | 300.0 MiB | 150.0 MiB | 1.50% | 0.25% | setup 1s | setup 2s |",
		"Total RSS ratio (starling/nats-server): 0.50",
		"bin/starling -a 127.0.0.1 -p $PORT -m $HTTP_PORT --no_streaming --cluster nats://127.0.0.1:$ROUTE_PORT",
		"bin/nats bench sub --no-context -s nats://127.0.0.1:$PORT_B --no-progress --size 16 --clients 1 --msgs 1000 bench.cluster &",
		"bin/nats bench pub --no-context -s nats://127.0.0.1:$PORT_A --no-progress --size 1024 --msgs 1000 bench.cluster",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("report lacks %q:\n%s", want, out)
		}
	}
	if errs := rep.errors(); len(errs) != 1 || !strings.Contains(errs[0], "on starling: boom") {
		t.Errorf("errors() = %q", errs)
	}

	// A failed mesh shows as failed, with no ratio, and is listed among the errors.
	rep.mesh[1] = meshCell{err: errors.New("no routes")}
	buf.Reset()
	rep.write(&buf)
	out = buf.String()
	if !strings.Contains(out, "| A | 100.0 MiB | failed | 1.00% | failed |") || strings.Contains(out, "Total RSS ratio") {
		t.Errorf("failed mesh:\n%s", out)
	}
	if errs := rep.errors(); len(errs) != 2 || !strings.Contains(errs[1], "idle mesh on starling: no routes") {
		t.Errorf("errors() = %q", errs)
	}
}

// TestClusterAgainstNatsServer runs one small cluster row on two nats-servers, when
// bin/nats-server and bin/nats are installed.
func TestClusterAgainstNatsServer(t *testing.T) {
	const ns, cli = "../../bin/nats-server", "../../bin/nats"
	for _, p := range []string{ns, cli} {
		if _, err := os.Stat(p); err != nil || testing.Short() {
			t.Skip("needs", p, "(make tools)")
		}
	}
	r := runner{nats: natsCLI{cli}, timeout: 30 * time.Second, stall: stallTimeout}
	spec := clusterServers(options{natsServer: ns})[0]
	res, err := runClusterOnce(context.Background(), r, spec, clusterScenarios()[0], 20_000, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	if res.rate.msgsPerSec <= 0 || res.pubRate <= 0 {
		t.Fatalf("result %+v", res)
	}
}
