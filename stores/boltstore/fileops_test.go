//go:build linux

package boltstore

import (
	"errors"
	"os"
	"path/filepath"
	"syscall"
	"testing"

	bolt "go.etcd.io/bbolt"
)

// countingOps are bolt.FileOps that count their calls and make the ordinary ones, or fail
// with fail once failing is set.
type countingOps struct {
	sync, size, write int
	failing           string // "sync", "write" or ""
	fail              error
}

func (c *countingOps) ops() bolt.FileOps {
	return bolt.FileOps{
		Fdatasync: func(f *os.File) error {
			c.sync++
			if c.failing == "sync" {
				return c.fail
			}
			return syscall.Fdatasync(int(f.Fd()))
		},
		Size: func(f *os.File) (int64, error) {
			c.size++
			fi, err := f.Stat()
			if err != nil {
				return 0, err
			}
			return fi.Size(), nil
		},
		WriteAt: func(f *os.File, b []byte, off int64) (int, error) {
			c.write++
			if c.failing == "write" {
				return 0, c.fail
			}
			return f.WriteAt(b, off)
		},
	}
}

// TestBoltFileOps: the vendored bbolt's FileOps patch (third_party/bbolt/README.md) — a
// commit's pwrites, fdatasync and the size check of a growing file go through the hooks,
// and a hook's error fails the commit with that error, as the ordinary call's did.
func TestBoltFileOps(t *testing.T) {
	var c countingOps
	db, err := bolt.Open(filepath.Join(t.TempDir(), "db"), 0o600, &bolt.Options{FileOps: c.ops()})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if c.write == 0 || c.sync == 0 {
		t.Fatalf("initialising the file: %d writes, %d syncs through the hooks", c.write, c.sync)
	}
	put := func(n int) error {
		return db.Update(func(tx *bolt.Tx) error {
			b, err := tx.CreateBucketIfNotExists([]byte("b"))
			if err != nil {
				return err
			}
			for i := range n {
				if err := b.Put([]byte{byte(i >> 8), byte(i)}, make([]byte, 1024)); err != nil {
					return err
				}
			}
			return nil
		})
	}
	c = countingOps{}
	if err := put(1000); err != nil { // ~1 MiB: grows the file past its first size
		t.Fatal(err)
	}
	if c.write == 0 || c.sync == 0 || c.size == 0 {
		t.Fatalf("a growing commit: %d writes, %d syncs, %d size checks through the hooks", c.write, c.sync, c.size)
	}
	for _, what := range []string{"write", "sync"} {
		c.failing, c.fail = what, &os.PathError{Op: what, Path: db.Path(), Err: syscall.EIO}
		err := put(10)
		var errno syscall.Errno
		if !errors.Is(err, syscall.EIO) || !errors.As(err, &errno) {
			t.Fatalf("a commit whose %s fails: %v, want the hook's EIO", what, err)
		}
	}
	c.failing = ""
	if err := put(10); err != nil {
		t.Fatalf("after the failures: %v", err)
	}
}
