package raftlog_test

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
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

// TestNodeLeavesOnADamagedRead: a leader that finds an entry damaged as it reads it to
// catch a follower up (bit rot after it started) halts rather than go on leading: raft
// would retry the read for ever, the follower never caught up and the leader's health
// said nothing. The other two elect a leader that holds the entry.
func TestNodeLeavesOnADamagedRead(t *testing.T) {
	c := raftlogtest.Start(t, raftlogtest.Options{Config: func(_ int, cfg *raftlog.Config) {
		cfg.LogCacheSize = 1 // replication reads the entry from the file
	}})
	leader := c.Leader(wait)
	c.WaitConverged(wait, c.Propose(wait, raftlogtest.Put("before")))
	behind := c.Others(leader)[0]
	c.Stop(behind)
	c.Propose(wait, raftlogtest.Put("payload-to-damage-0123456789"))
	c.Propose(wait, raftlogtest.Put("later"))

	segs, _ := filepath.Glob(filepath.Join(leader.Dir, "g0", "log", "*.seg"))
	path := segs[len(segs)-1]
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	at := bytes.Index(b, []byte("payload-to-damage"))
	if at < 0 {
		t.Fatal("the payload is not in the file")
	}
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAt([]byte{b[at+3] ^ 0x04}, int64(at+3)); err != nil {
		t.Fatal(err)
	}
	_ = f.Close()

	c.Start(behind)
	raftlogtest.Eventually(t, wait, "the leader to stop on the damaged entry", func() bool {
		return errors.Is(leader.Node.Stats().Stopped, seglog.ErrDamaged)
	})
	others := c.Others(leader)
	c.WaitConverged(wait, c.Propose(wait, raftlogtest.Put("after")), others...)
}
