package filestore

import (
	"encoding/binary"
	"hash/crc32"
	"os"
	"path/filepath"
	"testing"

	"github.com/starling-io/starling/stores"
)

// Records written before User existed end right before it: they decode with User "".
func TestRecordsWithoutUser(t *testing.T) {
	c := stores.ClientInfo{ID: "a", HbInbox: "hb", ConnID: []byte("x"), Protocol: 1, PingInterval: 2, PingMaxOut: 3, User: "alice"}
	full := encClient(nil, &c)
	old := full[:len(full)-len(putStr(nil, c.User))]
	s := &Store{clients: map[string]stores.ClientInfo{}}
	s.replay(old)
	if got := s.clients["a"]; got.User != "" || got.PingMaxOut != 3 || string(got.ConnID) != "x" {
		t.Fatalf("old client record = %+v", got)
	}
	s.replay(full)
	if got := s.clients["a"]; got.User != "alice" {
		t.Fatalf("client record = %+v", got)
	}

	st := stores.SubState{ID: 7, ClientID: "a", Inbox: "in", LastSent: 9, IsDurable: true, User: "bob"}
	fullSub := encSub(nil, subCreate, &st)
	oldSub := fullSub[:len(fullSub)-len(putStr(nil, st.User))]
	ss := &subStore{subs: map[uint64]*sub{}}
	ss.replay(oldSub)
	want := st
	want.User = ""
	if got := ss.subs[7].state; got != want {
		t.Fatalf("old sub record = %+v", got)
	}
	ss.replay(append([]byte{subUpdate}, fullSub[1:]...))
	if got := ss.subs[7].state; got != st {
		t.Fatalf("sub record = %+v", got)
	}
}

// v1 files, as the previous build wrote them.

func v1Header(magic string) []byte {
	b := make([]byte, hdrSizeV1)
	copy(b, magic)
	binary.LittleEndian.PutUint16(b[6:], 1)
	return b
}

func v1Log(magic string, recs ...[]byte) []byte {
	b := v1Header(magic)
	for _, r := range recs {
		b = appendFrame(b, r)
	}
	return b
}

func v1Record(seq uint64, tm int64, flags uint32, reply string, data []byte) []byte {
	h := make([]byte, hdrSize)
	binary.LittleEndian.PutUint32(h[0:], uint32(len(reply)+len(data)))
	binary.LittleEndian.PutUint64(h[8:], seq)
	binary.LittleEndian.PutUint64(h[16:], uint64(tm))
	binary.LittleEndian.PutUint32(h[24:], flags)
	binary.LittleEndian.PutUint32(h[28:], uint32(len(reply)))
	crc := crc32.Update(crc32.Checksum(h[8:], crcTable), crcTable, []byte(reply))
	binary.LittleEndian.PutUint32(h[4:], crc32.Update(crc, crcTable, data))
	return append(append(h, reply...), data...)
}

// v1Segment returns a version 1 segment holding a marker (first, last) then msgs, and its
// index.
func v1Segment(first, last uint64, msgs []stores.Msg) (seg, idx []byte) {
	seg = append(v1Header(magicSeg), v1Record(first, int64(last), flagMarker, "", nil)...)
	idx = v1Header(magicIdx)
	for _, m := range msgs {
		e := entry{time: m.Time, off: uint32(len(seg)), blen: uint32(len(m.Reply) + len(m.Data)), rlen: uint32(len(m.Reply))}
		var ib [idxSize]byte
		putIdx(&ib, &e)
		idx = append(idx, ib[:]...)
		seg = append(seg, v1Record(m.Seq, m.Time, 0, m.Reply, m.Data)...)
	}
	return seg, idx
}

// writeV1Store writes a store of the previous format: channel foo with messages 1..5 in a
// sealed segment and 6..10 in the tail, one client and one subscription without User.
func writeV1Store(t *testing.T) (string, []stores.Msg) {
	t.Helper()
	dir := t.TempDir()
	info := stores.ServerInfo{ClusterID: "c", NodeID: "n"}
	c := stores.ClientInfo{ID: "a", HbInbox: "hb"}
	cli := encClient(nil, &c)
	cli = cli[:len(cli)-1] // no User
	meta := v1Log(magicMeta, encInfo(nil, &info), encChannel(nil, "foo", 1, 1, 0), cli)
	cd := filepath.Join(dir, "ch00000001")
	os.MkdirAll(cd, 0o755)
	sub := encSub(nil, subCreate, &stores.SubState{ID: 1, ClientID: "a", Inbox: "in"})
	sub = sub[:len(sub)-1]
	ev := []byte{subEvents, 2, 1, 3, 0, 1, 4, 0} // sent 3 and 4 to sub 1
	all := genMsgs(1, 10)
	seg1, idx1 := v1Segment(1, 0, all[:5])
	seg2, _ := v1Segment(1, 5, all[5:])
	for path, data := range map[string][]byte{
		filepath.Join(dir, "meta.log"):       meta,
		filepath.Join(cd, "subs.log"):        v1Log(magicSubs, sub, ev),
		filepath.Join(cd, segName(1)+".seg"): seg1,
		filepath.Join(cd, segName(1)+".idx"): idx1,
		filepath.Join(cd, segName(6)+".seg"): seg2,
	} {
		if err := os.WriteFile(path, data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir, all
}

func segName(first uint64) string { return filepath.Base(segPath("", first)) }

func version(t *testing.T, path string) uint16 {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return binary.LittleEndian.Uint16(data[6:])
}

// TestReadsVersion1: a store written by the previous build opens with everything in it;
// its logs are rewritten in the current version at open; its tail segment stays version 1
// (no sync marks) until it rolls, and the segment it rolls to is current.
func TestReadsVersion1(t *testing.T) {
	dir, all := writeV1Store(t)
	if r, err := Verify(dir, Options{}); err != nil || len(r.Problems) != 0 || r.Channels[0].Msgs != 10 {
		t.Fatalf("Verify of a version 1 store: %v %+v %+v", err, r.Problems, r.Channels)
	}
	opts := Options{SegmentBytes: 1200}
	s, err := Open(dir, opts)
	if err != nil {
		t.Fatal(err)
	}
	rs, _ := s.Recover()
	if rs.Info.NodeID != "n" || len(rs.Clients) != 1 || rs.Clients[0].User != "" || rs.Clean {
		t.Fatalf("recovered %+v", rs)
	}
	ch := rs.Channels[0]
	if len(ch.Subs) != 1 || len(ch.Subs[0].Pending) != 2 || ch.Subs[0].State.LastSent != 4 {
		t.Fatalf("subs %+v", ch.Subs)
	}
	checkMsgs(t, ch.Channel.Msgs, all)
	cd := filepath.Join(dir, "ch00000001")
	if version(t, filepath.Join(dir, "meta.log")) != FormatVersion || version(t, filepath.Join(cd, "subs.log")) != FormatVersion {
		t.Fatal("logs not rewritten in the current version")
	}
	more := genMsgs(11, 5)
	if err := ch.Channel.Msgs.Append(more); err != nil {
		t.Fatal(err)
	}
	if err := ch.Channel.Msgs.Sync(); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	all = append(all, more...)
	if version(t, filepath.Join(cd, segName(6)+".seg")) != 1 {
		t.Fatal("version 1 tail rewritten")
	}
	if r, err := Verify(dir, Options{}); err != nil || len(r.Problems) != 0 {
		t.Fatalf("Verify: %v %+v", err, r.Problems)
	}
	s, err = Open(dir, opts)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	rs, _ = s.Recover()
	ms := rs.Channels[0].Channel.Msgs
	checkMsgs(t, ms, all)
	for seq := uint64(16); len(segFilesIn(t, cd)) < 4; seq++ {
		if err := ms.Append(genMsgs(seq, 1)); err != nil {
			t.Fatal(err)
		}
		all = append(all, genMsgs(seq, 1)...)
	}
	segs := segFilesIn(t, cd)
	if version(t, segs[1]) != 1 || version(t, segs[2]) != FormatVersion {
		t.Fatalf("versions after the roll: %d, %d", version(t, segs[1]), version(t, segs[2]))
	}
	checkMsgs(t, ms, all)
}

func segFilesIn(t *testing.T, dir string) []string {
	segs, _ := filepath.Glob(filepath.Join(dir, "*.seg"))
	return segs
}

// TestVersion1TailRule: a version 1 tail keeps the rule of its version: a zeroed gap before
// intact records is a torn tail (cut), garbage before intact records is damage.
func TestVersion1TailRule(t *testing.T) {
	for _, tc := range []struct {
		fill   byte
		damage bool
	}{{0, false}, {0x5a, true}} {
		dir, all := writeV1Store(t)
		tail := filepath.Join(dir, "ch00000001", segName(6)+".seg")
		data, _ := os.ReadFile(tail)
		off := hdrSizeV1 + hdrSize // message 6, whole
		for i := off; i < off+hdrSize+len(all[5].Data)+len(all[5].Reply); i++ {
			data[i] = tc.fill
		}
		os.WriteFile(tail, data, 0o644)
		s, err := Open(dir, Options{})
		if err != nil {
			t.Fatal(err)
		}
		rs, _ := s.Recover()
		if tc.damage {
			if len(s.Damaged()) != 1 || len(rs.Channels) != 0 {
				t.Fatalf("garbage then intact records in a version 1 tail: %v", s.Damaged())
			}
		} else {
			checkMsgs(t, rs.Channels[0].Channel.Msgs, all[:5])
		}
		s.Close()
	}
}

// v2 files, as the previous build wrote them: a 16-byte header with a nonce; logs hold plain
// frames (and batches), segments the records of version 1 (no journal record).

func v2Header(magic string) []byte {
	b := make([]byte, hdrSizeV2)
	copy(b, magic)
	binary.LittleEndian.PutUint16(b[6:], 2)
	binary.LittleEndian.PutUint64(b[8:], 0x5eed|1)
	return b
}

func v2Log(magic string, recs ...[]byte) []byte {
	b := v2Header(magic)
	for _, r := range recs {
		b = appendFrame(b, r)
	}
	return b
}

func v2Segment(first, last uint64, msgs []stores.Msg) (seg, idx []byte) {
	seg = append(v2Header(magicSeg), v1Record(first, int64(last), flagMarker, "", nil)...)
	idx = v2Header(magicIdx)
	for _, m := range msgs {
		e := entry{time: m.Time, off: uint32(len(seg)), blen: uint32(len(m.Reply) + len(m.Data)), rlen: uint32(len(m.Reply))}
		var ib [idxSize]byte
		putIdx(&ib, &e)
		idx = append(idx, ib[:]...)
		seg = append(seg, v1Record(m.Seq, m.Time, 0, m.Reply, m.Data)...)
	}
	return seg, idx
}

// TestReadsVersion2: a store written by the previous build (version 2) opens with everything
// in it; its logs are rewritten in the current version at open; its tail segment stays
// version 2 — so subscription records go to subs.log, fsynced at each commit, never into it
// — until it rolls; the segment it rolls to is current and carries them.
func TestReadsVersion2(t *testing.T) {
	dir := t.TempDir()
	info := stores.ServerInfo{ClusterID: "c", NodeID: "n"}
	meta := v2Log(magicMeta, encInfo(nil, &info), encChannel(nil, "foo", 1, 1, 0), encClient(nil, &stores.ClientInfo{ID: "a", HbInbox: "hb"}))
	cd := filepath.Join(dir, "ch00000001")
	os.MkdirAll(cd, 0o755)
	sub := encSub(nil, subCreate, &stores.SubState{ID: 1, ClientID: "a", Inbox: "in", MaxInFlight: 100})
	ev := []byte{subEvents, 2, 1, 3, 0, 1, 4, 0} // sent 3 and 4 to sub 1
	all := genMsgs(1, 10)
	seg1, idx1 := v2Segment(1, 0, all[:5])
	seg2, _ := v2Segment(1, 5, all[5:])
	for path, data := range map[string][]byte{
		filepath.Join(dir, "meta.log"):       meta,
		filepath.Join(cd, "subs.log"):        v2Log(magicSubs, sub, ev),
		filepath.Join(cd, segName(1)+".seg"): seg1,
		filepath.Join(cd, segName(1)+".idx"): idx1,
		filepath.Join(cd, segName(6)+".seg"): seg2,
	} {
		if err := os.WriteFile(path, data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if r, err := Verify(dir, Options{}); err != nil || len(r.Problems) != 0 || r.Channels[0].Msgs != 10 {
		t.Fatalf("Verify of a version 2 store: %v %+v %+v", err, r.Problems, r.Channels)
	}
	j := &jt{t: t, dir: dir, opts: Options{SegmentBytes: 1200}, fl: newFaults(), subs: map[uint64]*stores.RecoveredSub{}}
	j.open()
	j.subs[1] = &stores.RecoveredSub{State: stores.SubState{ID: 1, ClientID: "a", Inbox: "in", MaxInFlight: 100, LastSent: 4}, Pending: []uint64{3, 4}}
	j.nextSub, j.msgs, j.next = 1, all, 11
	j.checkSubs()
	checkMsgs(t, j.ch.Msgs, all)
	if version(t, filepath.Join(dir, "meta.log")) != FormatVersion || version(t, filepath.Join(cd, "subs.log")) != FormatVersion {
		t.Fatal("logs not rewritten in the current version")
	}
	j.takeSyncs()
	j.pass(1, 2)
	only(t, j.takeSyncs(), segName(6)+".seg", "subs.log")
	for len(segFilesIn(t, cd)) < 3 {
		j.pass(1, 2)
	}
	j.takeSyncs()
	j.pass(1, 2)
	segs := segFilesIn(t, cd)
	only(t, j.takeSyncs(), filepath.Base(segs[2]))
	if version(t, segs[1]) != 2 || version(t, segs[2]) != FormatVersion {
		t.Fatalf("versions after the roll: %d, %d", version(t, segs[1]), version(t, segs[2]))
	}
	j.crash()
	j.checkSubs()
	checkMsgs(t, j.ch.Msgs, j.msgs)
	j.verify()
	j.s.Close()
}
