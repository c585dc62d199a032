package raftlog_test

import (
	"context"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/starling-io/starling/raftlog"
	"github.com/starling-io/starling/raftlog/raftlogtest"
)

// slowToStand: a heartbeat timeout twice the test's, so that after a leader's death this
// node notices after one with quickToStand and then wins that node's vote (which had
// found it still knowing the dead leader, and waits an election timeout before asking
// again).
func slowToStand(c *raftlog.Config) {
	c.HeartbeatTimeout, c.ElectionTimeout = 2*raftlogtest.HeartbeatTimeout, 6*raftlogtest.ElectionTimeout
}

func quickToStand(c *raftlog.Config) {
	c.HeartbeatTimeout, c.ElectionTimeout = raftlogtest.HeartbeatTimeout, 4*raftlogtest.ElectionTimeout
}

// handOverAndLeave makes the leader of a group started with slowToStand leave and hand
// over; it returns the leaving node, the new leader and the third node, restarted with
// quickToStand and level with the others.
func handOverAndLeave(t *testing.T) (leaving, next, third *tcpNode, book *addressBook) {
	t.Helper()
	book, nodes, leader := startTCPGroup(t, slowToStand)
	leaving = leader()
	leaving.node.Leave()
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	if err := leaving.node.TransferLeadership(ctx); err != nil {
		t.Fatal(err)
	}
	next = leader()
	for _, n := range nodes {
		if n != leaving && n != next {
			third = n
		}
	}
	if err := third.node.Close(); err != nil {
		t.Fatal(err)
	}
	startTCP(t, book, third, []string{"a", "b", "c"}, quickToStand)
	idx := proposeRetry(t, leader, raftlogtest.Put("level"))
	raftlogtest.Eventually(t, wait, "every node level", func() bool {
		return leaving.node.Stats().CommandIndex >= idx && third.node.Stats().CommandIndex >= idx
	})
	if !next.node.IsLeader() {
		t.Skip("leadership moved meanwhile (a loaded machine): the roles are not the test's")
	}
	return leaving, next, third, book
}

// watchLeader reports whether n led at any time until stop is closed.
func watchLeader(n *tcpNode, stop <-chan struct{}) *atomic.Bool {
	led := new(atomic.Bool)
	go func() {
		for {
			if n.node.IsLeader() {
				led.Store(true)
			}
			select {
			case <-stop:
				return
			case <-time.After(2 * time.Millisecond):
			}
		}
	}()
	return led
}

// TestNodeLeavingDoesNotStand: a leader hands over and leaves (lame duck mode); the new
// leader dies. The third node is elected, with the leaving node's vote, and the leaving
// node never leads. Before Leave, the leaving node won that election (it noticed the
// death after the third node and so got its vote) and led until it exited.
func TestNodeLeavingDoesNotStand(t *testing.T) {
	leaving, next, third, _ := handOverAndLeave(t)
	stop := make(chan struct{})
	defer close(stop)
	led := watchLeader(leaving, stop)
	died := time.Now()
	if err := next.node.Close(); err != nil {
		t.Fatal(err)
	}
	raftlogtest.Eventually(t, wait, "a new leader", func() bool {
		return third.node.IsLeader() || leaving.node.IsLeader()
	})
	if led.Load() || leaving.node.IsLeader() {
		t.Fatal("the leaving node was elected leader")
	}
	t.Logf("the third node leads %v after the leader's death", time.Since(died))
	if _, err := third.node.Propose(context.Background(), raftlogtest.Put("after")).Wait(); err != nil {
		t.Fatal(err)
	}
	if led.Load() {
		t.Fatal("the leaving node was elected leader")
	}
}

// TestNodeLeavingStandsWhenOnlyItCan: the leaving node alone holds an entry the leader
// committed with it while the third node was down; then the leader dies and the third node
// returns, which cannot be elected without that entry. The leaving node stands after all,
// leads, hands over to the third node once it caught up, and the entry is kept.
func TestNodeLeavingStandsWhenOnlyItCan(t *testing.T) {
	leaving, next, third, book := handOverAndLeave(t)
	if err := third.node.Close(); err != nil {
		t.Fatal(err)
	}
	idx, err := next.node.Propose(context.Background(), raftlogtest.Put("only-two")).Wait()
	if err != nil {
		t.Fatal(err)
	}
	raftlogtest.Eventually(t, wait, "the leaving node applied the entry", func() bool {
		return leaving.node.Stats().CommandIndex >= idx
	})
	if err := next.node.Close(); err != nil {
		t.Fatal(err)
	}
	startTCP(t, book, third, []string{"a", "b", "c"}, quickToStand)
	raftlogtest.Eventually(t, wait, "the leaving node leads", leaving.node.IsLeader)
	raftlogtest.Eventually(t, wait, "the third node leads, handed over to", third.node.IsLeader)
	if _, err := third.node.Propose(context.Background(), raftlogtest.Put("after")).Wait(); err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(third.sm.Applied(), string(raftlogtest.OpPut)+"only-two") {
		t.Fatal("the entry only the leaving node held was lost")
	}
}
