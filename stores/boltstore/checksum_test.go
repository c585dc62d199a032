package boltstore

import (
	"bytes"
	"encoding/binary"
	"errors"
	"hash/crc32"
	"os"
	"strings"
	"testing"

	bolt "go.etcd.io/bbolt"

	"github.com/starling-io/starling/stores"
)

// msgSum folds the sequence in by hand (no allocation), appendRecord in one crc32 call:
// both must be CRC-32C of the value then the sequence's 8 big-endian bytes.
func TestMsgSumIsCRC32C(t *testing.T) {
	for _, seq := range []uint64{1, 255, 1 << 40, ^uint64(0)} {
		for _, data := range [][]byte{nil, []byte("x"), bytes.Repeat([]byte("abc"), 100)} {
			m := stores.Msg{Seq: seq, Time: 7, Reply: "r", Data: data}
			v := appendMsg(nil, &m)
			want := crc32.Checksum(binary.BigEndian.AppendUint64(bytes.Clone(v), seq), crc32.MakeTable(crc32.Castagnoli))
			if got := msgSum(seq, v); got != want {
				t.Fatalf("msgSum(%d, %d bytes) = %#x, want %#x", seq, len(v), got, want)
			}
			rec := appendRecord([]byte("prefix"), &m)
			got, sum, next, ok := record(rec, 6, true)
			if !ok || int(next) != len(rec) || !bytes.Equal(got, v) || sum != want {
				t.Fatalf("appendRecord(%d, %d bytes): %x", seq, len(data), rec)
			}
		}
	}
}

// flipInFile flips one bit of the only occurrence of pattern in the file at path and
// returns the file's bytes before.
func flipInFile(t *testing.T, path string, pattern []byte) {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	i := bytes.Index(data, pattern)
	if i < 0 || bytes.Contains(data[i+1:], pattern) {
		t.Fatalf("%q is not in the file exactly once", pattern)
	}
	data[i+len(pattern)-1] ^= 1
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
}

// A flipped bit inside a stored message: bbolt does not checksum values, so the store used
// to serve the damaged message as it was (Load returned "msg-2" for message 3). Now Load
// refuses it with a DamageError naming the file, the channel and the message, serves the
// others, and Verify lists it.
func TestFlippedMessageRefused(t *testing.T) {
	s, path, ch := openFoo(t, Options{NoSync: true}, 1)
	appendSync(t, ch.Msgs, 1, 5)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	flipInFile(t, path, blockPayload(3)) // "msg-3" → "msg-2"

	s = mustOpen(t, path, Options{NoSync: true})
	ms := s.channels["foo"].msgs
	var m stores.Msg
	err := ms.Load(3, &m)
	var de *DamageError
	if !errors.As(err, &de) || !errors.Is(err, ErrCorrupt) || de.Seq != 3 || de.Channel != "foo" || de.Path != path ||
		!strings.Contains(err.Error(), "checksum") {
		t.Fatalf("Load of the damaged message = %v (data %q), want a DamageError for message 3", err, m.Data)
	}
	for _, q := range []uint64{1, 2, 4, 5} {
		if err := ms.Load(q, &m); err != nil || string(m.Data) != string(blockPayload(q)) {
			t.Fatalf("message %d: %q %v", q, m.Data, err)
		}
	}
	// Appending goes on; the new block is checked and readable.
	appendSync(t, ms, 6, 2)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	rep, err := Verify(path, 0)
	if !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), `"foo"`) || !strings.Contains(err.Error(), "checksum") {
		t.Fatalf("Verify = %v, want the damaged message named", err)
	}
	if len(rep.Channels) != 1 || len(rep.Channels[0].Damaged) != 1 || rep.Channels[0].Damaged[0] != 3 || rep.Channels[0].Last != 7 {
		t.Fatalf("Verify report %+v, want message 3 of foo damaged", rep)
	}
}

// Blocks written before records carried a checksum (key "b": length, then the value) are
// read as they were, beside new blocks, and limits delete them as before.
func TestBlocksWithoutChecksumStillRead(t *testing.T) {
	s, path, ch := openFoo(t, Options{NoSync: true}, 1)
	appendSync(t, ch.Msgs, 1, 5)
	editFile(t, s, path, func(tx *bolt.Tx) error {
		b := tx.Bucket([]byte(preMsgs + "foo"))
		blk, sums := blockOf(b.Bucket(u64(1)))
		if !sums {
			t.Fatal("a new block has no checksums")
		}
		var old []byte
		for off := uint32(0); int(off) < len(blk); {
			v, _, next, ok := record(blk, off, true)
			if !ok {
				t.Fatalf("record at %d", off)
			}
			old = append(binary.BigEndian.AppendUint32(old, uint32(len(v))), v...)
			off = next
		}
		if err := b.DeleteBucket(u64(1)); err != nil {
			return err
		}
		bb, err := b.CreateBucket(u64(1))
		if err != nil {
			return err
		}
		return bb.Put(oldKey, old)
	})
	s = mustOpen(t, path, Options{NoSync: true})
	checkRange(t, s.channels["foo"].msgs, 1, 5)
	appendSync(t, s.channels["foo"].msgs, 6, 5)
	s = reopen(t, s, path, Options{NoSync: true})
	checkRange(t, s.channels["foo"].msgs, 1, 10)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if rep, err := Verify(path, 0); err != nil || rep.Channels[0].Msgs != 10 {
		t.Fatalf("Verify = %+v, %v", rep, err)
	}
	// Limits delete the old block whole.
	s = mustOpen(t, path, Options{NoSync: true, Limits: &stores.LimitsSet{Global: stores.Limits{MaxMsgs: 5}}})
	ms := s.channels["foo"].msgs
	if _, next := ms.Expire(0); next != 0 || ms.Sync() != nil {
		t.Fatal("expire")
	}
	wantLayout(t, s, "foo", 5, 6, 10, 1)
	checkRange(t, ms, 6, 10)
	s.Close()
}
