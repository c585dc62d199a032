package boltstore

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	bolt "go.etcd.io/bbolt"

	"github.com/starling-io/starling/stores"
)

// swapDB reopens s's file under it: read-only if ro, so that every write transaction
// fails as with an I/O error.
func swapDB(t *testing.T, s *Store, path string, ro bool) {
	t.Helper()
	if err := s.db.Close(); err != nil {
		t.Fatal(err)
	}
	o := &bolt.Options{NoSync: true, FreelistType: bolt.FreelistMapType}
	if ro {
		o.OpenFile = func(name string, _ int, mode os.FileMode) (*os.File, error) {
			return os.OpenFile(name, os.O_RDONLY, mode)
		}
	}
	db, err := bolt.Open(path, 0o600, o)
	if err != nil {
		t.Fatal(err)
	}
	s.db, s.c.db = db, db
	for _, ch := range s.channels {
		ch.msgs.db = db
	}
}

// A DeleteChannel whose transaction fails leaves the channel as the file has it: in
// place with its messages, so that the name is not re-created over the old buckets
// (sequences used again, the old messages back in the new channel after a restart).
func TestFailedDeleteChannelKeepsChannel(t *testing.T) {
	opts := Options{NoSync: true}
	s, path, ch := openFoo(t, opts, 1)
	appendSync(t, ch.Msgs, 1, 5)
	swapDB(t, s, path, true)
	if err := s.DeleteChannel("foo"); err == nil {
		t.Fatal("DeleteChannel on a read-only file succeeded")
	}
	swapDB(t, s, path, false)
	if _, err := s.CreateChannel("foo", 2); !errors.Is(err, stores.ErrExists) {
		t.Fatalf("CreateChannel after a failed DeleteChannel: %v, want ErrExists", err)
	}
	checkRange(t, ch.Msgs, 1, 5)

	if err := s.DeleteChannel("foo"); err != nil {
		t.Fatal(err)
	}
	ch2, err := s.CreateChannel("foo", 2)
	if err != nil {
		t.Fatal(err)
	}
	if got := ch2.Msgs.State(); got.First != 6 || got.Last != 5 {
		t.Fatalf("re-created State = %+v, want 6..5", got)
	}
	appendSync(t, ch2.Msgs, 6, 1)
	s.crash()
	s = mustOpen(t, path, opts)
	defer s.Close()
	checkRange(t, s.channels["foo"].msgs, 6, 6)
}

// A tomb whose value is not a sequence is damage, reported as such: skipped, it let the
// re-created channel start again at sequence 1, under sequences its subscribers had seen.
func TestDamagedTombRefused(t *testing.T) {
	path := filepath.Join(t.TempDir(), "db")
	s, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	ch, err := s.CreateChannel("foo", 1)
	if err != nil {
		t.Fatal(err)
	}
	if err := ch.Msgs.Append(batchAt(1, 5)); err != nil {
		t.Fatal(err)
	}
	if err := ch.Msgs.Sync(); err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteChannel("foo"); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	db, err := bolt.Open(path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	err = db.Update(func(tx *bolt.Tx) error {
		return tx.Bucket([]byte(bktTombs)).Put([]byte("foo"), []byte{0, 0, 5})
	})
	db.Close()
	if err != nil {
		t.Fatal(err)
	}
	s, err = Open(path, Options{})
	if err == nil {
		s.Close()
		t.Fatal("Open accepted a damaged tomb")
	}
	if !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), `"foo"`) {
		t.Fatalf("Open: %v, want ErrCorrupt naming the channel", err)
	}
}

// A channel is live (a record in chans) or deleted (a tomb), never both: CreateChannel
// removes the tomb in the transaction that writes the record, DeleteChannel the other way
// round. Open used to accept both, and deleting the channel then overwrote the tomb with the
// channel's own Last: a re-created channel handed out again the sequences the tomb held.
func TestLiveChannelWithTombIsCorrupt(t *testing.T) {
	s, path, ch := openFoo(t, Options{NoSync: true}, 1)
	appendSync(t, ch.Msgs, 1, 5)
	editFile(t, s, path, func(tx *bolt.Tx) error {
		return tx.Bucket([]byte(bktTombs)).Put([]byte("foo"), u64(100))
	})
	s, err := Open(path, Options{NoSync: true})
	if err == nil {
		var last uint64
		if err := s.DeleteChannel("foo"); err == nil {
			if ch, err := s.CreateChannel("foo", 2); err == nil {
				last = ch.Msgs.State().Last
			}
		}
		s.Close()
		t.Fatalf("Open accepted a live channel with a tomb (re-created at last %d)", last)
	}
	if !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), `"foo"`) {
		t.Fatalf("Open = %v, want ErrCorrupt naming the channel", err)
	}
}
