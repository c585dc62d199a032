package main

import (
	"context"
	"errors"
	"os"
	"strings"
	"testing"
	"time"
)

// A server kind whose runs failed is no evidence that Starling meets its target against it.
func TestStanClusterTargetNeedsBothServers(t *testing.T) {
	o := options{starling: "bin/starling", natsStreaming: "bin/nats-streaming-server"}
	ok := cell{runs: []runResult{{rate: benchRate{msgsPerSec: 100}}}}
	failed := cell{err: errors.New("round 1: start nats-streaming-server: exited during start")}
	r := &stanClusterReport{servers: stanClusterServers(o), rows: []stanClusterRow{
		{sc: stanClusterScenarios()[0], msgs: 1000, cells: []cell{failed, failed, ok}},
	}}
	var b strings.Builder
	r.write(&b)
	out := b.String()
	if strings.Contains(out, "every row meets them") {
		t.Errorf("targets reported met against servers that measured nothing:\n%s", out)
	}
	want := "below: cluster async pub 16 B, 0 subs vs nats-streaming-server; cluster async pub 16 B, 0 subs vs nats-streaming-server -cluster_sync"
	if !strings.Contains(out, want) {
		t.Errorf("report lacks %q:\n%s", want, out)
	}
}

// TestStanClusterCPUExcludesStartup: the servers' CPU per message covers the benchmark, not
// the cluster's start (nats-streaming-server starts its streaming layer, Raft groups and
// election after its client port opens: ~140 ms of CPU over the three nodes here). One
// synchronous message costs the three nodes a few ms.
func TestStanClusterCPUExcludesStartup(t *testing.T) {
	const nss, bench = "../../bin/nats-streaming-server", "../../bin/stan-bench"
	for _, p := range []string{nss, bench} {
		if _, err := os.Stat(p); err != nil {
			t.Skip("no", p, "(make tools)")
		}
	}
	spec := stanClusterServers(options{natsStreaming: nss})[0]
	sc := stanScenario{name: "test", size: 16, sync: true}
	res, err := runStanClusterOnce(context.Background(), bench, spec, sc, 1, t.TempDir(), 30*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if res.serverCPUPerMsg > 60*time.Millisecond {
		t.Fatalf("one message cost the three servers %v of CPU: the cluster's start is counted", res.serverCPUPerMsg)
	}
	t.Logf("one message: %v of the three servers' CPU", res.serverCPUPerMsg)
}
