package boltstore

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"

	"github.com/starling-io/starling/stores"
)

// writeMsgs builds a store with n synced messages on channel "foo" and closes it.
func writeMsgs(t *testing.T, path string, n int) {
	t.Helper()
	s, err := Open(path, Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Init(stores.ServerInfo{ClusterID: "c"}); err != nil {
		t.Fatal(err)
	}
	ch, err := s.CreateChannel("foo", 1)
	if err != nil {
		t.Fatal(err)
	}
	for i := 1; i <= n; i++ {
		if err := ch.Msgs.Append([]stores.Msg{{Seq: uint64(i), Time: int64(i), Data: []byte(fmt.Sprint(i))}}); err != nil {
			t.Fatal(err)
		}
		if i%10 == 0 {
			if err := ch.Msgs.Sync(); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := ch.Msgs.Sync(); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
}

// checkAll reopens the store and requires every message 1..n, intact.
func checkAll(t *testing.T, path string, n int) {
	t.Helper()
	s, err := Open(path, Options{NoSync: true})
	if err != nil {
		t.Fatalf("reopen: %v", err)
	}
	defer s.Close()
	st, err := s.Recover()
	if err != nil || st == nil || len(st.Channels) != 1 {
		t.Fatalf("recover: %v %+v", err, st)
	}
	ms := st.Channels[0].Channel.Msgs
	if got := ms.State(); got.First != 1 || got.Last != uint64(n) {
		t.Fatalf("state %+v, want 1..%d", got, n)
	}
	var m stores.Msg
	for i := 1; i <= n; i++ {
		if err := ms.Load(uint64(i), &m); err != nil || string(m.Data) != fmt.Sprint(i) {
			t.Fatalf("message %d: %q %v", i, m.Data, err)
		}
	}
}

// A torn tail — pages of a transaction that never committed written past the end of the
// file, in many shapes — leaves every committed message readable.
func TestTornTailKeepsCommitted(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for i, shape := range []string{"zeros", "random", "ones", "half-page", "many-pages"} {
		t.Run(shape, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "s.db")
			writeMsgs(t, path, 100)
			page := os.Getpagesize()
			var tail []byte
			switch shape {
			case "zeros":
				tail = make([]byte, page)
			case "random":
				tail = make([]byte, 2*page)
				for j := range tail {
					tail[j] = byte(rng.IntN(256))
				}
			case "ones":
				tail = bytes.Repeat([]byte{0xff}, page)
			case "half-page":
				tail = bytes.Repeat([]byte{byte(i)}, page/2)
			case "many-pages":
				tail = make([]byte, 16*page)
				for j := range tail {
					tail[j] = byte(rng.IntN(256))
				}
			}
			f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
			if err != nil {
				t.Fatal(err)
			}
			_, _ = f.Write(tail)
			f.Close()
			checkAll(t, path, 100)
		})
	}
}
