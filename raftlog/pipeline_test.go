package raftlog_test

import (
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/hashicorp/raft"

	"github.com/starling-io/starling/raftlog"
)

// TestNodePipelineSurvivesARejection drives the AppendEntries pipeline that a Node gives
// raft as raft's pipelineReplicate and pipelineDecode do when a follower rejects an append:
// the decoder takes the rejection and stops reading, and the sender, before it notices,
// sends again. Those sends must return. Before, raft's netPipeline handed its next decoded
// response to a reader that was gone and the send after that waited for the decoder
// forever: replication to the follower stopped for good, and raft.Shutdown (Node.Close)
// hung waiting for it (seen in TestNodeHandOffPastADownVoter's cleanup).
func TestNodePipelineSurvivesARejection(t *testing.T) {
	discard := slog.New(slog.NewTextHandler(io.Discard, nil))
	newTrans := func() *raft.NetworkTransport {
		tr, err := raftlog.NewTCPTransport(raftlog.TCPTransportConfig{Listen: "127.0.0.1:0", Logger: discard, NoLog: true})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = tr.Close() })
		return tr
	}
	leader, follower := newTrans(), newTrans()
	go func() {
		for rpc := range follower.Consumer() {
			rpc.Respond(&raft.AppendEntriesResponse{Term: 1, Success: false}, nil)
		}
	}()
	header := raft.RPCHeader{ProtocolVersion: raft.ProtocolVersionMax, ID: []byte("leader"), Addr: []byte(leader.LocalAddr())}
	req := func(i int) *raft.AppendEntriesRequest {
		return &raft.AppendEntriesRequest{RPCHeader: header, Term: 1, PrevLogEntry: uint64(i), PrevLogTerm: 1,
			Entries: []*raft.Log{{Index: uint64(i + 1), Term: 1, Type: raft.LogCommand, Data: []byte("x")}}}
	}

	pipe, err := raftlog.RaftTransport(leader).AppendEntriesPipeline("follower", follower.LocalAddr())
	if err != nil {
		t.Fatal(err)
	}
	closed := false
	defer func() {
		if !closed {
			_ = pipe.Close()
		}
	}()
	if _, err := pipe.AppendEntries(req(1), &raft.AppendEntriesResponse{}); err != nil {
		t.Fatal(err)
	}
	select {
	case f := <-pipe.Consumer():
		if f.Response().Success {
			t.Fatal("the follower accepted the append")
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no response to the first append")
	}
	// The decoder stopped reading (a rejection); the sender sends on before it notices.
	done := make(chan error, 1)
	go func() {
		for i := 2; i <= 4; i++ {
			if _, err := pipe.AppendEntries(req(i), &raft.AppendEntriesResponse{}); err != nil {
				done <- err
				return
			}
		}
		done <- nil
	}()
	select {
	case err := <-done:
		if err != nil {
			t.Logf("a send after the rejection failed (fine: the sender stops): %v", err)
		}
	case <-time.After(5 * time.Second):
		_ = pipe.Close() // what unblocks it, which raft's pipelineReplicate never reaches
		closed = true
		<-done
		t.Fatal("a send after a rejection waited for the pipeline's decoder forever: raft's replication to the follower and its Shutdown would hang")
	}
}
