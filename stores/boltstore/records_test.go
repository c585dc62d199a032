package boltstore

import (
	"encoding/binary"
	"errors"
	"strings"
	"testing"

	bolt "go.etcd.io/bbolt"

	"github.com/starling-io/starling/stores"
)

// A subscription record is written under its ID, and a client record under its ID: one
// that disagrees with its key cannot come from the store. Accepted, it was loaded under the
// ID it names, and deleting that subscription or client deleted the key of the ID, not the
// record: it came back at every Open (a durable, a client nobody had). Open refuses it,
// naming the record.
func TestRecordUnderAnotherKeyIsCorrupt(t *testing.T) {
	for _, what := range []string{"subscription", "client"} {
		t.Run(what, func(t *testing.T) {
			s, path, ch := openFoo(t, Options{NoSync: true}, 1)
			if err := ch.Subs.CreateSub(&stores.SubState{ID: 1, ClientID: "c", Inbox: "i", AckInbox: "a", DurableName: "d", IsDurable: true}); err != nil {
				t.Fatal(err)
			}
			if err := s.AddClient(stores.ClientInfo{ID: "c", HbInbox: "hb"}); err != nil {
				t.Fatal(err)
			}
			editFile(t, s, path, func(tx *bolt.Tx) error {
				if what == "client" {
					b := tx.Bucket([]byte(bktClients))
					v := b.Get([]byte("c"))
					if err := b.Delete([]byte("c")); err != nil {
						return err
					}
					return b.Put([]byte("x"), v)
				}
				b := tx.Bucket([]byte(preSubs + "foo"))
				v := b.Get(u64(1))
				if err := b.Delete(u64(1)); err != nil {
					return err
				}
				return b.Put(binary.BigEndian.AppendUint64(nil, 9), v)
			})
			s, err := Open(path, Options{NoSync: true})
			if err == nil {
				// What it did: the record outlives the deletion of what it names.
				if what == "client" {
					err = s.DeleteClient("c")
				} else {
					err = s.channels["foo"].subs.DeleteSub(1)
				}
				if err == nil {
					s = reopen(t, s, path, Options{NoSync: true})
				}
				back := len(s.clients) > 0 || len(s.channels["foo"].subs.subs) > 0
				s.Close()
				t.Fatalf("Open accepted a %s record under another key (deleted: %v; back after reopen: %v)", what, err, back)
			}
			if !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), what) {
				t.Fatalf("Open = %v, want ErrCorrupt naming the %s", err, what)
			}
		})
	}
}
