package boltstore

import (
	"encoding/binary"
	"errors"
	"fmt"
	"path/filepath"
	"testing"

	bolt "go.etcd.io/bbolt"

	"github.com/starling-io/starling/stores"
)

func blockPayload(seq uint64) []byte { return []byte(fmt.Sprintf("msg-%d", seq)) }

func appendSync(t *testing.T, ms stores.MsgStore, first uint64, n int) {
	t.Helper()
	batch := make([]stores.Msg, n)
	for i := range batch {
		q := first + uint64(i)
		batch[i] = stores.Msg{Seq: q, Time: int64(q), Reply: "r", Data: blockPayload(q)}
	}
	if err := ms.Append(batch); err != nil {
		t.Fatal(err)
	}
	if err := ms.Sync(); err != nil {
		t.Fatal(err)
	}
}

// checkRange requires ms to hold exactly first..last, each readable, and nothing either side.
func checkRange(t *testing.T, ms stores.MsgStore, first, last uint64) {
	t.Helper()
	if st := ms.State(); st.First != first || st.Last != last || st.Msgs != last-first+1 {
		t.Fatalf("state %+v, want %d..%d", st, first, last)
	}
	var m stores.Msg
	for q := first; q <= last; q++ {
		if err := ms.Load(q, &m); err != nil || m.Seq != q || m.Time != int64(q) || m.Reply != "r" || string(m.Data) != string(blockPayload(q)) {
			t.Fatalf("message %d: %+v %v", q, m, err)
		}
	}
	if first > 1 {
		if err := ms.Load(first-1, &m); !errors.Is(err, stores.ErrNotFound) {
			t.Fatalf("message %d before first: %v", first-1, err)
		}
	}
}

// A commit writes its messages as one block; limits delete a block only once all of it
// is gone, and the messages they deleted from a block still on disk stay deleted across a
// crash (chans records through which sequence).
func TestBlockPartlyDeletedSurvivesCrash(t *testing.T) {
	path := filepath.Join(t.TempDir(), "db")
	limits := &stores.LimitsSet{Global: stores.Limits{MaxMsgs: 30}}
	s, err := Open(path, Options{NoSync: true, Limits: limits})
	if err != nil {
		t.Fatal(err)
	}
	ch, err := s.CreateChannel("foo", 1)
	if err != nil {
		t.Fatal(err)
	}
	appendSync(t, ch.Msgs, 1, 25)
	appendSync(t, ch.Msgs, 26, 25) // keeps 21..50: block 1 holds 21..25 live
	if n, first, last, keys := diskLayout(t, s, "foo"); n != 30 || first != 21 || last != 50 || keys != 2 {
		t.Fatalf("on disk: %d messages %d..%d in %d keys", n, first, last, keys)
	}
	checkRange(t, ch.Msgs, 21, 50)
	s.crash()

	// Reopened without limits: only the file says that 1..20 are gone.
	s, err = Open(path, Options{NoSync: true, Limits: &stores.LimitsSet{}})
	if err != nil {
		t.Fatal(err)
	}
	ms := s.channels["foo"].msgs
	checkRange(t, ms, 21, 50)
	ms.SetLimits(stores.Limits{MaxMsgs: 30})
	appendSync(t, ms, 51, 10) // keeps 31..60: block 1 goes
	if n, first, last, keys := diskLayout(t, s, "foo"); n != 30 || first != 31 || last != 60 || keys != 2 {
		t.Fatalf("on disk: %d messages %d..%d in %d keys", n, first, last, keys)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s, err = Open(path, Options{NoSync: true, Limits: limits})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	checkRange(t, s.channels["foo"].msgs, 31, 60)
}

// A commit larger than blockMax is split into blocks; each message is read at its offset.
func TestBlocksSplitAtBlockMax(t *testing.T) {
	defer func(m int) { blockMax = m }(blockMax)
	blockMax = 100 // a record here is 4+12+1+len("msg-NN") bytes: 4 or 5 to a block
	path := filepath.Join(t.TempDir(), "db")
	s, err := Open(path, Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	ch, err := s.CreateChannel("foo", 1)
	if err != nil {
		t.Fatal(err)
	}
	appendSync(t, ch.Msgs, 1, 40)
	if n, _, _, keys := diskLayout(t, s, "foo"); n != 40 || keys < 8 || keys > 10 {
		t.Fatalf("on disk: %d messages in %d keys", n, keys)
	}
	checkRange(t, ch.Msgs, 1, 40)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s, err = Open(path, Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	checkRange(t, s.channels["foo"].msgs, 1, 40)
}

// A file written by an earlier version — one key per message, a 16-byte channel record —
// opens with every message; new messages go in blocks after them, and limits delete the
// old keys and the blocks alike.
func TestPerKeyLayoutStillReads(t *testing.T) {
	path := filepath.Join(t.TempDir(), "db")
	s, err := Open(path, Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.CreateChannel("foo", 3); err != nil {
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
		b := tx.Bucket([]byte(preMsgs + "foo"))
		for q := uint64(1); q <= 20; q++ {
			m := stores.Msg{Seq: q, Time: int64(q), Reply: "r", Data: blockPayload(q)}
			if err := b.Put(u64(q), appendMsg(nil, &m)); err != nil {
				return err
			}
		}
		return tx.Bucket([]byte(bktChans)).Put([]byte("foo"), binary.BigEndian.AppendUint64(u64(3), 20))
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}

	limits := &stores.LimitsSet{Global: stores.Limits{MaxMsgs: 25}}
	s, err = Open(path, Options{NoSync: true, Limits: limits})
	if err != nil {
		t.Fatal(err)
	}
	ms := s.channels["foo"].msgs
	checkRange(t, ms, 1, 20)
	appendSync(t, ms, 21, 10) // keeps 6..30: keys 1..5 go, 6..20 stay, then a block
	if n, first, last, keys := diskLayout(t, s, "foo"); n != 25 || first != 6 || last != 30 || keys != 16 {
		t.Fatalf("on disk: %d messages %d..%d in %d keys", n, first, last, keys)
	}
	checkRange(t, ms, 6, 30)
	s.crash()
	s, err = Open(path, Options{NoSync: true, Limits: limits})
	if err != nil {
		t.Fatal(err)
	}
	ms = s.channels["foo"].msgs
	checkRange(t, ms, 6, 30)
	appendSync(t, ms, 31, 20) // keeps 26..50: every old key goes, the first block keeps 26..30
	if n, first, last, keys := diskLayout(t, s, "foo"); n != 25 || first != 26 || last != 50 || keys != 2 {
		t.Fatalf("on disk: %d messages %d..%d in %d keys", n, first, last, keys)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s, err = Open(path, Options{NoSync: true, Limits: limits})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	checkRange(t, s.channels["foo"].msgs, 26, 50)
}

// A block that holds only deleted messages cannot come from a commit: it is damage.
func TestBlockOfDeletedMessagesIsCorrupt(t *testing.T) {
	path := filepath.Join(t.TempDir(), "db")
	s, err := Open(path, Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	ch, err := s.CreateChannel("foo", 1)
	if err != nil {
		t.Fatal(err)
	}
	appendSync(t, ch.Msgs, 1, 5)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	db, err := bolt.Open(path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	err = db.Update(func(tx *bolt.Tx) error {
		meta := append(binary.BigEndian.AppendUint64(u64(1), 5), u64(5)...)
		return tx.Bucket([]byte(bktChans)).Put([]byte("foo"), meta)
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	if s, err := Open(path, Options{NoSync: true}); !errors.Is(err, ErrCorrupt) {
		if s != nil {
			s.Close()
		}
		t.Fatalf("Open = %v, want ErrCorrupt", err)
	}
}
