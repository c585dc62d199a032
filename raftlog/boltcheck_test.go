package raftlog

import (
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/hashicorp/raft"
	raftboltdb "github.com/hashicorp/raft-boltdb/v2"
	"go.etcd.io/bbolt"
)

// TestCheckBoltFile: a raft.db cut short of the pages its meta page counts is refused (and
// checkLogFile names it); a whole one, a missing one and one bbolt itself rejects pass.
func TestCheckBoltFile(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "raft.db")
	if err := checkBoltFile(p); err != nil {
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
	if err := checkBoltFile(p); err != nil {
		t.Fatalf("whole file: %v", err)
	}
	fi, err := os.Stat(p)
	if err != nil {
		t.Fatal(err)
	}
	for _, size := range []int64{fi.Size() / 2, 100} {
		if err := os.Truncate(p, size); err != nil {
			t.Fatal(err)
		}
		if err := checkBoltFile(p); err == nil || !strings.Contains(err.Error(), "torn or truncated") {
			t.Errorf("cut to %d bytes: %v", size, err)
		}
		if err := checkLogFile(p); err == nil || !strings.Contains(err.Error(), p) || !strings.Contains(err.Error(), "torn or truncated") {
			t.Errorf("checkLogFile, cut to %d bytes: %v", size, err)
		}
	}
	if err := os.WriteFile(p, []byte("not a bolt file"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := checkBoltFile(p); err != nil {
		t.Errorf("not a bolt file (bbolt's to report): %v", err)
	}
}

// TestCheckLogFileDamagedPages: a log written as NewNode writes it (the map freelist,
// synced), then damaged page by page — random bytes, zeroes, one flipped bit, anywhere past
// the meta pages: checkLogFile answers (an error, or nil when only unused bytes were hit)
// and, when it passes, bolt opens the file. A panic or a fault in either would end the test
// binary. With the freelist not synced (NoFreelistSync) this test crashed: bolt rebuilds the
// freelist at open in a goroutine of its own, which faulted on a damaged page even after a
// recoverable cursor walk of every bucket had passed.
func TestCheckLogFileDamagedPages(t *testing.T) {
	dir := t.TempDir()
	pristine := filepath.Join(dir, "pristine.db")
	opts := raftboltdb.Options{Path: pristine, BoltOptions: &bbolt.Options{FreelistType: bbolt.FreelistMapType}}
	st, err := raftboltdb.New(opts)
	if err != nil {
		t.Fatal(err)
	}
	for i := uint64(1); i <= 2000; i++ { // several leaves, overflow values, a freed range
		if err := st.StoreLogs([]*raft.Log{{Index: i, Term: 1, Data: make([]byte, 50+int(i%7)*900)}}); err != nil {
			t.Fatal(err)
		}
	}
	if err := st.DeleteRange(1, 700); err != nil {
		t.Fatal(err)
	}
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	clean, err := os.ReadFile(pristine)
	if err != nil {
		t.Fatal(err)
	}
	const page = 4096
	pages := len(clean) / page
	rng := rand.New(rand.NewPCG(1, 2))
	refused := 0
	p := filepath.Join(dir, "raft.db")
	for i := range 120 {
		b := slices.Clone(clean)
		pg := 2 + rng.IntN(pages-2)
		off := pg*page + rng.IntN(page)
		switch i % 3 {
		case 0:
			for j := off; j < min(off+64, len(b)); j++ {
				b[j] = byte(rng.Uint32())
			}
		case 1:
			clear(b[pg*page : (pg+1)*page])
		case 2:
			b[off] ^= 1 << rng.IntN(8)
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
		_ = s.Close()
	}
	t.Logf("120 damaged copies of a %d-page log: %d refused, the rest opened", pages, refused)
}
