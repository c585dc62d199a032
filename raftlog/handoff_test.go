package raftlog_test

import (
	"context"
	"slices"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/hashicorp/raft"

	"github.com/starling-io/starling/raftlog"
	"github.com/starling-io/starling/raftlog/raftlogtest"
)

// nextID is the voter after id among a, b and c, in turn.
func nextID(id string) string {
	return map[string]string{"a": "b", "b": "c", "c": "a"}[id]
}

// handOffAttempts bounds the hand-offs a test makes while raft's own elections keep
// disturbing them: with the test timings (a 100 ms lease), a loaded machine under the race
// detector can miss a heartbeat and elect a leader of its own in the middle of one.
const handOffAttempts = 12

// electionWatch counts, across a group, the elections raft starts on its own and the
// leadership transfers each node starts. Every election but a transfer's begins with a
// pre-vote (raft's runCandidate; the TCP transport carries pre-votes): a pre-vote sent
// while a test hands leadership off means the outcome was not the hand-off's alone.
type electionWatch struct {
	preVotes atomic.Int64
	mu       sync.Mutex
	told     map[string]int // TimeoutNow calls by the node that made them
}

func newElectionWatch() *electionWatch { return &electionWatch{told: map[string]int{}} }

// tune wraps each node's transport to count its pre-votes and TimeoutNow calls.
func (w *electionWatch) tune(c *raftlog.Config) {
	c.Transport = &watchedTransport{NetworkTransport: c.Transport.(*raft.NetworkTransport), from: c.NodeID, w: w}
}

// timeoutNows is how many TimeoutNow calls node id has made.
func (w *electionWatch) timeoutNows(id string) int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.told[id]
}

// watchedTransport is the TCP transport with every method its own, but for the counts.
type watchedTransport struct {
	*raft.NetworkTransport
	from string
	w    *electionWatch
}

func (t *watchedTransport) RequestPreVote(id raft.ServerID, target raft.ServerAddress, args *raft.RequestPreVoteRequest, resp *raft.RequestPreVoteResponse) error {
	t.w.preVotes.Add(1)
	return t.NetworkTransport.RequestPreVote(id, target, args, resp)
}

func (t *watchedTransport) TimeoutNow(id raft.ServerID, target raft.ServerAddress, args *raft.TimeoutNowRequest, resp *raft.TimeoutNowResponse) error {
	t.w.mu.Lock()
	t.w.told[t.from]++
	t.w.mu.Unlock()
	return t.NetworkTransport.TimeoutNow(id, target, args, resp)
}

// closeNextVoter closes the voter after l (the one HandOff tries first) and returns it
// and the third voter.
func closeNextVoter(t *testing.T, nodes []*tcpNode, l *tcpNode) (down, third *tcpNode) {
	t.Helper()
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
	return down, third
}

// TestNodeHandOffGoesRoundTheVoters: HandOff hands leadership to the voter after the leader
// in the sorted order of their IDs, so that nodes that each give leadership up in turn (a
// streaming engine that cannot take over) reach every voter. raft's own choice
// (TransferLeadership) is the most up-to-date voter, ties going to the first in its
// configuration: two failing nodes handed it to each other forever and never to the third.
//
// Each HandOff must try the next voter first. It must also leave leadership there, unless
// raft held an election of its own meanwhile (a pre-vote: a loaded machine missed a
// heartbeat) or the first transfer failed (the next voter was not elected within raft's
// transfer timeout) and HandOff went on to the voter after: such a hand-off says nothing
// either way and is made again, up to handOffAttempts in all. Before, any of those failed
// the test, about once in a hundred runs under load.
func TestNodeHandOffGoesRoundTheVoters(t *testing.T) {
	w := newElectionWatch()
	var tried []string // by the HandOff under way, on the test's goroutine
	_, nodes, leader := startTCPGroup(t, w.tune, func(c *raftlog.Config) {
		raftlog.SetHandOffHook(c, func(to string) { tried = append(tried, to) })
	})
	proposeRetry(t, leader, raftlogtest.Put("x"))
	ctx, cancel := context.WithTimeout(context.Background(), 3*wait) // all the attempts
	defer cancel()
	clean := 0
	for attempt := 1; clean < len(nodes)+1; attempt++ {
		if attempt > handOffAttempts {
			t.Fatalf("only %d of %d hand-offs undisturbed in %d attempts", clean, len(nodes)+1, handOffAttempts)
		}
		l := leader()
		preVotes := w.preVotes.Load()
		tried = nil
		err := l.node.HandOff(ctx)
		if len(tried) > 0 && tried[0] != nextID(l.id) {
			t.Fatalf("%s tried %v first, want %s", l.id, tried[0], nextID(l.id))
		}
		got := leader()
		disturbed := w.preVotes.Load() != preVotes || len(tried) != 1
		switch {
		case ctx.Err() != nil:
			t.Fatalf("%d of %d hand-offs undisturbed in %d attempts: %v", clean, len(nodes)+1, attempt, err)
		case err == nil && got.id == nextID(l.id) && len(tried) == 1:
			clean++
		case disturbed:
			t.Logf("attempt %d: %s's hand-off disturbed (tried %v, %d pre-votes, err %v); %s leads, again",
				attempt, l.id, tried, w.preVotes.Load()-preVotes, err, got.id)
		case err != nil:
			t.Fatal(err)
		default:
			t.Fatalf("%s handed off to %s, want %s", l.id, got.id, nextID(l.id))
		}
	}
}

// TestNodeHandOffPastADownVoter: when the next voter cannot take leadership (down), HandOff
// goes on to the voter after it, which takes it.
//
// An attempt that raft disturbed (an election of its own, a pre-vote; or the transfer to
// the third voter failing, under load, within raft's transfer timeout) says nothing either
// way and is made again, up to handOffAttempts in all.
func TestNodeHandOffPastADownVoter(t *testing.T) {
	w := newElectionWatch()
	var tried []string // by the HandOff under way, on the test's goroutine
	_, nodes, leader := startTCPGroup(t, w.tune, func(c *raftlog.Config) {
		raftlog.SetHandOffHook(c, func(to string) { tried = append(tried, to) })
	})
	proposeRetry(t, leader, raftlogtest.Put("x"))
	l := leader()
	down, third := closeNextVoter(t, nodes, l)
	ctx, cancel := context.WithTimeout(context.Background(), 3*wait) // all the attempts
	defer cancel()
	for attempt := 1; ; attempt++ {
		if attempt > handOffAttempts {
			t.Fatalf("no undisturbed hand-off in %d attempts", handOffAttempts)
		}
		// l leads, so that HandOff tries down first. third's next voter is l.
		raftlogtest.Eventually(t, wait, l.id+" leads", func() bool {
			if !l.node.IsLeader() && third.node.IsLeader() {
				_ = third.node.HandOff(ctx)
			}
			return l.node.IsLeader()
		})
		preVotes := w.preVotes.Load()
		tried = nil
		err := l.node.HandOff(ctx)
		if len(tried) > 0 && tried[0] != down.id {
			t.Fatalf("%s tried %s first, want %s", l.id, tried[0], down.id)
		}
		got := leader()
		switch {
		case ctx.Err() != nil:
			t.Fatalf("no undisturbed hand-off in %d attempts: %v", attempt, err)
		case err == nil && got == third && slices.Equal(tried, []string{down.id, third.id}):
			return
		case w.preVotes.Load() != preVotes || err != nil || len(tried) != 2:
			t.Logf("attempt %d: %s's hand-off disturbed (tried %v, %d pre-votes, err %v); %s leads, again",
				attempt, l.id, tried, w.preVotes.Load()-preVotes, err, got.id)
		default:
			t.Fatalf("%s handed off to %s, want %s", l.id, got.id, third.id)
		}
	}
}

// TestNodeHandOffStopsAtANewTerm: HandOff hands off the leadership it was called in. If,
// between two voters, the node lost leadership and won it again in a later term, that new
// leadership is not the one it was asked to give up: it stops. Before, it checked only that
// the node led, and handed the fresh leadership off too.
//
// The leader l's next voter is down, so HandOff turns to the third voter; just before, the
// test moves leadership to third and back. Then l must start no transfer (no TimeoutNow)
// and still lead in the term it won back, unless raft held an election of its own since
// (a pre-vote). An attempt in which l lost leadership on its own before HandOff turned to
// the third voter (a loaded machine missed a heartbeat) says nothing and is made again.
func TestNodeHandOffStopsAtANewTerm(t *testing.T) {
	w := newElectionWatch()
	var hook atomic.Pointer[func(string)]
	_, nodes, leader := startTCPGroup(t, w.tune, func(c *raftlog.Config) {
		raftlog.SetHandOffHook(c, callHook(&hook))
	})
	proposeRetry(t, leader, raftlogtest.Put("x"))
	l := leader()
	_, third := closeNextVoter(t, nodes, l)
	ctx, cancel := context.WithTimeout(context.Background(), 3*wait)
	defer cancel()
	var moved bool
	var term uint64
	var preVotes int64
	var told int
	regain := func(to string) {
		if moved || to != third.id {
			return
		}
		moved = true
		// The hand-off to down failed: now leadership goes to third and comes back (third's
		// next voter is l). A transfer that fails under load is made again.
		raftlogtest.Eventually(t, wait, third.id+" leads", func() bool {
			if !third.node.IsLeader() && l.node.IsLeader() {
				_ = raftlog.TransferTo(ctx, l.node, third.id)
			}
			return third.node.IsLeader()
		})
		raftlogtest.Eventually(t, wait, l.id+" leads again", func() bool {
			if !l.node.IsLeader() && third.node.IsLeader() {
				_ = third.node.HandOff(ctx)
			}
			return l.node.IsLeader()
		})
		term, preVotes, told = l.node.Term(), w.preVotes.Load(), w.timeoutNows(l.id)
	}
	for attempt := 1; ; attempt++ {
		if attempt > handOffAttempts {
			t.Fatalf("%s lost leadership on its own in each of %d attempts", l.id, handOffAttempts)
		}
		// l leads, so that HandOff tries down, then third. third's next voter is l.
		raftlogtest.Eventually(t, wait, l.id+" leads", func() bool {
			if !l.node.IsLeader() && third.node.IsLeader() {
				_ = third.node.HandOff(ctx)
			}
			return l.node.IsLeader()
		})
		start := l.node.Term()
		moved = false
		hook.Store(&regain)
		err := l.node.HandOff(ctx)
		hook.Store(nil)
		if err != nil {
			t.Fatal(err)
		}
		if moved {
			break
		}
		if l.node.IsLeader() && l.node.Term() == start {
			t.Fatalf("HandOff gave up, with the leadership of term %d still held, before it turned to the third voter", start)
		}
		t.Logf("attempt %d: %s lost leadership on its own before HandOff turned to %s; again", attempt, l.id, third.id)
	}
	if n := w.timeoutNows(l.id) - told; n != 0 {
		t.Fatalf("%s handed off the leadership it won back in term %d (%d TimeoutNow calls since)", l.id, term, n)
	}
	if leads, now := l.node.IsLeader(), l.node.Term(); (!leads || now != term) && w.preVotes.Load() == preVotes {
		t.Fatalf("%s handed off the leadership it won back in term %d (leads %v, term %d)", l.id, term, leads, now)
	}
}

// TestNodeHandOffLostBeforeTheTransfer: a leadership lost after HandOff checked it and
// before its transfer to the last voter begins leaves nothing to hand off: HandOff returns
// nil, as its doc says. Before, raft refused the transfer of a follower and HandOff
// returned raft's "node is not the leader". (Lost before a transfer to a voter that is not
// the last, the check before the next one returned nil already.)
//
// The leader l's next voter is down, so HandOff turns to the third voter, the last; just
// after HandOff checked that l still leads, the test moves leadership to that voter. An
// attempt in which l lost leadership on its own before that check (a loaded machine missed
// a heartbeat) says nothing and is made again.
func TestNodeHandOffLostBeforeTheTransfer(t *testing.T) {
	var hook atomic.Pointer[func(string)]
	_, nodes, leader := startTCPGroup(t, func(c *raftlog.Config) {
		raftlog.SetHandOffStartHook(c, callHook(&hook))
	})
	proposeRetry(t, leader, raftlogtest.Put("x"))
	l := leader()
	_, third := closeNextVoter(t, nodes, l)
	ctx, cancel := context.WithTimeout(context.Background(), 3*wait)
	defer cancel()
	var lost bool
	lose := func(to string) {
		if lost || to != third.id {
			return
		}
		lost = true
		// A transfer that fails under load is made again.
		raftlogtest.Eventually(t, wait, l.id+" no longer leads", func() bool {
			if l.node.IsLeader() {
				_ = raftlog.TransferTo(ctx, l.node, third.id)
			}
			return !l.node.IsLeader()
		})
	}
	for attempt := 1; ; attempt++ {
		if attempt > handOffAttempts {
			t.Fatalf("%s lost leadership on its own in each of %d attempts", l.id, handOffAttempts)
		}
		// l leads, so that HandOff tries down, then third. third's next voter is l.
		raftlogtest.Eventually(t, wait, l.id+" leads", func() bool {
			if !l.node.IsLeader() && third.node.IsLeader() {
				_ = third.node.HandOff(ctx)
			}
			return l.node.IsLeader()
		})
		lost = false
		hook.Store(&lose)
		err := l.node.HandOff(ctx)
		hook.Store(nil)
		if !lost {
			t.Logf("attempt %d: %s lost leadership on its own before HandOff turned to %s (err %v); again", attempt, l.id, third.id, err)
			continue
		}
		if err != nil {
			t.Fatalf("HandOff, its leadership lost before its transfer began: %v; want nil", err)
		}
		return
	}
}

// callHook calls the function hook holds, if any: a test sets it once the group runs.
func callHook(hook *atomic.Pointer[func(string)]) func(string) {
	return func(to string) {
		if f := hook.Load(); f != nil {
			(*f)(to)
		}
	}
}
