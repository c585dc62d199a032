package raftlog_test

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hashicorp/raft"

	"github.com/starling-io/starling/raftlog"
	"github.com/starling-io/starling/raftlog/raftlogtest"
)

// TestLogStoreChoice: a new group keeps its log in segments; a node whose log an earlier
// version kept in raft.db (LogStoreBolt here) keeps it there when started with the default,
// and catches up as before; LogStoreBolt over a segment log is refused rather than started
// without its log.
func TestLogStoreChoice(t *testing.T) {
	store := map[int]string{0: raftlog.LogStoreBolt}
	c := raftlogtest.Start(t, raftlogtest.Options{Config: func(i int, cfg *raftlog.Config) { cfg.LogStore = store[i] }})
	c.Leader(wait)
	last := c.Propose(wait, puts("before", 5)...)
	c.WaitConverged(wait, last)
	m0, m1 := c.Members[0], c.Members[1]
	if _, err := os.Stat(filepath.Join(m0.Dir, "g0", "log")); !os.IsNotExist(err) {
		t.Fatalf("a bolt-log node has a segment log: %v", err)
	}
	if segs, _ := filepath.Glob(filepath.Join(m1.Dir, "g0", "log", "*.seg")); len(segs) == 0 {
		t.Fatal("a default node has no segment")
	}

	// Member 0 restarts with the default: it keeps its log in raft.db, with every entry.
	c.Stop(m0)
	delete(store, 0)
	c.Start(m0)
	last = c.Propose(wait, puts("after", 5)...)
	c.WaitConverged(wait, last)
	if _, err := os.Stat(filepath.Join(m0.Dir, "g0", "log")); !os.IsNotExist(err) {
		t.Fatalf("the default moved a raft.db log: %v", err)
	}

	// Member 1 asked for bolt over its segment log: refused, naming it.
	c.Stop(m1)
	cfg := c.Config(m1)
	cfg.LogStore = raftlog.LogStoreBolt
	_, cfg.Transport = raft.NewInmemTransport(raft.ServerAddress(m1.ID))
	if _, err := raftlog.NewNode(cfg, &raftlogtest.SM{}); err == nil || !strings.Contains(err.Error(), filepath.Join(m1.Dir, "g0", "log")) {
		t.Fatalf("LogStoreBolt over a segment log: %v", err)
	}
	cfg.LogStore = "wal"
	if _, err := raftlog.NewNode(cfg, &raftlogtest.SM{}); err == nil || !strings.Contains(err.Error(), `LogStore "wal"`) {
		t.Fatalf("an unknown LogStore: %v", err)
	}
	c.Start(m1)
	c.WaitConverged(wait, c.Propose(wait, raftlogtest.Put("end")))
}

// TestSegmentLogBounded: the segment log's disk use stays bounded — each snapshot lets raft
// compact the log, and compaction deletes whole segments — while the group takes many times
// that bound in entries.
func TestSegmentLogBounded(t *testing.T) {
	c := raftlogtest.Start(t, raftlogtest.Options{Config: func(_ int, cfg *raftlog.Config) {
		cfg.LogSegmentBytes = 16 << 10
		cfg.TrailingLogs = 16
	}})
	c.Leader(wait)
	logSize := func(m *raftlogtest.Member) (n int64, segs int) {
		files, _ := filepath.Glob(filepath.Join(m.Dir, "g0", "log", "*.seg"))
		for _, f := range files {
			if st, err := os.Stat(f); err == nil {
				n += st.Size()
			}
		}
		return n, len(files)
	}
	payload := strings.Repeat("x", 1000)
	var last uint64
	var peak int64
	for round := range 10 {
		for i := range 40 {
			last = c.Propose(wait, raftlogtest.Put(fmt.Sprintf("k%d-%d=%s", round, i, payload)))
		}
		c.WaitConverged(wait, last)
		for _, m := range c.Members {
			if err := m.Node.Snapshot(); err != nil {
				t.Fatal(err)
			}
			n, _ := logSize(m)
			peak = max(peak, n)
		}
	}
	// 400 entries of ~1 KiB went through (~400 KiB); what stays is the trailing entries, the
	// segment being written (preallocated up to 4 MiB) and the one they began in.
	for _, m := range c.Members {
		n, segs := logSize(m)
		if segs > 4 {
			t.Errorf("%s keeps %d segments (%d bytes) after its snapshots", m.ID, segs, n)
		}
	}
	t.Logf("peak log size on a node %d bytes", peak)
}
