package raftlog_test

import (
	"context"
	"testing"

	"github.com/starling-io/starling/raftlog/raftlogtest"
)

// nextID is the voter after id among a, b and c, in turn.
func nextID(id string) string {
	return map[string]string{"a": "b", "b": "c", "c": "a"}[id]
}

// TestNodeHandOffGoesRoundTheVoters: HandOff hands leadership to the voter after the leader
// in the sorted order of their IDs, so that nodes that each give leadership up in turn (a
// streaming engine that cannot take over) reach every voter. raft's own choice
// (TransferLeadership) is the most up-to-date voter, ties going to the first in its
// configuration: two failing nodes handed it to each other forever and never to the third.
func TestNodeHandOffGoesRoundTheVoters(t *testing.T) {
	_, nodes, leader := startTCPGroup(t)
	proposeRetry(t, leader, raftlogtest.Put("x"))
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	for range len(nodes) + 1 {
		l := leader()
		if err := l.node.HandOff(ctx); err != nil {
			t.Fatal(err)
		}
		if got, want := leader().id, nextID(l.id); got != want {
			t.Fatalf("%s handed off to %s, want %s", l.id, got, want)
		}
	}
}

// TestNodeHandOffPastADownVoter: when the next voter cannot take leadership (down), HandOff
// lets raft choose among the others.
func TestNodeHandOffPastADownVoter(t *testing.T) {
	_, nodes, leader := startTCPGroup(t)
	proposeRetry(t, leader, raftlogtest.Put("x"))
	l := leader()
	var down, third *tcpNode
	for _, n := range nodes {
		switch n.id {
		case l.id:
		case nextID(l.id):
			down = n
		default:
			third = n
		}
	}
	if err := down.node.Close(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	if err := l.node.HandOff(ctx); err != nil {
		t.Fatal(err)
	}
	if got := leader(); got != third {
		t.Fatalf("%s handed off to %s, want %s", l.id, got.id, third.id)
	}
}
