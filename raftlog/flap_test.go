package raftlog_test

import (
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/starling-io/starling/raftlog"
	"github.com/starling-io/starling/raftlog/raftlogtest"
)

// TestNodeSlowSnapshotRestoreKeepsTheLeader: a follower restarted behind the leader's
// compacted log installs a snapshot whose restore takes several heartbeat timeouts (the
// streaming state machine fetches the messages a snapshot names from the other nodes). The
// leader is alive and heartbeating throughout, so no node may start an election: the term
// stays the same until well after the follower caught up (issue 11: no leader flapping).
//
// Timeouts of 1 s, not the harness's 200 ms: under -race on a loaded 2-core machine a stall
// of 200 ms (GC, other jobs) makes a legitimate election, which this test would take for a
// flap; the restore is held for four of them.
func TestNodeSlowSnapshotRestoreKeepsTheLeader(t *testing.T) {
	const hb = time.Second
	logs := &lockedBuffer{}
	tune := func(c *raftlog.Config) {
		c.TrailingLogs = 8
		c.HeartbeatTimeout, c.ElectionTimeout, c.LeaderLeaseTimeout = hb, hb, hb
		c.Logger = slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug})).With("node", c.NodeID)
	}
	book, nodes, leader := startTCPGroup(t, tune)
	peers := []string{"a", "b", "c"}
	propose := func(cs ...raftlog.Command) uint64 { return proposeRetry(t, leader, cs...) }
	propose(raftlogtest.Put("first"))
	l := leader()
	f := followerOf(nodes, l)
	if err := f.node.Close(); err != nil {
		t.Fatal(err)
	}
	var last uint64
	for i := range 40 {
		last = propose(raftlogtest.Put(fmt.Sprint("p", i)))
	}
	if err := leader().node.Snapshot(); err != nil {
		t.Fatal(err)
	}
	term := l.node.Stats().Term

	const restore = 4 * hb
	f.restoreDelay = restore
	restarted := time.Now()
	startTCP(t, book, f, peers, tune)
	var changes []string
	var silence time.Duration // the follower's longest silence from the leader, once heard
	caughtUp := time.Time{}
	for time.Since(restarted) < restore+4*time.Second {
		st := f.node.Stats()
		if caughtUp.IsZero() && st.CommandIndex >= last {
			caughtUp = time.Now()
		}
		silence = max(silence, st.LastContact)
		if !caughtUp.IsZero() && time.Since(caughtUp) > 3*time.Second {
			break
		}
		for _, n := range nodes {
			if st := n.node.Stats(); st.Term > term {
				changes = append(changes, fmt.Sprintf("%v after the restart: %s at term %d (%s)",
					time.Since(restarted).Round(time.Millisecond), n.id, st.Term, st.Role))
				term = st.Term
			}
		}
		time.Sleep(5 * time.Millisecond)
	}
	t.Logf("%s caught up %v after its restart; its longest silence from the leader %v",
		f.id, caughtUp.Sub(restarted).Round(time.Millisecond), silence.Round(time.Millisecond))
	if caughtUp.IsZero() {
		t.Errorf("%s did not catch up", f.id)
	}
	if _, restores := f.sm.Calls(); restores == 0 {
		t.Errorf("%s caught up without a snapshot", f.id)
	}
	if len(changes) > 0 {
		var lines []string
		for _, s := range strings.Split(logs.String(), "\n") {
			if strings.Contains(s, "election") || strings.Contains(s, "vote") || strings.Contains(s, "snapshot") ||
				strings.Contains(s, "heartbeat") || strings.Contains(s, "state") || strings.Contains(s, "nudge") {
				lines = append(lines, s)
			}
		}
		t.Errorf("the term changed after %s restarted (restore %v):\n%s\nraft:\n%s", f.id, restore,
			strings.Join(changes, "\n"), strings.Join(lines, "\n"))
	}
}
