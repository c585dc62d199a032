package raftlog_test

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/starling-io/starling/raftlog"
	"github.com/starling-io/starling/raftlog/raftlogtest"
)

// TestNodeLease: the leader's lease runs at most the lease timeout past its last majority
// contact and moves on with the heartbeats; a follower has none; a leader cut off from the
// others gets no lease reaching past its isolation plus the lease timeout, then none at
// all, and the others elect a leader only after every lease it was given had ended.
func TestNodeLease(t *testing.T) {
	c := raftlogtest.Start(t, raftlogtest.Options{})
	old := c.Leader(wait)
	ctx := context.Background()
	first, err := old.Node.Lease(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if now := time.Now(); !first.After(now) || first.After(now.Add(raftlogtest.LeaseTimeout)) {
		t.Fatalf("lease until %v, %v from now (lease timeout %v)", first, time.Until(first), raftlogtest.LeaseTimeout)
	}
	time.Sleep(time.Until(first) + 10*time.Millisecond)
	second, err := old.Node.Lease(ctx)
	if err != nil || !second.After(first) {
		t.Fatalf("lease after the first ended: %v %v (first %v)", second, err, first)
	}
	for _, m := range c.Others(old) {
		if _, err := m.Node.Lease(ctx); !errors.Is(err, raftlog.ErrNotLeader) {
			t.Fatalf("lease of follower %s: %v", m, err)
		}
	}

	cut := time.Now()
	c.Isolate(old)
	var last time.Time
	raftlogtest.Eventually(t, wait, "the cut-off leader gets no lease", func() bool {
		until, err := old.Node.Lease(ctx)
		if err != nil {
			return true
		}
		if until.After(cut.Add(raftlogtest.LeaseTimeout)) {
			t.Fatalf("a lease until %v, past the isolation at %v plus the lease timeout", until, cut)
		}
		last = until
		return false
	})
	next := c.Leader(wait, c.Others(old)...)
	if elected := time.Now(); !last.IsZero() && elected.Before(last) {
		t.Fatalf("%s leads at %v, before the lease %s was given ended (%v)", next, elected, old, last)
	}
}

// TestNodeLeaseCountsTheRaftConfiguration: a member restarted with other peers than its raft
// configuration holds (Peers are ignored past bootstrap; --cluster_bootstrap gives just the
// node itself) still counts the configuration's voters for its lease: cut off, it gets no
// lease reaching past its isolation plus the lease timeout; and it transfers its leadership.
func TestNodeLeaseCountsTheRaftConfiguration(t *testing.T) {
	var alone atomic.Bool
	c := raftlogtest.Start(t, raftlogtest.Options{Config: func(i int, cfg *raftlog.Config) {
		if i == 0 && alone.Load() {
			cfg.Peers = nil
		}
	}})
	m := c.Members[0]
	alone.Store(true)
	c.Restart(m)
	ctx := context.Background()
	raftlogtest.Eventually(t, wait, m.String()+" leads", func() bool {
		l := c.Leader(wait)
		if l == m {
			return true
		}
		_ = l.Node.TransferLeadership(ctx)
		return false
	})
	if got := m.Node.Stats().Voters; len(got) != 3 {
		t.Fatalf("voters %v", got)
	}

	if err := m.Node.TransferLeadership(ctx); err != nil {
		t.Fatal(err)
	}
	if m.Node.IsLeader() {
		t.Fatalf("%s still leads after a transfer", m)
	}
	raftlogtest.Eventually(t, wait, m.String()+" leads again", func() bool {
		l := c.Leader(wait)
		if l == m {
			return true
		}
		_ = l.Node.TransferLeadership(ctx)
		return false
	})

	cut := time.Now()
	c.Isolate(m)
	raftlogtest.Eventually(t, wait, "the cut-off leader gets no lease", func() bool {
		until, err := m.Node.Lease(ctx)
		if err != nil {
			return true
		}
		if until.After(cut.Add(raftlogtest.LeaseTimeout)) {
			t.Fatalf("a lease until %v, past the isolation at %v plus the lease timeout", until, cut)
		}
		return false
	})
}

// TestNodeNoLeaseAfterAnAbandonedTransfer: a leader that gives up waiting for a leadership
// transfer (ctx) gets no lease reaching past the target's election: raft goes on with the
// transfer, and the target, told to stand, is elected at once.
func TestNodeNoLeaseAfterAnAbandonedTransfer(t *testing.T) {
	c := raftlogtest.Start(t, raftlogtest.Options{})
	old := c.Leader(wait)
	c.WaitConverged(wait, 0)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := old.Node.TransferLeadership(ctx); !errors.Is(err, context.Canceled) {
		t.Skipf("the transfer ended before its context: %v", err)
	}
	var last time.Time
	var next *raftlogtest.Member
	raftlogtest.Eventually(t, wait, "another leader", func() bool {
		if until, err := old.Node.Lease(context.Background()); err == nil && until.After(last) {
			last = until
		}
		for _, m := range c.Others(old) {
			if m.Node.IsLeader() {
				next = m
				return true
			}
		}
		return false
	})
	if elected := time.Now(); elected.Before(last) {
		t.Fatalf("%s leads at %v, before the lease %s was given after the transfer ended (%v)", next, elected, old, last)
	}
}
