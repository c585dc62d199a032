package tests

import (
	"errors"
	"slices"
	"syscall"
	"testing"
	"time"
)

// TestStanClusterLameDuckHandsOverFirst: lame duck mode (SIGUSR2) on the streaming leader
// hands its leadership over at once, while its core still routes the others' requests to
// it, and keeps its clients for the grace period. Before, the leader kept leading through
// the grace period (30 s here) and handed over only as it shut down, after its core had
// closed the routes: the other nodes' clients got no answer from it in between.
func TestStanClusterLameDuckHandsOverFirst(t *testing.T) {
	c := startStanCluster(t, "--lame_duck_grace_period", "30s")
	lead := c.leader(10 * time.Second)
	sc := stanOn(t, lead, "on-the-leader") // a client: lame duck mode waits its grace period
	must(t, sc.Publish("ldm", []byte("before")))
	signalled := time.Now()
	must(t, lead.p.cmd.Process.Signal(syscall.SIGUSR2))
	waitFor(t, 5*time.Second, func() error {
		for _, n := range c.nodes {
			if n == lead {
				continue
			}
			if z, err := n.serverz(false); err == nil && z.Role == "Leader" {
				return nil
			}
		}
		return errors.New("the lame duck still leads")
	})
	t.Logf("leadership handed over %v after SIGUSR2", time.Since(signalled).Round(time.Millisecond))
	probe := stanOn(t, c.followers(lead)[0], "probe")
	publishRetry(t, probe, "ldm", []byte("after"), 10*time.Second)
}

// TestStanClusterLameDuckIsNotElectedAgain: the leader enters lame duck mode and hands
// over; the new leader dies. The third node is elected and the lame duck, which exits at
// the end of its grace period, never leads again. Before, it went on standing for election
// and won this one (its heartbeat timeout is the longer here: it noticed the death after
// the third node, which had asked it for its vote in vain while it still knew the dead
// leader, and then got that node's vote), costing a second failover as it exited.
func TestStanClusterLameDuckIsNotElectedAgain(t *testing.T) {
	c := startStanCluster(t, "--lame_duck_grace_period", "30s",
		"--cluster_raft_heartbeat_timeout", "1s", "--cluster_raft_election_timeout", "3s")
	duck := c.leader(10 * time.Second)
	sc := stanOn(t, duck, "on-the-duck") // a client: lame duck mode waits its grace period
	must(t, sc.Publish("ldm", []byte("before")))
	must(t, duck.p.cmd.Process.Signal(syscall.SIGUSR2))
	var next *node
	waitFor(t, 10*time.Second, func() error {
		if next = c.leader(10 * time.Second); next == duck {
			return errors.New("the lame duck still leads")
		}
		return nil
	})
	var third *node
	for _, n := range c.followers(next) {
		if n != duck {
			third = n
		}
	}
	// The third node notices a leader's death first, and retries an election late.
	third.kill()
	third.start(append(slices.Clone(third.extra),
		"--cluster_raft_heartbeat_timeout", "500ms", "--cluster_raft_election_timeout", "2s")...)
	c.converged(15 * time.Second)
	next.kill()
	died := time.Now()
	waitFor(t, 20*time.Second, func() error {
		if z, err := duck.serverz(false); err == nil && z.Role == "Leader" {
			t.Fatalf("the lame duck was elected leader %v after the new leader's death", time.Since(died))
		}
		if z, err := third.serverz(false); err != nil || z.Role != "Leader" {
			return errors.New("the third node does not lead")
		}
		return nil
	})
	t.Logf("the third node leads %v after the new leader's death", time.Since(died).Round(time.Millisecond))
	probe := stanOn(t, third, "probe")
	publishRetry(t, probe, "ldm", []byte("after"), 10*time.Second)
	if z, err := duck.serverz(false); err == nil && z.Role == "Leader" {
		t.Fatal("the lame duck leads")
	}
}
