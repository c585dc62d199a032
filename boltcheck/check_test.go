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
	if err := os.WriteFile(p, make([]byte, 3*r.PageSize), 0o600); err != nil {
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
