package tests

import (
	"fmt"
	"strings"
	"testing"
	"time"
)

// TestStanClusterCatchUpFromSnapshot: a node away while the others snapshot and compact
// their logs past what it has comes back, installs the leader's snapshot (which holds no
// message bodies), fetches the missing messages from the others over the routes, and ends
// identical to them — with channels whose limit (400 messages) expired meanwhile all that the
// node held, and a channel created while it was away.
func TestStanClusterCatchUpFromSnapshot(t *testing.T) {
	c := startStanCluster(t, "--cluster_snapshot_interval", "200ms", "--cluster_snapshot_threshold", "16",
		"--cluster_trailing_logs", "16", "--max_msgs", "400")
	lead := c.leader(10 * time.Second)
	away := c.followers(lead)[0]
	pubNode := c.followers(lead)[1]
	pub := stanOn(t, pubNode, "pub")
	for i := range 100 {
		publishRetry(t, pub, "kept", []byte(fmt.Sprint("k-", i)), 10*time.Second)
		publishRetry(t, pub, "limited", []byte(fmt.Sprint("l-", i)), 10*time.Second)
	}
	c.converged(20 * time.Second)

	away.kill()
	for i := 100; i < 1000; i++ {
		publishRetry(t, pub, "kept", []byte(fmt.Sprint("k-", i)), 10*time.Second)
		publishRetry(t, pub, "limited", []byte(fmt.Sprint("l-", i)), 10*time.Second)
	}
	publishRetry(t, pub, "new", []byte("n"), 10*time.Second)
	time.Sleep(time.Second) // a snapshot and a compaction past what the away node holds

	away.restart()
	c.converged(30 * time.Second)
	if !strings.Contains(away.p.out.String(), "fetched the messages a snapshot names") {
		t.Errorf("the node caught up without fetching: the test did not exercise a snapshot install")
	}
}
