package tests

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// flipStored flips a bit in every copy of mark in the bolt store file at path (bbolt keeps
// stale copies of a rewritten block in free pages): the stored message holding it then fails
// its checksum.
func flipStored(t *testing.T, path string, mark []byte) {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for i := bytes.Index(data, mark); i >= 0; {
		data[i+len(mark)-1] ^= 1
		n++
		j := bytes.Index(data[i+1:], mark)
		if j < 0 {
			break
		}
		i += 1 + j
	}
	if n == 0 {
		t.Fatalf("%q is not in %s", mark, path)
	}
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
}

// TestStanClusterCatchUpPastADamagedMessage: n3 loses its store and catches up from a snapshot
// while n1 holds message 50 of "kept" damaged on disk. n2's intact copy fills it: n3 ends equal
// to n2, every message intact. Then n2's copy is damaged too and n3 loses its store again: its
// catch-up fails naming the channel, the message and both nodes, and stores nothing past 49.
// Before, the second catch-up failed as if no node had answered ("no node sent "kept" from
// 50"), and the nodes holding it damaged said nothing.
func TestStanClusterCatchUpPastADamagedMessage(t *testing.T) {
	dirs := make([]string, 3)
	c := startStanClusterWith(t, func(c *stanCluster, i int) []string {
		dirs[i] = t.TempDir()
		return []string{"--store", "bolt", "--dir", dirs[i]}
	}, "--cluster_snapshot_interval", "200ms", "--cluster_snapshot_threshold", "16")
	pub := stanOn(t, c.leader(10*time.Second), "pub")
	mark := func(i int) string { return fmt.Sprintf("kept-%03d-payload", i) }
	for i := 1; i <= 100; i++ {
		publishRetry(t, pub, "kept", []byte(mark(i)), 10*time.Second)
	}
	c.converged(20 * time.Second)
	pub.Close()
	time.Sleep(time.Second) // snapshots on every node
	n1, n2, n3 := c.nodes[0], c.nodes[1], c.nodes[2]
	damage := func(n *node, i int) {
		n.kill()
		flipStored(t, filepath.Join(dirs[i], "starling.db"), []byte(mark(50)))
		n.restart()
	}
	damage(n1, 0)
	n3.kill()
	if err := os.Remove(filepath.Join(dirs[2], "starling.db")); err != nil {
		t.Fatal(err)
	}
	n3.restart()
	err := poll(30*time.Second, func() error {
		z2, err := n2.serverz(true)
		if err != nil {
			return err
		}
		z3, err := n3.serverz(true)
		if err != nil {
			return err
		}
		if z2.Digest != z3.Digest || z3.TotalMsgs != 100 {
			return fmt.Errorf("n3 holds %d messages, digest %s; n2 %s", z3.TotalMsgs, z3.Digest, z2.Digest)
		}
		return nil
	})
	if err != nil {
		t.Fatalf("n3 did not catch up: %v\n%s", err, tail(n3.p.out.String(), 3000))
	}

	damage(n2, 1)
	n3.kill()
	if err := os.Remove(filepath.Join(dirs[2], "starling.db")); err != nil {
		t.Fatal(err)
	}
	bin, _ := clusterServer(t) // started without waiting for it: its start is the catch-up, failing
	n3.p = startProc(t, bin, n3.args...)
	n3.logOnFailure(bin)
	var out string
	err = poll(30*time.Second, func() error {
		out = n3.p.out.String()
		if !strings.Contains(out, `message 50 of \"kept\" is damaged on`) && !strings.Contains(out, `message 50 of "kept" is damaged on`) {
			return fmt.Errorf("no failure naming message 50")
		}
		return nil
	})
	if err != nil {
		t.Fatalf("n3's catch-up past a message damaged on both others: %v\n%s", err, tail(out, 3000))
	}
	if strings.Contains(out, "fetched the messages a snapshot names") {
		t.Errorf("n3 says it fetched the messages:\n%s", tail(out, 3000))
	}
	// By their cluster_node_id, the server IDs beside (before, only the random server IDs).
	if !regexp.MustCompile(`is damaged on n[12] \(server [^)]+\), n[12] \(server `).MatchString(out) {
		t.Errorf("n3's error does not name n1 and n2 by their node IDs:\n%s", tail(out, 3000))
	}
}
