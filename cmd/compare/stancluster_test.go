package main

import (
	"errors"
	"strings"
	"testing"
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
