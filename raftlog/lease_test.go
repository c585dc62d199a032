package raftlog_test

import (
	"context"
	"errors"
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
