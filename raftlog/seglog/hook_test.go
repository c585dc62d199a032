package seglog

import (
	"errors"
	"path/filepath"
	"testing"

	"github.com/hashicorp/raft"
)

// The hook sees every file change, with the size each leaves: a write's end, an fsync's
// covered bytes (the written end, not the preallocated size); an error it returns fails the
// operation, and a failed write stops the store.
func TestHookSeesEveryChange(t *testing.T) {
	dir := t.TempDir()
	type call struct {
		op, file string
		size     int64
	}
	var calls []call
	var refuse string
	hook := func(op, path string, size int64, do func() error) error {
		calls = append(calls, call{op, filepath.Base(path), size})
		if op == refuse {
			return errors.New("refused")
		}
		return do()
	}
	s, err := Open(dir, Options{SegmentSize: 600, Logger: quiet, Hook: hook})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	store(t, s, 1, 20, 1, 4)
	if err := s.DeleteRange(18, 20); err != nil { // a suffix: a cut, fsynced
		t.Fatal(err)
	}
	if err := s.DeleteRange(1, 12); err != nil { // a prefix: the first segment removed
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for _, c := range calls {
		seen[c.op] = true
	}
	for _, op := range []string{OpCreate, OpAllocate, OpWrite, OpSync, OpTruncate, OpRemove} {
		if !seen[op] {
			t.Errorf("the hook never saw %q: %v", op, calls)
		}
	}
	for i, c := range calls {
		if c.op == OpSync && i > 0 && calls[i-1].op == OpWrite && c.size != calls[i-1].size {
			t.Errorf("an fsync after a write ending at %d covers %d", calls[i-1].size, c.size)
		}
		if c.op == OpSync && c.size >= allocStep {
			t.Errorf("an fsync reports %d bytes durable: the preallocated size", c.size)
		}
	}
	cutSynced := false
	for i := 1; i < len(calls); i++ {
		if calls[i-1].op == OpTruncate && calls[i].op == OpSync && calls[i].size == calls[i-1].size {
			cutSynced = true
		}
	}
	if !cutSynced {
		t.Errorf("the suffix cut is not fsynced at its size: %v", calls)
	}

	refuse = OpSync
	err = s.StoreLogs([]*raft.Log{entry(18, 1)})
	if err == nil {
		t.Fatal("StoreLogs succeeded although its fsync was refused")
	}
	refuse = ""
	if err := s.StoreLogs([]*raft.Log{entry(18, 1)}); err == nil {
		t.Fatal("the store took a write after a failed fsync")
	}
}
