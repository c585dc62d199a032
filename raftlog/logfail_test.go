package raftlog_test

import (
	"context"
	"errors"
	"syscall"
	"testing"
	"time"

	"github.com/starling-io/starling/raftlog"
	"github.com/starling-io/starling/raftlog/raftlogtest"
	"github.com/starling-io/starling/raftlog/seglog"
)

// TestNodeLeavesOnALogWriteFailure: a leader whose raft log fails a write (a full disk)
// refuses the proposal and halts instead of being elected again and again: it leaves the
// group, its Stats say why, and the other two go on without it.
func TestNodeLeavesOnALogWriteFailure(t *testing.T) {
	full := make([]chan struct{}, 3) // closed: member i's disk is full
	for i := range full {
		full[i] = make(chan struct{})
	}
	c := raftlogtest.Start(t, raftlogtest.Options{Config: func(i int, cfg *raftlog.Config) {
		cfg.LogHook = func(op, path string, size int64, do func() error) error {
			select {
			case <-full[i]:
				if op == seglog.OpWrite || op == seglog.OpAllocate {
					return syscall.ENOSPC
				}
			default:
			}
			return do()
		}
	}})
	leader := c.Leader(wait)
	c.Propose(wait, raftlogtest.Put("before"))
	close(full[leader.I])
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	if _, err := leader.Node.Propose(ctx, raftlogtest.Put("refused")).Wait(); err == nil {
		t.Fatal("a leader that cannot store the entry applied it")
	}
	raftlogtest.Eventually(t, wait, "the full node to stop", func() bool {
		st := leader.Node.Stats()
		return st.Stopped != nil && st.Role.String() == "Shutdown"
	})
	if st := leader.Node.Stats(); !errors.Is(st.Stopped, raftlog.ErrStopped) || !errors.Is(st.Stopped, syscall.ENOSPC) {
		t.Fatalf("Stopped = %v, want ErrStopped with the cause (ENOSPC)", st.Stopped)
	}
	others := c.Others(leader)
	next := c.Propose(wait, raftlogtest.Put("the others go on"))
	c.WaitConverged(wait, next, others...)
	time.Sleep(200 * time.Millisecond)
	if leader.Node.IsLeader() {
		t.Error("the stopped node leads again")
	}
}
