package raftlog_test

import (
	"context"
	"testing"
	"time"

	"github.com/starling-io/starling/raftlog/raftlogtest"
)

// TestNodeRestartedFollowerCatchesUpAtOnce: a follower down for a few seconds while the
// leader appends gets the entries as soon as it is back. hashicorp/raft backs off from a
// follower after each failed append, doubling up to 10.24 s, and nothing cuts the wait
// short: a follower back after 6 s waited about 4 s more (up to 10 s after a longer
// absence), a node short of the majority's safety margin for all that time. The transport
// now waits for a peer whose connection is refused (its process down, the host up), so
// the leader's appends resume within a poll of its return.
func TestNodeRestartedFollowerCatchesUpAtOnce(t *testing.T) {
	book, nodes, leader := startTCPGroup(t)
	ctx := context.Background()
	l := leader()
	f := followerOf(nodes, l)
	if _, err := l.node.Propose(ctx, raftlogtest.Put("before")).Wait(); err != nil {
		t.Fatal(err)
	}
	if err := f.node.Close(); err != nil {
		t.Fatal(err)
	}
	var last uint64
	for i := range 30 { // 6 s away, appending all along
		idx, err := l.node.Propose(ctx, raftlogtest.Put("away")).Wait()
		if err != nil {
			t.Fatalf("proposal %d: %v", i, err)
		}
		last = idx
		time.Sleep(200 * time.Millisecond)
	}
	restarted := time.Now()
	startTCP(t, book, f, []string{"a", "b", "c"})
	raftlogtest.Eventually(t, 15*time.Second, "the follower caught up", func() bool {
		return f.node.Stats().CommandIndex >= last
	})
	took := time.Since(restarted)
	t.Logf("caught up %v after its restart", took)
	if took > 2*time.Second {
		t.Fatalf("the restarted follower caught up %v after its restart: the leader's appends waited out raft's backoff", took)
	}
}
