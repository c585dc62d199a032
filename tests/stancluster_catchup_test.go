package tests

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/stan.go"
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

// TestStanClusterCatchUpAfterAllExpired: a node away while the others snapshot a channel and
// then expire every message of it (max_age) comes back and installs that snapshot, which names
// messages no node holds any more. The others tell it so (an empty channel continues after its
// last sequence) and it ends identical to them. Before, a node whose channel held no message
// did not answer, the install failed after the fetch timeout, and again at every retry until
// enough traffic made the leader take a newer snapshot: the node stayed behind.
func TestStanClusterCatchUpAfterAllExpired(t *testing.T) {
	const maxAge = 4 * time.Second
	c := startStanCluster(t, "--cluster_snapshot_interval", "200ms", "--cluster_snapshot_threshold", "16",
		"--cluster_trailing_logs", "8", "--max_age", maxAge.String())
	lead := c.leader(10 * time.Second)
	away := c.followers(lead)[0]
	pub := stanOn(t, lead, "pub")
	start := time.Now()
	for i := range 10 {
		publishRetry(t, pub, "aging", []byte(fmt.Sprint("a-", i)), 10*time.Second)
	}
	c.converged(10 * time.Second)
	away.kill()
	for i := 10; i < 60; i++ { // several snapshots and a compaction past the away node
		publishRetry(t, pub, "aging", []byte(fmt.Sprint("a-", i)), 10*time.Second)
	}
	time.Sleep(time.Second)
	if time.Since(start) > maxAge-time.Second {
		t.Skipf("too slow: the messages may have expired before the snapshots (%v)", time.Since(start))
	}
	var ch struct {
		Msgs    int    `json:"msgs"`
		LastSeq uint64 `json:"last_seq"`
	}
	waitFor(t, 3*maxAge, func() error {
		if err := lead.monGet("/streaming/channelsz?channel=aging", &ch); err != nil {
			return err
		}
		if ch.Msgs != 0 || ch.LastSeq != 60 {
			return fmt.Errorf("channel holds %d messages up to %d", ch.Msgs, ch.LastSeq)
		}
		return nil
	})
	away.restart()
	c.converged(30 * time.Second)
}

// TestStanClusterCatchUpAfterChannelDeleted: a node away while the others snapshot a channel
// and then delete it (max_inactivity) comes back and installs that snapshot, which names
// messages of a channel no node holds any more. The others tell it the channel is gone (its
// messages end before what they remember of it) and it ends identical to them. Before, no
// node answered, the install failed after the fetch timeout, and again at every retry until
// enough traffic made the leader take a newer snapshot: the node stayed behind.
func TestStanClusterCatchUpAfterChannelDeleted(t *testing.T) {
	const idle = 3 * time.Second
	c := startStanCluster(t, "--cluster_snapshot_interval", "200ms", "--cluster_snapshot_threshold", "16",
		"--cluster_trailing_logs", "8", "--max_inactivity", idle.String())
	lead := c.leader(10 * time.Second)
	away := c.followers(lead)[0]
	pub := stanOn(t, lead, "pub")
	for i := range 10 {
		publishRetry(t, pub, "idle", []byte(fmt.Sprint("i-", i)), 10*time.Second)
	}
	c.converged(10 * time.Second)
	away.kill()
	start := time.Now()
	for i := 10; i < 60; i++ { // several snapshots and a compaction past the away node
		publishRetry(t, pub, "idle", []byte(fmt.Sprint("i-", i)), 10*time.Second)
	}
	time.Sleep(time.Second)
	if time.Since(start) > idle-time.Second {
		t.Skipf("too slow: the channel may have been deleted before the snapshots (%v)", time.Since(start))
	}
	waitFor(t, 3*idle, func() error {
		z, err := lead.serverz(false)
		if err != nil {
			return err
		}
		if z.TotalMsgs != 0 {
			return fmt.Errorf("%d messages stored", z.TotalMsgs)
		}
		return nil
	})
	away.restart()
	c.converged(30 * time.Second)
}

// TestStanClusterRestartAfterChannelRecreated: a node restarts on its own last snapshot after
// the channel the snapshot names was deleted (max_inactivity) and created again with new
// messages. It keeps the new incarnation, replays the log after the snapshot, and ends
// identical to the others. Before, its restore put the snapshot's incarnation in place of the
// new one, and the replay then took the new one's messages for expired: acknowledged
// messages lost on that node.
func TestStanClusterRestartAfterChannelRecreated(t *testing.T) {
	const idle = 2 * time.Second
	c := startStanCluster(t, "--cluster_snapshot_interval", "200ms", "--cluster_snapshot_threshold", "16",
		"--max_inactivity", idle.String())
	lead := c.leader(10 * time.Second)
	restarted := c.followers(lead)[0]
	pub := stanOn(t, lead, "pub")
	for i := range 30 { // a snapshot on every node
		publishRetry(t, pub, "idle", []byte(fmt.Sprint("old-", i)), 10*time.Second)
	}
	c.converged(10 * time.Second)
	time.Sleep(time.Second)
	waitFor(t, 5*idle, func() error { // deleted
		z, err := lead.serverz(false)
		if err != nil {
			return err
		}
		if z.TotalMsgs != 0 {
			return fmt.Errorf("%d messages stored", z.TotalMsgs)
		}
		return nil
	})
	// Created again, and kept by a subscriber: a few entries, no snapshot.
	sub, err := pub.Subscribe("idle", func(*stan.Msg) {})
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	for i := range 3 {
		publishRetry(t, pub, "idle", []byte(fmt.Sprint("new-", i)), 10*time.Second)
	}
	c.converged(10 * time.Second)
	restarted.kill()
	restarted.restart()
	c.converged(30 * time.Second)
}

// TestStanClusterRestartOnASnapshotItLacks: a node restarts on a snapshot whose messages its
// store does not hold (as one stopped in the middle of a catch-up: raft keeps the snapshot it
// installed, the store has not fetched its messages yet). The restore at start fetches them
// from the others and the node ends identical to them.
func TestStanClusterRestartOnASnapshotItLacks(t *testing.T) {
	var dir string
	c := startStanClusterWith(t, func(c *stanCluster, i int) []string {
		if i != 2 {
			return nil
		}
		dir = t.TempDir()
		return []string{"--store", "bolt", "--dir", dir}
	}, "--cluster_snapshot_interval", "200ms", "--cluster_snapshot_threshold", "16")
	lacking := c.nodes[2]
	pub := stanOn(t, c.leader(10*time.Second), "pub")
	for i := range 100 {
		publishRetry(t, pub, "kept", []byte(fmt.Sprint("k-", i)), 10*time.Second)
	}
	c.converged(20 * time.Second)
	time.Sleep(time.Second) // a snapshot on every node
	lacking.kill()
	if err := os.Remove(filepath.Join(dir, "starling.db")); err != nil {
		t.Fatal(err)
	}
	lacking.restart()
	c.converged(30 * time.Second)
}

// TestStanClusterStopDuringStartCatchUp: a node that restores, as it starts, a snapshot whose
// messages its store lacks, and gets no answer to its fetches (the others paused), stops
// promptly on SIGTERM, and catches up at its next start. Before, the signal waited until the
// start was over: every snapshot the node held tried in turn, the fetches of each failing
// after their timeout (and a large catch-up as long as it took).
func TestStanClusterStopDuringStartCatchUp(t *testing.T) {
	var dir string
	c := startStanClusterWith(t, func(c *stanCluster, i int) []string {
		if i != 2 {
			return nil
		}
		dir = t.TempDir()
		return []string{"--store", "bolt", "--dir", dir}
	}, "--cluster_snapshot_interval", "200ms", "--cluster_snapshot_threshold", "16")
	lacking := c.nodes[2]
	pub := stanOn(t, c.leader(10*time.Second), "pub")
	for i := range 100 {
		publishRetry(t, pub, "kept", []byte(fmt.Sprint("k-", i)), 10*time.Second)
	}
	c.converged(20 * time.Second)
	time.Sleep(time.Second) // snapshots on every node
	lacking.kill()
	if err := os.Remove(filepath.Join(dir, "starling.db")); err != nil {
		t.Fatal(err)
	}
	for _, n := range c.nodes[:2] {
		_ = n.p.cmd.Process.Signal(syscall.SIGSTOP)
		defer func() { _ = n.p.cmd.Process.Signal(syscall.SIGCONT) }() // on failure
	}
	bin, _ := clusterServer(t) // started without waiting for it: its start is the catch-up
	lacking.p = startProc(t, bin, lacking.args...)
	lacking.logOnFailure(bin)
	time.Sleep(time.Second) // fetching
	_ = lacking.p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-lacking.p.done:
		lacking.p.done <- err
		if err != nil {
			t.Errorf("stopped on SIGTERM with %v", err)
		}
	case <-time.After(3 * time.Second):
		t.Fatalf("still running 3s after SIGTERM")
	}
	// The next start, the others back, catches up.
	for _, n := range c.nodes[:2] {
		_ = n.p.cmd.Process.Signal(syscall.SIGCONT)
	}
	lacking.restart()
	c.converged(30 * time.Second)
}

// TestStanClusterStartWithoutAnswersFetchesOnce: a node keeping 4 snapshots restarts on them,
// its store lacking the messages they name, while the others (paused) answer nothing. raft
// tries each snapshot in turn; the older ones name the same messages, so after the newest
// one's fetch fails (5 s) they fail at once and the start fails after about 5 s. Once the
// others are back the next start catches up. Before, every snapshot's fetch waited its
// timeout: the start failed after about 20 s.
func TestStanClusterStartWithoutAnswersFetchesOnce(t *testing.T) {
	const kept = 4
	var dir string
	c := startStanClusterWith(t, func(c *stanCluster, i int) []string {
		if i != 2 {
			return nil
		}
		dir = t.TempDir()
		return []string{"--store", "bolt", "--dir", dir}
	}, "--cluster_snapshot_interval", "200ms", "--cluster_snapshot_threshold", "16", "--cluster_log_snapshots", fmt.Sprint(kept))
	lacking := c.nodes[2]
	pub := stanOn(t, c.leader(10*time.Second), "pub")
	snaps := func() int {
		m, _ := filepath.Glob(filepath.Join(dir, "raft", "*", "snapshots", "*"))
		return len(m)
	}
	for i := 0; snaps() < kept; i++ {
		if i == 40 {
			t.Fatalf("%d snapshots on the node after %d messages, want %d", snaps(), 20*i, kept)
		}
		for j := range 20 {
			publishRetry(t, pub, "kept", []byte(fmt.Sprint("k-", i, "-", j)), 10*time.Second)
		}
		time.Sleep(300 * time.Millisecond)
	}
	c.converged(20 * time.Second)
	lacking.kill()
	if err := os.Remove(filepath.Join(dir, "starling.db")); err != nil {
		t.Fatal(err)
	}
	for _, n := range c.nodes[:2] {
		_ = n.p.cmd.Process.Signal(syscall.SIGSTOP)
		defer func() { _ = n.p.cmd.Process.Signal(syscall.SIGCONT) }() // on failure
	}
	bin, _ := clusterServer(t)
	start := time.Now()
	lacking.p = startProc(t, bin, lacking.args...)
	lacking.logOnFailure(bin)
	select {
	case err := <-lacking.p.done:
		lacking.p.done <- err
		took := time.Since(start)
		t.Logf("the start failed after %v (%d snapshots kept)", took, snaps())
		if err == nil {
			t.Fatalf("the start succeeded without the messages:\n%s", tail(lacking.p.out.String(), 3000))
		}
		if took > 12*time.Second {
			t.Fatalf("the start failed after %v: each snapshot's fetch waited its timeout", took)
		}
	case <-time.After(40 * time.Second):
		t.Fatalf("still starting after 40s:\n%s", tail(lacking.p.out.String(), 3000))
	}
	for _, n := range c.nodes[:2] {
		_ = n.p.cmd.Process.Signal(syscall.SIGCONT)
	}
	lacking.restart()
	c.converged(30 * time.Second)
}

// TestStanClusterCatchUpOfAMessageOverMaxPayload: n1 (max_payload 256KB) leads and takes a
// 100 KB message while n2 is away; n2 and n3 have a max_payload of 64KB (a rolling change
// of max_payload, one node at a time). n1 goes down, n2 comes back and installs n3's snapshot,
// which names the message: n3 must send it whole, past its own max_payload. Before, n3's
// every answer failed (maximum payload exceeded) and n2 never caught up, on any channel.
func TestStanClusterCatchUpOfAMessageOverMaxPayload(t *testing.T) {
	c := startStanClusterWith(t, func(c *stanCluster, i int) []string {
		if i == 0 {
			return []string{"--max_payload", "256KB"}
		}
		return []string{"--max_payload", "64KB"}
	}, "--cluster_snapshot_interval", "200ms", "--cluster_snapshot_threshold", "16", "--cluster_trailing_logs", "16")
	n1, n2 := c.nodes[0], c.nodes[1]
	for lead := c.leader(10 * time.Second); lead != n1; lead = c.leader(10 * time.Second) {
		lead.terminate() // until n1 leads: only it accepts a message over 64KB
		lead.restart()
	}
	pub := stanOn(t, n1, "pub")
	publishRetry(t, pub, "kept", []byte("k"), 10*time.Second)
	c.converged(20 * time.Second)

	n2.kill()
	publishRetry(t, pub, "big", make([]byte, 100<<10), 10*time.Second)
	for i := range 100 {
		publishRetry(t, pub, "kept", []byte(fmt.Sprint("k-", i)), 10*time.Second)
	}
	time.Sleep(time.Second) // a snapshot and a compaction past what n2 holds
	n1.kill()
	n2.restart()
	c.converged(20 * time.Second)
	if !strings.Contains(n2.p.out.String(), "fetched the messages a snapshot names") {
		t.Errorf("n2 caught up without fetching: the test did not exercise a snapshot install")
	}
}
