package boltstore

import (
	"encoding/binary"
	"path/filepath"
	"strconv"
	"testing"

	bolt "go.etcd.io/bbolt"

	"github.com/starling-io/starling/stores"
	"github.com/starling-io/starling/stores/storetest"
)

func open(opts Options) storetest.OpenFunc {
	return func(tb testing.TB, dir string) stores.Store {
		s, err := Open(filepath.Join(dir, "starling.bolt"), opts)
		if err != nil {
			tb.Fatal(err)
		}
		return s
	}
}

func crash(s stores.Store) { s.(*Store).crash() }

func TestSuite(t *testing.T) {
	storetest.Run(t, open(Options{NoSync: true}), storetest.Caps{Durable: true, Crash: crash})
}

// TestSuiteFsync runs the suite with real fsyncs, as in production.
func TestSuiteFsync(t *testing.T) {
	if testing.Short() {
		t.Skip("fsync suite skipped in -short")
	}
	storetest.Run(t, open(Options{}), storetest.Caps{Durable: true, Crash: crash})
}

func BenchmarkStore(b *testing.B) {
	storetest.Bench(b, open(Options{}))
}

// keysOnDisk counts the committed messages of channel name that are not deleted (a block
// keeps the messages that limits deleted while some of its own are still live), and the
// keys (blocks or, per-key layout, messages) that hold them.
func keysOnDisk(t *testing.T, s *Store, name string) (n int, first, last uint64) {
	n, first, last, _ = diskLayout(t, s, name)
	return n, first, last
}

func diskLayout(t *testing.T, s *Store, name string) (n int, first, last uint64, keys int) {
	t.Helper()
	err := s.db.View(func(tx *bolt.Tx) error {
		b := tx.Bucket([]byte(preMsgs + name))
		if b == nil {
			t.Fatalf("no bucket for %q", name)
		}
		_, _, dead, err := chanMeta(tx.Bucket([]byte(bktChans)).Get([]byte(name)))
		if err != nil {
			return err
		}
		count := func(seq uint64) {
			if seq <= dead {
				return
			}
			if n == 0 {
				first = seq
			}
			last = seq
			n++
		}
		return b.ForEach(func(k, v []byte) error {
			keys++
			seq := binary.BigEndian.Uint64(k)
			if v != nil {
				count(seq)
				return nil
			}
			blk, sums := blockOf(b.Bucket(k))
			for off := uint32(0); int(off) < len(blk); seq++ {
				_, _, next, ok := record(blk, off, sums)
				if !ok {
					t.Fatalf("block %x: bad record at %d", k, off)
				}
				count(seq)
				off = next
			}
			return nil
		})
	})
	if err != nil {
		t.Fatal(err)
	}
	return n, first, last, keys
}

func batchAt(first uint64, n int) []stores.Msg {
	b := make([]stores.Msg, n)
	for i := range b {
		b[i] = stores.Msg{Seq: first + uint64(i), Time: int64(first) + int64(i), Data: []byte("payload")}
	}
	return b
}

// TestDiskFollowsLimits: removals by limits and Expire reach the file at Sync, messages
// removed before their first Sync never reach it, and unsynced appends are not on disk.
func TestDiskFollowsLimits(t *testing.T) {
	s, err := Open(filepath.Join(t.TempDir(), "db"), Options{NoSync: true,
		Limits: &stores.LimitsSet{Global: stores.Limits{MaxMsgs: 10}}})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ch, err := s.CreateChannel("foo", 7)
	if err != nil {
		t.Fatal(err)
	}
	for seq := uint64(1); seq <= 1000; seq += 25 {
		if err := ch.Msgs.Append(batchAt(seq, 25)); err != nil {
			t.Fatal(err)
		}
		if n, _, _ := keysOnDisk(t, s, "foo"); seq > 1 && n != 10 {
			t.Fatalf("before Sync at %d: %d keys on disk, want 10", seq, n)
		}
		var m stores.Msg
		if err := ch.Msgs.Load(seq+24, &m); err != nil || m.Seq != seq+24 {
			t.Fatalf("Load of unsynced %d = %+v, %v", seq+24, m, err)
		}
		if err := ch.Msgs.Sync(); err != nil {
			t.Fatal(err)
		}
		// One block per Sync of 25, deleted once all of it is beyond MaxMsgs.
		if n, first, last, keys := diskLayout(t, s, "foo"); n != 10 || first != seq+15 || last != seq+24 || keys != 1 {
			t.Fatalf("after Sync at %d: %d messages %d..%d in %d keys", seq, n, first, last, keys)
		}
	}
	ch.Msgs.SetLimits(stores.Limits{MaxAge: 1})
	if n, _ := ch.Msgs.Expire(1 << 40); n != 10 {
		t.Fatalf("Expire removed %d", n)
	}
	if err := ch.Msgs.Sync(); err != nil {
		t.Fatal(err)
	}
	if n, _, _ := keysOnDisk(t, s, "foo"); n != 0 {
		t.Fatalf("after Expire: %d keys on disk", n)
	}
	// An emptied channel resuming later keeps Last across a crash once synced.
	if err := ch.Msgs.Append(batchAt(5000, 3)); err != nil {
		t.Fatal(err)
	}
	if err := ch.Msgs.Sync(); err != nil {
		t.Fatal(err)
	}
	if err := ch.Msgs.Append(batchAt(5003, 3)); err != nil { // lost in the crash
		t.Fatal(err)
	}
	path := s.db.Path()
	s.crash()
	s, err = Open(path, Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	rs, err := s.Recover()
	if err != nil || rs != nil {
		t.Fatalf("Recover before Init = %v, %v", rs, err)
	}
	rc := s.channels["foo"]
	if got := rc.msgs.State(); got.First != 5000 || got.Last != 5002 || got.Msgs != 3 || rc.ch.ID != 7 {
		t.Fatalf("after crash: id %d State %+v", rc.ch.ID, got)
	}
}

// BenchmarkOpen measures recovery (Open, which rebuilds every channel's index by one
// cursor scan) of 100 channels × 10,000 messages of 128 B.
func BenchmarkOpen(b *testing.B) {
	path := filepath.Join(b.TempDir(), "db")
	s, err := Open(path, Options{NoSync: true, Limits: &stores.LimitsSet{Global: stores.Limits{}}})
	if err != nil {
		b.Fatal(err)
	}
	batch := make([]stores.Msg, 1000)
	data := make([]byte, 128)
	for c := 0; c < 100; c++ {
		ch, err := s.CreateChannel("chan."+strconv.Itoa(c), uint64(c+1))
		if err != nil {
			b.Fatal(err)
		}
		for seq := uint64(1); seq <= 10_000; seq += uint64(len(batch)) {
			for i := range batch {
				batch[i] = stores.Msg{Seq: seq + uint64(i), Time: int64(seq) + int64(i), Data: data}
			}
			if err := ch.Msgs.Append(batch); err != nil {
				b.Fatal(err)
			}
		}
		if err := ch.Msgs.Sync(); err != nil {
			b.Fatal(err)
		}
	}
	if err := s.Close(); err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	for b.Loop() {
		s, err := Open(path, Options{})
		if err != nil {
			b.Fatal(err)
		}
		if len(s.channels) != 100 {
			b.Fatalf("%d channels", len(s.channels))
		}
		s.Close()
	}
	b.ReportMetric(float64(b.Elapsed().Milliseconds())/float64(b.N), "ms/open")
}
