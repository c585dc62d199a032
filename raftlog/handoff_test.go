package raftlog_test

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/raft"

	"github.com/starling-io/starling/raftlog"
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

// TestNodeHandOffStopsAtANewTerm: HandOff hands off the leadership it was called in. If,
// between two voters, the node lost leadership and won it again in a later term, that new
// leadership is not the one it was asked to give up: it stops. Before, it checked only that
// the node led, and handed the fresh leadership off too.
func TestNodeHandOffStopsAtANewTerm(t *testing.T) {
	var hook atomic.Pointer[func(string)]
	_, nodes, leader := startTCPGroup(t, func(c *raftlog.Config) {
		raftlog.SetHandOffHook(c, func(to string) {
			if f := hook.Load(); f != nil {
				(*f)(to)
			}
		})
	})
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
	// An entry down lacks: raft's own choice of a voter to transfer to is then third.
	proposeRetry(t, leader, raftlogtest.Put("y"))
	if leader() != l {
		t.Fatalf("leadership moved from %s on its own", l.id)
	}
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	var moved bool
	var term uint64
	regain := func(to string) {
		if moved || to != third.id {
			return
		}
		moved = true
		// The hand-off to down failed: now leadership goes to third and comes back.
		for {
			err := l.node.TransferLeadership(ctx)
			if errors.Is(err, raft.ErrLeadershipTransferInProgress) && ctx.Err() == nil {
				time.Sleep(10 * time.Millisecond)
				continue
			}
			if err != nil {
				t.Fatalf("transfer to %s: %v", third.id, err)
			}
			break
		}
		raftlogtest.Eventually(t, wait, third.id+" leads", func() bool { return third.node.IsLeader() })
		if err := third.node.HandOff(ctx); err != nil {
			t.Fatalf("hand-off back to %s: %v", l.id, err)
		}
		raftlogtest.Eventually(t, wait, l.id+" leads again", func() bool { return l.node.IsLeader() })
		term = l.node.Term()
	}
	hook.Store(&regain)
	if err := l.node.HandOff(ctx); err != nil {
		t.Fatal(err)
	}
	if !moved {
		t.Fatal("HandOff never turned to the third voter")
	}
	if !l.node.IsLeader() || l.node.Term() != term {
		t.Fatalf("%s handed off the leadership it won back in term %d (leads %v, term %d)", l.id, term, l.node.IsLeader(), l.node.Term())
	}
}
