package filestore

import (
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/starling-io/starling/stores"
)

// Recovery reads bytes a crash, a power cut or a bad disk left: it never panics on them.

func FuzzParseLog(f *testing.F) {
	h, hb := newHeader(magicSubs)
	b := append([]byte(nil), hb...)
	b = appendFrame(b, encSub(nil, subCreate, &stores.SubState{ID: 1, Inbox: "in"}))
	b = appendMark(b, int64(len(b)), h.nonce)
	b = endFrame(append(b, 0, 0, 0, 0, 0, 0, 0, 0, recBatch, 3, 'D', 1, 2), len(b))
	f.Add(b)
	f.Add(v1Log(magicSubs, []byte{subDelete, 1}))
	f.Add([]byte("STRSUB\x02"))
	f.Fuzz(func(t *testing.T, data []byte) {
		ld, err := parseLog("subs.log", magicSubs, data)
		if err != nil || ld.torn {
			return
		}
		ld.damage(data)
		salvageLog(data, ld.hdr)
		ss := &subStore{subs: map[uint64]*sub{}}
		for _, r := range ld.recs {
			ss.replay(r)
		}
	})
}

func FuzzSegmentRecovery(f *testing.F) {
	dir, _ := buildF(f)
	segs, _ := filepath.Glob(filepath.Join(dir, "ch*", "*.seg"))
	for _, s := range segs {
		data, _ := os.ReadFile(s)
		f.Add(data)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		path := filepath.Join(t.TempDir(), segName(1)+".seg")
		if err := os.WriteFile(path, data, 0o644); err != nil {
			t.Fatal(err)
		}
		opts := &Options{Logger: slogDiscard(), BufferSize: 4096, NoSync: true}
		ms := &msgStore{dir: filepath.Dir(path), opts: opts, fds: &fdCache{max: 2}}
		for _, tail := range []bool{true, false} {
			if seg, _, _, err := ms.openSegment(path[:len(path)-4], 1, tail); err == nil && seg.f != nil {
				seg.f.Close()
			}
		}
	})
}

// buildF is build for a fuzz target's seeds.
func buildF(f *testing.F) (string, []stores.Msg) {
	dir := f.TempDir()
	s, err := Open(dir, Options{SegmentBytes: 1000})
	if err != nil {
		f.Fatal(err)
	}
	s.Init(stores.ServerInfo{ClusterID: "c"})
	ch, _ := s.CreateChannel("foo", 1)
	all := genMsgs(1, 40)
	for i := 0; i < 40; i += 10 {
		ch.Msgs.Append(all[i : i+10])
		ch.Msgs.Sync()
	}
	s.Close()
	return dir, all
}

// FuzzJournalRecovery opens a channel from a tail segment and a subs.log of any bytes:
// recovery applies the journal records the tail holds past subs.log's LSN, or reports
// damage; it never panics.
func FuzzJournalRecovery(f *testing.F) {
	dir := f.TempDir()
	s, err := Open(dir, Options{CompactBytes: 1 << 10})
	if err != nil {
		f.Fatal(err)
	}
	s.Init(stores.ServerInfo{ClusterID: "c"})
	ch, _ := s.CreateChannel("foo", 1)
	ch.Subs.CreateSub(&stores.SubState{ID: 1, ClientID: "a", Inbox: "in"})
	ch.Subs.Sync()
	all := genMsgs(1, 60)
	for i := 0; i < 60; i += 5 {
		ch.Msgs.Append(all[i : i+5])
		ch.Subs.Record([]stores.SubEvent{{SubID: 1, Seq: uint64(i + 1)}, {SubID: 1, Seq: uint64(i/2 + 1), Acked: true}})
		if i == 30 {
			ch.Subs.CreateSub(&stores.SubState{ID: 2, ClientID: "b"})
		}
		ch.Msgs.(stores.SplitSyncer).Flush()
		ch.Subs.Sync()
	}
	s.abandon()
	segs, _ := filepath.Glob(filepath.Join(dir, "ch*", "*.seg"))
	tail, _ := os.ReadFile(segs[len(segs)-1])
	subs, _ := os.ReadFile(filepath.Join(dir, "ch00000001", "subs.log"))
	f.Add(tail, subs)
	f.Add(tail, []byte(nil))
	f.Fuzz(func(t *testing.T, tail, subs []byte) {
		d := t.TempDir()
		os.WriteFile(filepath.Join(d, segName(1)+".seg"), tail, 0o644)
		os.WriteFile(filepath.Join(d, "subs.log"), subs, 0o644)
		opts := &Options{Logger: slogDiscard(), BufferSize: 4096, NoSync: true, CompactBytes: DefaultCompactBytes, SegmentBytes: DefaultSegmentBytes}
		ms, err := openMsgStore(d, "foo", 0, stores.Limits{}, opts, &fdCache{max: 2}, true, nil)
		if err != nil {
			return
		}
		defer ms.abandon()
		ss, err := openSubStore(filepath.Join(d, "subs.log"), 0, opts, ms, 0)
		if err != nil {
			var de *DamageError
			if len(ms.segs) > 0 && errors.As(err, &de) && de.File != ms.segs[0].path && de.File != filepath.Join(d, "subs.log") {
				t.Fatalf("damage in %s", de.File)
			}
			return
		}
		ms.subs = ss
		defer ss.abandon()
		ss.Subs()
		ss.CreateSub(&stores.SubState{ID: 99})
		if ss.Flush() == nil && ss.SyncFlushed() == nil {
			ms.Append(genMsgs(ms.State().Last+1, 2))
		}
	})
}
