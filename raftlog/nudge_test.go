package raftlog

import (
	"testing"
	"time"

	"github.com/hashicorp/raft"
)

func TestNudgeDue(t *testing.T) {
	hb := 500 * time.Millisecond
	g := newNudger(Config{HeartbeatTimeout: hb, ElectionTimeout: hb})
	now := time.Now()
	if ok, wait := g.due(time.Time{}, now); ok || wait != hb/nudgePoll {
		t.Errorf("a node that never heard from a leader: nudged %v, next look in %v", ok, wait)
	}
	if g.jitter < 0 || g.jitter > hb/4 {
		t.Fatalf("jitter %v outside [0, %v]", g.jitter, hb/4)
	}
	last := now.Add(-hb + time.Millisecond)
	if ok, wait := g.due(last, now); ok || wait != time.Millisecond+g.jitter {
		t.Errorf("before the heartbeat timeout: nudged %v, next look in %v (want when due, %v)", ok, wait, time.Millisecond+g.jitter)
	}
	if ok, _ := g.due(last, now.Add(hb/4+time.Millisecond)); !ok {
		t.Error("not nudged past the heartbeat timeout and the largest jitter")
	}
	if ok, _ := g.due(last, now.Add(hb)); ok {
		t.Error("nudged twice for one silence")
	}
	if ok, _ := g.due(last.Add(time.Second), now.Add(3*time.Second)); !ok {
		t.Error("not nudged for the next silence")
	}
}

func TestNudgeableNeedsRoomUnderTheLease(t *testing.T) {
	_, trans := raft.NewInmemTransport("n1")
	c, err := Config{Group: "g", NodeID: "n1", Peers: []string{"n1", "n2", "n3"}, Dir: t.TempDir(), Transport: trans}.withDefaults()
	if err != nil {
		t.Fatal(err)
	}
	if !nudgeable(c) {
		t.Errorf("default lease %v leaves no room under the heartbeat timeout %v", c.LeaderLeaseTimeout, c.HeartbeatTimeout)
	}
	c.LeaderLeaseTimeout = c.HeartbeatTimeout
	if nudgeable(c) {
		t.Error("nudgeable with the lease equal to the heartbeat timeout")
	}
}
