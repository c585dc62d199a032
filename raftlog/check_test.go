package raftlog

import (
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/hashicorp/raft"
	raftboltdb "github.com/hashicorp/raft-boltdb/v2"
	"go.etcd.io/bbolt"
)

// TestCheckLogFileTorn: a raft.db cut short of the pages its meta page counts, or not a
// bolt file at all, is refused with the file named; a whole one and a missing one pass.
func TestCheckLogFileTorn(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "raft.db")
	if err := checkLogFile(p); err != nil {
		t.Fatalf("missing file: %v", err)
	}
	st, err := raftboltdb.New(raftboltdb.Options{Path: p})
	if err != nil {
		t.Fatal(err)
	}
	var logs []*raft.Log
	for i := uint64(1); i <= 500; i++ {
		logs = append(logs, &raft.Log{Index: i, Term: 1, Data: make([]byte, 200)})
	}
	if err := st.StoreLogs(logs); err != nil {
		t.Fatal(err)
	}
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	if err := checkLogFile(p); err != nil {
		t.Fatalf("whole file: %v", err)
	}
	fi, err := os.Stat(p)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		size int64
		want string
	}{{fi.Size() / 2, "truncated"}, {100, "no valid meta page"}} {
		if err := os.Truncate(p, c.size); err != nil {
			t.Fatal(err)
		}
		if err := checkLogFile(p); err == nil || !strings.Contains(err.Error(), p+" is damaged") || !strings.Contains(err.Error(), c.want) {
			t.Errorf("cut to %d bytes: %v, want %q", c.size, err, c.want)
		}
	}
	if err := os.WriteFile(p, []byte("not a bolt file"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := checkLogFile(p); err == nil || !strings.Contains(err.Error(), "no valid meta page") {
		t.Errorf("not a bolt file: %v", err)
	}
}

// TestCheckLogFileDamagedPages: a log written as NewNode writes it (the map freelist, not
// synced — and, as older versions wrote it, synced), then damaged page by page — random
// bytes, zeroes, one flipped bit, anywhere past the meta pages, in a page's header or its
// elements: checkLogFile answers (an error, or nil when only unused bytes were hit) and,
// when it passes, bolt opens the file, which raft then reads through and writes to. A panic
// or a fault anywhere would end the test binary: with the freelist not synced, bolt rebuilds
// it at Open in a goroutine of its own, which faulted on a damaged page before boltcheck
// (even after a recoverable cursor walk of every bucket had passed). STARLING_DAMAGE_COPIES
// sets the number of copies (default 150 each).
func TestCheckLogFileDamagedPages(t *testing.T) {
	copies := 150
	if n, err := strconv.Atoi(os.Getenv("STARLING_DAMAGE_COPIES")); err == nil {
		copies = n
	}
	for _, synced := range []bool{false, true} {
		for _, small := range []bool{false, true} {
			t.Run(fmt.Sprintf("freelist synced %v, small entries %v", synced, small), func(t *testing.T) {
				damagePages(t, !synced, small, copies)
			})
		}
	}
}

// damagePages damages copies of a log of large entries (overflow pages) or of small ones
// (many leaves under several branch pages).
func damagePages(t *testing.T, noFreelistSync, small bool, copies int) {
	dir := t.TempDir()
	pristine := filepath.Join(dir, "pristine.db")
	opts := raftboltdb.Options{Path: pristine, NoSync: true, BoltOptions: &bbolt.Options{FreelistType: bbolt.FreelistMapType, NoFreelistSync: noFreelistSync}}
	st, err := raftboltdb.New(opts)
	if err != nil {
		t.Fatal(err)
	}
	n := uint64(600)
	if small {
		n = 2000
	}
	for i := uint64(1); i <= n; i++ { // several leaves, overflow values, a freed range
		size := 50 + int(i%7)*900
		if small {
			size = 20 + int(i%5)*10
		}
		if err := st.StoreLogs([]*raft.Log{{Index: i, Term: 1, Data: make([]byte, size)}}); err != nil {
			t.Fatal(err)
		}
	}
	if err := st.DeleteRange(1, n/3); err != nil {
		t.Fatal(err)
	}
	if err := st.SetUint64([]byte("CurrentTerm"), 1); err != nil { // the conf bucket: inline
		t.Fatal(err)
	}
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	clean, err := os.ReadFile(pristine)
	if err != nil {
		t.Fatal(err)
	}
	if err := checkLogFile(pristine); err != nil {
		t.Fatalf("the undamaged file: %v", err)
	}
	const page = 4096
	pages := len(clean) / page
	rng := rand.New(rand.NewPCG(1, 2))
	refused := 0
	p := filepath.Join(dir, "raft.db")
	for i := range copies {
		b := slices.Clone(clean)
		pg := 2 + rng.IntN(pages-2)
		off := pg*page + rng.IntN(page)
		switch i % 5 {
		case 0:
			for j := off; j < min(off+64, len(b)); j++ {
				b[j] = byte(rng.Uint32())
			}
		case 1:
			clear(b[pg*page : (pg+1)*page])
		case 2:
			b[off] ^= 1 << rng.IntN(8)
		case 3: // the header: id, flags, count, overflow
			b[pg*page+rng.IntN(16)] ^= 1 << rng.IntN(8)
		case 4: // the first elements: positions, sizes, children
			b[pg*page+16+rng.IntN(256)] = byte(rng.Uint32())
		}
		if err := os.WriteFile(p, b, 0o600); err != nil {
			t.Fatal(err)
		}
		if err := checkLogFile(p); err != nil {
			refused++
			continue
		}
		o := opts
		o.Path = p
		s, err := raftboltdb.New(o)
		if err != nil {
			t.Fatalf("damage %d (page %d) passed the check, then bolt refused the file: %v", i, pg, err)
		}
		_ = checkEntries(p, s) // raft reads the entries (an error is fine: the node refuses)
		_ = s.StoreLogs([]*raft.Log{{Index: n + 1, Term: 2, Data: make([]byte, 5000)}})
		_ = s.DeleteRange(n/3, n/2)
		_ = s.Close()
	}
	t.Logf("%d damaged copies of a %d-page log: %d refused, the rest opened", copies, pages, refused)
}

// TestCheckLogFileRefusesWhatBoltWalks: damage that bbolt's own walk at Open would report — and so die
// of, in its goroutine — is refused by checkLogFile with the page named: a child referenced
// twice, a branch pointing back at itself (a walk without end), keys out of order.
func TestCheckLogFileRefusesWhatBoltWalks(t *testing.T) {
	dir := t.TempDir()
	pristine := filepath.Join(dir, "pristine.db")
	st, err := raftboltdb.New(raftboltdb.Options{Path: pristine, NoSync: true,
		BoltOptions: &bbolt.Options{FreelistType: bbolt.FreelistMapType, NoFreelistSync: true}})
	if err != nil {
		t.Fatal(err)
	}
	for i := uint64(1); i <= 3000; i++ {
		if err := st.StoreLogs([]*raft.Log{{Index: i, Term: 1, Data: []byte("x")}}); err != nil {
			t.Fatal(err)
		}
	}
	_ = st.Close()
	db, err := bbolt.Open(pristine, 0o600, &bbolt.Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	var root uint64
	_ = db.View(func(tx *bbolt.Tx) error { root = uint64(tx.Bucket([]byte("logs")).RootPage()); return nil })
	_ = db.Close()
	clean, err := os.ReadFile(pristine)
	if err != nil {
		t.Fatal(err)
	}
	const page = 4096
	le := binary.NativeEndian
	at := int(root) * page
	if le.Uint16(clean[at+8:]) != 0x01 || le.Uint16(clean[at+10:]) < 2 { // a branch page
		t.Fatalf("the logs bucket's root is not a branch of two or more children")
	}
	elem := func(i int) int { return at + 16 + i*16 } // after the page header: pos, ksize, pgid
	key := func(b []byte, i int) []byte {
		e := elem(i)
		pos, n := int(le.Uint32(b[e:])), int(le.Uint32(b[e+4:]))
		return b[e+pos : e+pos+n]
	}
	for _, tc := range []struct {
		name, want string
		damage     func(b []byte)
	}{
		{"a child referenced twice", "reached twice", func(b []byte) {
			le.PutUint64(b[elem(1)+8:], le.Uint64(b[elem(0)+8:]))
		}},
		{"a branch pointing at itself", "reached twice", func(b []byte) { le.PutUint64(b[elem(1)+8:], root) }},
		{"keys out of order", "key", func(b []byte) {
			k0, k1 := slices.Clone(key(b, 0)), slices.Clone(key(b, 1))
			copy(key(b, 0), k1)
			copy(key(b, 1), k0)
		}},
		{"a child past the high-water mark", "outside 2..", func(b []byte) { le.PutUint64(b[elem(0)+8:], 1<<40) }},
		{"a count past the page", "do not fit", func(b []byte) { le.PutUint16(b[at+10:], 0xFFFF) }},
	} {
		b := slices.Clone(clean)
		tc.damage(b)
		p := filepath.Join(dir, "raft.db")
		if err := os.WriteFile(p, b, 0o600); err != nil {
			t.Fatal(err)
		}
		err := checkLogFile(p)
		t.Logf("%s: %v", tc.name, err)
		if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), "page") {
			t.Errorf("%s: %v, want a refusal naming the page (%q)", tc.name, err, tc.want)
		}
	}
	if err := checkLogFile(pristine); err != nil {
		t.Fatalf("the undamaged file: %v", err)
	}
}
