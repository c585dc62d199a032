package filestore

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/starling-io/starling/stores"
)

// frames returns the offset and payload type of every intact frame of the log at path.
func frames(t *testing.T, path, magic string) (offs []int, types []byte) {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	h, _, err := checkHeader(path, magic, data)
	if err != nil {
		t.Fatal(err)
	}
	for off := h.size; off+8 <= len(data); {
		n := int(binary.LittleEndian.Uint32(data[off:]))
		if n == 0 || off+8+n > len(data) {
			break
		}
		offs, types = append(offs, off), append(types, data[off+8])
		off += 8 + n
	}
	return offs, types
}

func zero(t *testing.T, path string, off, n int) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteAt(make([]byte, n), int64(off)); err != nil {
		t.Fatal(err)
	}
}

// TestLogTornAfterSyncMark: in meta.log and subs.log, a flush that was never synced may be
// torn by a power cut while later flushes survive intact: recovery cuts from the torn one
// (the state of the last good flush at or after the last sync comes back). A record that
// fails its checks before what a sync mark proves synced is damage: meta.log fails Open,
// subs.log fails its channel.
func TestLogTornAfterSyncMark(t *testing.T) {
	for _, which := range []string{"meta", "subs"} {
		for _, where := range []string{"unsynced", "synced"} {
			t.Run(which+"/"+where, func(t *testing.T) {
				dir := t.TempDir()
				s, err := Open(dir, Options{})
				if err != nil {
					t.Fatal(err)
				}
				s.Init(stores.ServerInfo{ClusterID: "c"})
				ch, _ := s.CreateChannel("foo", 1)
				change := func(i int) {
					if which == "meta" {
						if err := s.AddClient(stores.ClientInfo{ID: fmt.Sprint("c", i), HbInbox: strings.Repeat("h", 300)}); err != nil {
							t.Fatal(err)
						}
						return
					}
					sub := stores.SubState{ID: uint64(i), ClientID: "c", Inbox: strings.Repeat("i", 300)}
					if err := ch.Subs.CreateSub(&sub); err != nil {
						t.Fatal(err)
					}
				}
				sp := stores.SplitSyncer(s)
				path := filepath.Join(dir, "meta.log")
				magic := magicMeta
				if which == "subs" {
					sp = ch.Subs.(stores.SplitSyncer)
					path, magic = filepath.Join(s.chanDir(1), "subs.log"), magicSubs
				}
				for i := 1; i <= 5; i++ { // synced
					change(i)
					if err := sp.Flush(); err != nil {
						t.Fatal(err)
					}
					if err := sp.SyncFlushed(); err != nil {
						t.Fatal(err)
					}
				}
				for i := 6; i <= 9; i++ { // flushed, never synced
					change(i)
					if err := sp.Flush(); err != nil {
						t.Fatal(err)
					}
				}
				s.abandon()
				offs, types := frames(t, path, magic)
				var batches []int
				for i, ty := range types {
					if ty == recBatch {
						batches = append(batches, offs[i])
					}
				}
				if len(batches) < 8 { // subs.log: the first flush created it (a snapshot, not a batch)
					t.Fatalf("%d batches in %s", len(batches), path)
				}
				victim := batches[len(batches)-4] // the first never-synced flush (change 6)
				if where == "synced" {
					victim = batches[len(batches)-7] // change 3
				}
				zero(t, path, victim+50, 100) // later flushes stay intact
				s, err = Open(dir, Options{})
				if which == "meta" && where == "synced" {
					var de *DamageError
					if !errors.As(err, &de) || de.File != path || de.Offset != int64(victim) {
						t.Fatalf("Open = %v, want damage at offset %d", err, victim)
					}
					return
				}
				if err != nil {
					t.Fatal(err)
				}
				defer s.Close()
				if which == "subs" && where == "synced" {
					if d := s.Damaged(); len(d) != 1 || !strings.Contains(d[0].Error(), "sync mark") {
						t.Fatalf("Damaged() = %v", d)
					}
					return
				}
				rs, _ := s.Recover()
				n := len(rs.Clients)
				if which == "subs" {
					n = len(rs.Channels[0].Subs)
				}
				if n != 5 {
					t.Fatalf("%d %s after the torn flush, want the 5 synced", n, which)
				}
			})
		}
	}
}
