package boltstore

import (
	"bytes"
	"encoding/binary"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/starling-io/starling/stores"
)

// Verify reports what Open would recover, and refuses what Open refuses, without changing
// the file: not the clean mark, not a zero-filled file.
func TestVerify(t *testing.T) {
	if rep, err := Verify(filepath.Join(t.TempDir(), "none.db"), 0); err != nil || !rep.Fresh {
		t.Fatalf("missing file: %+v, %v", rep, err)
	}
	s, path, ch := openFoo(t, Options{NoSync: true}, 1)
	if err := s.Init(stores.ServerInfo{ClusterID: "c"}); err != nil {
		t.Fatal(err)
	}
	appendSync(t, ch.Msgs, 1, 10)
	if err := ch.Subs.CreateSub(&stores.SubState{ID: 1, ClientID: "c", Inbox: "i", AckInbox: "a"}); err != nil {
		t.Fatal(err)
	}
	if err := s.AddClient(stores.ClientInfo{ID: "c", HbInbox: "hb"}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.CreateChannel("bar", 2); err != nil {
		t.Fatal(err)
	}

	// In use by a server: said so, not taken for damage.
	if _, err := Verify(path, 50*time.Millisecond); err == nil || errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), "in use") {
		t.Fatalf("Verify of a held file: %v", err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	before, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	rep, err := Verify(path, 0)
	if err != nil {
		t.Fatal(err)
	}
	want := []ChannelReport{{Name: "bar", First: 1}, {Name: "foo", First: 1, Last: 10, Msgs: 10, Subs: 1}}
	if len(rep.Channels) == 2 {
		want[1].Bytes = rep.Channels[1].Bytes
	}
	if rep.Fresh || !rep.Clean || rep.Clients != 1 || len(rep.Channels) != 2 || !reflect.DeepEqual(rep.Channels, want) ||
		rep.Channels[1].Bytes == 0 {
		t.Fatalf("Verify = %+v, want channels %+v", rep, want)
	}
	if after, err := os.ReadFile(path); err != nil || !bytes.Equal(before, after) {
		t.Fatalf("Verify changed the file (%v)", err)
	}

	// Damage Open refuses: refused, named, unchanged.
	s = mustOpen(t, path, Options{NoSync: true})
	editFile(t, s, path, func(tx *bolt.Tx) error {
		return tx.Bucket([]byte(bktChans)).Put([]byte("foo"), append(binary.BigEndian.AppendUint64(u64(1), 10), u64(11)...))
	})
	before, _ = os.ReadFile(path)
	if _, err := Verify(path, 0); !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), `"foo"`) {
		t.Fatalf("Verify of a damaged channel record: %v", err)
	}
	if after, _ := os.ReadFile(path); !bytes.Equal(before, after) {
		t.Fatal("Verify changed the damaged file")
	}
	zeros := make([]byte, len(before))
	if err := os.WriteFile(path, zeros, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := Verify(path, 0); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("Verify of a zeroed file: %v", err)
	}
	// A small zero-filled file is a torn creation: fresh, and left as it is.
	if err := os.WriteFile(path, zeros[:4096], 0o600); err != nil {
		t.Fatal(err)
	}
	if rep, err := Verify(path, 0); err != nil || !rep.Fresh {
		t.Fatalf("Verify of a torn creation: %+v, %v", rep, err)
	}
	if fi, err := os.Stat(path); err != nil || fi.Size() != 4096 {
		t.Fatalf("Verify truncated a torn creation (%v)", err)
	}
}
