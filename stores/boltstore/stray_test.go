package boltstore

import (
	"bytes"
	"errors"
	"os"
	"strings"
	"testing"

	bolt "go.etcd.io/bbolt"

	"github.com/starling-io/starling/stores"
)

// A channel's bucket holding data that no channel record names cannot come from the store
// (a channel's buckets and its record are created and deleted in one transaction): the
// record was lost. Open used to ignore the bucket, and a channel created later under the
// name adopted it — its old subscriptions came back, its first commit failed on the old
// blocks' keys and, rolled back, it served the old messages. Open now refuses the file,
// naming the bucket, and changes nothing in it.
func TestStrayChannelBucketRefused(t *testing.T) {
	for _, pre := range []string{preMsgs, preSubs, prePending} {
		t.Run(pre, func(t *testing.T) {
			s, path, ch := openFoo(t, Options{NoSync: true}, 1)
			appendSync(t, ch.Msgs, 1, 5)
			if err := ch.Subs.CreateSub(&stores.SubState{ID: 1, ClientID: "c", Inbox: "i", AckInbox: "a"}); err != nil {
				t.Fatal(err)
			}
			if err := ch.Subs.Sync(); err != nil {
				t.Fatal(err)
			}
			editFile(t, s, path, func(tx *bolt.Tx) error {
				if err := tx.Bucket([]byte(bktChans)).Delete([]byte("foo")); err != nil {
					return err
				}
				for _, p := range []string{preMsgs, preSubs, prePending} {
					if p == pre {
						if p == prePending {
							return tx.Bucket([]byte(p+"foo")).Put(make([]byte, 16), nil)
						}
						continue
					}
					if err := tx.DeleteBucket([]byte(p + "foo")); err != nil {
						return err
					}
				}
				return nil
			})
			before, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			s, err = Open(path, Options{NoSync: true})
			if err == nil {
				_, cerr := s.CreateChannel("foo", 2)
				s.Close()
				t.Fatalf("Open accepted a stray %q bucket (CreateChannel then: %v)", pre+"foo", cerr)
			}
			if !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), `"`+pre+`foo"`) {
				t.Fatalf("Open = %v, want ErrCorrupt naming bucket %q", err, pre+"foo")
			}
			if after, err := os.ReadFile(path); err != nil || !bytes.Equal(before, after) {
				t.Fatalf("the refused file changed (%v)", err)
			}
		})
	}
}

// An empty bucket no record names (nothing in it was ever acknowledged) is no reason to
// refuse the store: a channel created under the name takes it over.
func TestEmptyStrayChannelBucketsOpen(t *testing.T) {
	s, path, _ := openFoo(t, Options{NoSync: true}, 1)
	editFile(t, s, path, func(tx *bolt.Tx) error {
		return tx.Bucket([]byte(bktChans)).Delete([]byte("foo"))
	})
	s = mustOpen(t, path, Options{NoSync: true})
	ch, err := s.CreateChannel("foo", 2)
	if err != nil {
		t.Fatal(err)
	}
	appendSync(t, ch.Msgs, 1, 3)
	s = reopen(t, s, path, Options{NoSync: true})
	defer s.Close()
	checkRange(t, s.channels["foo"].msgs, 1, 3)
}

// A channel's three buckets are created with its record and deleted with it: a channel
// record without its subscriptions' or pending sets' bucket lost it. Open read the channel
// as having no subscriptions (durables gone without a word), and the first commit that
// wrote one of its subscriptions failed for want of the bucket — and with it every
// channel's messages in that commit. Open refuses the file, naming the bucket, as it does
// a missing message bucket.
func TestMissingChannelBucketIsCorrupt(t *testing.T) {
	for _, pre := range []string{preMsgs, preSubs, prePending} {
		t.Run(pre, func(t *testing.T) {
			s, path, ch := openFoo(t, Options{NoSync: true}, 1)
			if err := ch.Subs.CreateSub(&stores.SubState{ID: 1, ClientID: "c", Inbox: "i", AckInbox: "a", DurableName: "d", IsDurable: true}); err != nil {
				t.Fatal(err)
			}
			editFile(t, s, path, func(tx *bolt.Tx) error { return tx.DeleteBucket([]byte(pre + "foo")) })
			s, err := Open(path, Options{NoSync: true})
			if err == nil {
				n := len(s.channels["foo"].subs.subs)
				s.Close()
				t.Fatalf("Open accepted channel foo without bucket %q (%d subscriptions)", pre+"foo", n)
			}
			if !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), `"`+pre+`foo"`) {
				t.Fatalf("Open = %v, want ErrCorrupt naming bucket %q", err, pre+"foo")
			}
		})
	}
}
