//go:build linux

package boltstore

import (
	"bytes"
	"encoding/binary"
	"os"
	"path/filepath"
	"runtime"
	"syscall"
	"testing"

	bolt "go.etcd.io/bbolt"
)

// TestBoltReusesRunBuffers: the vendored bbolt's run-buffer patch (third_party/bbolt/README.md)
// — a commit that writes a value of many pages (a block) takes its page buffer from the ones
// earlier commits used instead of allocating it, and a reused buffer holds nothing of what it
// held before: the run written holds the new value, and zeros after it, as a new buffer would;
// so does every run written (values, and a freelist of two pages written into a buffer that
// held a value). Every value reads back right, before and after reopening the file.
func TestBoltReusesRunBuffers(t *testing.T) {
	// The page size is fixed: the freelist and allocation figures below are 4 KiB pages'
	// (bbolt takes the OS's, 16 or 64 KiB on some arm64 systems).
	const pageSize = 4096
	path := filepath.Join(t.TempDir(), "db")
	type write struct {
		off int64
		b   []byte
	}
	var writes []write // runs of more than one page, as written while capturing
	capturing := false // from the first commit on (not Open's initial pages)
	ops := bolt.FileOps{
		WriteAt: func(f *os.File, b []byte, off int64) (int, error) {
			if capturing && len(b) > pageSize {
				writes = append(writes, write{off, bytes.Clone(b)})
			}
			return f.WriteAt(b, off)
		},
		Fdatasync: func(f *os.File) error { return syscall.Fdatasync(int(f.Fd())) },
	}
	// A mapping large enough from the start: a remap copies the values a commit holds.
	db, err := bolt.Open(path, 0o600, &bolt.Options{FileOps: ops, InitialMmapSize: 64 << 20, PageSize: pageSize})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = db.Close() }()
	capturing = true
	values := map[string][]byte{}
	put := func(key string, v []byte) {
		t.Helper()
		err := db.Update(func(tx *bolt.Tx) error {
			// A bucket of its own per value, as a block's: its pages hold that value alone.
			b, err := tx.CreateBucket([]byte(key))
			if err != nil {
				return err
			}
			return b.Put([]byte("v"), v)
		})
		if err != nil {
			t.Fatal(err)
		}
		values[key] = v
	}
	filled := func(n int, c byte) []byte { return bytes.Repeat([]byte{c}, n) }

	put("a", filled(300<<10, 0xaa)) // a buffer of 512 KiB, lent, then free
	put("b", filled(200<<10, 0xbb))
	put("c", filled(100<<10+33, 0xcc)) // reuses it: must not carry 0xaa or 0xbb bytes
	last := writes[len(writes)-1].b
	i := bytes.Index(last, values["c"])
	if i < 0 {
		t.Fatalf("the last run written (%d bytes) does not hold value c", len(last))
	}
	if tail := last[i+len(values["c"]):]; len(tail) == 0 || !allZero(tail) {
		t.Fatalf("after value c the run holds %d bytes, want only zeros (and some: the test needs slack)", len(tail))
	}
	if bytes.IndexByte(last, 0xaa) >= 0 || bytes.IndexByte(last, 0xbb) >= 0 {
		t.Fatal("the run written for value c holds bytes of an earlier value")
	}

	// Free ~600 pages: the freelist is then a run of two pages, written into a buffer that
	// held values.
	for i := range 12 {
		put(string(rune('e'+i)), filled(200<<10, 0xee))
	}
	err = db.Update(func(tx *bolt.Tx) error {
		for i := range 12 {
			k := string(rune('e' + i))
			delete(values, k)
			if err := tx.DeleteBucket([]byte(k)); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	put("c2", filled(100<<10+77, 0xc2))
	freelists := 0
	for _, w := range writes {
		end, kind := runDataEnd(t, w.b)
		if kind == "freelist" {
			freelists++
		}
		if !allZero(w.b[end:]) {
			t.Fatalf("the %s run written at %d holds non-zero bytes after its data (%d of %d bytes)", kind, w.off, end, len(w.b))
		}
	}
	if freelists == 0 {
		t.Fatal("no freelist run of more than one page was written: the test needs one")
	}

	// A warmed-up commit of a 200 KiB value allocates far less than the value's pages.
	v := filled(200<<10, 0xdd)
	capturing = false
	var m0, m1 runtime.MemStats
	runtime.ReadMemStats(&m0)
	put("d", v)
	runtime.ReadMemStats(&m1)
	if got := m1.TotalAlloc - m0.TotalAlloc; got > 64<<10 {
		t.Errorf("a commit of a 200 KiB value allocated %d bytes, want its run buffer reused (< 64 KiB)", got)
	}

	// A run larger than the free buffers kept (4 MiB) is made at its size: rounded up to
	// a power of two it would take 8 MiB, never to be reused.
	big := filled(5<<20, 0xee)
	runtime.ReadMemStats(&m0)
	put("e", big)
	runtime.ReadMemStats(&m1)
	if got := m1.TotalAlloc - m0.TotalAlloc; got > 6<<20 {
		t.Errorf("a commit of a 5 MiB value allocated %d bytes, want about its run (< 6 MiB)", got)
	}

	check := func(when string) {
		t.Helper()
		err := db.View(func(tx *bolt.Tx) error {
			for k, want := range values {
				if got := tx.Bucket([]byte(k)).Get([]byte("v")); !bytes.Equal(got, want) {
					t.Errorf("%s: value %s reads back %d bytes, not the %d written", when, k, len(got), len(want))
				}
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	check("before reopening")
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	if db, err = bolt.Open(path, 0o600, nil); err != nil {
		t.Fatal(err)
	}
	check("after reopening")
}

// runDataEnd is where the data of a bbolt page run ends (the page layout of bbolt's
// internal/common: a 16-byte header — id, flags, count, overflow — then 16-byte elements).
func runDataEnd(t *testing.T, b []byte) (int, string) {
	t.Helper()
	flags, count := binary.LittleEndian.Uint16(b[8:]), int(binary.LittleEndian.Uint16(b[10:]))
	switch flags {
	case 0x10: // freelist: page ids of 8 bytes; a count of 0xFFFF is in the first one
		if count == 0xFFFF {
			count = int(binary.LittleEndian.Uint64(b[16:])) + 1
		}
		return 16 + 8*count, "freelist"
	case 0x02, 0x01: // leaf, branch: the last element's key (and value) end the data
		if count == 0 {
			return 16, "empty"
		}
		e := 16 + 16*(count-1)
		if flags == 0x02 {
			pos, ksize, vsize := binary.LittleEndian.Uint32(b[e+4:]), binary.LittleEndian.Uint32(b[e+8:]), binary.LittleEndian.Uint32(b[e+12:])
			return e + int(pos+ksize+vsize), "leaf"
		}
		pos, ksize := binary.LittleEndian.Uint32(b[e:]), binary.LittleEndian.Uint32(b[e+4:])
		return e + int(pos+ksize), "branch"
	}
	t.Fatalf("a run of page type %#x", flags)
	return 0, ""
}

func allZero(b []byte) bool {
	for _, c := range b {
		if c != 0 {
			return false
		}
	}
	return true
}

// TestBoltFreesRunBuffersAtClose: the run buffers a commit used are freed as its transaction
// closes (a large one dropped for the garbage collector), not kept until the next writable
// transaction: after a burst, an idle store held its last commit's buffers, however large.
func TestBoltFreesRunBuffersAtClose(t *testing.T) {
	db, err := bolt.Open(filepath.Join(t.TempDir(), "db"), 0o600, &bolt.Options{InitialMmapSize: 64 << 20})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = db.Close() }()
	var m0, m1 runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&m0)
	err = db.Update(func(tx *bolt.Tx) error {
		b, err := tx.CreateBucket([]byte("k"))
		if err != nil {
			return err
		}
		return b.Put([]byte("v"), bytes.Repeat([]byte{0x5a}, 6<<20))
	})
	if err != nil {
		t.Fatal(err)
	}
	runtime.GC()
	runtime.ReadMemStats(&m1)
	if grew := int64(m1.HeapAlloc) - int64(m0.HeapAlloc); grew > 2<<20 {
		t.Fatalf("the heap holds %d bytes more after a commit of a 6 MiB value: its run buffer was kept", grew)
	}
}
