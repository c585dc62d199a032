package raftlog

import (
	"testing"

	"github.com/hashicorp/raft"
)

// stubPipeline is an AppendPipeline whose responses the test feeds.
type stubPipeline struct {
	raft.AppendPipeline
	in chan raft.AppendFuture
}

func (p *stubPipeline) Consumer() <-chan raft.AppendFuture { return p.in }
func (p *stubPipeline) Close() error                       { return nil }

// The drained pipeline forwards each response without allocating: it sits on the leader's
// replication path, one response per AppendEntries batch. Before, its queue was resliced
// forward, and every response after the queue had emptied appended to a fresh array.
func TestDrainedPipelineForwardsWithoutAllocating(t *testing.T) {
	stub := &stubPipeline{in: make(chan raft.AppendFuture)}
	d := drainPipeline(stub)
	defer d.Close()
	var f raft.AppendFuture = &appendFutureStub{}
	forward := func(n int) {
		for range n {
			stub.in <- f
		}
		for range n {
			if got := <-d.Consumer(); got != f {
				t.Fatal("a response other than the one sent")
			}
		}
	}
	forward(20) // grows the queue past its first backing array
	if allocs := testing.AllocsPerRun(200, func() { forward(2) }); allocs > 0 {
		t.Fatalf("%.1f allocations per two responses forwarded, want 0", allocs)
	}
}

type appendFutureStub struct{ raft.AppendFuture }
