//go:build linux && (amd64 || arm64)

package memstore

import (
	"syscall"
	"testing"
	"unsafe"

	"github.com/starling-io/starling/stores"
)

// TestHalves: full-chunk blocks come in pairs from one aligned region, a freed half is
// reused first, and a region whose halves are both free is gone from the pool.
func TestHalves(t *testing.T) {
	addr := func(b []byte) uintptr { return uintptr(unsafe.Pointer(unsafe.SliceData(b))) }
	n := roundPage(DefaultChunkMsgs*entrySize + DefaultChunkBytes)
	if !isHalf(n) || isHalf(n-halfSlack) || isHalf(halfBytes+4096) {
		t.Fatalf("a full chunk's block (%d bytes) is not a half, or the bounds are wrong", n)
	}
	a, b := mapBytes(n), mapBytes(n)
	if len(a) != halfBytes || len(b) != halfBytes {
		t.Fatalf("halves of %d and %d bytes", len(a), len(b))
	}
	ra := addr(a) &^ (regionBytes - 1)
	if addr(a)%halfBytes != 0 || addr(b)&^(regionBytes-1) != ra || addr(a) == addr(b) {
		t.Fatalf("halves at %#x and %#x: not the two halves of one aligned region", addr(a), addr(b))
	}
	a[0], a[halfBytes-1], b[0], b[halfBytes-1] = 1, 2, 3, 4 // both writable, end to end
	unmapBytes(a)
	if c := mapBytes(n); addr(c) != addr(a) {
		t.Fatalf("a free half was not reused: %#x, freed %#x", addr(c), addr(a))
	} else {
		if c[0] != 0 || c[halfBytes-1] != 0 {
			t.Fatal("a reused half is not zeroed (makeDir's directories must be)")
		}
		unmapBytes(c)
	}
	unmapBytes(b)
	halves.mu.Lock()
	_, kept := halves.free[ra]
	halves.mu.Unlock()
	if kept {
		t.Fatal("a region with both halves free is still in the pool")
	}
}

// BenchmarkFill1KiB appends 1 KiB messages to a fresh channel, as a publisher filling a
// memory channel does: every block is new memory. faults/op is the page faults per message
// (a full chunk's block is half a huge page: ~0.004; in 4 KiB pages it was 0.256, at 12 µs
// each on the benchmark machine), cpu-ns/op the process's CPU per message.
func BenchmarkFill1KiB(b *testing.B) {
	s, _ := New(Options{})
	defer s.Close()
	ch, _ := s.CreateChannel("fill", 1)
	data := make([]byte, 1024)
	batch := make([]stores.Msg, 64)
	var ru0, ru1 syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru0)
	seq := uint64(0)
	b.ResetTimer()
	for i := 0; i < b.N; i += len(batch) {
		for j := range batch {
			seq++
			batch[j] = stores.Msg{Seq: seq, Time: int64(seq), Data: data}
		}
		if err := ch.Msgs.Append(batch); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru1)
	cpu := ru1.Utime.Nano() + ru1.Stime.Nano() - ru0.Utime.Nano() - ru0.Stime.Nano()
	b.ReportMetric(float64(ru1.Minflt-ru0.Minflt)/float64(seq), "faults/op")
	b.ReportMetric(float64(cpu)/float64(seq), "cpu-ns/op")
}
