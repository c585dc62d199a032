package raftlog

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/hashicorp/raft"
)

// Leadership transfers: a leader handing leadership to another voter (lame duck, a takeover
// that keeps failing) and waiting until it no longer leads.

// TransferLeadership makes raft hand leadership to the most up-to-date voter (which starts
// an election at once) and waits until this node no longer leads. A follower, or a group
// of one, returns nil at once.
func (n *Node) TransferLeadership(ctx context.Context) error {
	if !n.IsLeader() || len(n.voters()) < 2 { // raft's voters: Peers count only at bootstrap
		return nil
	}
	return n.transferWith(ctx, n.raft.LeadershipTransfer)
}

// HandOff is TransferLeadership to the voter after this one in the sorted order of the
// group's voter IDs (the first after the last), for a leader that gives leadership up because
// it cannot serve. raft's own choice is the most up-to-date voter, ties going to the first in
// its configuration: among voters all up to date it is always the same one, so two nodes that
// each gave leadership up would hand it to each other forever and never to a third that
// could serve. Taken in turn, every voter is reached. Should that voter not take it (down,
// or not caught up within raft's transfer timeout), the next one is tried, and so on. A
// follower, or a group of one, returns nil at once. It hands off the leadership of the term
// it was called in only: one lost meanwhile — even if won back since, in a later term, as a
// failed transfer can end — is no longer its to give up, and it returns nil.
func (n *Node) HandOff(ctx context.Context) error {
	if !n.IsLeader() {
		return nil
	}
	term := n.Term() // read after IsLeader: the term of that leadership, or a later one
	var err error
	for _, s := range n.votersAfter() {
		if n.cfg.handingOffTo != nil {
			n.cfg.handingOffTo(string(s.ID))
		}
		// IsLeader before Term: a term still the same then means the leadership was held
		// throughout (terms only grow), not lost and won again.
		if !n.IsLeader() || n.Term() != term {
			return nil
		}
		if n.cfg.handOffStarts != nil {
			n.cfg.handOffStarts(string(s.ID))
		}
		for {
			err = n.transferWith(ctx, func() raft.Future { return n.raft.LeadershipTransferToServer(s.ID, s.Address) })
			// raft answers a failed transfer just before it clears its flag: a transfer
			// begun at once is refused as one in progress.
			if !errors.Is(err, raft.ErrLeadershipTransferInProgress) || ctx.Err() != nil {
				break
			}
			time.Sleep(10 * time.Millisecond)
		}
		// Lost between the check above and the transfer's start (raft refuses a follower's
		// transfer: ErrNotLeader), or while it failed: nothing is left to hand off, even when
		// this was the last voter to try.
		if err != nil && (errors.Is(err, raft.ErrNotLeader) || !n.IsLeader() || n.Term() != term) {
			return nil
		}
		if err == nil || ctx.Err() != nil {
			return err
		}
		n.log.Warn("raftlog: leadership not handed off to the next voter; trying the one after", "to", string(s.ID), "err", err)
	}
	return err
}

// votersAfter are the voters other than this node, in the sorted order of their IDs,
// starting after this node's and wrapping.
func (n *Node) votersAfter() []raft.Server {
	f := n.raft.GetConfiguration()
	if f.Error() != nil {
		return nil
	}
	self := raft.ServerID(n.cfg.NodeID)
	var voters []raft.Server
	for _, s := range f.Configuration().Servers {
		if s.Suffrage == raft.Voter && s.ID != self {
			voters = append(voters, s)
		}
	}
	slices.SortFunc(voters, func(a, b raft.Server) int { return strings.Compare(string(a.ID), string(b.ID)) })
	i, _ := slices.BinarySearchFunc(voters, self, func(s raft.Server, id raft.ServerID) int {
		return strings.Compare(string(s.ID), string(id))
	})
	return slices.Concat(voters[i:], voters[:i])
}

// transferWith runs a leadership transfer that start begins and waits until it ends (or
// ctx does).
func (n *Node) transferWith(ctx context.Context, start func() raft.Future) error {
	begun := time.Now()
	// The target is elected at once, well within this node's lease: from now on the lease
	// proves nothing (Lease).
	n.transfer.begin()
	f := start()
	done := make(chan error, 1)
	go func() {
		// Held until raft's transfer ends, not ctx: raft goes on with it. A transfer that
		// failed may still elect its target (transferGuard).
		err := f.Error()
		n.transfer.end(err != nil)
		done <- err
	}()
	select {
	case err := <-done:
		if err != nil {
			return fmt.Errorf("raftlog: leadership transfer: %w", err)
		}
	case <-ctx.Done():
		return ctx.Err()
	}
	took := time.Since(begun)
	n.log.Info("raftlog: leadership transferred", "to", n.newLeader(ctx), "took", took)
	return nil
}

// newLeader names the leader after a transfer, for the log: this node learns it from the
// new leader's first heartbeat, usually within milliseconds of the transfer's end (it named
// none at all before that). It waits at most newLeaderWait.
func (n *Node) newLeader(ctx context.Context) string {
	deadline := time.Now().Add(newLeaderWait)
	for {
		if _, id := n.raft.LeaderWithID(); id != "" {
			return string(id)
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return "not known yet"
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// newLeaderWait bounds how long TransferLeadership waits to name the new leader.
const newLeaderWait = 500 * time.Millisecond
