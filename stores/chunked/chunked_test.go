package chunked

import (
	"math/rand/v2"
	"slices"
	"testing"
)

type ent struct {
	time      int64
	size, off uint32
}

// Seq holds what a plain slice would through adds and front removals that cross chunk
// boundaries, emptying and refilling; Search agrees with a linear scan.
func TestSeq(t *testing.T) {
	var x Seq[ent]
	var ref []ent
	r := rand.New(rand.NewPCG(1, 2))
	next := int64(0)
	check := func(step int) {
		t.Helper()
		if x.Len() != len(ref) {
			t.Fatalf("step %d: len %d, want %d", step, x.Len(), len(ref))
		}
		for _, i := range []int{0, len(ref) / 2, len(ref) - 1} {
			if i >= 0 && i < len(ref) && *x.At(i) != ref[i] {
				t.Fatalf("step %d: at(%d) = %v, want %v", step, i, *x.At(i), ref[i])
			}
		}
		if len(ref) > 0 {
			ns := ref[r.IntN(len(ref))].time
			want := 0
			for want < len(ref) && ref[want].time < ns {
				want++
			}
			if got := x.Search(0, func(e *ent) bool { return e.time >= ns }); got != want {
				t.Fatalf("step %d: search %d, want %d", step, got, want)
			}
		}
	}
	for step := range 400 {
		switch adds, removes := r.IntN(3*Chunk), r.IntN(3*Chunk); {
		case step%50 == 49: // empty it
			for len(ref) > 0 {
				x.RemoveFirst()
				ref = ref[1:]
			}
		default:
			for range adds {
				next++
				e := ent{time: next / 3, size: uint32(next), off: uint32(step)}
				x.Add(e)
				ref = append(ref, e)
			}
			for range min(removes, len(ref)) {
				x.RemoveFirst()
				ref = ref[1:]
			}
		}
		check(step)
		for i := range ref {
			if *x.At(i) != ref[i] {
				t.Fatalf("step %d: at(%d) = %v, want %v", step, i, *x.At(i), ref[i])
			}
		}
		if len(x.chunks) > (x.head+x.n)/Chunk+1 {
			t.Fatalf("step %d: %d chunks for %d entries after %d", step, len(x.chunks), x.n, x.head)
		}
	}
}

// Later chunks never grow by copying; Reset keeps the first chunk for reuse; Last, Slice
// and Of agree with what was added.
func TestSeqChunks(t *testing.T) {
	var q Seq[ent]
	var want []ent
	for i := range 3*Chunk + 5 {
		e := ent{time: int64(i), off: uint32(i * 7)}
		q.Add(e)
		want = append(want, e)
		if q.Len() != i+1 || *q.At(i) != e || *q.Last() != e || *q.At(i / 2) != want[i/2] {
			t.Fatalf("after %d adds: len %d, At(%d) %+v, want %+v", i+1, q.Len(), i, *q.At(i), e)
		}
	}
	if !slices.Equal(q.Slice(), want) {
		t.Fatal("Slice differs from what was added")
	}
	for i, c := range q.chunks[1:] {
		if cap(c) != Chunk {
			t.Fatalf("chunk %d has capacity %d, want %d: a later chunk never grows", i+1, cap(c), Chunk)
		}
	}
	first := &q.chunks[0][0]
	q.Reset()
	if q.Len() != 0 || len(q.chunks) != 1 {
		t.Fatalf("after Reset: len %d, %d chunks", q.Len(), len(q.chunks))
	}
	q.Add(ent{time: 9})
	if &q.chunks[0][0] != first || q.At(0).time != 9 {
		t.Fatal("Reset did not keep the first chunk for reuse")
	}
	if c := Of(want[:10]); c.Len() != 10 || *c.At(9) != want[9] {
		t.Fatalf("Of: len %d", c.Len())
	}
	all := Of(want)
	if got := all.Search(100, func(e *ent) bool { return e.time >= 50 }); got != 100 {
		t.Fatalf("Search from 100: %d", got)
	}
}

// BenchmarkFill fills a first segment's index: chunks, against one doubling slice.
func BenchmarkFill(b *testing.B) {
	const n = 1 << 20 // a 64 MiB segment of 16-byte messages holds 1.4 million
	b.Run("chunks", func(b *testing.B) {
		for b.Loop() {
			var q Seq[ent]
			for i := range n {
				q.Add(ent{time: int64(i)})
			}
		}
	})
	b.Run("slice", func(b *testing.B) {
		for b.Loop() {
			var s []ent
			for i := range n {
				s = append(s, ent{time: int64(i)})
			}
			_ = s
		}
	})
}
