package boltstore

import (
	"math/rand/v2"
	"testing"
)

// The chunked index holds what a plain slice would through adds and front removals that
// cross chunk boundaries, empty it, and refill it; search agrees with a linear scan.
func TestIndex(t *testing.T) {
	var x index
	var ref []ent
	r := rand.New(rand.NewPCG(1, 2))
	next := int64(0)
	check := func(step int) {
		t.Helper()
		if x.len() != len(ref) {
			t.Fatalf("step %d: len %d, want %d", step, x.len(), len(ref))
		}
		for _, i := range []int{0, len(ref) / 2, len(ref) - 1} {
			if i >= 0 && i < len(ref) && *x.at(i) != ref[i] {
				t.Fatalf("step %d: at(%d) = %v, want %v", step, i, *x.at(i), ref[i])
			}
		}
		if len(ref) > 0 {
			ns := ref[r.IntN(len(ref))].time
			want := 0
			for want < len(ref) && ref[want].time < ns {
				want++
			}
			if got := x.search(func(e *ent) bool { return e.time >= ns }); got != want {
				t.Fatalf("step %d: search %d, want %d", step, got, want)
			}
		}
	}
	for step := range 400 {
		switch adds, removes := r.IntN(3*entChunk), r.IntN(3*entChunk); {
		case step%50 == 49: // empty it
			for len(ref) > 0 {
				x.removeFirst()
				ref = ref[1:]
			}
		default:
			for range adds {
				next++
				e := ent{time: next / 3, size: uint32(next), off: uint32(step)}
				x.add(e)
				ref = append(ref, e)
			}
			for range min(removes, len(ref)) {
				x.removeFirst()
				ref = ref[1:]
			}
		}
		check(step)
		for i := range ref {
			if *x.at(i) != ref[i] {
				t.Fatalf("step %d: at(%d) = %v, want %v", step, i, *x.at(i), ref[i])
			}
		}
		if len(x.chunks) > (x.head+x.n)/entChunk+1 {
			t.Fatalf("step %d: %d chunks for %d entries after %d", step, len(x.chunks), x.n, x.head)
		}
	}
}
