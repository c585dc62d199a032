package boltstore

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"path/filepath"
	"strings"
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

// wantLayout fails unless name's bucket holds n messages first..last under keys keys.
func wantLayout(t *testing.T, s *Store, name string, n int, first, last uint64, keys int) {
	t.Helper()
	if gn, gfirst, glast, gkeys := diskLayout(t, s, name); gn != n || gfirst != first || glast != last || gkeys != keys {
		t.Fatalf("on disk: %d messages %d..%d in %d keys, want %d %d..%d in %d", gn, gfirst, glast, gkeys, n, first, last, keys)
	}
}

// openFoo opens a new store with opts and creates channel "foo" with ID id in it.
func openFoo(t *testing.T, opts Options, id uint64) (s *Store, path string, ch *stores.Channel) {
	t.Helper()
	path = filepath.Join(t.TempDir(), "db")
	s, err := Open(path, opts)
	if err != nil {
		t.Fatal(err)
	}
	if ch, err = s.CreateChannel("foo", id); err != nil {
		t.Fatal(err)
	}
	return s, path, ch
}

// editFile closes s cleanly and changes its file behind the store's back with edit.
func editFile(t *testing.T, s *Store, path string, edit func(tx *bolt.Tx) error) {
	t.Helper()
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	db, err := bolt.Open(path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Update(edit); err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
}

// reopen closes s cleanly and opens path again.
func reopen(t *testing.T, s *Store, path string, opts Options) *Store {
	t.Helper()
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	return mustOpen(t, path, opts)
}

// mustOpen opens the store at path.
func mustOpen(t *testing.T, path string, opts Options) *Store {
	t.Helper()
	s, err := Open(path, opts)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// A commit writes its messages as one block; limits delete a block only once all of it
// is gone, and the messages they deleted from a block still on disk stay deleted across a
// crash (chans records through which sequence).
func TestBlockPartlyDeletedSurvivesCrash(t *testing.T) {
	limits := &stores.LimitsSet{Global: stores.Limits{MaxMsgs: 30}}
	s, path, ch := openFoo(t, Options{NoSync: true, Limits: limits}, 1)
	appendSync(t, ch.Msgs, 1, 25)
	appendSync(t, ch.Msgs, 26, 25) // keeps 21..50: block 1 holds 21..25 live
	wantLayout(t, s, "foo", 30, 21, 50, 2)
	checkRange(t, ch.Msgs, 21, 50)
	s.crash()

	// Reopened without limits: only the file says that 1..20 are gone.
	s = mustOpen(t, path, Options{NoSync: true, Limits: &stores.LimitsSet{}})
	ms := s.channels["foo"].msgs
	checkRange(t, ms, 21, 50)
	ms.SetLimits(stores.Limits{MaxMsgs: 30})
	appendSync(t, ms, 51, 10) // keeps 31..60: block 1 goes
	wantLayout(t, s, "foo", 30, 31, 60, 2)
	s = reopen(t, s, path, Options{NoSync: true, Limits: limits})
	defer s.Close()
	checkRange(t, s.channels["foo"].msgs, 31, 60)
}

// A commit larger than blockMax is split into blocks; each message is read at its offset.
func TestBlocksSplitAtBlockMax(t *testing.T) {
	defer func(m int) { blockMax = m }(blockMax)
	blockMax = 100 // a record here is 4+12+1+len("msg-NN") bytes: 4 or 5 to a block
	s, path, ch := openFoo(t, Options{NoSync: true}, 1)
	appendSync(t, ch.Msgs, 1, 40)
	if n, _, _, keys := diskLayout(t, s, "foo"); n != 40 || keys < 8 || keys > 10 {
		t.Fatalf("on disk: %d messages in %d keys", n, keys)
	}
	checkRange(t, ch.Msgs, 1, 40)
	s = reopen(t, s, path, Options{NoSync: true})
	defer s.Close()
	checkRange(t, s.channels["foo"].msgs, 1, 40)
}

// A file written by an earlier version — one key per message, a 16-byte channel record —
// opens with every message; new messages go in blocks after them, and limits delete the
// old keys and the blocks alike.
func TestPerKeyLayoutStillReads(t *testing.T) {
	s, path, _ := openFoo(t, Options{NoSync: true}, 3)
	editFile(t, s, path, func(tx *bolt.Tx) error {
		b := tx.Bucket([]byte(preMsgs + "foo"))
		for q := uint64(1); q <= 20; q++ {
			m := stores.Msg{Seq: q, Time: int64(q), Reply: "r", Data: blockPayload(q)}
			if err := b.Put(u64(q), appendMsg(nil, &m)); err != nil {
				return err
			}
		}
		return tx.Bucket([]byte(bktChans)).Put([]byte("foo"), binary.BigEndian.AppendUint64(u64(3), 20))
	})

	limits := &stores.LimitsSet{Global: stores.Limits{MaxMsgs: 25}}
	s = mustOpen(t, path, Options{NoSync: true, Limits: limits})
	ms := s.channels["foo"].msgs
	checkRange(t, ms, 1, 20)
	appendSync(t, ms, 21, 10) // keeps 6..30: keys 1..5 go, 6..20 stay, then a block
	wantLayout(t, s, "foo", 25, 6, 30, 16)
	checkRange(t, ms, 6, 30)
	s.crash()
	s = mustOpen(t, path, Options{NoSync: true, Limits: limits})
	ms = s.channels["foo"].msgs
	checkRange(t, ms, 6, 30)
	appendSync(t, ms, 31, 20) // keeps 26..50: every old key goes, the first block keeps 26..30
	wantLayout(t, s, "foo", 25, 26, 50, 2)
	s = reopen(t, s, path, Options{NoSync: true, Limits: limits})
	defer s.Close()
	checkRange(t, s.channels["foo"].msgs, 26, 50)
}

// Channel records that no commit writes are damage, refused at Open:
//   - dead through the last message: a block that holds only deleted messages (limits
//     delete a block in the commit that deletes its last message);
//   - Last beyond the last message on disk (each commit that stores messages rewrites the
//     record, and limits delete from the front). Before this was refused, Load of a
//     sequence past the messages read beyond the index and panicked holding the channel's
//     lock (TestGarbledFileNeverCrashes then hung in Close, about once in ten runs).
func TestImpossibleChannelRecordIsCorrupt(t *testing.T) {
	for name, meta := range map[string][]byte{
		"all dead":       append(binary.BigEndian.AppendUint64(u64(1), 5), u64(5)...),
		"last too large": append(binary.BigEndian.AppendUint64(u64(1), 9), u64(0)...),
	} {
		t.Run(name, func(t *testing.T) {
			s, path, ch := openFoo(t, Options{NoSync: true}, 1)
			appendSync(t, ch.Msgs, 1, 5)
			editFile(t, s, path, func(tx *bolt.Tx) error {
				return tx.Bucket([]byte(bktChans)).Put([]byte("foo"), meta)
			})
			if s, err := Open(path, Options{NoSync: true}); !errors.Is(err, ErrCorrupt) {
				if s != nil {
					s.Close()
				}
				t.Fatalf("Open = %v, want ErrCorrupt", err)
			}
		})
	}
}

// A channel record that deletes messages past its own Last cannot come from a commit (each
// records dead at most the last message it deletes, and a Last at least that). Accepted,
// it was written back by every later commit, and the next Open skipped the messages
// published up to it as deleted: acknowledged messages gone, or the channel refused only
// once they had been acknowledged.
func TestDeadPastLastIsCorrupt(t *testing.T) {
	s, path, ch := openFoo(t, Options{NoSync: true}, 1)
	appendSync(t, ch.Msgs, 1, 5)
	editFile(t, s, path, func(tx *bolt.Tx) error {
		if err := tx.DeleteBucket([]byte(preMsgs + "foo")); err != nil {
			return err
		}
		if _, err := tx.CreateBucket([]byte(preMsgs + "foo")); err != nil {
			return err
		}
		// Emptied at 5 (as limits leave it), but deleted through 50.
		return tx.Bucket([]byte(bktChans)).Put([]byte("foo"), append(binary.BigEndian.AppendUint64(u64(1), 5), u64(50)...))
	})
	s, err := Open(path, Options{NoSync: true})
	if err == nil {
		ms := s.channels["foo"].msgs
		appendSync(t, ms, 6, 60)
		s = reopen(t, s, path, Options{NoSync: true})
		st := s.channels["foo"].msgs.State()
		s.Close()
		t.Fatalf("Open accepted a channel deleted past its Last; after publishing 6..65 it holds %d..%d", st.First, st.Last)
	}
	if !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), `"foo"`) {
		t.Fatalf("Open = %v, want ErrCorrupt naming the channel", err)
	}
}

// Sequences start at 1 and never wrap: a message keyed 0, or a block whose records run past
// the largest sequence, cannot come from a commit. Accepted, the channel opened with First
// beyond Last and messages it could neither load nor append after (every Append
// ErrBadSequence).
func TestSequenceZeroIsCorrupt(t *testing.T) {
	for name, key := range map[string]uint64{"wraps": math.MaxUint64 - 2, "zero": 0} {
		t.Run(name, func(t *testing.T) {
			s, path, ch := openFoo(t, Options{NoSync: true}, 1)
			appendSync(t, ch.Msgs, 1, 5)
			editFile(t, s, path, func(tx *bolt.Tx) error {
				b := tx.Bucket([]byte(preMsgs + "foo"))
				blk := bytes.Clone(b.Bucket(u64(1)).Get(sumKey))
				if err := b.DeleteBucket(u64(1)); err != nil {
					return err
				}
				nb, err := b.CreateBucket(u64(key))
				if err == nil {
					err = nb.Put(sumKey, blk)
				}
				if err != nil {
					return err
				}
				return tx.Bucket([]byte(bktChans)).Put([]byte("foo"), append(binary.BigEndian.AppendUint64(u64(1), key+4), u64(0)...))
			})
			s, err := Open(path, Options{NoSync: true})
			if err == nil {
				st := s.channels["foo"].msgs.State()
				s.Close()
				t.Fatalf("Open accepted a message of sequence 0: state %+v", st)
			}
			if !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), `"foo"`) {
				t.Fatalf("Open = %v, want ErrCorrupt naming the channel", err)
			}
		})
	}
}
