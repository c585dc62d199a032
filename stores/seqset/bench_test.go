package seqset

import (
	"math/rand/v2"
	"testing"
)

// BenchmarkSlidingWindow: send one, ack the oldest, with 1024 in flight (one op = both).
func BenchmarkSlidingWindow(b *testing.B) {
	var s Set
	next := uint64(1)
	for ; next <= 1024; next++ {
		s.Add(next)
	}
	b.ReportAllocs()
	for b.Loop() {
		s.Add(next)
		s.Remove(next - 1024)
		next++
	}
}

// BenchmarkOutOfOrderAcks: 1024 in flight, each op acks a random one of them and sends
// the next sequence.
func BenchmarkOutOfOrderAcks(b *testing.B) {
	var s Set
	var inflight [1024]uint64
	r := rand.New(rand.NewPCG(1, 1))
	next := uint64(1)
	for i := range inflight {
		inflight[i] = next
		s.Add(next)
		next++
	}
	b.ReportAllocs()
	for b.Loop() {
		i := r.IntN(len(inflight))
		s.Remove(inflight[i])
		inflight[i] = next
		s.Add(next)
		next++
	}
}

func BenchmarkContains(b *testing.B) {
	var s Set
	for q := uint64(1); q <= 100_000; q += 2 {
		s.Add(q)
	}
	b.ReportAllocs()
	var q uint64
	for b.Loop() {
		s.Contains(q % 100_000)
		q += 7919
	}
}

func BenchmarkAscend1024(b *testing.B) {
	var s Set
	for q := uint64(1); q <= 1024; q++ {
		s.Add(q)
	}
	b.ReportAllocs()
	var sum uint64
	for b.Loop() {
		s.Ascend(func(q uint64) bool { sum += q; return true })
	}
	_ = sum
}
