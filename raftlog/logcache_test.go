package raftlog

import (
	"testing"

	"github.com/hashicorp/raft"
)

// countingStore is a raft.LogStore that counts the reads that reach it.
type countingStore struct {
	*raft.InmemStore
	reads int
}

func (s *countingStore) GetLog(i uint64, l *raft.Log) error {
	s.reads++
	return s.InmemStore.GetLog(i, l)
}

func entries(from, n, size int) []*raft.Log {
	ls := make([]*raft.Log, n)
	for i := range ls {
		ls[i] = &raft.Log{Index: uint64(from + i), Term: 1, Data: make([]byte, size)}
	}
	return ls
}

// The cache holds at most its byte budget: raft's own counted entries only, and 512
// entries of 1 MiB messages kept 512 MiB on every node.
func TestLogCacheBoundedByBytes(t *testing.T) {
	st := &countingStore{InmemStore: raft.NewInmemStore()}
	c := newLogCache(st, 512, 8<<20)
	for i := 0; i < 100; i++ {
		if err := c.StoreLogs(entries(1+i, 1, 1<<20)); err != nil {
			t.Fatal(err)
		}
		if c.bytes > c.maxBytes {
			t.Fatalf("after %d entries of 1 MiB the cache holds %d bytes, budget %d", i+1, c.bytes, c.maxBytes)
		}
	}
	if n := c.hi - c.lo + 1; n != 7 || c.hi != 100 {
		t.Fatalf("cached %d..%d, want the newest 7", c.lo, c.hi)
	}
	var l raft.Log
	for i := uint64(1); i <= 100; i++ {
		if err := c.GetLog(i, &l); err != nil || l.Index != i {
			t.Fatalf("GetLog(%d): %v, index %d", i, err, l.Index)
		}
	}
	if st.reads != 93 {
		t.Errorf("%d reads reached the store, want the 93 not cached", st.reads)
	}

	// One entry over the budget is stored and not cached.
	if err := c.StoreLog(&raft.Log{Index: 101, Data: make([]byte, 9<<20)}); err != nil {
		t.Fatal(err)
	}
	if c.bytes > c.maxBytes || c.hi >= c.lo {
		t.Errorf("an entry over the budget: cached %d..%d, %d bytes", c.lo, c.hi, c.bytes)
	}
}

// Counted as raft's: the newest entries, a ring's worth; a write that does not follow
// the run, and any DeleteRange, empty it.
func TestLogCacheByCount(t *testing.T) {
	st := &countingStore{InmemStore: raft.NewInmemStore()}
	c := newLogCache(st, 4, 1<<30)
	if err := c.StoreLogs(entries(1, 10, 10)); err != nil {
		t.Fatal(err)
	}
	if c.lo != 7 || c.hi != 10 {
		t.Fatalf("cached %d..%d, want 7..10", c.lo, c.hi)
	}
	if want := 4 * cost(&raft.Log{Data: make([]byte, 10)}); c.bytes != want {
		t.Fatalf("bytes %d, want %d", c.bytes, want)
	}
	var l raft.Log
	for i := uint64(7); i <= 10; i++ {
		if err := c.GetLog(i, &l); err != nil || l.Index != i {
			t.Fatalf("GetLog(%d): %v, index %d", i, err, l.Index)
		}
	}
	if st.reads != 0 {
		t.Fatalf("cached entries read from the store %d times", st.reads)
	}

	// A conflict rewrite: raft deletes the suffix, then stores from there.
	if err := c.DeleteRange(9, 10); err != nil {
		t.Fatal(err)
	}
	if c.hi >= c.lo || c.bytes != 0 {
		t.Fatalf("after DeleteRange: cached %d..%d, %d bytes", c.lo, c.hi, c.bytes)
	}
	if err := c.StoreLogs(entries(9, 2, 20)); err != nil {
		t.Fatal(err)
	}
	if err := c.GetLog(10, &l); err != nil || len(l.Data) != 20 {
		t.Fatalf("GetLog(10) after the rewrite: %v, %d bytes", err, len(l.Data))
	}
	// Not following the run (a snapshot install's fresh log): the run starts again.
	if err := c.StoreLogs(entries(50, 1, 30)); err != nil {
		t.Fatal(err)
	}
	if c.lo != 50 || c.hi != 50 || c.bytes != cost(&raft.Log{Data: make([]byte, 30)}) {
		t.Fatalf("after a jump: cached %d..%d, %d bytes", c.lo, c.hi, c.bytes)
	}
	// The empty range fsm.restored uses empties the cache and deletes nothing.
	if err := c.DeleteRange(1, 0); err != nil {
		t.Fatal(err)
	}
	if c.hi >= c.lo {
		t.Fatalf("DeleteRange(1, 0) left %d..%d", c.lo, c.hi)
	}
}
