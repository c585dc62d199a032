package seglog

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/raft"
)

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

func open(t testing.TB, dir string, size int64) *Store {
	t.Helper()
	s, err := Open(dir, Options{SegmentSize: size, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

func entry(i, term uint64) *raft.Log {
	e := &raft.Log{Index: i, Term: term, Type: raft.LogCommand, Data: []byte(fmt.Sprintf("entry %d term %d", i, term))}
	if i%3 == 0 {
		e.Extensions = []byte("ext")
		e.AppendedAt = time.Unix(1700000000, int64(i))
	}
	if i%7 == 0 {
		e.Data = nil
	}
	return e
}

// store appends entries from..to (term) in batches of n.
func store(t testing.TB, s *Store, from, to, term uint64, n int) {
	t.Helper()
	for i := from; i <= to; {
		var b []*raft.Log
		for ; i <= to && len(b) < n; i++ {
			b = append(b, entry(i, term))
		}
		if err := s.StoreLogs(b); err != nil {
			t.Fatal(err)
		}
	}
}

// check asserts the log holds exactly first..last, each entry as written (term).
func check(t testing.TB, s *Store, first, last uint64, term func(uint64) uint64) {
	t.Helper()
	f, _ := s.FirstIndex()
	l, _ := s.LastIndex()
	if f != first || l != last {
		t.Fatalf("log %d..%d, want %d..%d", f, l, first, last)
	}
	for i := first; first > 0 && i <= last; i++ {
		var got raft.Log
		if err := s.GetLog(i, &got); err != nil {
			t.Fatalf("GetLog(%d): %v", i, err)
		}
		want := entry(i, term(i))
		if got.Index != want.Index || got.Term != want.Term || got.Type != want.Type || !bytes.Equal(got.Data, want.Data) ||
			!bytes.Equal(got.Extensions, want.Extensions) || !got.AppendedAt.Equal(want.AppendedAt) {
			t.Fatalf("entry %d: got %+v, want %+v", i, got, want)
		}
	}
	var e raft.Log
	for _, i := range []uint64{0, first - 1, last + 1} {
		if i != 0 && (i < first || i > last) {
			if err := s.GetLog(i, &e); !errors.Is(err, raft.ErrLogNotFound) {
				t.Fatalf("GetLog(%d) outside %d..%d: %v", i, first, last, err)
			}
		}
	}
}

func term1(uint64) uint64 { return 1 }

func TestStoreGetReopen(t *testing.T) {
	dir := t.TempDir()
	s := open(t, dir, 4<<10) // small segments: many rolls
	check(t, s, 0, 0, term1)
	store(t, s, 1, 1000, 1, 7)
	check(t, s, 1, 1000, term1)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	segs, _ := filepath.Glob(filepath.Join(dir, "*.seg"))
	if len(segs) < 10 {
		t.Fatalf("%d segments, want many", len(segs))
	}
	s = open(t, dir, 4<<10)
	check(t, s, 1, 1000, term1)
	store(t, s, 1001, 1100, 1, 50)
	check(t, s, 1, 1100, term1)
}

func TestRecordSize(t *testing.T) {
	var nonce [8]byte
	for _, n := range []int{0, 1, 127, 128, 300, 20000} {
		e := &raft.Log{Index: 1, Term: 1, Data: make([]byte, n), Extensions: make([]byte, n)}
		if got, want := recordSize(e), int64(len(appendRecord(nil, &nonce, 0, e))); got != want {
			t.Fatalf("recordSize with %d bytes: %d, want %d", n, got, want)
		}
	}
}

// A batch larger than the write buffer is written in pieces, read back whole.
func TestLargeBatch(t *testing.T) {
	dir := t.TempDir()
	s := open(t, dir, 0)
	var b []*raft.Log
	for i := uint64(1); i <= 40; i++ {
		b = append(b, &raft.Log{Index: i, Term: 1, Type: raft.LogCommand, Data: bytes.Repeat([]byte{byte(i)}, 100<<10)})
	}
	if err := s.StoreLogs(b); err != nil {
		t.Fatal(err)
	}
	_ = s.Close()
	s = open(t, dir, 0)
	for _, want := range b {
		var got raft.Log
		if err := s.GetLog(want.Index, &got); err != nil || !bytes.Equal(got.Data, want.Data) {
			t.Fatalf("entry %d: %v", want.Index, err)
		}
	}
}

func TestNotContiguous(t *testing.T) {
	s := open(t, t.TempDir(), 0)
	if err := s.StoreLogs([]*raft.Log{entry(1, 1), entry(3, 1)}); err == nil {
		t.Fatal("non-contiguous entries stored")
	}
}

// Compaction after a snapshot deletes a prefix: whole segments go, a partly deleted one
// stays; after a restart the log may start earlier again (raft allows it), never later.
func TestDeletePrefix(t *testing.T) {
	dir := t.TempDir()
	s := open(t, dir, 4<<10)
	store(t, s, 1, 600, 1, 10)
	before, _ := filepath.Glob(filepath.Join(dir, "*.seg"))
	if err := s.DeleteRange(1, 450); err != nil {
		t.Fatal(err)
	}
	check(t, s, 451, 600, term1)
	after, _ := filepath.Glob(filepath.Join(dir, "*.seg"))
	if len(after) >= len(before) {
		t.Fatalf("segments %d -> %d: none deleted", len(before), len(after))
	}
	_ = s.Close()
	s = open(t, dir, 4<<10)
	f, _ := s.FirstIndex()
	if f > 451 || f < 1 {
		t.Fatalf("first after reopen %d", f)
	}
	check(t, s, f, 600, term1)
}

// A follower's conflicting suffix is deleted, then the leader's entries take its place.
func TestDeleteSuffixThenStore(t *testing.T) {
	for _, viaStore := range []bool{false, true} {
		t.Run(fmt.Sprint("viaStore=", viaStore), func(t *testing.T) {
			dir := t.TempDir()
			s := open(t, dir, 4<<10)
			store(t, s, 1, 500, 1, 10)
			if !viaStore {
				if err := s.DeleteRange(301, 500); err != nil {
					t.Fatal(err)
				}
				check(t, s, 1, 300, term1)
			}
			store(t, s, 301, 350, 2, 10) // replaces 301.. when viaStore
			term := func(i uint64) uint64 {
				if i > 300 {
					return 2
				}
				return 1
			}
			check(t, s, 1, 350, term)
			_ = s.Close()
			s = open(t, dir, 4<<10)
			check(t, s, 1, 350, term)
		})
	}
}

// A conflicting suffix that begins exactly where a segment begins: that segment goes whole
// and nothing is left to cut in the one before (it panicked, index out of range).
func TestDeleteSuffixAtSegmentStart(t *testing.T) {
	for _, viaStore := range []bool{false, true} {
		t.Run(fmt.Sprint("viaStore=", viaStore), func(t *testing.T) {
			dir := t.TempDir()
			s := open(t, dir, 4<<10)
			store(t, s, 1, 500, 1, 10)
			segs, _ := filepath.Glob(filepath.Join(dir, "*.seg"))
			b, _ := parseSegName(filepath.Base(segs[len(segs)-1]))
			if !viaStore {
				if err := s.DeleteRange(b, 500); err != nil {
					t.Fatal(err)
				}
				check(t, s, 1, b-1, term1)
			}
			store(t, s, b, 520, 2, 10)
			term := func(i uint64) uint64 {
				if i >= b {
					return 2
				}
				return 1
			}
			check(t, s, 1, 520, term)
			_ = s.Close()
			s = open(t, dir, 4<<10)
			check(t, s, 1, 520, term)
		})
	}
}

// A gap: raft installed a snapshot past the log's end and goes on after it; the older
// entries go, here and after a restart.
func TestGap(t *testing.T) {
	dir := t.TempDir()
	s := open(t, dir, 4<<10)
	store(t, s, 1, 100, 1, 10)
	store(t, s, 5000, 5010, 3, 4)
	check(t, s, 5000, 5010, func(uint64) uint64 { return 3 })
	_ = s.Close()
	s = open(t, dir, 4<<10)
	check(t, s, 5000, 5010, func(uint64) uint64 { return 3 })
	if err := s.DeleteRange(5000, 5010); err != nil {
		t.Fatal(err)
	}
	check(t, s, 0, 0, term1)
	store(t, s, 9000, 9001, 4, 4)
	check(t, s, 9000, 9001, func(uint64) uint64 { return 4 })
}

// A gap a crash left behind (files the deletion had removed came back): the log is the run
// of segments after it.
func TestGapAfterCrash(t *testing.T) {
	dir := t.TempDir()
	s := open(t, dir, 4<<10)
	store(t, s, 1, 100, 1, 10)
	_ = s.Close()
	old := t.TempDir()
	copyDir(t, dir, old)
	s = open(t, dir, 4<<10)
	store(t, s, 5000, 5010, 3, 4)
	_ = s.Close()
	copyDir(t, old, dir) // the old segments reappear
	s = open(t, dir, 4<<10)
	check(t, s, 5000, 5010, func(uint64) uint64 { return 3 })
}

func copyDir(t *testing.T, from, to string) {
	t.Helper()
	ents, _ := os.ReadDir(from)
	for _, e := range ents {
		b, err := os.ReadFile(filepath.Join(from, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(to, e.Name()), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
}

// tailFile returns the newest segment's path and contents.
func tailFile(t *testing.T, dir string) (string, []byte) {
	t.Helper()
	segs, _ := filepath.Glob(filepath.Join(dir, "*.seg"))
	p := segs[len(segs)-1]
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return p, b
}

// The torn end of the last write is cut: a partial record, garbage, or a record of that
// write damaged while a later record of the same write arrived whole.
func TestTornTailCut(t *testing.T) {
	cases := map[string]func(b []byte, lastWrite int64) []byte{
		"partial record": func(b []byte, w int64) []byte {
			end := int64(len(bytes.TrimRight(b, "\x00")))
			return append(b[:end:end], 40, 0, 0, 0, 1, 2, 3)
		},
		"garbage after": func(b []byte, w int64) []byte {
			end := int64(len(bytes.TrimRight(b, "\x00")))
			copy(b[end:], "this is not a record at all, just bytes")
			return b
		},
		"first record of the last write damaged": func(b []byte, w int64) []byte {
			b[w+recHeader+20] ^= 0xff
			return b
		},
	}
	for name, damage := range cases {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			s := open(t, dir, 0)
			store(t, s, 1, 40, 1, 10)
			w := s.tail().end // where the last write begins
			store(t, s, 41, 50, 1, 10)
			_ = s.Close()
			p, b := tailFile(t, dir)
			if err := os.WriteFile(p, damage(b, w), 0o600); err != nil {
				t.Fatal(err)
			}
			s = open(t, dir, 0)
			last := uint64(50)
			if name == "first record of the last write damaged" {
				last = 40
			}
			check(t, s, 1, last, term1)
			store(t, s, last+1, 60, 1, 5)
			_ = s.Close()
			s = open(t, dir, 0)
			check(t, s, 1, 60, term1)
		})
	}
}

// Damage to data an fsync covered — a later write follows it, or it is in a sealed segment
// — refuses the log.
func TestDamageRefused(t *testing.T) {
	dir := t.TempDir()
	s := open(t, dir, 0)
	store(t, s, 1, 40, 1, 10)
	_ = s.Close()
	p, b := tailFile(t, dir)
	b[headerSize+recHeader+30] ^= 0x01 // entry 1, written long before the last write
	if err := os.WriteFile(p, b, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := Open(dir, Options{Logger: quiet}); !errors.Is(err, ErrDamaged) {
		t.Fatalf("Open of a damaged log: %v", err)
	}

	dir = t.TempDir()
	s = open(t, dir, 4<<10)
	store(t, s, 1, 300, 1, 10)
	_ = s.Close()
	segs, _ := filepath.Glob(filepath.Join(dir, "*.seg"))
	b, _ = os.ReadFile(segs[0])
	b[len(bytes.TrimRight(b, "\x00"))-1] ^= 0x01 // the last record of a sealed segment
	if err := os.WriteFile(segs[0], b, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := Open(dir, Options{Logger: quiet}); !errors.Is(err, ErrDamaged) {
		t.Fatalf("Open of a damaged sealed segment: %v", err)
	}
}

// A bit flipped in the newest segment's nonce fails every record's checksum: that is
// damage to the fsynced header, not a torn tail, and the log is refused (the segment's
// fsynced entries were cut whole, and the node voted without them).
func TestDamagedNonceRefused(t *testing.T) {
	dir := t.TempDir()
	s := open(t, dir, 0)
	store(t, s, 1, 40, 1, 10)
	_ = s.Close()
	p, b := tailFile(t, dir)
	b[10] ^= 0x01 // in the nonce
	if err := os.WriteFile(p, b, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := Open(dir, Options{Logger: quiet}); !errors.Is(err, ErrDamaged) {
		t.Fatalf("Open of a segment with a damaged nonce: %v", err)
	}
}

// Recovery's search for a later write past a torn tail stays linear in the torn bytes:
// it summed a CRC at every offset whose bytes read as a plausible record length, and a
// torn write of 4 MiB of small little-endian integers (client data) took ~40 s to open.
func TestTornTailScanIsLinear(t *testing.T) {
	dir := t.TempDir()
	s := open(t, dir, 0)
	store(t, s, 1, 10, 1, 10)
	w := s.tail().end
	data := bytes.Repeat([]byte{0, 0, 0x10, 0}, 2<<20) // 8 MiB, each 4 bytes read as 1 MiB
	if err := s.StoreLogs([]*raft.Log{{Index: 11, Term: 1, Type: raft.LogCommand, Data: data}}); err != nil {
		t.Fatal(err)
	}
	_ = s.Close()
	p, b := tailFile(t, dir)
	b[w+4] ^= 0xff // the last write's checksum: torn
	if err := os.WriteFile(p, b, 0o600); err != nil {
		t.Fatal(err)
	}
	// About 1.5 s under the race detector, 0.1 s without; the quadratic search (a CRC over
	// 1 MiB at every offset) took 40 s for 4 MiB, so minutes for 8. The bound leaves room
	// for a loaded machine: with a tenth of a core, 4 MiB took 14 s.
	start := time.Now()
	s = open(t, dir, 0)
	if took := time.Since(start); took > 30*time.Second {
		t.Fatalf("Open took %v", took)
	}
	check(t, s, 1, 10, term1)
}

// A segment whose creation a crash cut short (no header fsynced, nothing written) goes.
func TestTornCreation(t *testing.T) {
	dir := t.TempDir()
	s := open(t, dir, 0)
	store(t, s, 1, 10, 1, 10)
	_ = s.Close()
	if err := os.WriteFile(filepath.Join(dir, segName(11)), make([]byte, 4096), 0o600); err != nil {
		t.Fatal(err)
	}
	s = open(t, dir, 0)
	check(t, s, 1, 10, term1)
	store(t, s, 11, 20, 1, 10)
	check(t, s, 1, 20, term1)
}

// Readers (replication) run beside the writer (raft's loop), compaction included.
func TestConcurrentReaders(t *testing.T) {
	s := open(t, t.TempDir(), 8<<10)
	store(t, s, 1, 10, 1, 10)
	var wg sync.WaitGroup
	stop := make(chan struct{})
	for range 4 {
		wg.Go(func() {
			var e raft.Log
			for {
				select {
				case <-stop:
					return
				default:
				}
				f, _ := s.FirstIndex()
				l, _ := s.LastIndex()
				for i := f; f > 0 && i <= l; i += 7 {
					if err := s.GetLog(i, &e); err != nil && !errors.Is(err, raft.ErrLogNotFound) {
						t.Errorf("GetLog(%d): %v", i, err)
						return
					}
				}
			}
		})
	}
	for i := uint64(11); i < 3000; i += 10 {
		store(t, s, i, i+9, 1, 10)
		if i%500 == 1 {
			if err := s.DeleteRange(1, i-100); err != nil {
				t.Fatal(err)
			}
		}
	}
	close(stop)
	wg.Wait()
}

// Opening never panics, whatever a tail segment holds (FuzzOpen's seed corpus runs in
// make test).
func FuzzOpen(f *testing.F) {
	dir := f.TempDir()
	s, err := Open(dir, Options{Logger: quiet})
	if err != nil {
		f.Fatal(err)
	}
	store(f, s, 1, 5, 1, 2)
	_ = s.Close()
	b, _ := os.ReadFile(filepath.Join(dir, segName(1)))
	b = bytes.TrimRight(b, "\x00")
	f.Add(b)
	f.Add(b[:len(b)-3])
	f.Add(b[:headerSize])
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, data []byte) {
		dir := t.TempDir()
		if err := os.WriteFile(filepath.Join(dir, segName(1)), data, 0o600); err != nil {
			t.Fatal(err)
		}
		s, err := Open(dir, Options{Logger: quiet, NoSync: true})
		if err != nil {
			return
		}
		defer s.Close()
		first, _ := s.FirstIndex()
		last, _ := s.LastIndex()
		var e raft.Log
		for i := first; first > 0 && i <= last; i++ {
			if err := s.GetLog(i, &e); err != nil {
				t.Fatalf("entry %d of an opened log: %v", i, err)
			}
		}
		if err := s.StoreLogs([]*raft.Log{entry(last+1, 1<<40)}); err != nil {
			t.Fatal(err)
		}
	})
}

// A power cut during a write leaves any prefix of it, followed by zeros or by garbage where
// sectors were torn: at every cut point the log opens with every entry acknowledged before
// that write, none after it but a prefix of the write's own, and takes writes again.
func TestPowerLossDuringWrite(t *testing.T) {
	dir := t.TempDir()
	s := open(t, dir, 0)
	store(t, s, 1, 30, 1, 10)
	from := s.tail().end
	store(t, s, 31, 36, 2, 6) // the write the power cut interrupts
	to := s.tail().end
	_ = s.Close()
	p, b := tailFile(t, dir)
	name := filepath.Base(p)
	garbage := bytes.Repeat([]byte{0xA7, 0x13, 0x5C}, int(to-from))
	for cut := from; cut <= to; cut++ {
		for _, torn := range []bool{false, true} {
			d := t.TempDir()
			img := append([]byte(nil), b[:cut]...)
			if torn {
				img = append(img, garbage[:to-cut]...)
			}
			if err := os.WriteFile(filepath.Join(d, name), img, 0o600); err != nil {
				t.Fatal(err)
			}
			s, err := Open(d, Options{Logger: quiet})
			if err != nil {
				t.Fatalf("cut at %d (torn %v): %v", cut, torn, err)
			}
			last, _ := s.LastIndex()
			if last < 30 || last > 36 || cut < to && last == 36 && !torn {
				t.Fatalf("cut at %d (torn %v): last entry %d", cut, torn, last)
			}
			check(t, s, 1, last, func(i uint64) uint64 {
				if i > 30 {
					return 2
				}
				return 1
			})
			if err := s.StoreLogs([]*raft.Log{entry(last+1, 3)}); err != nil {
				t.Fatal(err)
			}
			_ = s.Close()
		}
	}
}
