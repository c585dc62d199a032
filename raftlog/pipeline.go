package raftlog

import (
	"sync"

	"github.com/hashicorp/raft"
)

// drainedPipeline wraps an AppendEntries pipeline of raft's network transport so that its
// decoder never waits for raft to take a response, which raft stops taking on a rejection.
//
// raft's netPipeline hands each decoded response to raft on an unbuffered channel (its
// buffers are MaxRPCsInFlight-2: none at the default 2), and takes the next request from
// AppendEntries on another. When a follower answers Success=false or a later term,
// pipelineDecode returns and nothing reads the responses any more; pipelineReplicate may
// still send once or twice before it sees that (a select between the decoder's end and new
// entries). The decoder then waits, with a response, for a reader that is gone, and the
// send after waits for the decoder: pipelineReplicate is stuck, and with it the pipeline's
// Close, which it defers. Replication to that follower stopped for good (its heartbeats go
// on, on their own goroutine, so it never called an election either), and raft.Shutdown,
// which waits for its goroutines, never returned: Node.Close hung.
//
// Here a goroutine of the wrapper takes every response as soon as it is decoded and queues
// it for raft: the decoder always gets back to the next request, and the sends stay bounded
// by the connection's deadlines. The queue only grows by the sends after raft stopped
// reading (a few, before pipelineReplicate sees the decoder's end); Close stops it.
type drainedPipeline struct {
	raft.AppendPipeline
	out  chan raft.AppendFuture
	stop chan struct{}
	once sync.Once
}

func drainPipeline(p raft.AppendPipeline) *drainedPipeline {
	d := &drainedPipeline{AppendPipeline: p, out: make(chan raft.AppendFuture), stop: make(chan struct{})}
	go d.forward(p.Consumer())
	return d
}

// forward passes the responses from in to out, in order, never waiting on out to take one.
func (d *drainedPipeline) forward(in <-chan raft.AppendFuture) {
	// queue is a window of buf: emptied, it starts again at buf's front, so a steady
	// stream of responses (one or two in flight) allocates nothing.
	buf := make([]raft.AppendFuture, 0, 8)
	queue := buf
	for {
		var out chan raft.AppendFuture
		var next raft.AppendFuture
		if len(queue) > 0 {
			out, next = d.out, queue[0]
		}
		select {
		case f, ok := <-in:
			if !ok {
				in = nil
				continue
			}
			if len(queue) == cap(queue) && len(queue) < cap(buf) {
				queue = append(buf[:0], queue...) // room at buf's front: move there
			}
			queue = append(queue, f)
			if cap(queue) > cap(buf) {
				buf = queue[:0] // grew: a new backing array, starting at queue's front
			}
		case out <- next:
			queue[0] = nil
			queue = queue[1:]
			if len(queue) == 0 {
				queue = buf[:0]
			}
		case <-d.stop:
			return
		}
	}
}

// Consumer returns the responses, in the order of the requests.
func (d *drainedPipeline) Consumer() <-chan raft.AppendFuture { return d.out }

// Close closes the pipeline and stops the forwarding.
func (d *drainedPipeline) Close() error {
	err := d.AppendPipeline.Close()
	d.once.Do(func() { close(d.stop) })
	return err
}
