package raftlog_test

import (
	"io"
	"log/slog"
	"testing"

	"github.com/hashicorp/raft"
	"github.com/starling-io/starling/raftlog"
	"github.com/starling-io/starling/raftlog/raftlogtest"
)

// TestHeartbeatOfANewerTermLeavesALeaderToItsLoop: a leader that reads, on raft's heartbeat
// fast path, a heartbeat of a newer term — its successor's, when it resumes after a pause
// (SIGSTOP, a VM frozen) during which the others elected one — must not take it there.
// hashicorp/raft handles such a heartbeat on the transport's goroutine, which makes the
// node a follower of the newer term behind its leader loop's back (hashicorp/raft#695): the
// loop, waiting in its select since it last checked that it leads, then writes the next
// entry it is handed — a proposal that passed the node's leadership check just before the
// heartbeat — into its own log with the newer term, a term it does not lead. Its
// successor writes its own entries at the same indexes with that same term, so when they
// replicate, raft finds the terms equal and keeps the old leader's entry: the old leader
// applies its own stale command where every other replica applies the successor's, and
// their states differ for good, silently (TestStanClusterLeaderStop, once under load: the
// resumed leader's state digest never converged). Such a heartbeat now goes unanswered on
// the fast path; the successor's next append, which raft handles in the node's main loop,
// brings its term in order.
func TestHeartbeatOfANewerTermLeavesALeaderToItsLoop(t *testing.T) {
	book, nodes, leader := startTCPGroup(t)
	proposeRetry(t, leader, raftlogtest.Put("settled")) // the leader's loop then waits, idle
	l := leader()
	state, term, _ := raftlog.RaftTerms(l.node)
	if state != raft.Leader {
		t.Fatalf("%s is %v", l.id, state)
	}
	// The heartbeat a follower elected in the next term sends, as raft's transport would.
	succ := followerOf(nodes, l)
	succAddr, _ := book.resolve(raft.ServerID(succ.id))
	lAddr, _ := book.resolve(raft.ServerID(l.id))
	discard := slog.New(slog.NewTextHandler(io.Discard, nil))
	client, err := raftlog.NewTCPTransport(raftlog.TCPTransportConfig{Listen: "127.0.0.1:0", Logger: discard, NoLog: true})
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	hb := &raft.AppendEntriesRequest{
		RPCHeader: raft.RPCHeader{ProtocolVersion: raft.ProtocolVersionMax, ID: []byte(succ.id), Addr: []byte(succAddr)},
		Term:      term + 1,
	}
	var resp raft.AppendEntriesResponse
	hbErr := client.AppendEntries(raft.ServerID(l.id), lAddr, hb, &resp)
	afterBeat, termAfterBeat, _ := raftlog.RaftTerms(l.node)

	// A proposal that passed the leadership check before the heartbeat came in.
	applyErr := raftlog.ApplyUnchecked(l.node, raftlogtest.Put("stale")).Error()
	_, _, lastLogTerm := raftlog.RaftTerms(l.node)
	if lastLogTerm > term {
		t.Errorf("%s, leader of term %d, wrote its own entry into its log with term %d, which %s leads (apply: %v)",
			l.id, term, lastLogTerm, succ.id, applyErr)
	}
	if afterBeat != raft.Leader || termAfterBeat != term {
		t.Errorf("a heartbeat of term %d (answered: term %d, success %v, error %v) made %s, leader of term %d, a %v of term %d on the transport's goroutine",
			term+1, resp.Term, resp.Success, hbErr, l.id, term, afterBeat, termAfterBeat)
	}
	if hbErr == nil && resp.Success {
		t.Errorf("the leader of term %d took a heartbeat of term %d", term, term+1)
	}

	// A follower still takes its leader's heartbeats, of the term it is in.
	l = leader()
	_, term, _ = raftlog.RaftTerms(l.node)
	f := followerOf(nodes, l)
	if _, fTerm, _ := raftlog.RaftTerms(f.node); fTerm != term {
		t.Skipf("%s is in term %d, its leader %s in %d", f.id, fTerm, l.id, term)
	}
	lAddr, _ = book.resolve(raft.ServerID(l.id))
	fAddr, _ := book.resolve(raft.ServerID(f.id))
	hb = &raft.AppendEntriesRequest{
		RPCHeader: raft.RPCHeader{ProtocolVersion: raft.ProtocolVersionMax, ID: []byte(l.id), Addr: []byte(lAddr)},
		Term:      term,
	}
	resp = raft.AppendEntriesResponse{}
	if err := client.AppendEntries(raft.ServerID(f.id), fAddr, hb, &resp); err != nil || !resp.Success {
		t.Errorf("follower %s refused its leader's heartbeat of term %d: %v (term %d, success %v)", f.id, term, err, resp.Term, resp.Success)
	}

	// And a follower in an older term (restarted after its group moved on) takes the
	// heartbeat of the newer one on the fast path, rather than stand for election while
	// raft's replication to it backs off.
	hb.Term = term + 1
	resp = raft.AppendEntriesResponse{}
	if err := client.AppendEntries(raft.ServerID(f.id), fAddr, hb, &resp); err != nil || !resp.Success {
		t.Errorf("follower %s of term %d refused a heartbeat of term %d: %v (term %d, success %v)", f.id, term, term+1, err, resp.Term, resp.Success)
	}
}
