//go:build soak

package tests

import (
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"
)

// TestSoakStanClusterRestartedFollower: a follower stopped under load while the
// others snapshot and compact past it (and store 60 MiB more, so that its restore waits
// seconds for the fetch of the messages the snapshot names), then restarted, must not take
// the leadership nor make anyone stand (issue 11: no leader flapping): no node's term moves
// from its restart until 3 s after it caught up. In the soak (SOAK_MODE=cluster): on a
// machine loaded enough to miss a heartbeat timeout an election is legitimate, and make
// test must not fail for it.
func TestSoakStanClusterRestartedFollower(t *testing.T) {
	c := startStanCluster(t, append(append([]string(nil), snapshotArgs...), "--cluster_raft_logging")...)
	l := newStanLoad(t, c.nodes, "flap", 300)
	defer l.close()
	l.waitAcked(200, 20*time.Second)
	lead := c.leader(10 * time.Second)
	n := c.followers(lead)[0]
	end := l.fault(time.Now())
	n.terminate()
	l.waitAcked(awayAcks, 30*time.Second)
	sc := stanOn(t, lead, "big")
	big := make([]byte, 256<<10)
	for range 240 {
		publishRetry(t, sc, "big", big, 10*time.Second)
	}
	l.waitAcked(200, 30*time.Second)
	z, err := c.leader(10 * time.Second).serverz(false)
	must(t, err)
	term := z.Raft.Term

	var mu sync.Mutex
	var changes []string
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { // every node's term, every 20 ms
		defer wg.Done()
		for {
			select {
			case <-stop:
				return
			case <-time.After(20 * time.Millisecond):
			}
			for _, m := range c.nodes {
				if !m.up() {
					continue
				}
				z, err := m.serverz(false)
				if err != nil || z.Raft.Term <= term {
					continue
				}
				mu.Lock()
				changes = append(changes, fmt.Sprintf("%s %s: term %d (was %d), %s, leader %q",
					time.Now().Format("15:04:05.000"), m.name, z.Raft.Term, term, z.Role, z.Leader))
				term = z.Raft.Term
				mu.Unlock()
			}
		}
	}()
	restarted := time.Now()
	n.restart()
	l.pause(30 * time.Second)
	c.converged(30 * time.Second)
	l.resume()
	t.Logf("%s restarted at %s, converged after %v%s", n.name, restarted.Format("15:04:05.000"),
		time.Since(restarted).Round(time.Millisecond), fetched(n))
	if !strings.Contains(n.p.out.String(), "channel=big") {
		t.Errorf("%s did not fetch the large messages as it restored the snapshot", n.name)
	}
	time.Sleep(3 * time.Second)
	close(stop)
	wg.Wait()
	end()
	if len(changes) == 0 {
		return
	}
	t.Errorf("the term moved after %s restarted:\n%s", n.name, strings.Join(changes, "\n"))
	for _, m := range c.nodes {
		for _, line := range strings.Split(m.p.out.String(), "\n") {
			for _, w := range []string{"snapshot", "election", "heartbeat", "vote", "fetch", "entering", "leader"} {
				if strings.Contains(line, w) {
					t.Logf("%s: %s", m.name, line)
					break
				}
			}
		}
	}
}
