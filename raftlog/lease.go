package raftlog

import (
	"context"
	"errors"
	"io"
	"slices"
	"sync/atomic"
	"time"

	"github.com/hashicorp/raft"
)

// The leader lease. A follower that has heard from its leader within the heartbeat timeout
// neither starts an election nor grants a vote, so once a majority has accepted a leader's
// term at some moment, no other leader can be elected before that moment plus the lease
// (which is below the heartbeat timeout). raft keeps such times for its own step-down
// check but does not export them; contacts notes them at the transport.

// contacts wraps the transport to note, per voter, when it last accepted this node's term in
// an AppendEntries (a heartbeat or an append). The time noted is when the request was sent,
// which is before the peer heard it: the lease errs on the short side.
type contacts struct {
	raft.Transport
	preVote  raft.WithPreVote
	origin   time.Time // the times are durations since origin (monotonic)
	self     raft.ServerID
	view     atomic.Pointer[voters] // nil until the first Lease
	transfer *transferGuard         // the node's: a TimeoutNow may elect its target
	leaving  *leaving               // the node's: whether it may ask for votes (leave.go)

	raft atomic.Pointer[raft.Raft] // set once raft runs: whether it still leads (awaitPeer)
	stop chan struct{}             // closed as the node shuts raft down: awaitPeer gives up
}

// voters are the voters of raft's configuration (not Config.Peers: they count only at
// bootstrap) as of one term, with their acceptances of that term; replaced when it moves.
type voters struct {
	term   uint64
	peers  map[raft.ServerID]*atomic.Int64 // the voters besides this node: read without a lock
	quorum int                             // voters, this node included if it is one, that make a majority
	need   int                             // of them, besides this node
}

// newContacts wraps t for the node self; nil when t cannot carry pre-votes (then the node
// confirms every lapsed lease with a round trip instead).
func newContacts(t raft.Transport, self string, g *transferGuard, l *leaving) *contacts {
	pv, ok := t.(raft.WithPreVote)
	if !ok {
		return nil
	}
	return &contacts{Transport: t, preVote: pv, origin: time.Now(), self: raft.ServerID(self), transfer: g, leaving: l, stop: make(chan struct{})}
}

// AppendEntriesPipeline opens the transport's pipeline, drained (pipeline.go): raft's own
// can deadlock its replication to a follower that rejected an append, and its shutdown.
func (c *contacts) AppendEntriesPipeline(id raft.ServerID, target raft.ServerAddress) (raft.AppendPipeline, error) {
	p, err := c.Transport.AppendEntriesPipeline(id, target)
	if err != nil {
		return nil, err
	}
	return drainPipeline(p), nil
}

// voters returns the voters of term, read from raft's latest configuration the first time
// the term is seen: once per term, off the hot path. Starling changes no membership, so a
// leader's configuration holds for its term.
func (c *contacts) voters(term uint64, r *raft.Raft) *voters {
	if v := c.view.Load(); v != nil && v.term == term {
		return v
	}
	v := &voters{term: term, peers: map[raft.ServerID]*atomic.Int64{}}
	self := false
	for _, s := range r.GetConfiguration().Configuration().Servers {
		if s.Suffrage != raft.Voter {
			continue
		}
		v.quorum++
		if s.ID == c.self {
			self = true
		} else {
			v.peers[s.ID] = new(atomic.Int64)
		}
	}
	v.quorum = v.quorum/2 + 1
	v.need = v.quorum
	if self {
		v.need--
	}
	c.view.Store(v)
	return v
}

// AppendEntries notes the peer's acceptance of the term (even of an append it refused for
// a log mismatch: it took the sender for its leader). A peer that cannot be dialled is
// waited for (awaitPeer).
func (c *contacts) AppendEntries(id raft.ServerID, target raft.ServerAddress, args *raft.AppendEntriesRequest, resp *raft.AppendEntriesResponse) error {
	sent := int64(time.Since(c.origin))
	err := c.Transport.AppendEntries(id, target, args, resp)
	for w := (peerWait{}); unreachable(err) && c.awaitPeer(args.Term, &w); {
		sent = int64(time.Since(c.origin))
		err = c.Transport.AppendEntries(id, target, args, resp)
	}
	v := c.view.Load()
	if v == nil || v.term != args.Term {
		return err // another term's: it proves nothing about this one
	}
	if p := v.peers[id]; err == nil && p != nil && resp.Term == args.Term {
		for old := p.Load(); old < sent && !p.CompareAndSwap(old, sent); old = p.Load() {
		}
	}
	return err
}

// InstallSnapshot waits for a peer that cannot be dialled, as AppendEntries does: the
// transport dials before it reads data, so nothing of it is consumed by a failed dial.
func (c *contacts) InstallSnapshot(id raft.ServerID, target raft.ServerAddress, args *raft.InstallSnapshotRequest, resp *raft.InstallSnapshotResponse, data io.Reader) error {
	err := c.Transport.InstallSnapshot(id, target, args, resp, data)
	for w := (peerWait{}); unreachable(err) && c.awaitPeer(args.Term, &w); {
		err = c.Transport.InstallSnapshot(id, target, args, resp, data)
	}
	return err
}

// A leader's appends to a peer that is down (its process gone, the host up: the dial is
// refused at once) fail one after the other, and hashicorp/raft waits after each failure,
// doubling from 10 ms up to 10.24 s (replication.go, backoff), with nothing to cut a wait
// short when the peer returns: a follower back after a few seconds waited seconds more
// for the entries it missed, short of the group's margin all that time
// (TestNodeRestartedFollowerCatchesUpAtOnce: 3.8 s after 6 s away). So the transport keeps
// trying the dial every peerPoll instead, and the append goes out within a poll of the
// peer's return. It gives the failure to raft after peerWaitMax, or at once if this node no
// longer leads the request's term (its replication goroutines are stopping) or is shutting
// down. Heartbeats to that peer wait the same way, on their own goroutine; the lease counts
// only answers, so it is not stretched.
const (
	peerPoll    = 50 * time.Millisecond
	peerWaitMax = 30 * time.Second
)

// peerWait is one RPC's wait for its peer: when it began.
type peerWait struct{ since time.Time }

// unreachable reports whether err is a failed dial: the RPC sent nothing.
func unreachable(err error) bool {
	var ue *unreachableError
	return err != nil && errors.As(err, &ue)
}

// awaitPeer waits peerPoll before the RPC of a term is tried again; false when it should
// not be: past peerWaitMax, this node no longer leading that term, or stopping.
func (c *contacts) awaitPeer(term uint64, w *peerWait) bool {
	if w.since.IsZero() {
		w.since = time.Now()
	}
	r := c.raft.Load()
	if r == nil || time.Since(w.since) > peerWaitMax {
		return false
	}
	t := time.NewTimer(peerPoll)
	defer t.Stop()
	select {
	case <-c.stop:
		return false
	case <-t.C:
	}
	return r.State() == raft.Leader && r.CurrentTerm() == term
}

// TimeoutNow holds the lease off while raft tells a transfer's target to stand: raft may
// give up on the transfer (its timeout) before this call returns.
func (c *contacts) TimeoutNow(id raft.ServerID, target raft.ServerAddress, args *raft.TimeoutNowRequest, resp *raft.TimeoutNowResponse) error {
	c.transfer.begin()
	defer c.transfer.end(true)
	return c.Transport.TimeoutNow(id, target, args, resp)
}

// RequestPreVote passes pre-votes through (raft enables them only for a transport that has
// it), but not a leaving node's (Leave).
func (c *contacts) RequestPreVote(id raft.ServerID, target raft.ServerAddress, args *raft.RequestPreVoteRequest, resp *raft.RequestPreVoteResponse) error {
	if !c.mayStand() {
		return errLeaving
	}
	return c.preVote.RequestPreVote(id, target, args, resp)
}

// Close closes the wrapped transport, as raft does with one that can be closed.
func (c *contacts) Close() error {
	if wc, ok := c.Transport.(raft.WithClose); ok {
		return wc.Close()
	}
	return nil
}

// majoritySince returns the latest time at which a majority (this node included) had
// accepted its term; false when no majority ever has.
func (c *contacts) majoritySince(v *voters) (time.Time, bool) {
	need := v.need
	if need <= 0 {
		return time.Now(), true
	}
	var buf [8]int64
	ts := buf[:0]
	for _, p := range v.peers {
		ts = append(ts, p.Load())
	}
	if len(ts) < need {
		return time.Time{}, false
	}
	slices.Sort(ts)
	at := ts[len(ts)-need] // the need-th most recent
	if at == 0 {
		return time.Time{}, false
	}
	return c.origin.Add(time.Duration(at)), true
}

// Lease returns when this node's leadership could end at the soonest (see Log.Lease): the
// last time a majority accepted its term plus the leader lease; when that has passed, it
// waits at most twice the heartbeat timeout for the heartbeats to renew it (raft steps down
// within its lease when no majority answers).
func (n *Node) Lease(ctx context.Context) (time.Time, error) {
	if !n.IsLeader() || n.transfer.blocks() {
		return time.Time{}, n.notLeader()
	}
	if until, ok := n.leaseUntil(); ok && time.Now().Before(until) {
		return until, nil
	}
	if n.contacts != nil {
		return n.awaitLease(ctx)
	}
	asked := time.Now()
	f := n.raft.VerifyLeader()
	done := make(chan error, 1)
	go func() { done <- f.Error() }() // raft's futures wait without a context
	select {
	case err := <-done:
		if err != nil {
			return time.Time{}, n.raftErr(err)
		}
	case <-ctx.Done():
		return time.Time{}, ctx.Err()
	case <-time.After(2 * n.cfg.HeartbeatTimeout):
		return time.Time{}, errNoMajority
	}
	// Confirmed through a transport that notes no contacts: the confirmation's heartbeats
	// were sent after asked.
	return asked.Add(n.cfg.LeaderLeaseTimeout), nil
}

var errNoMajority = errors.New("raftlog: no majority confirmed the leadership")

// awaitLease waits for the heartbeats, which raft sends every tenth of the heartbeat timeout
// whatever its main loop is doing, to renew the lease. Not raft's VerifyLeader: a future
// still queued when raft shuts down is never resolved (its waiter leaks), and once 64 are
// queued behind a stalled main loop (a log write) VerifyLeader itself blocks.
func (n *Node) awaitLease(ctx context.Context) (time.Time, error) {
	give := time.NewTimer(2 * n.cfg.HeartbeatTimeout)
	defer give.Stop()
	poll := time.NewTicker(n.cfg.HeartbeatTimeout / 50)
	defer poll.Stop()
	for {
		select {
		case <-ctx.Done():
			return time.Time{}, ctx.Err()
		case <-give.C:
			return time.Time{}, errNoMajority
		case <-poll.C:
		}
		if !n.IsLeader() || n.transfer.blocks() {
			return time.Time{}, n.notLeader()
		}
		if until, ok := n.leaseUntil(); ok && time.Now().Before(until) {
			return until, nil
		}
	}
}

// leaseUntil is the majority's last acceptance plus the lease, if known.
func (n *Node) leaseUntil() (time.Time, bool) {
	if n.contacts == nil {
		return time.Time{}, false
	}
	at, ok := n.contacts.majoritySince(n.contacts.voters(n.raft.CurrentTerm(), n.raft))
	return at.Add(n.cfg.LeaderLeaseTimeout), ok
}

// transferGuard refuses the lease during a leadership transfer: its target, told to stand
// (TimeoutNow), is granted votes despite this leader's heartbeats, so it can be elected
// inside the lease. That lasts the target's first candidacy, under two election timeouts
// after it was told, even when raft's transfer failed or its caller gave up: the lease
// stays refused until then, and until a contact made meanwhile has lapsed.
type transferGuard struct {
	epoch  time.Time
	settle time.Duration
	active atomic.Int32 // transfers and TimeoutNow calls under way
	until  atomic.Int64 // no lease before epoch plus this
}

func (g *transferGuard) init(electionTimeout time.Duration) {
	g.epoch = time.Now()
	g.settle = 3 * electionTimeout // the candidacy (< 2) plus a lease (< 1)
}

func (g *transferGuard) begin() { g.active.Add(1) }

// end ends a begin; settle: the target may still be elected.
func (g *transferGuard) end(settle bool) {
	if settle {
		until := int64(time.Since(g.epoch) + g.settle)
		for old := g.until.Load(); old < until && !g.until.CompareAndSwap(old, until); old = g.until.Load() {
		}
	}
	g.active.Add(-1)
}

// blocks reports whether no lease may be given now.
func (g *transferGuard) blocks() bool {
	return g.active.Load() > 0 || time.Since(g.epoch) < time.Duration(g.until.Load())
}
