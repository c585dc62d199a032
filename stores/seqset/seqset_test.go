package seqset

import (
	"math"
	"math/rand/v2"
	"slices"
	"testing"
)

func TestEmpty(t *testing.T) {
	var s Set
	if s.Len() != 0 || s.Contains(0) || s.Contains(5) || s.Remove(5) {
		t.Fatal("zero Set not empty")
	}
	if _, ok := s.Min(); ok {
		t.Fatal("Min on empty")
	}
	if _, ok := s.Max(); ok {
		t.Fatal("Max on empty")
	}
	s.Ascend(func(uint64) bool { t.Fatal("Ascend on empty"); return false })
	if got := s.AppendTo(nil); len(got) != 0 {
		t.Fatal(got)
	}
}

func TestBasic(t *testing.T) {
	var s Set
	seqs := []uint64{5, 1, 1023, 1024, 4096, 3, 0, math.MaxUint64, 2047, 1 << 40}
	for _, q := range seqs {
		if !s.Add(q) {
			t.Fatalf("Add(%d) = false", q)
		}
		if s.Add(q) {
			t.Fatalf("second Add(%d) = true", q)
		}
	}
	if s.Len() != len(seqs) {
		t.Fatalf("Len = %d", s.Len())
	}
	want := slices.Sorted(slices.Values(seqs))
	if got := s.AppendTo([]uint64{42})[1:]; !slices.Equal(got, want) {
		t.Fatalf("AppendTo = %v, want %v", got, want)
	}
	if m, _ := s.Min(); m != 0 {
		t.Fatalf("Min = %d", m)
	}
	if m, _ := s.Max(); m != math.MaxUint64 {
		t.Fatalf("Max = %d", m)
	}
	for _, q := range []uint64{2, 6, 1022, 1025, 2046, math.MaxUint64 - 1} {
		if s.Contains(q) || s.Remove(q) {
			t.Fatalf("%d should be absent", q)
		}
	}
	var n int
	s.Ascend(func(uint64) bool { n++; return n < 3 })
	if n != 3 {
		t.Fatalf("Ascend did not stop: %d", n)
	}
	for _, q := range seqs {
		if !s.Remove(q) || s.Contains(q) {
			t.Fatalf("Remove(%d)", q)
		}
	}
	if s.Len() != 0 || len(s.blocks) != 0 {
		t.Fatalf("not empty: %d, %d blocks", s.Len(), len(s.blocks))
	}
}

func TestClearReuses(t *testing.T) {
	var s Set
	for q := uint64(0); q < 5000; q += 3 {
		s.Add(q)
	}
	s.Clear()
	if s.Len() != 0 || s.Contains(3) {
		t.Fatal("Clear")
	}
	s.Add(7)
	if got := s.AppendTo(nil); !slices.Equal(got, []uint64{7}) {
		t.Fatalf("after Clear: %v (stale bits in a reused block?)", got)
	}
}

// TestSlidingWindowNoAlloc checks the steady state: a window of pending acks moving up.
func TestSlidingWindowNoAlloc(t *testing.T) {
	var s Set
	const window = 4096
	next := uint64(1)
	for ; next <= window; next++ {
		s.Add(next)
	}
	allocs := testing.AllocsPerRun(10000, func() {
		s.Add(next)
		s.Remove(next - window)
		next++
	})
	if allocs != 0 {
		t.Fatalf("sliding window: %v allocs/op", allocs)
	}
}

func TestRandomAgainstMap(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for round := 0; round < 20; round++ {
		ops := make([]byte, 4000)
		for i := range ops {
			ops[i] = byte(r.Uint32())
		}
		checkOps(t, ops)
	}
}

// checkOps interprets data as operations on a Set and a map model and compares them.
// Each operation is 3 bytes: an opcode and a 16-bit delta from a moving cursor, so that
// sequences collide, cluster, and sometimes jump far.
func checkOps(t *testing.T, data []byte) {
	var s Set
	model := map[uint64]bool{}
	cursor := uint64(1 << 20)
	for len(data) >= 3 {
		op, d := data[0], uint64(data[1])|uint64(data[2])<<8
		data = data[3:]
		seq := cursor + d%3000
		switch op % 8 {
		case 0, 1, 2:
			if got, want := s.Add(seq), !model[seq]; got != want {
				t.Fatalf("Add(%d) = %v, want %v", seq, got, want)
			}
			model[seq] = true
		case 3, 4:
			if got, want := s.Remove(seq), model[seq]; got != want {
				t.Fatalf("Remove(%d) = %v, want %v", seq, got, want)
			}
			delete(model, seq)
		case 5:
			if got := s.Contains(seq); got != model[seq] {
				t.Fatalf("Contains(%d) = %v", seq, got)
			}
		case 6:
			switch d % 64 {
			case 0:
				s.Clear()
				clear(model)
			case 1:
				cursor += d << 12 // far jump
			case 2:
				cursor -= min(cursor, d<<10)
			default:
				cursor += d % 64
			}
		case 7:
			if m, ok := s.Min(); ok {
				s.Remove(m)
				delete(model, m)
			}
		}
		if s.Len() != len(model) {
			t.Fatalf("Len = %d, model %d", s.Len(), len(model))
		}
	}
	want := make([]uint64, 0, len(model))
	for q := range model {
		want = append(want, q)
	}
	slices.Sort(want)
	if got := s.AppendTo(nil); !slices.Equal(got, want) {
		t.Fatalf("contents differ:\n got %v\nwant %v", got, want)
	}
	minV, okMin := s.Min()
	maxV, okMax := s.Max()
	if okMin != (len(want) > 0) || okMax != okMin || (okMin && (minV != want[0] || maxV != want[len(want)-1])) {
		t.Fatalf("Min/Max = %d,%v %d,%v for %v", minV, okMin, maxV, okMax, want)
	}
	for i := range s.blocks {
		if s.blocks[i].n == 0 {
			t.Fatalf("empty block %d kept", i)
		}
		if i > 0 && s.blocks[i-1].base >= s.blocks[i].base {
			t.Fatal("blocks out of order")
		}
	}
}

func FuzzSet(f *testing.F) {
	f.Add([]byte{0, 1, 0, 0, 2, 0, 3, 1, 0, 7, 0, 0})
	f.Add([]byte{0, 0, 4, 0, 255, 255, 6, 1, 0, 0, 0, 4, 3, 0, 4})
	f.Fuzz(func(t *testing.T, data []byte) { checkOps(t, data) })
}
