package tests

import (
	"errors"
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
