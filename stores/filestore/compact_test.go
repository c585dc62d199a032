package filestore

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"

	"github.com/starling-io/starling/stores"
)

func fileSize(t *testing.T, path string) int64 {
	t.Helper()
	fi, err := os.Stat(path)
	if errors.Is(err, os.ErrNotExist) && filepath.Base(path) == "subs.log" {
		return 0 // not created until a flush writes it
	}
	if err != nil {
		t.Fatal(err)
	}
	return fi.Size()
}

// renames counts the logs renamed over (rewrites committed) through Hooks.Change.
type renames struct {
	mu sync.Mutex
	n  map[string]int
}

func (r *renames) hook(op, path string, _ int64, do func() error) error {
	if op == ChangeRename {
		r.mu.Lock()
		r.n[filepath.Base(path)]++
		r.mu.Unlock()
	}
	return do()
}

func (r *renames) count(name string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.n[name]
}

// TestCompactWhileRunning: subs.log and meta.log stay bounded over a long run of Record
// (and client churn) with a pipelined Flush and SyncFlushed; a reopen finds the state.
func TestCompactWhileRunning(t *testing.T) {
	const compact = 16 << 10
	dir := t.TempDir()
	rn := &renames{n: map[string]int{}}
	s, ch := openWithFoo(t, dir, Options{CompactBytes: compact, Hooks: Hooks{Change: rn.hook}})
	for id := uint64(1); id <= 3; id++ {
		if err := ch.Subs.CreateSub(&stores.SubState{ID: id, ClientID: "c", Inbox: "in"}); err != nil {
			t.Fatal(err)
		}
	}
	subsLog := filepath.Join(s.chanDir(1), "subs.log")
	metaLog := filepath.Join(dir, "meta.log")
	subSp, metaSp := ch.Subs.(stores.SplitSyncer), stores.SplitSyncer(s)
	pending, lastSent, clients := map[uint64][]uint64{}, map[uint64]uint64{}, map[string]bool{}
	var maxSubs, maxMeta int64
	events := make([]stores.SubEvent, 0, 64)
	const n = 15000
	for seq := uint64(1); seq <= n; seq++ {
		id := 1 + seq%3
		lastSent[id] = seq
		events = append(events, stores.SubEvent{SubID: id, Seq: seq})
		if seq > 30 {
			events = append(events, stores.SubEvent{SubID: 1 + (seq-30)%3, Seq: seq - 30, Acked: true})
		}
		if seq%10 != 0 {
			continue
		}
		if err := ch.Subs.Record(events); err != nil {
			t.Fatal(err)
		}
		events = events[:0]
		c := stores.ClientInfo{ID: fmt.Sprint("client-", seq%50), HbInbox: fmt.Sprint("_INBOX.hb.", seq)}
		if err := s.AddClient(c); err != nil {
			t.Fatal(err)
		}
		clients[c.ID] = true
		if seq%20 == 0 {
			if err := s.DeleteClient(c.ID); err != nil {
				t.Fatal(err)
			}
			delete(clients, c.ID)
		}
		if err := errors.Join(subSp.Flush(), metaSp.Flush(), subSp.SyncFlushed(), metaSp.SyncFlushed()); err != nil {
			t.Fatal(err)
		}
		maxSubs = max(maxSubs, fileSize(t, subsLog))
		maxMeta = max(maxMeta, fileSize(t, metaLog))
	}
	for seq := uint64(n - 29); seq <= n; seq++ {
		pending[1+seq%3] = append(pending[1+seq%3], seq)
	}
	t.Logf("subs.log: %d rewrites, at most %d bytes; meta.log: %d rewrites, at most %d bytes",
		rn.count("subs.log"), maxSubs, rn.count("meta.log"), maxMeta)
	if rn.count("subs.log") < 5 || rn.count("meta.log") < 2 {
		t.Fatalf("too few rewrites: subs.log %d, meta.log %d", rn.count("subs.log"), rn.count("meta.log"))
	}
	// Compaction starts at CompactBytes and ends at the next commit: one flush later.
	if maxSubs > compact+4<<10 || maxMeta > compact+4<<10 {
		t.Fatalf("logs grew to %d (subs.log) and %d (meta.log) bytes, compaction from %d", maxSubs, maxMeta, compact)
	}
	s.abandon()
	s, err := Open(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	rs, _ := s.Recover()
	subs := rs.Channels[0].Subs
	for _, sub := range subs {
		if !slices.Equal(sub.Pending, pending[sub.State.ID]) || sub.State.LastSent != lastSent[sub.State.ID] {
			t.Fatalf("sub %d: pending %v (want %v), %+v", sub.State.ID, sub.Pending, pending[sub.State.ID], sub.State)
		}
	}
	if len(subs) != 3 || len(rs.Clients) != len(clients) {
		t.Fatalf("%d subs, %d clients", len(subs), len(rs.Clients))
	}
}

// TestCompactCrashAtEachStep: a crash at each step of a compaction — the rewrite written
// by Flush, its fsync, its rename, the directory's fsync — recovers the old log (all that
// was durable) or the new one, and removes the temporary file.
func TestCompactCrashAtEachStep(t *testing.T) {
	for _, step := range []string{"flushed", "fsync-fails", "rename-fails", "dirsync-fails", "committed", "appended-after"} {
		t.Run(step, func(t *testing.T) {
			dir := t.TempDir()
			var mu sync.Mutex
			var failSync, failRename string
			opts := Options{CompactBytes: 4 << 10, Hooks: Hooks{
				BeforeSync: func(path string) error {
					mu.Lock()
					defer mu.Unlock()
					if failSync != "" && strings.HasSuffix(path, failSync) {
						return syscall.EIO
					}
					return nil
				},
				Change: func(op, path string, _ int64, do func() error) error {
					mu.Lock()
					fail := op == ChangeRename && failRename != "" && strings.HasSuffix(path, failRename)
					mu.Unlock()
					if fail {
						return syscall.EIO
					}
					return do()
				},
			}}
			s, err := Open(dir, opts)
			if err != nil {
				t.Fatal(err)
			}
			s.Init(stores.ServerInfo{ClusterID: "c"})
			ch, _ := s.CreateChannel("foo", 1)
			ss := ch.Subs.(*subStore)
			if err := ss.CreateSub(&stores.SubState{ID: 1, ClientID: "c"}); err != nil {
				t.Fatal(err)
			}
			subsLog := filepath.Join(s.chanDir(1), "subs.log")
			seq := uint64(0)
			record := func() {
				seq++
				evs := []stores.SubEvent{{SubID: 1, Seq: seq}}
				if seq > 5 {
					evs = append(evs, stores.SubEvent{SubID: 1, Seq: seq - 5, Acked: true})
				}
				if err := ss.Record(evs); err != nil {
					t.Fatal(err)
				}
			}
			for fileSize(t, subsLog) < 4<<10 {
				record()
				if err := ss.Sync(); err != nil {
					t.Fatal(err)
				}
			}
			durable := seq
			record()
			if err := ss.Flush(); err != nil { // the rewrite
				t.Fatal(err)
			}
			if _, err := os.Stat(subsLog + ".tmp"); err != nil {
				t.Fatalf("no rewrite after the log reached CompactBytes: %v", err)
			}
			want := []uint64{durable, seq} // acceptable Last-sent after the crash
			switch step {
			case "fsync-fails":
				failSync = "subs.log.tmp"
			case "rename-fails":
				failRename = "subs.log"
			case "dirsync-fails":
				failSync = s.chanDir(1)
			}
			switch step {
			case "flushed":
			case "committed":
				if err := ss.SyncFlushed(); err != nil {
					t.Fatal(err)
				}
				want = want[1:]
			case "appended-after":
				if err := ss.SyncFlushed(); err != nil {
					t.Fatal(err)
				}
				record()
				if err := ss.Sync(); err != nil {
					t.Fatal(err)
				}
				want = []uint64{seq}
			default:
				if err := ss.SyncFlushed(); !errors.Is(err, syscall.EIO) {
					t.Fatalf("SyncFlushed = %v", err)
				}
			}
			s.abandon()
			s, err = Open(dir, Options{})
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			if _, err := os.Stat(subsLog + ".tmp"); !errors.Is(err, os.ErrNotExist) {
				t.Fatalf("temporary file left after open: %v", err)
			}
			rs, _ := s.Recover()
			sub := rs.Channels[0].Subs[0]
			last := sub.State.LastSent
			if !slices.Contains(want, last) {
				t.Fatalf("recovered LastSent %d, want one of %v", last, want)
			}
			var wantPending []uint64
			for q := max(last, 5) - 4; q <= last; q++ {
				wantPending = append(wantPending, q)
			}
			if !slices.Equal(sub.Pending, wantPending) {
				t.Fatalf("pending %v, want %v", sub.Pending, wantPending)
			}
		})
	}
}

// TestCompactDuringCommit: the writer's Flush starts a compaction while a SyncFlushed is
// fsyncing the old log (which stays open until that commit ends, and is reported durable),
// and flushes into the rewrite while the next SyncFlushed fsyncs and renames it.
func TestCompactDuringCommit(t *testing.T) {
	dir := t.TempDir()
	var mu sync.Mutex
	block := ""
	entered, release := make(chan string), make(chan struct{})
	opts := Options{CompactBytes: 4 << 10, Hooks: Hooks{BeforeSync: func(path string) error {
		mu.Lock()
		b := block
		mu.Unlock()
		if b != "" && strings.HasSuffix(path, b) {
			entered <- path
			<-release
		}
		return nil
	}}}
	s, err := Open(dir, opts)
	if err != nil {
		t.Fatal(err)
	}
	s.Init(stores.ServerInfo{ClusterID: "c"})
	ch, _ := s.CreateChannel("foo", 1)
	ss := ch.Subs.(*subStore)
	if err := ss.CreateSub(&stores.SubState{ID: 1, ClientID: "c"}); err != nil {
		t.Fatal(err)
	}
	subsLog := filepath.Join(s.chanDir(1), "subs.log")
	seq := uint64(0)
	record := func() {
		seq++
		if err := ss.Record([]stores.SubEvent{{SubID: 1, Seq: seq}, {SubID: 1, Seq: seq, Acked: seq%2 == 0}}); err != nil {
			t.Fatal(err)
		}
	}
	for fileSize(t, subsLog) < 4<<10 {
		record()
		if err := ss.Sync(); err != nil {
			t.Fatal(err)
		}
	}
	record()
	if err := ss.Flush(); err != nil { // the rewrite, committed below
		t.Fatal(err)
	}
	if err := ss.SyncFlushed(); err != nil {
		t.Fatal(err)
	}
	// Grow it again to just below CompactBytes, then past it with one uncommitted flush.
	for fileSize(t, subsLog) < 4<<10-200 {
		record()
		if err := ss.Sync(); err != nil {
			t.Fatal(err)
		}
	}
	for range 50 {
		record()
	}
	if err := ss.Flush(); err != nil { // plain append: due for compaction from the next one
		t.Fatal(err)
	}
	if !ss.log.compactDue() || ss.log.onTmp {
		t.Fatalf("log of %d bytes not due for compaction", ss.log.size)
	}
	durable := seq
	mu.Lock()
	block = "subs.log"
	mu.Unlock()
	done := make(chan error)
	go func() { done <- ss.SyncFlushed() }()
	<-entered // the commit holds the old log
	record()
	if err := ss.Flush(); err != nil { // compaction while that commit runs
		t.Fatal(err)
	}
	if ss.log.retired == nil || !ss.log.onTmp {
		t.Fatal("the compaction did not start during the commit")
	}
	mu.Lock()
	block = "subs.log.tmp"
	mu.Unlock()
	release <- struct{}{}
	if err := <-done; err != nil { // the old log, fsynced: what was flushed to it is durable
		t.Fatalf("SyncFlushed of the old log: %v", err)
	}
	go func() { done <- ss.SyncFlushed() }() // commits the rewrite
	<-entered
	record()
	if err := ss.Flush(); err != nil { // appends to the rewrite while its commit runs
		t.Fatal(err)
	}
	mu.Lock()
	block = ""
	mu.Unlock()
	release <- struct{}{}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if err := ss.SyncFlushed(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(subsLog + ".tmp"); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("rewrite not renamed: %v", err)
	}
	s.abandon()
	s, err = Open(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	rs, _ := s.Recover()
	if got := rs.Channels[0].Subs[0].State.LastSent; got != seq || got <= durable {
		t.Fatalf("LastSent %d after the crash, want %d", got, seq)
	}
}

// BenchmarkRecordCompaction: Record of 64 sent and 64 acked events (1024 pending) then
// Flush and SyncFlushed, without fsync (NoSync) so that the cost of compacting subs.log
// shows: never within the run (CompactBytes 1 GiB), at the default, and every 64 KiB.
func BenchmarkRecordCompaction(b *testing.B) {
	for _, c := range []struct {
		name  string
		bytes int
	}{{"never", 1 << 30}, {"default", DefaultCompactBytes}, {"64KiB", 64 << 10}} {
		b.Run(c.name, func(b *testing.B) {
			s, err := Open(b.TempDir(), Options{NoSync: true, CompactBytes: c.bytes})
			if err != nil {
				b.Fatal(err)
			}
			defer s.Close()
			s.Init(stores.ServerInfo{ClusterID: "c"})
			ch, _ := s.CreateChannel("foo", 1)
			ss := ch.Subs.(*subStore)
			if err := ss.CreateSub(&stores.SubState{ID: 1, ClientID: "c", MaxInFlight: 1024}); err != nil {
				b.Fatal(err)
			}
			events := make([]stores.SubEvent, 128)
			next := uint64(1)
			step := func() {
				for i := 0; i < 64; i++ {
					events[2*i] = stores.SubEvent{SubID: 1, Seq: next}
					events[2*i+1] = stores.SubEvent{SubID: 1, Seq: next - min(next, 1024), Acked: true}
					next++
				}
				if err := ss.Record(events); err != nil {
					b.Fatal(err)
				}
				if err := ss.Flush(); err != nil {
					b.Fatal(err)
				}
				if err := ss.SyncFlushed(); err != nil {
					b.Fatal(err)
				}
			}
			for next < 4096 {
				step()
			}
			b.ReportAllocs()
			b.ResetTimer()
			for b.Loop() {
				step()
			}
			b.ReportMetric(float64(ss.log.size), "log-bytes")
		})
	}
}
