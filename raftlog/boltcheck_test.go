package raftlog

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hashicorp/raft"
	raftboltdb "github.com/hashicorp/raft-boltdb/v2"
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
