package raftlog

import (
	"errors"
	"sync/atomic"

	"github.com/hashicorp/raft"
)

// The heartbeat fast path. raft's network transport answers a heartbeat (an AppendEntries
// with no entries, no previous entry and no commit index) on the connection's goroutine,
// outside raft's main loop, so that heartbeats never wait behind bulk replication
// (DESIGN.md). hashicorp/raft (v1.7.2) runs its appendEntries there, which, given a
// heartbeat of a newer term, or any heartbeat while the node is not a follower, makes the
// node a follower of that term behind its main loop's back (hashicorp/raft#695, open). A
// leader's loop waiting in its select since it last checked that it leads then writes the
// next entry handed to it — a proposal that passed Node's leadership check just before —
// into its own log with the new term, one it does not lead. The new term's leader writes its
// own entries at the same indexes with the same term, so raft's consistency check, which
// compares terms, keeps the old leader's entry when they replicate: that replica applies its
// own stale command where every other applies the new leader's, and their states differ for
// good (TestHeartbeatOfANewerTermLeavesALeaderToItsLoop; e2e TestStanClusterLeaderStop, once
// under load: a leader SIGSTOPped and resumed reads its successor's heartbeat and its
// engine's proposals at the same moment).
//
// So the fast path takes a heartbeat only to a follower — of any term: a follower
// dispatches no entries of its own, and one restarted after its group moved on to a newer
// term keeps taking its leader's heartbeats, as before — or one of an older term, which
// raft answers with its own term and no change. A leader or a candidate (which counts
// votes for its own term, and would lead in the term a heartbeat set) answers any other
// with errBeatNotFast, and its term reaches the node in order through the main loop: the
// leader's replication sends an append that names a previous entry (never taken for a
// heartbeat) at once on election and then every commit timeout, and the old leader's own
// appends are refused with the newer term, which steps it down in its loop. The check is
// not atomic with the main loop: a follower that stands for election between the check and
// raft's handling can still be made a follower of the heartbeat's term there — a window of
// microseconds where before it was the whole pause.

// errBeatNotFast answers a heartbeat the fast path must not take.
var errBeatNotFast = errors.New("raftlog: a heartbeat to a leader or a candidate " +
	"is not taken on the fast path: the leader's next append brings its term")

// guardBeats wraps raft's heartbeat handler fn so that it runs only on heartbeats that
// cannot change the term or state of a leader or a candidate (beatIsHarmless), for the
// node node returns (nil before raft runs: none are taken).
func guardBeats(fn func(raft.RPC), node func() *raft.Raft) func(raft.RPC) {
	if fn == nil {
		return nil
	}
	return func(rpc raft.RPC) {
		if beatIsHarmless(rpc, node()) {
			fn(rpc)
			return
		}
		rpc.Respond(nil, errBeatNotFast)
	}
}

// beatIsHarmless reports whether raft may handle rpc off its main loop.
func beatIsHarmless(rpc raft.RPC, r *raft.Raft) bool {
	req, ok := rpc.Command.(*raft.AppendEntriesRequest)
	if !ok || r == nil {
		return false
	}
	return req.Term < r.CurrentTerm() || r.State() == raft.Follower
}

// SetHeartbeatHandler installs raft's heartbeat handler, guarded (guardBeats).
func (c *contacts) SetHeartbeatHandler(fn func(raft.RPC)) {
	c.Transport.SetHeartbeatHandler(guardBeats(fn, c.raft.Load))
}

// beatGuard is the guard alone, for a transport that contacts cannot wrap (no pre-votes).
type beatGuard struct {
	raft.Transport
	raft atomic.Pointer[raft.Raft]
}

// SetHeartbeatHandler installs raft's heartbeat handler, guarded (guardBeats).
func (g *beatGuard) SetHeartbeatHandler(fn func(raft.RPC)) {
	g.Transport.SetHeartbeatHandler(guardBeats(fn, g.raft.Load))
}

// Close closes the wrapped transport, as raft does with one that can be closed.
func (g *beatGuard) Close() error {
	if wc, ok := g.Transport.(raft.WithClose); ok {
		return wc.Close()
	}
	return nil
}
