package boltstore

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	bolt "go.etcd.io/bbolt"
)

// A bbolt file that is not a Starling store (another program's, or the raft log's) is
// refused, untouched: Open used to create the store's buckets in it, and the server then
// initialised and served an empty store inside another program's file.
func TestForeignBoltFileRefused(t *testing.T) {
	path := filepath.Join(t.TempDir(), "starling.db")
	db, err := bolt.Open(path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	err = db.Update(func(tx *bolt.Tx) error {
		b, err := tx.CreateBucket([]byte("logs"))
		if err != nil {
			return err
		}
		return b.Put([]byte("k"), []byte("v"))
	})
	db.Close()
	if err != nil {
		t.Fatal(err)
	}
	before, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	s, err := Open(path, Options{NoSync: true})
	if err == nil {
		s.Close()
		t.Fatal("Open accepted a foreign bbolt file")
	}
	if !errors.Is(err, ErrForeign) || !strings.Contains(err.Error(), `"logs"`) || !strings.Contains(err.Error(), path) {
		t.Fatalf("Open = %v, want ErrForeign naming the file and the bucket", err)
	}
	if after, err := os.ReadFile(path); err != nil || !bytes.Equal(before, after) {
		t.Fatalf("the refused file changed (%v)", err)
	}
}

// Beside the store's own buckets, a bucket it never creates is damage (a garbled name, as
// TestGarbledFileNeverCrashes makes), not a foreign file.
func TestUnknownBucketBesideOwnIsCorrupt(t *testing.T) {
	s, path, _ := openFoo(t, Options{NoSync: true}, 1)
	editFile(t, s, path, func(tx *bolt.Tx) error {
		_, err := tx.CreateBucket([]byte("tomb\x97"))
		return err
	})
	s, err := Open(path, Options{NoSync: true})
	if err == nil {
		s.Close()
		t.Fatal("Open accepted an unknown bucket")
	}
	if !errors.Is(err, ErrCorrupt) || errors.Is(err, ErrForeign) || !strings.Contains(err.Error(), `"tomb\x97"`) {
		t.Fatalf("Open = %v, want ErrCorrupt naming the bucket", err)
	}
}
