package filestore

import (
	"bytes"
	"encoding/binary"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/starling-io/starling/stores"
)

// build makes a store with channel foo (n messages in small segments) and bar (10
// messages), closed cleanly (so every tail and log ends with a sync mark proving it whole).
func build(t *testing.T, n int) (string, []stores.Msg) {
	t.Helper()
	dir := t.TempDir()
	s, err := Open(dir, Options{SegmentBytes: 1000})
	if err != nil {
		t.Fatal(err)
	}
	s.Init(stores.ServerInfo{ClusterID: "c"})
	foo, _ := s.CreateChannel("foo", 1)
	bar, _ := s.CreateChannel("bar", 2)
	all := genMsgs(1, n)
	for i := 0; i < n; i += 10 {
		if err := foo.Msgs.Append(all[i:min(i+10, n)]); err != nil {
			t.Fatal(err)
		}
	}
	if err := bar.Msgs.Append(genMsgs(1, 10)); err != nil {
		t.Fatal(err)
	}
	if err := foo.Subs.CreateSub(&stores.SubState{ID: 1, ClientID: "me", Inbox: "in"}); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	return dir, all
}

func chanDirOf(t *testing.T, dir, name string) string {
	s := &Store{dir: dir, clients: map[string]stores.ClientInfo{}, channels: map[string]*channel{}, tombs: map[string]uint64{}}
	data, err := os.ReadFile(filepath.Join(dir, "meta.log"))
	if err != nil {
		t.Fatal(err)
	}
	ld, err := parseLog("meta.log", magicMeta, data)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range ld.recs {
		s.replay(r)
	}
	return s.chanDir(s.channels[name].dirNum)
}

func segFiles(t *testing.T, dir, name string) []string {
	segs, _ := filepath.Glob(filepath.Join(chanDirOf(t, dir, name), "*.seg"))
	if len(segs) == 0 {
		t.Fatal("no segments")
	}
	return segs
}

func flipByte(t *testing.T, path string, off int64) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var b [1]byte
	f.ReadAt(b[:], off)
	b[0] ^= 0x5a
	if _, err := f.WriteAt(b[:], off); err != nil {
		t.Fatal(err)
	}
}

func channelNames(t *testing.T, s *Store) []string {
	rs, err := s.Recover()
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, c := range rs.Channels {
		out = append(out, c.Channel.Name)
	}
	return out
}

func TestFileHeaders(t *testing.T) {
	dir, _ := build(t, 100)
	cd := chanDirOf(t, dir, "foo")
	segs := segFiles(t, dir, "foo")
	idx, _ := filepath.Glob(filepath.Join(cd, "*.idx"))
	for path, magic := range map[string]string{filepath.Join(dir, "meta.log"): magicMeta,
		filepath.Join(cd, "subs.log"): magicSubs, segs[0]: magicSeg, idx[0]: magicIdx} {
		data, _ := os.ReadFile(path)
		if _, hb := newHeader(magic); !bytes.HasPrefix(data, hb[:8]) {
			t.Fatalf("%s starts with %q", path, data[:min(len(data), 8)])
		}
	}
	// An unknown version fails the open, naming the file.
	for _, path := range []string{filepath.Join(dir, "meta.log"), filepath.Join(cd, "subs.log"), segs[0], segs[len(segs)-1], idx[0]} {
		orig, _ := os.ReadFile(path)
		bad := bytes.Clone(orig)
		binary.LittleEndian.PutUint16(bad[6:], 99)
		os.WriteFile(path, bad, 0o644)
		s, err := Open(dir, Options{SegmentBytes: 1000})
		if err == nil {
			s.Close()
			t.Fatalf("%s: version 99 opened", path)
		}
		if !errors.Is(err, ErrVersion) || !strings.Contains(err.Error(), path) {
			t.Fatalf("%s: %v", path, err)
		}
		os.WriteFile(path, orig, 0o644)
	}
	s, err := Open(dir, Options{SegmentBytes: 1000})
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
}

func TestRecoveryLogged(t *testing.T) {
	dir, _ := build(t, 100)
	segs := segFiles(t, dir, "foo")
	tail := segs[len(segs)-1]
	fi, _ := os.Stat(tail)
	os.Truncate(tail, fi.Size()-5)
	idx, _ := filepath.Glob(filepath.Join(chanDirOf(t, dir, "foo"), "*.idx"))
	os.WriteFile(idx[0], []byte("garbage"), 0o644)
	var buf bytes.Buffer
	s, err := Open(dir, Options{SegmentBytes: 1000, Logger: slog.New(slog.NewTextHandler(&buf, nil))})
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
	out := buf.String()
	for _, want := range []string{"torn tail cut", "file=" + tail, "bytes=", "offset=", "index rebuilt", "file=" + idx[0], "why="} {
		if !strings.Contains(out, want) {
			t.Fatalf("log lacks %q:\n%s", want, out)
		}
	}
}

// TestMidSegmentDamage: damage before the end of a segment (tail or sealed) or of subs.log
// fails that channel only, loudly, and keeps its files.
func TestMidSegmentDamage(t *testing.T) {
	cases := map[string]func(t *testing.T, dir string) string{
		"tail": func(t *testing.T, dir string) string {
			segs := segFiles(t, dir, "foo")
			fi, _ := os.Stat(segs[len(segs)-1])
			flipByte(t, segs[len(segs)-1], fi.Size()/2)
			return segs[len(segs)-1]
		},
		"sealed": func(t *testing.T, dir string) string {
			segs := segFiles(t, dir, "foo")
			fi, _ := os.Stat(segs[1])
			flipByte(t, segs[1], fi.Size()/2)
			os.Remove(strings.TrimSuffix(segs[1], ".seg") + ".idx") // forces the scan
			return segs[1]
		},
		"subs": func(t *testing.T, dir string) string {
			p := filepath.Join(chanDirOf(t, dir, "foo"), "subs.log")
			first := firstSubFrame(t, p)
			f, _ := os.OpenFile(p, os.O_WRONLY|os.O_APPEND, 0)
			var fr [8]byte
			rec := encSub(nil, subCreate, &stores.SubState{ID: 2, ClientID: "x"})
			binary.LittleEndian.PutUint32(fr[0:], uint32(len(rec)))
			binary.LittleEndian.PutUint32(fr[4:], crc32Checksum(rec))
			f.Write(append(fr[:], rec...))
			f.Close()
			flipByte(t, p, first+9) // inside the first record
			return p
		},
	}
	for name, damage := range cases {
		t.Run(name, func(t *testing.T) {
			dir, _ := build(t, 100)
			file := damage(t, dir)
			before, _ := os.ReadFile(file)
			for round := 0; round < 2; round++ { // stays damaged across reopen: nothing was dropped
				s, err := Open(dir, Options{SegmentBytes: 1000})
				if err != nil {
					t.Fatalf("Open: %v", err)
				}
				if got := channelNames(t, s); len(got) != 1 || got[0] != "bar" {
					t.Fatalf("channels %v", got)
				}
				dmg := s.Damaged()
				var de *DamageError
				if len(dmg) != 1 || !errors.As(dmg[0], &de) || !errors.Is(dmg[0], ErrCorrupt) {
					t.Fatalf("Damaged() = %v", dmg)
				}
				if de.Channel != "foo" || de.File != file || de.Offset <= 0 || de.Offset >= int64(len(before)) {
					t.Fatalf("damage %+v", de)
				}
				if !strings.Contains(de.Error(), file) {
					t.Fatal(de.Error())
				}
				if _, err := s.CreateChannel("foo", 9); !errors.Is(err, ErrCorrupt) {
					t.Fatalf("CreateChannel over a damaged channel: %v", err)
				}
				s.Close()
				after, _ := os.ReadFile(file)
				if !bytes.Equal(before, after) {
					t.Fatal("damaged file modified")
				}
			}
		})
	}
}

func TestVerifyClean(t *testing.T) {
	dir, _ := build(t, 100)
	r, err := Verify(dir, Options{})
	if err != nil || !r.OK() || len(r.Problems) != 0 {
		t.Fatalf("%v %+v", err, r.Problems)
	}
	if len(r.Channels) != 2 {
		t.Fatalf("%+v", r.Channels)
	}
	bar, foo := r.Channels[0], r.Channels[1]
	// foo.Subs counts records: Close created subs.log with a snapshot (a create and a
	// pending record).
	if foo.Name != "foo" || foo.First != 1 || foo.Last != 100 || foo.Msgs != 100 || foo.Segments < 3 || foo.Subs != 2 || foo.Damaged {
		t.Fatalf("foo %+v", foo)
	}
	if bar.Name != "bar" || bar.Msgs != 10 {
		t.Fatalf("bar %+v", bar)
	}
}

func TestRepairTornTailAndIndex(t *testing.T) {
	dir, all := build(t, 100)
	asIfCrashed(t, dir) // a clean close would make the cut tail damage
	segs := segFiles(t, dir, "foo")
	tail := segs[len(segs)-1]
	fi, _ := os.Stat(tail)
	os.Truncate(tail, fi.Size()-hdrSize-3) // the sync mark Close left, and into the last record
	idx, _ := filepath.Glob(filepath.Join(chanDirOf(t, dir, "foo"), "*.idx"))
	os.WriteFile(idx[1], []byte("garbage garbage garbage!"), 0o644)
	r, err := Verify(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	kinds := map[string]bool{}
	for _, p := range r.Problems {
		kinds[p.Kind] = true
		if !p.Repairable || p.Channel != "foo" {
			t.Fatalf("%+v", p)
		}
	}
	if !kinds[ProblemTornTail] || !kinds[ProblemIndex] || r.OK() {
		t.Fatalf("%+v", r.Problems)
	}
	r, err = Repair(dir, Options{})
	if err != nil || !r.OK() {
		t.Fatalf("Repair: %v %+v", err, r)
	}
	if r, _ := Verify(dir, Options{}); len(r.Problems) != 0 || r.Channels[1].Last != 99 {
		t.Fatalf("after repair %+v %+v", r.Problems, r.Channels)
	}
	s, err := Open(dir, Options{SegmentBytes: 1000})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	rs, _ := s.Recover()
	ms := rs.Channels[1].Channel.Msgs
	var m stores.Msg
	for i := range all[:99] {
		if err := ms.Load(all[i].Seq, &m); err != nil || !bytes.Equal(m.Data, all[i].Data) {
			t.Fatalf("Load(%d) = %v", all[i].Seq, err)
		}
	}
}

func snapshotDir(t *testing.T, dir string) map[string]string {
	out := map[string]string{}
	filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			b, _ := os.ReadFile(p)
			out[p] = string(b)
		}
		return nil
	})
	return out
}

// TestRepairRefusesThenQuarantines: damage in a sealed segment whose index is intact (Open
// does not see it; Verify does). Repair refuses and changes nothing; with Quarantine it
// moves the segment and the earlier ones aside, keeping Last.
func TestRepairRefusesThenQuarantines(t *testing.T) {
	dir, all := build(t, 100)
	segs := segFiles(t, dir, "foo")
	fi, _ := os.Stat(segs[2])
	flipByte(t, segs[2], fi.Size()/2)
	r, err := Verify(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if len(r.Problems) != 1 || r.Problems[0].Kind != ProblemCorrupt || r.Problems[0].File != segs[2] || r.Problems[0].Repairable || !r.Channels[1].Damaged {
		t.Fatalf("%+v", r.Problems)
	}
	before := snapshotDir(t, dir)
	if _, err := Repair(dir, Options{}); !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), segs[2]) || !strings.Contains(err.Error(), "Quarantine") {
		t.Fatalf("Repair without quarantine: %v", err)
	}
	after := snapshotDir(t, dir)
	if len(before) != len(after) {
		t.Fatal("Repair refused but changed files")
	}
	for p, b := range before {
		if after[p] != b {
			t.Fatalf("Repair refused but changed %s", p)
		}
	}
	r, err = Repair(dir, Options{Quarantine: true})
	if err != nil || !r.OK() || len(r.Quarantined) < 3 {
		t.Fatalf("Repair: %v %+v", err, r)
	}
	s, err := Open(dir, Options{SegmentBytes: 1000})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if d := s.Damaged(); len(d) != 0 {
		t.Fatal(d)
	}
	rs, _ := s.Recover()
	ms := rs.Channels[1].Channel.Msgs
	st := ms.State()
	if st.Last != 100 || st.First < 10 || st.Msgs != st.Last-st.First+1 {
		t.Fatalf("state %+v", st)
	}
	var m stores.Msg
	for q := st.First; q <= st.Last; q++ {
		if err := ms.Load(q, &m); err != nil || !bytes.Equal(m.Data, all[q-1].Data) {
			t.Fatalf("Load(%d): %v", q, err)
		}
	}
}

// TestQuarantineTail: damage in the middle of the tail; quarantine moves every segment
// and Last survives, so no sequence is reused.
func TestQuarantineTail(t *testing.T) {
	dir, _ := build(t, 100)
	segs := segFiles(t, dir, "foo")
	tail := segs[len(segs)-1]
	fi, _ := os.Stat(tail)
	flipByte(t, tail, fi.Size()/2)
	if _, err := Repair(dir, Options{}); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("Repair: %v", err)
	}
	if _, err := Repair(dir, Options{Quarantine: true}); err != nil {
		t.Fatal(err)
	}
	s, err := Open(dir, Options{SegmentBytes: 1000})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	rs, _ := s.Recover()
	ms := rs.Channels[1].Channel.Msgs
	if st := ms.State(); st.Last != 100 || st.Msgs != 0 {
		t.Fatalf("state %+v", st)
	}
	if err := ms.Append(genMsgs(101, 3)); err != nil {
		t.Fatal(err)
	}
}

// TestRepairDamagedLog: a damaged subs.log is copied aside and rewritten with every intact
// record.
func TestRepairDamagedLog(t *testing.T) {
	dir, _ := build(t, 20)
	p := filepath.Join(chanDirOf(t, dir, "foo"), "subs.log")
	first := firstSubFrame(t, p)
	f, _ := os.OpenFile(p, os.O_WRONLY|os.O_APPEND, 0)
	var fr [8]byte
	rec := encSub(nil, subCreate, &stores.SubState{ID: 2, ClientID: "x"})
	binary.LittleEndian.PutUint32(fr[0:], uint32(len(rec)))
	binary.LittleEndian.PutUint32(fr[4:], crc32Checksum(rec))
	f.Write(append(fr[:], rec...))
	f.Close()
	flipByte(t, p, first+9)
	if _, err := Repair(dir, Options{}); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("Repair: %v", err)
	}
	r, err := Repair(dir, Options{Quarantine: true})
	if err != nil || len(r.Quarantined) != 1 {
		t.Fatalf("%v %+v", err, r)
	}
	s, err := Open(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	rs, _ := s.Recover()
	if subs := rs.Channels[1].Subs; len(subs) != 1 || subs[0].State.ID != 2 {
		t.Fatalf("subs %+v", subs)
	}
}

// TestGarbledTail: garbage written over the last n bytes of the tail (its last sync mark and
// the records before it) is a torn tail, cut automatically; so is a zeroed hole followed by
// intact records in bytes that were never synced (unsynced pages).
func TestGarbledTail(t *testing.T) {
	check := func(t *testing.T, dir string, all []stores.Msg, minLast uint64) {
		t.Helper()
		s, err := Open(dir, Options{SegmentBytes: 1000})
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		if d := s.Damaged(); len(d) != 0 {
			t.Fatal(d)
		}
		rs, _ := s.Recover()
		ms := rs.Channels[1].Channel.Msgs
		st := ms.State()
		if st.Last < minLast || st.Msgs != st.Last {
			t.Fatalf("state %+v", st)
		}
		var m stores.Msg
		for q := uint64(1); q <= st.Last; q++ {
			if err := ms.Load(q, &m); err != nil || !bytes.Equal(m.Data, all[q-1].Data) {
				t.Fatalf("Load(%d): %v", q, err)
			}
		}
	}
	for n := int64(1); n < 150; n += 11 {
		dir, all := build(t, 100)
		asIfCrashed(t, dir) // a clean close would make the garbled records damage
		segs := segFiles(t, dir, "foo")
		tail := segs[len(segs)-1]
		fi, _ := os.Stat(tail)
		f, _ := os.OpenFile(tail, os.O_RDWR, 0)
		g := make([]byte, n)
		for i := range g {
			g[i] = byte(i*7 + int(n) + 1)
		}
		f.WriteAt(g, fi.Size()-n)
		f.Close()
		check(t, dir, all, 90)
	}
	// Records appended and flushed but never synced, then a zeroed hole among them followed
	// by intact ones (pages of an unsynced tail reordered by a power cut): cut at the hole.
	dir, all := build(t, 100)
	s, err := Open(dir, Options{SegmentBytes: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	rs, _ := s.Recover()
	more := genMsgs(101, 20)
	all = append(all, more...)
	ms := rs.Channels[1].Channel.Msgs
	if err := ms.Append(more); err != nil {
		t.Fatal(err)
	}
	if err := ms.(stores.SplitSyncer).Flush(); err != nil {
		t.Fatal(err)
	}
	s.abandon()
	segs := segFiles(t, dir, "foo")
	tail := segs[len(segs)-1]
	fi, _ := os.Stat(tail)
	f, _ := os.OpenFile(tail, os.O_RDWR, 0)
	f.WriteAt(make([]byte, 100), fi.Size()-500)
	f.Close()
	check(t, dir, all, 100)
}

// TestDamageBeforeSyncMark: in a version 2 tail, a record that fails its checks before an
// offset an intact sync mark proves synced is damage (not cut), whether the mark comes
// before or after it; Verify agrees with Open.
func TestDamageBeforeSyncMark(t *testing.T) {
	for _, how := range []string{"zeroed", "flipped"} {
		t.Run(how, func(t *testing.T) {
			dir, _ := build(t, 100) // the tail ends with the sync mark Close leaves
			asIfCrashed(t, dir)     // the sync mark's rule, not the clean close's
			segs := segFiles(t, dir, "foo")
			tail := segs[len(segs)-1]
			fi, _ := os.Stat(tail)
			off := (hdrSizeV2 + fi.Size() - hdrSize) / 2
			if how == "zeroed" {
				f, _ := os.OpenFile(tail, os.O_RDWR, 0)
				f.WriteAt(make([]byte, 40), off)
				f.Close()
			} else {
				flipByte(t, tail, off)
			}
			s, err := Open(dir, Options{SegmentBytes: 1000})
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			var de *DamageError
			if d := s.Damaged(); len(d) != 1 || !errors.As(d[0], &de) || de.File != tail || !strings.Contains(de.Reason, "sync mark") {
				t.Fatalf("Damaged() = %v", d)
			}
			s.abandon() // Verify refuses a store in use
			r, err := Verify(dir, Options{})
			if err != nil || len(r.Problems) != 1 || r.Problems[0].Kind != ProblemCorrupt || r.Problems[0].File != tail {
				t.Fatalf("Verify: %v %+v", err, r.Problems)
			}
		})
	}
}

// TestLoadChecksCRC: damage inside a sealed segment whose index is intact is not seen by
// Open, but Load reports it instead of returning wrong data.
func TestLoadChecksCRC(t *testing.T) {
	dir, _ := build(t, 100)
	segs := segFiles(t, dir, "foo")
	idx := &segment{base: strings.TrimSuffix(segs[0], ".seg")}
	fi, _ := os.Stat(segs[0])
	if why := idx.loadIndex(fi.Size()); why != "" {
		t.Fatal(why)
	}
	e := idx.ents.At(3)
	flipByte(t, segs[0], int64(e.off)+hdrSize+1)
	s, err := Open(dir, Options{SegmentBytes: 1000})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	rs, _ := s.Recover()
	var m stores.Msg
	err = rs.Channels[1].Channel.Msgs.Load(4, &m)
	var de *DamageError
	if !errors.As(err, &de) || de.File != segs[0] || de.Offset != int64(e.off) || de.Channel != "foo" || !errors.Is(err, ErrCorrupt) {
		t.Fatalf("Load = %v", err)
	}
	if err := rs.Channels[1].Channel.Msgs.Load(5, &m); err != nil {
		t.Fatal(err)
	}
}

// firstSubFrame returns the offset of the first frame of the subs.log at path that holds
// a subscription (a create record, or a batch).
func firstSubFrame(t *testing.T, path string) int64 {
	t.Helper()
	offs, types := frames(t, path, magicSubs)
	for i, ty := range types {
		if ty == subCreate || ty == recBatch {
			return int64(offs[i])
		}
	}
	t.Fatalf("no subscription in %s", path)
	return 0
}

// TestGapResumeKeepsDurableLast: an emptied channel resuming at a gap must not lose its
// durable Last to a crash before the next Sync.
func TestGapResumeKeepsDurableLast(t *testing.T) {
	dir := t.TempDir()
	s, ch := openWithFoo(t, dir, Options{})
	ms := ch.Msgs
	if err := ms.Append(genMsgs(1, 10)); err != nil {
		t.Fatal(err)
	}
	if err := ms.Sync(); err != nil {
		t.Fatal(err)
	}
	ms.SetLimits(stores.Limits{MaxAge: 1})
	if n, _ := ms.Expire(1 << 40); n != 10 {
		t.Fatalf("expired %d", n)
	}
	if err := ms.Append(genMsgs(20, 1)); err != nil {
		t.Fatal(err)
	}
	s.abandon() // crash before the next Sync
	s, err := Open(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	rs, _ := s.Recover()
	if got := rs.Channels[0].Channel.Msgs.State(); got.Last < 10 {
		t.Fatalf("state %+v after the crash: Last went back below the synced 10", got)
	}
}

// TestRollAfterExpiryKeepsDurableLast: a channel emptied by MaxAge (and synced) whose next
// message rolls to a new segment must not lose its Last to a crash before the next Sync.
func TestRollAfterExpiryKeepsDurableLast(t *testing.T) {
	dir := t.TempDir()
	s, ch := openWithFoo(t, dir, Options{SegmentMsgs: 10})
	ms := ch.Msgs
	if err := ms.Append(genMsgs(1, 10)); err != nil {
		t.Fatal(err)
	}
	ms.SetLimits(stores.Limits{MaxAge: 1})
	if n, _ := ms.Expire(1 << 40); n != 10 {
		t.Fatalf("expired %d", n)
	}
	if err := ms.Sync(); err != nil {
		t.Fatal(err)
	}
	ms.SetLimits(stores.Limits{})
	if err := ms.Append(genMsgs(11, 1)); err != nil {
		t.Fatal(err)
	}
	s.abandon() // crash before the next Sync, and again right after the reopen
	for range 2 {
		var err error
		if s, err = Open(dir, Options{SegmentMsgs: 10}); err != nil {
			t.Fatal(err)
		}
		rs, _ := s.Recover()
		if got := rs.Channels[0].Channel.Msgs.State(); got.Last < 10 {
			t.Fatalf("state %+v after the crash: Last went back below the synced 10", got)
		}
		s.abandon()
	}
}

// TestResumeRollsOntoOldTailName: an empty channel whose tail starts past Last (a gap
// resume whose message a crash lost) resumes below that tail, and the same Append rolls to
// a segment of the old tail's name: dropping the old tail must not delete the new file.
func TestResumeRollsOntoOldTailName(t *testing.T) {
	dir := t.TempDir()
	opts := Options{SegmentMsgs: 9}
	lostTailPastLast(t, dir, opts)
	s, err := Open(dir, opts)
	if err != nil {
		t.Fatal(err)
	}
	rs, _ := s.Recover()
	ms := rs.Channels[0].Channel.Msgs
	if got := ms.State(); got.Last != 10 || got.Msgs != 0 {
		t.Fatalf("state %+v", got)
	}
	all := genMsgs(11, 15) // 11..19, then a roll to a new segment at 20
	if err := ms.Append(all); err != nil {
		t.Fatal(err)
	}
	if err := ms.Sync(); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s, err = Open(dir, opts)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	rs, _ = s.Recover()
	checkMsgs(t, rs.Channels[0].Channel.Msgs, all)
}

// TestResumeBelowOldTailSurvivesKill: an empty channel whose tail starts past Last resumes
// below it; a kill -9 in the middle of that Append (a record half written) must not leave
// the old tail to be taken for the tail and the new one, torn, for a damaged sealed segment.
func TestResumeBelowOldTailSurvivesKill(t *testing.T) {
	dir := t.TempDir()
	opts := Options{BufferSize: 100}
	lostTailPastLast(t, dir, opts)
	// The files as a kill -9 leaves them at the second write into the new tail at 11.
	killed := t.TempDir()
	writes := 0
	hooked := opts
	hooked.Hooks.Write = func(path string, p []byte, write func([]byte) (int, error)) (int, error) {
		n, err := write(p)
		if filepath.Base(path) == filepath.Base(segPath("", 11))+".seg" {
			if writes++; writes == 2 {
				for p, b := range snapshotDir(t, dir) {
					q := filepath.Join(killed, p[len(dir):])
					os.MkdirAll(filepath.Dir(q), 0o755)
					os.WriteFile(q, []byte(b), 0o644)
				}
			}
		}
		return n, err
	}
	s, err := Open(dir, hooked)
	if err != nil {
		t.Fatal(err)
	}
	rs, _ := s.Recover()
	if err := rs.Channels[0].Channel.Msgs.Append(genMsgs(11, 5)); err != nil {
		t.Fatal(err)
	}
	s.abandon()
	if writes < 2 {
		t.Fatalf("%d writes into the new tail", writes)
	}
	s, err = Open(killed, opts)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if d := s.Damaged(); len(d) > 0 {
		t.Fatalf("damaged after the kill: %v", d)
	}
	rs, _ = s.Recover()
	if got := rs.Channels[0].Channel.Msgs.State(); got.Last < 10 {
		t.Fatalf("state %+v", got)
	}
}

// TestMissingSegmentIsDamage: a segment missing between two others is a gap, which fails
// the channel (Store.Damaged) and nothing else.
func TestMissingSegmentIsDamage(t *testing.T) {
	dir, _ := build(t, 100)
	segs := segFiles(t, dir, "foo")
	mid := strings.TrimSuffix(segs[len(segs)/2], ".seg")
	os.Remove(mid + ".seg")
	os.Remove(mid + ".idx")
	s, err := Open(dir, Options{SegmentBytes: 1000})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	d := s.Damaged()
	if len(d) != 1 || !strings.Contains(d[0].Error(), "gap") {
		t.Fatalf("damaged: %v", d)
	}
	if got := channelNames(t, s); len(got) != 1 || got[0] != "bar" {
		t.Fatalf("channels %v", got)
	}
}

// TestUnmarkedTailAfterGapOpens: an earlier build could leave, after a crash while an
// emptied channel resumed at a gap, its old segments and a new tail torn before its marker.
// The old segments, wholly before First, are dropped as before rather than kept and found
// not to continue into the tail (a gap: the channel refused).
func TestUnmarkedTailAfterGapOpens(t *testing.T) {
	dir := t.TempDir()
	s, ch := openWithFoo(t, dir, Options{})
	ms := ch.Msgs
	if err := ms.Append(genMsgs(1, 10)); err != nil {
		t.Fatal(err)
	}
	ms.SetLimits(stores.Limits{MaxAge: 1})
	ms.Expire(1 << 40)
	if err := s.Close(); err != nil { // its tail's marker states First 11
		t.Fatal(err)
	}
	asIfCrashed(t, dir) // a tail created at 20, then lost by a crash
	if err := os.WriteFile(segPath(chanDirOf(t, dir, "foo"), 20)+".seg", nil, 0o644); err != nil {
		t.Fatal(err)
	}
	s, err := Open(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if d := s.Damaged(); len(d) > 0 {
		t.Fatalf("damaged: %v", d)
	}
	rs, _ := s.Recover()
	if got := rs.Channels[0].Channel.Msgs.State(); got.First != 11 || got.Last != 10 {
		t.Fatalf("state %+v", got)
	}
}

// lostTailPastLast leaves in dir a channel foo whose 10 messages expired (synced, Last 10)
// and a tail at 20 whose one message a crash lost: the store is abandoned as a kill leaves it.
func lostTailPastLast(t *testing.T, dir string, opts Options) {
	t.Helper()
	s, ch := openWithFoo(t, dir, opts)
	ms := ch.Msgs
	if err := ms.Append(genMsgs(1, 10)); err != nil {
		t.Fatal(err)
	}
	ms.SetLimits(stores.Limits{MaxAge: 1})
	ms.Expire(1 << 40)
	ms.SetLimits(stores.Limits{})
	if err := ms.Sync(); err != nil {
		t.Fatal(err)
	}
	if err := ms.Append(genMsgs(20, 1)); err != nil { // a tail at 20
		t.Fatal(err)
	}
	s.abandon() // message 20 is lost, the tail at 20 stays
}

// TestMissingChannelDirIsDamage: a channel directory removed by hand (or lost) fails the
// channel instead of being recreated empty, which would lose its messages and
// subscriptions silently and hand their sequences out again; `store repair` recreates it.
func TestMissingChannelDirIsDamage(t *testing.T) {
	dir, _ := build(t, 100)
	foo := chanDirOf(t, dir, "foo")
	if err := os.RemoveAll(foo); err != nil {
		t.Fatal(err)
	}
	for round := 0; round < 2; round++ { // and stays so across reopen
		s, err := Open(dir, Options{SegmentBytes: 1000})
		if err != nil {
			t.Fatal(err)
		}
		d := s.Damaged()
		var de *DamageError
		if len(d) != 1 || !errors.As(d[0], &de) || de.File != foo || !strings.Contains(de.Reason, "missing") {
			t.Fatalf("damaged: %v", d)
		}
		if got := channelNames(t, s); len(got) != 1 || got[0] != "bar" {
			t.Fatalf("channels %v", got)
		}
		if _, err := s.CreateChannel("foo", 3); !errors.Is(err, ErrCorrupt) {
			t.Fatalf("CreateChannel over the missing channel: %v", err)
		}
		s.Close()
		if _, err := os.Stat(foo); !errors.Is(err, os.ErrNotExist) {
			t.Fatalf("directory recreated: %v", err)
		}
	}
	rep, err := Verify(dir, Options{})
	if err != nil || rep.OK() || len(rep.Problems) != 1 || rep.Problems[0].Kind != ProblemMissing || !rep.Channels[1].Damaged {
		t.Fatalf("verify: %v %+v", err, rep)
	}
	if _, err := Repair(dir, Options{}); err != nil {
		t.Fatal(err)
	}
	s, err := Open(dir, Options{SegmentBytes: 1000})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if d := s.Damaged(); len(d) != 0 {
		t.Fatalf("damaged after repair: %v", d)
	}
	if got := channelNames(t, s); len(got) != 2 {
		t.Fatalf("channels after repair %v", got)
	}
}

// TestOpenKeepsForeignDirs: Open removes the empty channel directories no channel refers
// to (a CreateChannel cut short), and only those: a directory that merely starts with "ch"
// — such as the channel "chat" of a nats-streaming-server store Starling was pointed at by
// mistake — is not its own and is left alone.
func TestOpenKeepsForeignDirs(t *testing.T) {
	dir, _ := build(t, 10)
	foreign := filepath.Join(dir, "chat", "msgs.1.dat")
	stray := filepath.Join(dir, "ch00000009")
	for _, d := range []string{filepath.Dir(foreign), stray} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(foreign, []byte("nss"), 0o644); err != nil {
		t.Fatal(err)
	}
	s, err := Open(dir, Options{SegmentBytes: 1000})
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
	if b, err := os.ReadFile(foreign); err != nil || string(b) != "nss" {
		t.Fatalf("%s: %q %v", foreign, b, err)
	}
	if _, err := os.Stat(stray); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("stray channel directory kept: %v", err)
	}
}

// TestLostMetaLogKeepsChannels: meta.log emptied or removed (by hand, by a damaged file
// system) while channel directories hold messages is lost metadata, not a fresh store:
// Open fails naming it, and deletes none of the channel directories it can no longer
// name (it took them all for strays of DeleteChannel).
func TestLostMetaLogKeepsChannels(t *testing.T) {
	for name, lose := range map[string]func(meta string) error{
		"emptied":     func(meta string) error { return os.Truncate(meta, 0) },
		"torn header": func(meta string) error { return os.Truncate(meta, 5) },
		"removed":     os.Remove,
	} {
		t.Run(name, func(t *testing.T) {
			dir, _ := build(t, 100)
			foo := chanDirOf(t, dir, "foo")
			meta := filepath.Join(dir, "meta.log")
			if err := lose(meta); err != nil {
				t.Fatal(err)
			}
			for round := 0; round < 2; round++ {
				s, err := Open(dir, Options{SegmentBytes: 1000})
				if err == nil {
					s.Close()
				}
				if !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), meta) {
					t.Fatalf("open: %v", err)
				}
				if segs, _ := filepath.Glob(filepath.Join(foo, "*.seg")); len(segs) == 0 {
					t.Fatalf("the segments of %s were deleted", foo)
				}
			}
			if rep, err := Verify(dir, Options{}); err == nil && rep.OK() { // (no meta.log: an error)
				t.Fatalf("verify: %+v", rep)
			}
			if _, err := Repair(dir, Options{}); err == nil {
				t.Fatal("repair succeeded")
			}
			if segs, _ := filepath.Glob(filepath.Join(foo, "*.seg")); len(segs) == 0 {
				t.Fatalf("repair deleted the segments of %s", foo)
			}
		})
	}
	// A store that never held a message opens as before, whatever its meta.log.
	dir := t.TempDir()
	if err := os.Mkdir(filepath.Join(dir, "ch00000001"), 0o755); err != nil { // CreateChannel cut short
		t.Fatal(err)
	}
	s, err := Open(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
}
