package boltstore

import (
	"encoding/binary"
	"math/rand/v2"
	"path/filepath"
	"slices"
	"testing"

	bolt "go.etcd.io/bbolt"

	"github.com/starling-io/starling/stores"
)

// A subscription's pending set moves between its state record (small sets) and the
// pending bucket (large ones) as it grows and shrinks; whatever the place, a crash after
// any Sync recovers exactly the set of that Sync, and a set that moved leaves nothing
// behind in the other place.
func TestPendingInlineAndKeys(t *testing.T) {
	path := filepath.Join(t.TempDir(), "db")
	open := func() (*Store, stores.SubStore) {
		s, err := Open(path, Options{NoSync: true})
		if err != nil {
			t.Fatal(err)
		}
		rs, err := s.Recover()
		if err != nil {
			t.Fatal(err)
		}
		if rs == nil {
			if err := s.Init(stores.ServerInfo{ClusterID: "c"}); err != nil {
				t.Fatal(err)
			}
			ch, err := s.CreateChannel("foo", 1)
			if err != nil {
				t.Fatal(err)
			}
			if err := ch.Subs.CreateSub(&stores.SubState{ID: 7, ClientID: "c1", Inbox: "in", AckInbox: "ack", DurableName: "d", IsDurable: true}); err != nil {
				t.Fatal(err)
			}
			return s, ch.Subs
		}
		return s, rs.Channels[0].Channel.Subs
	}
	s, ss := open()
	rng := rand.New(rand.NewPCG(1, 2))
	model := map[uint64]bool{}
	synced := []uint64{}
	next := uint64(1)
	sizes := []int{0, 100, 300, 900, 1500, 5000, 1200, 600, 200, 20, 0, 2000, 50}
	for round, target := range sizes {
		for range 3 { // a few steps towards the target size, each one Synced
			var ev []stores.SubEvent
			for len(model) < target {
				ev = append(ev, stores.SubEvent{SubID: 7, Seq: next})
				model[next] = true
				next++
			}
			for len(model) > target {
				for seq := range model { // random acks
					ev = append(ev, stores.SubEvent{SubID: 7, Seq: seq, Acked: true})
					delete(model, seq)
					break
				}
			}
			// churn at the same size: one more sent, one acked
			ev = append(ev, stores.SubEvent{SubID: 7, Seq: next})
			model[next] = true
			next++
			for seq := range model {
				if rng.IntN(2) == 0 {
					ev = append(ev, stores.SubEvent{SubID: 7, Seq: seq, Acked: true})
					delete(model, seq)
					break
				}
			}
			if err := ss.Record(ev); err != nil {
				t.Fatal(err)
			}
			if err := ss.Sync(); err != nil {
				t.Fatal(err)
			}
			synced = synced[:0]
			for seq := range model {
				synced = append(synced, seq)
			}
			slices.Sort(synced)
		}
		// Changes after the last Sync are lost by the crash.
		_ = ss.Record([]stores.SubEvent{{SubID: 7, Seq: next}})
		if round%2 == 0 {
			s.crash()
		} else {
			if err := s.Close(); err != nil { // Close syncs it
				t.Fatal(err)
			}
			synced = append(synced, next)
		}
		next++
		inlineN, keysN := pendingPlaces(t, path, 7)
		if len(synced) <= inlineMax && keysN != 0 || len(synced) > keysMin && inlineN != 0 {
			t.Fatalf("round %d: %d pending: %d inline and %d keys on disk", round, len(synced), inlineN, keysN)
		}
		if inlineN+keysN != len(synced) {
			t.Fatalf("round %d: %d pending, %d inline + %d keys on disk", round, len(synced), inlineN, keysN)
		}
		s, ss = open()
		subs, err := ss.Subs()
		if err != nil || len(subs) != 1 {
			t.Fatalf("round %d: subs %v %v", round, subs, err)
		}
		if !slices.Equal(subs[0].Pending, synced) && !(len(synced) == 0 && len(subs[0].Pending) == 0) {
			t.Fatalf("round %d: recovered %d pending, want %d", round, len(subs[0].Pending), len(synced))
		}
		model = map[uint64]bool{}
		for _, seq := range synced {
			model[seq] = true
		}
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
}

// pendingPlaces counts the sequences of subscription id in its state record and as keys.
func pendingPlaces(t *testing.T, path string, id uint64) (inline, keys int) {
	t.Helper()
	db, err := bolt.Open(path, 0o600, &bolt.Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	err = db.View(func(tx *bolt.Tx) error {
		var k [8]byte
		binary.BigEndian.PutUint64(k[:], id)
		if b := tx.Bucket([]byte(preSubs + "foo")); b != nil {
			if v := b.Get(k[:]); v != nil {
				var r sub
				if _, err := decodeSub(v, &r.pending); err != nil {
					return err
				}
				inline = r.pending.Len()
			}
		}
		if b := tx.Bucket([]byte(prePending + "foo")); b != nil {
			return b.ForEach(func(key, _ []byte) error {
				if len(key) == 16 && binary.BigEndian.Uint64(key) == id {
					keys++
				}
				return nil
			})
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return inline, keys
}
