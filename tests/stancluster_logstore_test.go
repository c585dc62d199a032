package tests

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// --cluster_log_store bolt keeps each node's raft log in raft.db (raft-boltdb), as before the
// segment log: the cluster works the same, and no node writes a segment log.
func TestStanClusterBoltLogStore(t *testing.T) {
	raftDirs := []string{t.TempDir(), t.TempDir(), t.TempDir()}
	c := startStanClusterWith(t, func(_ *stanCluster, i int) []string {
		return []string{"--cluster_log_path", raftDirs[i]}
	}, "--cluster_log_store", "bolt")
	lead := c.leader(10 * time.Second)
	pub := stanOn(t, c.followers(lead)[0], "pub")
	for i := range 50 {
		publishRetry(t, pub, "orders", []byte(fmt.Sprintf("m-%02d", i)), 10*time.Second)
	}
	c.converged(10 * time.Second)
	if got := storedPayloads(t, lead, "orders"); len(got) != 50 {
		t.Fatalf("the leader stores %d messages, want 50", len(got))
	}
	for i, dir := range raftDirs {
		dbs, _ := filepath.Glob(filepath.Join(dir, "*", "raft.db"))
		segs, _ := filepath.Glob(filepath.Join(dir, "*", "log"))
		if len(dbs) != 1 || len(segs) != 0 {
			t.Errorf("node %d's raft directory: raft.db %v, segment logs %v; want one raft.db and no segment log", i+1, dbs, segs)
		}
		if len(dbs) == 1 {
			if fi, err := os.Stat(dbs[0]); err == nil {
				t.Logf("node %d: %s, %d bytes", i+1, dbs[0], fi.Size())
			}
		}
	}
}
