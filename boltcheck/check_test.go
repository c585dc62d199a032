package boltcheck

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	bolt "go.etcd.io/bbolt"
)

// TestFile: a missing file and a fresh bbolt file pass; a zero-filled one (a creation torn
// before its first fsync) is truncated so bbolt initialises it; a damaged one is a
// *DamageError naming the file and the page. (The stores' and the raft log's own tests
// damage files page by page: boltstore's TestGarbledFileNeverCrashes, raftlog's
// TestCheckLogFileDamagedPages.)
func TestFile(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "x.db")
	if err := File(p); err != nil {
		t.Fatalf("missing file: %v", err)
	}
	db, err := bolt.Open(p, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Update(func(tx *bolt.Tx) error {
		b, err := tx.CreateBucket([]byte("b"))
		if err != nil {
			return err
		}
		return b.Put([]byte("k"), []byte("v"))
	}); err != nil {
		t.Fatal(err)
	}
	_ = db.Close()
	if err := File(p); err != nil {
		t.Fatalf("fresh file: %v", err)
	}
	clean, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	r, err := Inspect(clean)
	if err != nil || r.PageSize == 0 || !r.Live(r.Root) || r.Live(r.HWM) {
		t.Fatalf("Inspect: %+v, %v", r, err)
	}
	// The root page names another page: damage, named.
	b := append([]byte(nil), clean...)
	b[int(r.Root)*r.PageSize] ^= 0xFF
	if err := os.WriteFile(p, b, 0o600); err != nil {
		t.Fatal(err)
	}
	err = File(p)
	var d *DamageError
	if !errors.As(err, &d) || !errors.Is(err, ErrDamaged) || d.Path != p || !strings.Contains(err.Error(), "page") {
		t.Fatalf("damaged root page: %v", err)
	}
	if err := os.WriteFile(p, make([]byte, 3*4096), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := File(p); err != nil {
		t.Fatalf("zero-filled file: %v", err)
	}
	if fi, err := os.Stat(p); err != nil || fi.Size() != 0 {
		t.Fatalf("zero-filled file not truncated: %v %v", fi.Size(), err)
	}
}

// A zero-filled file larger than what bbolt's creation writes (four pages, fsynced before
// Open returns) held commits: it is damage, left as it is — truncated, it opened as a new
// store (or an empty raft log) and everything acknowledged in it was silently gone.
func TestZeroFilledCommittedFileIsDamage(t *testing.T) {
	p := filepath.Join(t.TempDir(), "x.db")
	size := 4*os.Getpagesize() + 1
	if err := os.WriteFile(p, make([]byte, size), 0o600); err != nil {
		t.Fatal(err)
	}
	err := File(p)
	var d *DamageError
	if !errors.As(err, &d) || d.Path != p || !strings.Contains(err.Error(), "zero") {
		t.Fatalf("zero-filled file of %d bytes: %v", size, err)
	}
	if fi, err := os.Stat(p); err != nil || fi.Size() != int64(size) {
		t.Fatalf("zero-filled file changed: %v %v", fi.Size(), err)
	}
}

// The zero-file limit rests on bbolt's sizes: a creation writes four pages; a file that
// held a commit has at least committedMin bytes, and more than four pages, whatever its
// page size.
func TestCommittedFileSize(t *testing.T) {
	for _, psz := range []int{1024, 4096, 8192, 16384, 65536} {
		p := filepath.Join(t.TempDir(), "x.db")
		db, err := bolt.Open(p, 0o600, &bolt.Options{PageSize: psz})
		if err != nil {
			t.Fatal(err)
		}
		if fi, err := os.Stat(p); err != nil || fi.Size() != 4*int64(psz) {
			t.Fatalf("page size %d: created file of %d bytes (%v)", psz, fi.Size(), err)
		}
		if err := db.Update(func(tx *bolt.Tx) error { _, err := tx.CreateBucket([]byte("b")); return err }); err != nil {
			t.Fatal(err)
		}
		_ = db.Close()
		if fi, err := os.Stat(p); err != nil || fi.Size() < committedMin || fi.Size() <= 4*int64(psz) {
			t.Fatalf("page size %d: file of %d bytes after a commit (%v)", psz, fi.Size(), err)
		}
	}
}

// A zero-filled file has no page size to read; the limit used to be four pages of this
// host's size, so on a host of 64 KiB pages a zeroed 32 KiB file — what a database of 4 KiB
// pages is after its first commit — passed for a torn creation: truncated, its commits
// gone without a word. Now it is damage on any host; on a host of 4 KiB pages the limit
// stays 16 KiB.
func TestZeroFilledLimitIsNotTheHostPageSize(t *testing.T) {
	defer func(f func() int) { hostPageSize = f }(hostPageSize)
	for _, c := range []struct {
		host  int
		size  int
		fresh bool
	}{{65536, 32 << 10, false}, {65536, 256 << 10, false}, {65536, 16 << 10, true},
		{4096, 16 << 10, true}, {4096, 16<<10 + 1, false}, {16384, 32<<10 - 1, true}} {
		hostPageSize = func() int { return c.host }
		p := filepath.Join(t.TempDir(), "x.db")
		if err := os.WriteFile(p, make([]byte, c.size), 0o600); err != nil {
			t.Fatal(err)
		}
		err := File(p)
		fi, serr := os.Stat(p)
		if serr != nil {
			t.Fatal(serr)
		}
		if c.fresh && (err != nil || fi.Size() != 0) || !c.fresh && (!errors.Is(err, ErrDamaged) || fi.Size() != int64(c.size)) {
			t.Fatalf("host pages of %d, zero-filled file of %d bytes: %v, now %d bytes; want fresh %v",
				c.host, c.size, err, fi.Size(), c.fresh)
		}
	}
}
