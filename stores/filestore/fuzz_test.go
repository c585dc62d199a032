package filestore

import (
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
