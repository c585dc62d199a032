package raftlog

import (
	"context"
	"fmt"
	"strconv"

	"github.com/hashicorp/raft"
)

// SetHandOffHook makes every HandOff of a node started with c call f with the ID of each
// voter it is about to try, before it checks that it still holds the leadership it hands off.
func SetHandOffHook(c *Config, f func(to string)) { c.handingOffTo = f }

// SetHandOffStartHook makes every HandOff of a node started with c call f with the ID of
// each voter it is about to start a transfer to, after it checked that it still holds the
// leadership it hands off.
func SetHandOffStartHook(c *Config, f func(to string)) { c.handOffStarts = f }

// RaftTransport is the transport a Node gives raft over t.
func RaftTransport(t raft.Transport) raft.Transport {
	if c := newContacts(t, "self", &transferGuard{}, &leaving{}); c != nil {
		return c
	}
	return t
}

// TransferTo hands n's leadership to the voter id, as HandOff does to each voter it tries:
// for a test that needs leadership on a given node, where TransferLeadership lets raft
// choose.
func TransferTo(ctx context.Context, n *Node, id string) error {
	for _, s := range n.votersAfter() {
		if string(s.ID) == id {
			return n.transferWith(ctx, func() raft.Future { return n.raft.LeadershipTransferToServer(s.ID, s.Address) })
		}
	}
	return fmt.Errorf("raftlog: %s is not a voter besides %s", id, n.cfg.NodeID)
}

// ApplyUnchecked hands cs to raft as one entry without the Node's leadership check: a
// proposal that passed that check just before something changed the node's state.
func ApplyUnchecked(n *Node, cs ...Command) raft.ApplyFuture {
	return n.raft.ApplyLog(raft.Log{Data: encodeEntry(cs)}, 0)
}

// RaftTerms reports raft's state, its current term and the term of its last log entry.
func RaftTerms(n *Node) (state raft.RaftState, term, lastLogTerm uint64) {
	lastLogTerm, _ = strconv.ParseUint(n.raft.Stats()["last_log_term"], 10, 64)
	return n.raft.State(), n.raft.CurrentTerm(), lastLogTerm
}
