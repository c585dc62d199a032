package raftlog

import (
	"context"
	"errors"
	"sync/atomic"
	"time"

	"github.com/hashicorp/raft"
)

// Leaving. A node that is about to go (lame duck mode, shutdown) should not be elected:
// it would exit a moment later and cost the group a second failover. It must still vote
// and replicate, or the others lose a member of their majority early.
//
// hashicorp/raft has no such mode. A very long heartbeat timeout (ReloadConfig) keeps its
// follower from standing, but also from ever forgetting a dead leader, and a follower that
// knows a leader refuses to vote for anyone else: the other survivor could never be
// elected. So the leaving node stands as raft decides, but its transport refuses to carry
// its vote and pre-vote requests (contacts): it cannot win, and, with pre-vote, its
// candidacies do not raise its term, so the others' elections are not disturbed and it
// votes for them as any node without a leader does.
//
// Raft's safety can make it the only node the others may elect: one that holds committed
// entries no other survivor has. So once no leader has been heard from for standAfter, it
// stands after all. And while it leads (its hand-over failed, or it was elected thus), it
// hands leadership over again every leaveRetry.

// leaving is a Node's departure state, shared with its transport.
type leaving struct {
	since      atomic.Int64 // when Leave was called, as UnixNano; 0: not leaving
	standAfter time.Duration
}

// errLeaving is the refusal of a leaving node's vote requests, as raft logs it.
var errLeaving = errors.New("raftlog: this node is leaving the group and does not stand for election")

func (l *leaving) init(c Config) {
	// Past any election the others could win: their detection (up to 1.25 heartbeat
	// timeouts with the nudge) and a retry after a pre-vote refused by a node that still
	// knew the old leader (up to 2 election timeouts), with room for a loaded machine.
	l.standAfter = 3 * (c.HeartbeatTimeout + c.ElectionTimeout)
}

// mayStand reports whether a node last in contact with a leader at contact may ask for
// votes.
func (l *leaving) mayStand(contact time.Time) bool {
	since := l.since.Load()
	if since == 0 {
		return true
	}
	last := time.Unix(0, since)
	if contact.After(last) {
		last = contact
	}
	return time.Since(last) >= l.standAfter
}

// leaveRetry is how often, in election timeouts, a leaving node that leads hands over again.
const leaveRetry = 4

// Leave makes this node stop standing for election while it goes on voting and
// replicating, for a node about to shut down: see above. If it leads, call
// TransferLeadership as well; it hands over again by itself while it still leads. It cannot
// be undone: the node leaves. Without the vote-carrying transport (NewTCPTransport and
// raft's in-memory one have it) it does nothing.
func (n *Node) Leave() {
	if n.contacts == nil || !n.leaving.since.CompareAndSwap(0, time.Now().UnixNano()) {
		return
	}
	n.log.Info("raftlog: leaving: no longer standing for election")
	go n.handOverWhileLeading()
}

// handOverWhileLeading hands leadership over every leaveRetry election timeouts while the
// leaving node leads, until it stops.
func (n *Node) handOverWhileLeading() {
	every := leaveRetry * n.cfg.ElectionTimeout
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-n.watchStop:
			return
		case <-n.haltCh:
			return
		case <-t.C:
		}
		if !n.IsLeader() {
			continue
		}
		ctx, cancel := context.WithTimeout(context.Background(), every)
		err := n.TransferLeadership(ctx)
		cancel()
		if err != nil && !n.isClosed.Load() {
			n.log.Warn("raftlog: leaving: leadership not handed over yet", "err", err)
		}
	}
}

// mayStand is the transport's check before a vote or pre-vote request.
func (c *contacts) mayStand() bool {
	var last time.Time
	if r := c.raft.Load(); r != nil {
		last = r.LastContact()
	}
	return c.leaving.mayStand(last)
}

// RequestVote refuses to ask for votes for a leaving node (Leave).
func (c *contacts) RequestVote(id raft.ServerID, target raft.ServerAddress, args *raft.RequestVoteRequest, resp *raft.RequestVoteResponse) error {
	if !c.mayStand() {
		return errLeaving
	}
	return c.Transport.RequestVote(id, target, args, resp)
}
