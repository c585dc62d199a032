package raftlog

import (
	"context"
	"io"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/raft"
)

// snapshotOnDisk makes a one-node group in dir whose newest snapshot holds about size
// bytes of state, closes it, and returns the state.
func snapshotOnDisk(tb testing.TB, dir string, size int) string {
	tb.Helper()
	sm := &callSM{}
	n, err := NewNode(startCfg(dir), sm)
	if err != nil {
		tb.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for !n.IsLeader() {
		if time.Now().After(deadline) {
			tb.Fatal("no leadership")
		}
		time.Sleep(5 * time.Millisecond)
	}
	chunk := strings.Repeat("s", 1<<20)
	for range max(size>>20, 1) {
		if _, err := n.Propose(context.Background(), Command{Data: []byte(chunk)}).Wait(); err != nil {
			tb.Fatal(err)
		}
	}
	if err := n.Snapshot(); err != nil {
		tb.Fatal(err)
	}
	if err := n.Close(); err != nil {
		tb.Fatal(err)
	}
	return strings.Join(sm.values, ",")
}

func startCfg(dir string) Config {
	_, trans := raft.NewInmemTransport("n1")
	return Config{
		Group: "g0", NodeID: "n1", Dir: dir, Transport: trans,
		HeartbeatTimeout: 200 * time.Millisecond, ElectionTimeout: 200 * time.Millisecond,
		LeaderLeaseTimeout: 100 * time.Millisecond, NoSync: true, NoRaftLog: true,
		TrailingLogs: 1, LogSegmentBytes: 1 << 20, // the snapshot compacts the log: a start reads the snapshot
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
	}
}

// TestNodeStartOpensTheSnapshotOnce: at start the newest snapshot is opened — and so read
// through for its CRC — once, by checkSnapshots, and raft restores from that open file.
// Before, raft opened it again: the whole file read twice before its restore read it a
// third time.
func TestNodeStartOpensTheSnapshotOnce(t *testing.T) {
	dir := t.TempDir()
	want := snapshotOnDisk(t, dir, 4<<20)
	var mu sync.Mutex
	opens := map[string]int{}
	cfg := startCfg(dir)
	cfg.snapshotOpened = func(id string) {
		mu.Lock()
		opens[id]++
		mu.Unlock()
	}
	sm := &callSM{}
	n, err := NewNode(cfg, sm)
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	if sm.state != want {
		t.Fatalf("restored %d bytes, want the %d snapshotted", len(sm.state), len(want))
	}
	mu.Lock()
	defer mu.Unlock()
	if len(opens) != 1 {
		t.Fatalf("snapshots opened: %v, want the one", opens)
	}
	for id, k := range opens {
		if k != 1 {
			t.Fatalf("snapshot %s opened %d times at start, want once", id, k)
		}
	}
}

// discardSM restores by reading the snapshot through, keeping nothing.
type discardSM struct{ callSM }

func (s *discardSM) Restore(r io.Reader) error {
	_, err := io.Copy(io.Discard, r)
	return err
}

// BenchmarkNodeStartLargeSnapshot: a start restoring a 256 MiB snapshot, from the page
// cache; read-B/op is what the process read meanwhile (/proc/self/io rchar).
func BenchmarkNodeStartLargeSnapshot(b *testing.B) {
	dir := b.TempDir()
	snapshotOnDisk(b, dir, 256<<20)
	var read int64
	b.ResetTimer()
	for range b.N {
		before := readChars()
		n, err := NewNode(startCfg(dir), &discardSM{})
		if err != nil {
			b.Fatal(err)
		}
		read += readChars() - before
		b.StopTimer()
		if err := n.Close(); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
	}
	b.ReportMetric(float64(read)/float64(b.N), "read-B/op")
}

// readChars is the bytes this process has read (rchar), 0 where unknown.
func readChars() int64 {
	b, err := os.ReadFile("/proc/self/io")
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "rchar: "); ok {
			n, _ := strconv.ParseInt(v, 10, 64)
			return n
		}
	}
	return 0
}
