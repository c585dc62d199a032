package filestore

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"

	"github.com/starling-io/starling/stores"
)

// faults injects a full disk and failing fsyncs through Options.Hooks.
type faults struct {
	mu     sync.Mutex
	match  func(path string) bool // the files affected
	budget int                    // bytes that may still be written before ENOSPC (-1: unlimited)
	syncs  bool                   // fsyncs of matching files fail with EIO
	hits   int                    // failures injected
}

// named matches the files whose name contains s.
func named(s string) func(string) bool {
	return func(path string) bool { return strings.Contains(filepath.Base(path), s) }
}

// newSegments matches the segment files of dir created from now on.
func newSegments(dir string) func(string) bool {
	old := map[string]bool{}
	filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		old[p] = true
		return nil
	})
	return func(path string) bool { return strings.HasSuffix(path, ".seg") && !old[path] }
}

func newFaults() *faults { return &faults{budget: -1} }

func (f *faults) hooks() Hooks {
	return Hooks{
		Write: func(path string, p []byte, write func([]byte) (int, error)) (int, error) {
			f.mu.Lock()
			defer f.mu.Unlock()
			if f.budget < 0 || !f.match(path) {
				return write(p)
			}
			if len(p) <= f.budget {
				f.budget -= len(p)
				return write(p)
			}
			n := f.budget
			f.budget = 0
			f.hits++
			m, err := write(p[:n])
			if err == nil {
				err = syscall.ENOSPC
			}
			return m, err
		},
		BeforeSync: func(path string) error {
			f.mu.Lock()
			defer f.mu.Unlock()
			if f.syncs && f.match(path) {
				f.hits++
				return syscall.EIO
			}
			return nil
		},
	}
}

// diskFull lets n more bytes be written to files matching match, then fails with ENOSPC.
func (f *faults) diskFull(match func(string) bool, n int) {
	f.mu.Lock()
	f.match, f.budget, f.syncs, f.hits = match, n, false, 0
	f.mu.Unlock()
}

// syncFails makes fsyncs of files matching match fail.
func (f *faults) syncFails(match func(string) bool) {
	f.mu.Lock()
	f.match, f.budget, f.syncs, f.hits = match, -1, true, 0
	f.mu.Unlock()
}

func (f *faults) clear() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.budget, f.syncs = -1, false
	return f.hits
}

func openFaulty(t *testing.T, dir string, fl *faults, opts Options) (*Store, *stores.Channel) {
	t.Helper()
	opts.Hooks = fl.hooks()
	s, err := Open(dir, opts)
	if err != nil {
		t.Fatal(err)
	}
	rs, err := s.Recover()
	if err != nil {
		t.Fatal(err)
	}
	if rs == nil {
		if err := s.Init(stores.ServerInfo{ClusterID: "c"}); err != nil {
			t.Fatal(err)
		}
		ch, err := s.CreateChannel("foo", 1)
		if err != nil {
			t.Fatal(err)
		}
		return s, ch
	}
	return s, rs.Channels[0].Channel
}

// checkMsgs: ms holds exactly want (consecutive sequences).
func checkMsgs(t *testing.T, ms stores.MsgStore, want []stores.Msg) {
	t.Helper()
	st := ms.State()
	if len(want) == 0 {
		if st.Msgs != 0 {
			t.Fatalf("state %+v, want no message", st)
		}
		return
	}
	if st.First != want[0].Seq || st.Last != want[len(want)-1].Seq || st.Msgs != uint64(len(want)) {
		t.Fatalf("state %+v, want %d..%d", st, want[0].Seq, want[len(want)-1].Seq)
	}
	var m stores.Msg
	for i := range want {
		if err := ms.Load(want[i].Seq, &m); err != nil || string(m.Data) != string(want[i].Data) || m.Reply != want[i].Reply {
			t.Fatalf("Load(%d) = %v", want[i].Seq, err)
		}
	}
}

// TestMsgFailureRollback: a full disk or a failed fsync at each place a channel writes
// fails the channel — every later Append, Flush, Sync and SyncFlushed returns the error —
// until Rollback, which returns it to what was synced once the fault is gone. Appends go
// on without a reopen, and a reopen (after Close, or after a crash) finds what was synced.
func TestMsgFailureRollback(t *testing.T) {
	all := genMsgs(1, 400) // 33..45 bytes of data each
	cases := []struct {
		name  string
		opts  Options
		fault func(fl *faults)
		// op does what hits the fault after msgs 1..100 were synced, and returns the
		// error; next is the first sequence it appended.
		op func(ms stores.MsgStore) error
	}{
		{"segment-write", Options{BufferSize: 512}, func(fl *faults) { fl.diskFull(named(".seg"), 700) },
			func(ms stores.MsgStore) error { return ms.Append(all[100:150]) }},
		{"flush", Options{}, func(fl *faults) { fl.diskFull(named(".seg"), 300) },
			func(ms stores.MsgStore) error {
				if err := ms.Append(all[100:120]); err != nil {
					return errors.New("Append failed before the flush")
				}
				return ms.(stores.SplitSyncer).Flush()
			}},
		{"fsync", Options{}, func(fl *faults) { fl.syncFails(named(".seg")) },
			func(ms stores.MsgStore) error {
				if err := ms.Append(all[100:120]); err != nil {
					return errors.New("Append failed before the sync")
				}
				return ms.Sync()
			}},
		{"sync-flushed", Options{}, func(fl *faults) { fl.syncFails(named(".seg")) },
			func(ms stores.MsgStore) error {
				if err := ms.Append(all[100:120]); err != nil {
					return errors.New("Append failed before the sync")
				}
				if err := ms.(stores.SplitSyncer).Flush(); err != nil {
					return errors.New("Flush failed")
				}
				return ms.(stores.SplitSyncer).SyncFlushed()
			}},
		{"roll-new-segment", Options{SegmentBytes: 2000}, nil, // a disk that fills exactly at the roll
			func(ms stores.MsgStore) error {
				// Only the segment the roll creates runs out: its name is new.
				return ms.Append(all[100:200])
			}},
		{"roll-index", Options{SegmentBytes: 2000}, func(fl *faults) { fl.diskFull(named(".idx"), 20) },
			func(ms stores.MsgStore) error { return ms.Append(all[100:200]) }},
		{"roll-seal-fsync", Options{SegmentBytes: 2000}, func(fl *faults) { fl.syncFails(named(".seg")) },
			func(ms stores.MsgStore) error { return ms.Append(all[100:200]) }},
	}
	for _, tc := range cases {
		for _, restart := range []string{"close", "crash"} {
			t.Run(tc.name+"/"+restart, func(t *testing.T) {
				dir := t.TempDir()
				fl := newFaults()
				s, ch := openFaulty(t, dir, fl, tc.opts)
				ms := ch.Msgs
				var err error
				sp := ms.(stores.SplitSyncer)
				for i := 0; i < 100; i += 10 {
					if err := ms.Append(all[i : i+10]); err != nil {
						t.Fatal(err)
					}
					if i%20 == 0 {
						err = ms.Sync()
					} else if err = sp.Flush(); err == nil {
						err = sp.SyncFlushed()
					}
					if err != nil {
						t.Fatal(err)
					}
				}
				if tc.fault == nil {
					fl.diskFull(newSegments(dir), 0)
				} else {
					tc.fault(fl)
				}
				err = tc.op(ms)
				if err == nil || (!errors.Is(err, syscall.ENOSPC) && !errors.Is(err, syscall.EIO)) {
					t.Fatalf("faulty op = %v, want ENOSPC or EIO", err)
				}
				next := ms.State().Last + 1
				for i, e := range []error{ms.Append(all[next-1 : next]), ms.Sync(), sp.Flush(), sp.SyncFlushed()} {
					if !errors.Is(e, syscall.ENOSPC) && !errors.Is(e, syscall.EIO) {
						t.Fatalf("call %d on a failed channel = %v", i, e)
					}
				}
				// Still failing: Rollback is refused or succeeds, never half done. Then the
				// fault goes away.
				fl.clear()
				if err := ms.Rollback(); err != nil {
					t.Fatalf("Rollback: %v", err)
				}
				// Exactly what the last successful Sync made durable.
				st := ms.State()
				checkMsgs(t, ms, all[:100])
				// Service goes on without a reopen.
				more := all[st.Last : st.Last+50]
				if err := ms.Append(more); err != nil {
					t.Fatalf("Append after Rollback: %v", err)
				}
				if err := sp.Flush(); err != nil {
					t.Fatal(err)
				}
				if err := sp.SyncFlushed(); err != nil {
					t.Fatal(err)
				}
				want := all[:st.Last+50]
				checkMsgs(t, ms, want)
				if restart == "close" {
					if err := s.Close(); err != nil {
						t.Fatal(err)
					}
				} else {
					s.abandon()
				}
				s, ch = openFaulty(t, dir, fl, tc.opts)
				defer s.Close()
				checkMsgs(t, ch.Msgs, want)
				if d := s.Damaged(); len(d) > 0 {
					t.Fatal(d)
				}
			})
		}
	}
}

// TestSyncFlushedAfterFailure: a SyncFlushed that runs after the channel failed reports the
// failure, even for what was flushed before it: nothing is reported durable until Rollback.
func TestSyncFlushedAfterFailure(t *testing.T) {
	fl := newFaults()
	s, ch := openFaulty(t, t.TempDir(), fl, Options{BufferSize: 256})
	defer s.Close()
	all := genMsgs(1, 100)
	sp := ch.Msgs.(stores.SplitSyncer)
	if err := ch.Msgs.Append(all[:10]); err != nil {
		t.Fatal(err)
	}
	if err := sp.Flush(); err != nil {
		t.Fatal(err)
	}
	fl.diskFull(named(".seg"), 10)
	if err := ch.Msgs.Append(all[10:50]); !errors.Is(err, syscall.ENOSPC) {
		t.Fatalf("Append = %v", err)
	}
	if err := sp.SyncFlushed(); !errors.Is(err, syscall.ENOSPC) {
		t.Fatalf("SyncFlushed after the failure = %v", err)
	}
	fl.clear()
	if err := ch.Msgs.Rollback(); err != nil {
		t.Fatal(err)
	}
	// Nothing was synced: Rollback keeps what is on disk up to the last sync (none).
	if st := ch.Msgs.State(); st.Msgs != 0 || st.Last != 0 {
		t.Fatalf("state %+v", st)
	}
	if err := ch.Msgs.Append(all[:3]); err != nil {
		t.Fatal(err)
	}
	checkMsgs(t, ch.Msgs, all[:3])
}

// TestRollbackRefusedWhileFaulty: a Rollback that cannot cut the tail stays failed and can
// be tried again.
func TestRollbackRefusedWhileFaulty(t *testing.T) {
	dir := t.TempDir()
	fl := newFaults()
	var refuse bool
	var mu sync.Mutex
	opts := Options{}
	s, ch := openFaulty(t, dir, fl, opts)
	defer s.Close()
	ms := ch.Msgs.(*msgStore)
	ms.opts.Hooks.Change = func(op, path string, size int64, do func() error) error {
		mu.Lock()
		defer mu.Unlock()
		if refuse && op == ChangeTruncate {
			return syscall.EIO
		}
		return do()
	}
	all := genMsgs(1, 40)
	if err := ms.Append(all[:10]); err != nil {
		t.Fatal(err)
	}
	if err := ms.Sync(); err != nil {
		t.Fatal(err)
	}
	if err := ms.Append(all[10:20]); err != nil {
		t.Fatal(err)
	}
	fl.syncFails(named(".seg"))
	if err := ms.Sync(); !errors.Is(err, syscall.EIO) {
		t.Fatal(err)
	}
	fl.clear()
	mu.Lock()
	refuse = true
	mu.Unlock()
	if err := ms.Rollback(); !errors.Is(err, syscall.EIO) {
		t.Fatalf("Rollback = %v", err)
	}
	if err := ms.Append(all[20:21]); !errors.Is(err, syscall.EIO) {
		t.Fatalf("Append after a refused Rollback = %v", err)
	}
	mu.Lock()
	refuse = false
	mu.Unlock()
	if err := ms.Rollback(); err != nil {
		t.Fatal(err)
	}
	checkMsgs(t, ms, all[:10])
}

// TestLogFailureNotSticky: a full disk or failed fsync on subs.log or meta.log fails that
// Flush/Sync, but changes go on in memory, and the next Sync once the fault is gone writes
// them all (rewriting the log into a new file); a reopen finds them.
func TestLogFailureNotSticky(t *testing.T) {
	for _, tc := range []struct {
		name  string
		fault func(fl *faults)
	}{
		{"subs-full", func(fl *faults) { fl.diskFull(named("subs.log"), 5) }},
		{"subs-fsync", func(fl *faults) { fl.syncFails(named("subs.log")) }},
		{"meta-full", func(fl *faults) { fl.diskFull(named("meta.log"), 5) }},
		{"meta-fsync", func(fl *faults) { fl.syncFails(named("meta.log")) }},
	} {
		for _, restart := range []string{"close", "crash"} {
			t.Run(tc.name+"/"+restart, func(t *testing.T) {
				dir := t.TempDir()
				fl := newFaults()
				s, ch := openFaulty(t, dir, fl, Options{})
				subs := ch.Subs
				sync := func() error { return errors.Join(subs.Sync(), s.Sync()) }
				sub := stores.SubState{ID: 1, ClientID: "a", Inbox: "in", User: "u"}
				if err := subs.CreateSub(&sub); err != nil {
					t.Fatal(err)
				}
				if err := s.AddClient(stores.ClientInfo{ID: "a", HbInbox: "hb"}); err != nil {
					t.Fatal(err)
				}
				if err := sync(); err != nil {
					t.Fatal(err)
				}
				logPath := filepath.Join(dir, "meta.log")
				if strings.HasPrefix(tc.name, "subs") {
					logPath = filepath.Join(s.chanDir(1), "subs.log")
				}
				before := inode(t, logPath)
				tc.fault(fl)
				ev := func(seq uint64, acked bool) []stores.SubEvent {
					return []stores.SubEvent{{SubID: 1, Seq: seq, Acked: acked}}
				}
				failed := 0
				for i := uint64(1); i <= 5; i++ {
					if err := subs.Record(ev(i, false)); err != nil {
						t.Fatal(err)
					}
					if err := s.AddClient(stores.ClientInfo{ID: string(rune('a' + i)), HbInbox: "hb"}); err != nil {
						t.Fatal(err)
					}
					if err := sync(); err != nil {
						if !errors.Is(err, syscall.ENOSPC) && !errors.Is(err, syscall.EIO) {
							t.Fatalf("Sync = %v", err)
						}
						failed++
					}
				}
				if failed == 0 || fl.clear() == 0 {
					t.Fatal("no failure injected")
				}
				if err := subs.Record(ev(2, true)); err != nil {
					t.Fatal(err)
				}
				if err := sync(); err != nil {
					t.Fatalf("Sync once the fault is gone: %v", err)
				}
				// The failed file is never synced again: the log was rewritten into a new one.
				if inode(t, logPath) == before {
					t.Fatal("the log was not rewritten after the failure")
				}
				want := []stores.RecoveredSub{{State: sub, Pending: []uint64{1, 3, 4, 5}}}
				want[0].State.LastSent = 5
				if restart == "close" {
					if err := s.Close(); err != nil {
						t.Fatal(err)
					}
				} else {
					s.abandon()
				}
				s, ch = openFaulty(t, dir, fl, Options{})
				defer s.Close()
				got, err := ch.Subs.Subs()
				if err != nil || len(got) != 1 || got[0].State != want[0].State || !slices.Equal(got[0].Pending, want[0].Pending) {
					t.Fatalf("subs after reopen %+v, %v; want %+v", got, err, want)
				}
				rs, _ := s.Recover()
				if len(rs.Clients) != 6 {
					t.Fatalf("clients after reopen %+v", rs.Clients)
				}
				if rs.Clean != (restart == "close") {
					t.Fatalf("Clean = %v after %s", rs.Clean, restart)
				}
			})
		}
	}
}

func inode(t *testing.T, path string) uint64 {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Sys().(*syscall.Stat_t).Ino
}

// TestRealDiskFull fills a real tiny tmpfs (root only): the channel fails with ENOSPC,
// then serves again after Rollback once space is freed, and so do subscriptions; a reopen
// finds what was synced.
func TestRealDiskFull(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to mount a tmpfs")
	}
	dir := t.TempDir()
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=400k", "tmpfs", dir).CombinedOutput(); err != nil {
		t.Skipf("cannot mount a tmpfs here: %v: %s", err, out)
	}
	t.Cleanup(func() { exec.Command("umount", dir).Run() })
	filler := filepath.Join(dir, "filler")
	if err := os.WriteFile(filler, make([]byte, 128<<10), 0o644); err != nil {
		t.Fatal(err)
	}
	sdir := filepath.Join(dir, "store")
	s, ch := openWithFoo(t, sdir, Options{BufferSize: 4096})
	if err := ch.Subs.CreateSub(&stores.SubState{ID: 1, ClientID: "a"}); err != nil {
		t.Fatal(err)
	}
	var synced []stores.Msg
	var fullErr error
	data := make([]byte, 1000)
	for seq := uint64(1); fullErr == nil; seq += 10 {
		batch := make([]stores.Msg, 10)
		for i := range batch {
			batch[i] = stores.Msg{Seq: seq + uint64(i), Time: int64(seq), Data: data}
		}
		if fullErr = ch.Msgs.Append(batch); fullErr == nil {
			fullErr = ch.Msgs.Sync()
		}
		if fullErr == nil {
			synced = append(synced, batch...)
		}
	}
	if !errors.Is(fullErr, syscall.ENOSPC) {
		t.Fatalf("filling the disk: %v", fullErr)
	}
	// The subscription store fails too (or not, if a page was left), never for good.
	ch.Subs.Record([]stores.SubEvent{{SubID: 1, Seq: 1}, {SubID: 1, Seq: 2}})
	ch.Subs.Sync()
	if err := ch.Msgs.Rollback(); err != nil {
		t.Logf("Rollback while the disk is full: %v", err) // allowed to fail, or to succeed
	}
	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	if err := ch.Msgs.Rollback(); err != nil {
		t.Fatalf("Rollback once space is back: %v", err)
	}
	checkMsgs(t, ch.Msgs, synced)
	last := synced[len(synced)-1].Seq
	more := []stores.Msg{{Seq: last + 1, Time: int64(last + 1), Data: data}}
	if err := ch.Msgs.Append(more); err != nil {
		t.Fatal(err)
	}
	if err := errors.Join(ch.Msgs.Sync(), ch.Subs.Sync(), s.Sync()); err != nil {
		t.Fatalf("Sync once space is back: %v", err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s, err := Open(sdir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	rs, _ := s.Recover()
	checkMsgs(t, rs.Channels[0].Channel.Msgs, append(synced, more...))
	if subs := rs.Channels[0].Subs; len(subs) != 1 || !slices.Equal(subs[0].Pending, []uint64{1, 2}) {
		t.Fatalf("subs %+v", subs)
	}
}

// TestRollbackKeepsSyncFlushed: a SyncFlushed whose segment a roll sealed before it ran
// reports the flush durable, and Rollback keeps it.
func TestRollbackKeepsSyncFlushed(t *testing.T) {
	fl := newFaults()
	s, ch := openFaulty(t, t.TempDir(), fl, Options{SegmentBytes: 1500})
	defer s.Close()
	ms, sp := ch.Msgs, ch.Msgs.(stores.SplitSyncer)
	all := genMsgs(1, 200)
	if err := ms.Append(all[:10]); err != nil {
		t.Fatal(err)
	}
	if err := sp.Flush(); err != nil {
		t.Fatal(err)
	}
	segs := len(ms.(*msgStore).segs)
	n := 10
	for len(ms.(*msgStore).segs) == segs { // roll past the flushed tail before it is synced
		if err := ms.Append(all[n : n+1]); err != nil {
			t.Fatal(err)
		}
		n++
	}
	if err := sp.SyncFlushed(); err != nil {
		t.Fatal(err)
	}
	fl.syncFails(named(".seg"))
	if err := ms.Sync(); err == nil {
		t.Fatal("Sync did not fail")
	}
	fl.clear()
	if err := ms.Rollback(); err != nil {
		t.Fatal(err)
	}
	checkMsgs(t, ms, all[:10])
}

// TestRollbackAfterGapResumeKeepsLast: a channel emptied by MaxAge that resumes at a gap
// and then fails its sync rolls back to its synced Last, not before it.
func TestRollbackAfterGapResumeKeepsLast(t *testing.T) {
	dir := t.TempDir()
	fl := newFaults()
	s, ch := openFaulty(t, dir, fl, Options{})
	ms := ch.Msgs
	if err := ms.Append(genMsgs(1, 10)); err != nil {
		t.Fatal(err)
	}
	if err := ms.Sync(); err != nil {
		t.Fatal(err)
	}
	ms.SetLimits(stores.Limits{MaxAge: 1})
	if n, _ := ms.Expire(1 << 40); n != 10 {
		t.Fatalf("expired %d", n)
	}
	ms.SetLimits(stores.Limits{})
	if err := ms.Append(genMsgs(20, 1)); err != nil {
		t.Fatal(err)
	}
	fl.syncFails(named(".seg"))
	if err := ms.Sync(); err == nil {
		t.Fatal("Sync did not fail")
	}
	fl.clear()
	if err := ms.Rollback(); err != nil {
		t.Fatal(err)
	}
	if got := ms.State(); got.Last != 10 {
		t.Fatalf("state %+v after Rollback, want Last 10", got)
	}
	s.abandon()
	s, ch = openFaulty(t, dir, fl, Options{})
	defer s.Close()
	if got := ch.Msgs.State(); got.Last != 10 {
		t.Fatalf("state %+v after reopening, want Last 10", got)
	}
}
