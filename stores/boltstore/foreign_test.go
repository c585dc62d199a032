package boltstore

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	bolt "go.etcd.io/bbolt"

	"github.com/starling-io/starling/stores"
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

// Open creates the four top-level buckets together in one transaction, and nothing deletes
// them: a file holding some but not all lost one. Open used to create the missing one
// empty — a lost tombs bucket let a re-created channel reuse acknowledged sequences, a
// lost meta bucket made the server initialise the store again under a new identity.
func TestMissingTopBucketIsCorrupt(t *testing.T) {
	for _, gone := range []string{bktMeta, bktClients, bktChans, bktTombs} {
		t.Run(gone, func(t *testing.T) {
			s, path, ch := openFoo(t, Options{NoSync: true}, 1)
			if err := s.Init(stores.ServerInfo{ClusterID: "c", NodeID: "n"}); err != nil {
				t.Fatal(err)
			}
			appendSync(t, ch.Msgs, 1, 5)
			if err := s.DeleteChannel("foo"); err != nil {
				t.Fatal(err)
			}
			editFile(t, s, path, func(tx *bolt.Tx) error { return tx.DeleteBucket([]byte(gone)) })
			s, err := Open(path, Options{NoSync: true})
			if err == nil {
				ch, cerr := s.CreateChannel("foo", 2)
				var last uint64
				if cerr == nil {
					last = ch.Msgs.State().Last
				}
				s.Close()
				t.Fatalf("Open accepted a file without bucket %q (foo re-created at last %d, want 5)", gone, last)
			}
			if !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), `"`+gone+`"`) {
				t.Fatalf("Open = %v, want ErrCorrupt naming bucket %q", err, gone)
			}
		})
	}
}
