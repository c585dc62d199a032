//go:build soak

package tests

import (
	"fmt"
	"testing"
	"time"
)

// TestSoakStanCluster is `make soak`'s cluster mode: $SOAK_CLUSTER_KILLS (100) cycles of
// the leader SIGKILLed under async publish load with a durable and a durable queue group
// subscribed, the killed node restarted and the three converged each cycle, the whole
// checked every 10 cycles and at the end (TestStanClusterLeaderKills is the short
// version); it prints the tally and the failover times.
func TestSoakStanCluster(t *testing.T) {
	kills := envInt(t, "SOAK_CLUSTER_KILLS", 100)
	start := time.Now()
	tally, failovers, elections := leaderKills(t, kills, 10)
	ms := func(d time.Duration) time.Duration { return d.Round(time.Millisecond) }
	fmt.Printf("cluster soak tally (%d leader SIGKILLs under async publish load, 3 nodes, file store, %v):\n", len(failovers), time.Since(start).Round(time.Second))
	fmt.Printf("  %v\n  failover (kill to first PubAck) p50 %v p99 %v max %v\n", tally,
		ms(percentile(failovers, 50)), ms(percentile(failovers, 99)), ms(percentile(failovers, 100)))
	fmt.Printf("  a new leader known (its serverz) after p50 %v p99 %v max %v\n",
		ms(percentile(elections, 50)), ms(percentile(elections, 99)), ms(percentile(elections, 100)))
	if p := percentile(failovers, 99); p > 2*time.Second {
		t.Errorf("failover p99 %v (target < 2s)", p)
	}
}

// TestSoakStanClusterFollowerStop is §4.3 at full length: a follower SIGSTOPped 30 s
// under load, no election, caught up after SIGCONT.
func TestSoakStanClusterFollowerStop(t *testing.T) {
	followerStop(t, time.Duration(envInt(t, "SOAK_FOLLOWER_STOP_SECONDS", 30))*time.Second, 500)
}

// TestSoakStanClusterSteady: no fault, the soak load (500 messages a second) for
// $SOAK_STEADY_SECONDS (60): the leader must keep leading — no election, no term change.
func TestSoakStanClusterSteady(t *testing.T) {
	d := time.Duration(envInt(t, "SOAK_STEADY_SECONDS", 60)) * time.Second
	c := startStanCluster(t)
	lead := c.leader(10 * time.Second)
	l := newStanLoad(t, c.nodes, "steady", 500)
	defer l.close() // before the cleanups of nodes restarted since, which run first
	l.waitAcked(200, 20*time.Second)
	z, err := lead.serverz(false)
	must(t, err)
	start := time.Now()
	for time.Since(start) < d {
		time.Sleep(200 * time.Millisecond)
		for _, n := range c.nodes {
			zn, err := n.serverz(false)
			must(t, err)
			if zn.Raft.Term != z.Raft.Term {
				t.Fatalf("no fault, yet after %v %s is at term %d (was %d, leader %s), leader %q: the leader lost its lease",
					time.Since(start).Round(time.Millisecond), n.name, zn.Raft.Term, z.Raft.Term, lead.name, zn.Leader)
			}
		}
	}
	t.Logf("%v steady: %v", d, l.checkLoad(c))
}

// TestSoakStanClusterAllKilled: the three nodes SIGKILLed at once under load and restarted:
// nothing acknowledged is lost, and the clients carry on — their registrations, pings
// and subscriptions are replicated state — for 20 s after (stan.go gives up after 15
// unanswered pings a second apart).
func TestSoakStanClusterAllKilled(t *testing.T) {
	c := startStanCluster(t)
	l := newStanLoad(t, c.nodes, "allkilled", 300)
	defer l.close() // before the cleanups of nodes restarted since, which run first
	l.waitAcked(300, 20*time.Second)
	start := time.Now()
	end := l.fault(start)
	for _, n := range c.nodes {
		n.kill()
	}
	for _, n := range c.nodes {
		n.restart()
	}
	c.leader(10 * time.Second)
	l.waitAcked(300, 30*time.Second)
	end()
	t.Logf("all three killed: service back after %v; %v", time.Since(start), l.checkLoad(c))
	for time.Since(start) < 20*time.Second && !t.Failed() {
		time.Sleep(200 * time.Millisecond)
	}
	l.waitAcked(100, 10*time.Second)
}

// TestSoakStanClusterHeartbeatsUnderBulk: TestStanClusterHeartbeatsUnderBulk for
// $SOAK_BULK_SECONDS (60).
func TestSoakStanClusterHeartbeatsUnderBulk(t *testing.T) {
	heartbeatsUnderBulk(t, time.Duration(envInt(t, "SOAK_BULK_SECONDS", 60))*time.Second)
}
