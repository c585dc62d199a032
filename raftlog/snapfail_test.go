package raftlog_test

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/raft"

	"github.com/starling-io/starling/raftlog"
	"github.com/starling-io/starling/raftlog/raftlogtest"
)

// failingSnapSM is a raftlogtest.SM whose snapshots fail while fail is set.
type failingSnapSM struct {
	*raftlogtest.SM
	fail atomic.Bool
}

var errSnapFull = errors.New("disk full")

func (s *failingSnapSM) Snapshot() (raftlog.Snapshot, error) {
	if s.fail.Load() {
		return nil, errSnapFull
	}
	return s.SM.Snapshot()
}

// lockedBuffer is a log sink written by the node's goroutines and read by the test.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// TestNodeReportsSnapshotFailures: raft's own snapshots failing (raft's log lines are off,
// as by default) show in Stats and in the node's log, the raft log growing meanwhile; the
// next snapshot that succeeds clears it.
func TestNodeReportsSnapshotFailures(t *testing.T) {
	_, trans := raft.NewInmemTransport("n1")
	var logs lockedBuffer
	sm := &failingSnapSM{SM: &raftlogtest.SM{}}
	sm.fail.Store(true)
	n, err := raftlog.NewNode(raftlog.Config{
		Group: "g0", NodeID: "n1", Dir: t.TempDir(), Transport: trans,
		HeartbeatTimeout: raftlogtest.HeartbeatTimeout, ElectionTimeout: raftlogtest.ElectionTimeout,
		LeaderLeaseTimeout: raftlogtest.LeaseTimeout, CommitTimeout: raftlogtest.CommitTimeout,
		SnapshotInterval: 20 * time.Millisecond, SnapshotThreshold: 4, TrailingLogs: 2,
		NoSync: true, NoRaftLog: true, Logger: slog.New(slog.NewTextHandler(&logs, nil)),
	}, sm)
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	raftlogtest.Eventually(t, wait, "leads", n.IsLeader)
	for i := range 10 {
		if _, err := n.Propose(context.Background(), raftlogtest.Put(strings.Repeat("x", i))).Wait(); err != nil {
			t.Fatal(err)
		}
	}
	raftlogtest.Eventually(t, wait, "a snapshot failure in the log", func() bool {
		return strings.Contains(logs.String(), "snapshot failed")
	})
	if st := n.Stats(); !errors.Is(st.SnapshotErr, errSnapFull) {
		t.Fatalf("Stats.SnapshotErr %v", st.SnapshotErr)
	}
	sm.fail.Store(false)
	raftlogtest.Eventually(t, wait, "a snapshot succeeds", func() bool { return n.Stats().SnapshotErr == nil })
}
