package tests

import (
	"fmt"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/nats-io/stan.go"
)

// The §4 fault scenarios of the streaming cluster, short versions (make test); the soak
// build tag runs the long ones (soak_stancluster_test.go).

// envInt is $name as a positive integer, else def.
func envInt(t *testing.T, name string, def int) int {
	t.Helper()
	s := os.Getenv(name)
	if s == "" {
		return def
	}
	v, err := strconv.Atoi(s)
	if err != nil || v < 1 {
		t.Fatalf("%s=%q: want a positive integer", name, s)
	}
	return v
}

// leaderKills runs cycles of: SIGKILL of the leader under async publish load with a
// durable and a durable queue group subscribed, the failover timed (the kill to the first
// PubAck on a surviving node), the load acknowledged on the new leader, the killed node
// restarted and every node converged. checkLoad runs every checkEvery cycles and at the
// end. It returns the tally and the failover times.
func leaderKills(t *testing.T, cycles, checkEvery int) (loadTally, []time.Duration) {
	c := startStanCluster(t)
	l := newStanLoad(t, c.nodes, "kills", 500)
	l.waitAcked(200, 20*time.Second)
	var failovers []time.Duration
	var tally loadTally
	for i := range cycles {
		lead := c.leader(10 * time.Second)
		probe, closeProbe := loadConn(t, c.followers(lead)[:1], fmt.Sprintf("probe-%d", i), stan.PubAckWait(200*time.Millisecond))
		publishRetry(t, probe, "probe", []byte("p"), 10*time.Second)
		start := time.Now()
		end := l.fault(start)
		lead.kill()
		d := probeFailover(t, probe, start, 20*time.Second)
		end()
		failovers = append(failovers, d)
		closeProbe()
		l.waitAcked(200, 20*time.Second)
		lead.restart()
		if (i+1)%checkEvery == 0 || i == cycles-1 {
			tally = l.checkLoad(c)
			t.Logf("cycle %d: killed %s, failover %v; %v", i+1, lead.name, d, tally)
		} else {
			l.pause(30 * time.Second)
			c.converged(30 * time.Second)
			l.resume()
			t.Logf("cycle %d: killed %s, failover %v", i+1, lead.name, d)
		}
		if t.Failed() {
			break
		}
	}
	return tally, failovers
}

// TestStanClusterLeaderKills: §4.1, leader SIGKILL under load, $STAN_KILL_CYCLES cycles (3).
func TestStanClusterLeaderKills(t *testing.T) {
	tally, failovers := leaderKills(t, envInt(t, "STAN_KILL_CYCLES", 3), 3)
	t.Logf("%d leader kills: %v; failover p50 %v p99 %v max %v", len(failovers), tally,
		percentile(failovers, 50), percentile(failovers, 99), percentile(failovers, 100))
	if p := percentile(failovers, 99); p > 5*time.Second {
		t.Errorf("failover p99 %v", p)
	}
}
