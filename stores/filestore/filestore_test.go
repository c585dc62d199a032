package filestore

import (
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/starling-io/starling/stores"
	"github.com/starling-io/starling/stores/storetest"
)

func opener(opts Options) storetest.OpenFunc {
	return func(tb testing.TB, dir string) stores.Store {
		s, err := Open(dir, opts)
		if err != nil {
			tb.Fatal(err)
		}
		return s
	}
}

var crash = func(s stores.Store) { s.(*Store).abandon() }

func TestSuite(t *testing.T) {
	storetest.Run(t, opener(Options{}), storetest.Caps{Durable: true, Crash: crash})
}

// TestSuiteSmallSegments crosses segment boundaries in every test, and compacts the logs
// while running.
func TestSuiteSmallSegments(t *testing.T) {
	storetest.Run(t, opener(Options{SegmentBytes: 1500, NoSync: true, MaxOpenSegments: 2, CompactBytes: 1024}), storetest.Caps{Durable: true, Crash: crash})
}

func BenchmarkStore(b *testing.B) {
	storetest.Bench(b, opener(Options{}))
}

func genMsgs(first uint64, n int) []stores.Msg {
	b := make([]stores.Msg, n)
	for i := range b {
		seq := first + uint64(i)
		b[i] = stores.Msg{Seq: seq, Time: int64(seq) * 10, Data: make([]byte, 20+seq%13)}
		for j := range b[i].Data {
			b[i].Data[j] = byte(seq + uint64(j))
		}
		if seq%3 == 0 {
			b[i].Reply = "r"
		}
	}
	return b
}

// TestTornTail cuts the tail segment at every offset inside its last records (the last is
// the sync mark Close leaves): every complete record survives, and Append continues.
func TestTornTail(t *testing.T) {
	for cut := int64(1); cut < 200; cut += 7 {
		dir := t.TempDir()
		s, err := Open(dir, Options{SegmentBytes: 1000})
		if err != nil {
			t.Fatal(err)
		}
		s.Init(stores.ServerInfo{ClusterID: "c"})
		ch, _ := s.CreateChannel("foo", 1)
		all := genMsgs(1, 100)
		for i := 0; i < 100; i += 10 {
			if err := ch.Msgs.Append(all[i : i+10]); err != nil {
				t.Fatal(err)
			}
		}
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
		// A crash, not a clean close, tears a tail: without meta.log's clean records (T,
		// Z) this is a store a kill -9 left right after its last sync. (After a clean close
		// a cut tail is damage: TestCleanCloseTailCutIsDamage.)
		asIfCrashed(t, dir)
		segs, _ := filepath.Glob(filepath.Join(dir, "ch*", "*.seg"))
		tail := segs[len(segs)-1]
		fi, _ := os.Stat(tail)
		if err := os.Truncate(tail, max(fi.Size()-cut, 0)); err != nil {
			t.Fatal(err)
		}
		s, err = Open(dir, Options{SegmentBytes: 1000})
		if err != nil {
			t.Fatalf("cut %d: reopen: %v", cut, err)
		}
		rs, _ := s.Recover()
		ms := rs.Channels[0].Channel.Msgs
		st := ms.State()
		if st.First != 1 || st.Last < 90 || st.Last > 100 || (cut > hdrSize && st.Last == 100) || st.Msgs != st.Last {
			t.Fatalf("cut %d: state %+v", cut, st)
		}
		var m stores.Msg
		for i := range all[:st.Last] {
			if err := ms.Load(all[i].Seq, &m); err != nil || string(m.Data) != string(all[i].Data) || m.Reply != all[i].Reply {
				t.Fatalf("cut %d: Load(%d) = %v", cut, all[i].Seq, err)
			}
		}
		if err := ms.Append(genMsgs(st.Last+1, 5)); err != nil {
			t.Fatalf("cut %d: Append after repair: %v", cut, err)
		}
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
		s, err = Open(dir, Options{SegmentBytes: 1000})
		if err != nil {
			t.Fatal(err)
		}
		rs, _ = s.Recover()
		if got := rs.Channels[0].Channel.Msgs.State(); got.Last != st.Last+5 || got.Msgs != got.Last {
			t.Fatalf("cut %d: after append+reopen %+v", cut, got)
		}
		s.Close()
	}
}

// TestIndexRebuilt garbles a sealed segment's index: it is rebuilt from the segment.
func TestIndexRebuilt(t *testing.T) {
	dir := t.TempDir()
	s, _ := Open(dir, Options{SegmentBytes: 500})
	s.Init(stores.ServerInfo{ClusterID: "c"})
	ch, _ := s.CreateChannel("foo", 1)
	all := genMsgs(1, 60)
	if err := ch.Msgs.Append(all); err != nil {
		t.Fatal(err)
	}
	s.Close()
	idx, _ := filepath.Glob(filepath.Join(dir, "ch*", "*.idx"))
	if len(idx) < 3 {
		t.Fatalf("%d segments", len(idx))
	}
	os.WriteFile(idx[0], []byte("garbage garbage garbage!"), 0o644)
	os.Remove(idx[1])
	s, err := Open(dir, Options{SegmentBytes: 500})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	rs, _ := s.Recover()
	ms := rs.Channels[0].Channel.Msgs
	var m stores.Msg
	for i := range all {
		if err := ms.Load(all[i].Seq, &m); err != nil || string(m.Data) != string(all[i].Data) {
			t.Fatalf("Load(%d) = %v", all[i].Seq, err)
		}
	}
	if got := ms.SeqAtTime(255); got != 26 {
		t.Fatalf("SeqAtTime = %d", got)
	}
}

// TestSyncHook: a failure injected between write and fsync is returned by Sync.
func TestSyncHook(t *testing.T) {
	boom := errors.New("boom")
	fail := false
	s, err := Open(t.TempDir(), Options{Hooks: Hooks{BeforeSync: func(string) error {
		if fail {
			return boom
		}
		return nil
	}}})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ch, _ := s.CreateChannel("foo", 1)
	ch.Msgs.Append(genMsgs(1, 3))
	fail = true
	if err := ch.Msgs.Sync(); !errors.Is(err, boom) {
		t.Fatalf("Sync = %v", err)
	}
	fail = false
}

// TestCrashAfterRoll: a crash right after a segment roll (the new tail's marker not yet
// written) must not bring back messages whose removal was synced.
func TestCrashAfterRoll(t *testing.T) {
	dir := t.TempDir()
	opts := Options{SegmentBytes: 500, Limits: &stores.LimitsSet{Global: stores.Limits{MaxMsgs: 10}}}
	s, err := Open(dir, opts)
	if err != nil {
		t.Fatal(err)
	}
	s.Init(stores.ServerInfo{ClusterID: "c"})
	ch, _ := s.CreateChannel("foo", 1)
	if err := ch.Msgs.Append(genMsgs(1, 30)); err != nil {
		t.Fatal(err)
	}
	if err := ch.Msgs.Sync(); err != nil {
		t.Fatal(err)
	}
	segs := func() int {
		n, _ := filepath.Glob(filepath.Join(dir, "ch*", "*.seg"))
		return len(n)
	}
	before := segs()
	seq := uint64(31)
	for segs() == before {
		if err := ch.Msgs.Append(genMsgs(seq, 1)); err != nil {
			t.Fatal(err)
		}
		seq++
	}
	s.abandon()
	s, err = Open(dir, opts)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	rs, _ := s.Recover()
	ms := rs.Channels[0].Channel.Msgs
	st := ms.State()
	if st.First < 21 || st.Last < 30 || st.Msgs != st.Last-st.First+1 {
		t.Fatalf("state after crash %+v", st)
	}
	var m stores.Msg
	for q := st.First; q <= st.Last; q++ {
		if err := ms.Load(q, &m); err != nil {
			t.Fatalf("Load(%d): %v", q, err)
		}
	}
}

// TestSuiteSegmentLimits: segments rolled by count (file_options.slice_max_msgs), a small
// write buffer and serial recovery.
func TestSuiteSegmentLimits(t *testing.T) {
	storetest.Run(t, opener(Options{SegmentMsgs: 7, BufferSize: 100, ParallelRecovery: 1, NoSync: true}),
		storetest.Caps{Durable: true, Crash: crash})
}

// SegmentMsgs and SegmentAge roll the tail like SegmentBytes.
func TestSegmentRollLimits(t *testing.T) {
	for _, tc := range []struct {
		name string
		opts Options
	}{
		{"msgs", Options{SegmentMsgs: 10}},
		{"age", Options{SegmentAge: 100}}, // genMsgs: 10 ns apart
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			tc.opts.NoSync = true
			s := openInit(t, dir, tc.opts)
			ch, err := s.CreateChannel("foo", 1)
			if err != nil {
				t.Fatal(err)
			}
			if err := ch.Msgs.Append(genMsgs(1, 35)); err != nil {
				t.Fatal(err)
			}
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}
			segs, _ := filepath.Glob(filepath.Join(dir, "ch*", "*.seg"))
			if len(segs) != 4 {
				t.Fatalf("%d segments, want 4: %v", len(segs), segs)
			}
			s, err = Open(dir, tc.opts)
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			st, _ := s.Recover()
			if got := st.Channels[0].Channel.Msgs.State(); got.First != 1 || got.Last != 35 {
				t.Fatalf("state %+v", got)
			}
		})
	}
}

// openWithFoo opens the store in dir, initialises it and creates channel foo.
func openWithFoo(t *testing.T, dir string, opts Options) (*Store, *stores.Channel) {
	t.Helper()
	s, err := Open(dir, opts)
	if err != nil {
		t.Fatal(err)
	}
	s.Init(stores.ServerInfo{ClusterID: "c"})
	ch, err := s.CreateChannel("foo", 1)
	if err != nil {
		t.Fatal(err)
	}
	return s, ch
}

// openInit opens a file store in dir, initialised for cluster "c".
func openInit(tb testing.TB, dir string, opts Options) *Store {
	tb.Helper()
	s, err := Open(dir, opts)
	if err != nil {
		tb.Fatal(err)
	}
	if err := s.Init(stores.ServerInfo{ClusterID: "c"}); err != nil {
		tb.Fatal(err)
	}
	return s
}
