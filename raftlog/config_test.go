package raftlog_test

import (
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/raft"
	"github.com/starling-io/starling/raftlog"
	"github.com/starling-io/starling/raftlog/raftlogtest"
)

// TestNewNodeConfig: a config that cannot work is refused with every reason at once, and the
// transport is closed.
func TestNewNodeConfig(t *testing.T) {
	_, trans := raft.NewInmemTransport("x")
	_, other := raft.NewInmemTransport("y")
	trans.Connect("y", other)
	_, err := raftlog.NewNode(raftlog.Config{
		Group: "../g", Peers: []string{""}, Transport: trans,
		HeartbeatTimeout: 50 * time.Millisecond, LeaderLeaseTimeout: 100 * time.Millisecond,
	}, &raftlogtest.SM{})
	if err == nil {
		t.Fatal("NewNode accepted a bad config")
	}
	for _, want := range []string{"Group", "NodeID", "Dir", "Peers"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("%v: says nothing about %s", err, want)
		}
	}
	if _, err := trans.AppendEntriesPipeline("y", "y"); err == nil {
		t.Error("the transport of a refused Node is still connected")
	}

	_, trans = raft.NewInmemTransport("z")
	_, err = raftlog.NewNode(raftlog.Config{Group: "g", NodeID: "z", Dir: t.TempDir(), Transport: trans,
		HeartbeatTimeout: 50 * time.Millisecond, LeaderLeaseTimeout: 100 * time.Millisecond}, &raftlogtest.SM{})
	if err == nil || !strings.Contains(err.Error(), "LeaderLeaseTimeout") {
		t.Errorf("a lease longer than the heartbeat timeout: %v", err)
	}
}

// TestNodeSingle: a group of one elects itself and applies alone.
func TestNodeSingle(t *testing.T) {
	c := raftlogtest.Start(t, raftlogtest.Options{Nodes: 1})
	idx := c.Propose(wait, raftlogtest.Put("alone"))
	if idx != 1 {
		t.Fatalf("index %d", idx)
	}
	c.WaitConverged(wait, 1)
}
