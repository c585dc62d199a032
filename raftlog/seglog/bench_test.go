package seglog

import (
	"fmt"
	"testing"

	"github.com/hashicorp/raft"
)

// BenchmarkStoreLogs is the raft log's write path per batch (one raft entry holds a whole
// engine iteration): encode, write, no fsync (NoSync: the disk is not what is measured).
// Steady state allocates nothing; `make allocs` holds it there.
func BenchmarkStoreLogs(b *testing.B) {
	for _, n := range []int{1, 16} {
		b.Run(fmt.Sprintf("batch=%d", n), func(b *testing.B) {
			s, err := Open(b.TempDir(), Options{Logger: quiet, NoSync: true})
			if err != nil {
				b.Fatal(err)
			}
			b.Cleanup(func() { _ = s.Close() })
			logs := make([]*raft.Log, n)
			for i := range logs {
				logs[i] = &raft.Log{Type: raft.LogCommand, Term: 1, Data: make([]byte, 1024)}
			}
			next := uint64(1)
			b.SetBytes(int64(n * 1024))
			b.ReportAllocs()
			for b.Loop() {
				for _, l := range logs {
					l.Index = next
					next++
				}
				if err := s.StoreLogs(logs); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkGetLog reads entries back into a caller's Log, as replication does.
func BenchmarkGetLog(b *testing.B) {
	s, err := Open(b.TempDir(), Options{Logger: quiet, NoSync: true})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = s.Close() })
	store(b, s, 1, 1024, 1, 64)
	var l raft.Log
	i := uint64(0)
	b.ReportAllocs()
	for b.Loop() {
		if err := s.GetLog(i%1024+1, &l); err != nil {
			b.Fatal(err)
		}
		i++
	}
}
