package streaming

import (
	"math/rand/v2"
	"testing"
)

// TestPendingSetMatchesMap drives a pendingSet and a map with the same random operations —
// in-order sends with acks mostly of the oldest, stragglers never acked for a long time,
// sequences far ahead (past maxRing) and below the window (moved from a queue member) —
// and checks that they always agree.
func TestPendingSetMatchesMap(t *testing.T) {
	for seed := uint64(1); seed <= 20; seed++ {
		r := rand.New(rand.NewPCG(seed, seed))
		var p pendingSet
		m := map[uint64]pendingMsg{}
		next := uint64(1 + r.IntN(1000))
		check := func(seq uint64) {
			t.Helper()
			got, ok := p.Get(seq)
			want, wok := m[seq]
			if ok != wok || got != want {
				t.Fatalf("seed %d: Get(%d) = %v %v, want %v %v", seed, seq, got, ok, want, wok)
			}
		}
		for i := 0; i < 20000; i++ {
			switch k := r.IntN(100); {
			case k < 45: // send the next
				v := pendingMsg{expiry: int64(i), count: uint32(r.IntN(3))}
				p.Set(next, v)
				m[next] = v
				next++
			case k < 47: // far ahead
				seq := next + maxRing + uint64(r.IntN(1000))
				p.Set(seq, pendingMsg{expiry: 1})
				m[seq] = pendingMsg{expiry: 1}
			case k < 49: // below the window
				seq := uint64(r.IntN(int(next)))
				p.Set(seq, pendingMsg{expiry: 2})
				m[seq] = pendingMsg{expiry: 2}
			case k < 50:
				p.Clear()
				clear(m)
			default: // ack: mostly the oldest few, sometimes anything
				var seq uint64
				if r.IntN(10) == 0 || len(m) == 0 {
					seq = uint64(r.IntN(int(next) + 10))
				} else {
					lo := next
					for s := range m {
						lo = min(lo, s)
					}
					seq = lo + uint64(r.IntN(3))
				}
				_, want := m[seq]
				if got := p.Delete(seq); got != want {
					t.Fatalf("seed %d: Delete(%d) = %v, want %v", seed, seq, got, want)
				}
				delete(m, seq)
			}
			if p.Len() != len(m) {
				t.Fatalf("seed %d op %d: Len = %d, want %d", seed, i, p.Len(), len(m))
			}
			check(next - 1)
			check(uint64(r.IntN(int(next) + 5)))
		}
		n := 0
		p.Range(func(seq uint64, v pendingMsg) {
			n++
			if m[seq] != v {
				t.Fatalf("seed %d: Range gave %d=%v, want %v", seed, seq, v, m[seq])
			}
		})
		if n != len(m) {
			t.Fatalf("seed %d: Range visited %d, want %d", seed, n, len(m))
		}
	}
}

// TestPendingSetStragglerBounded: one message never acked while a million others are sent
// and acked, 100 in flight: the ring stays small (the rest spills), and the set stays right.
func TestPendingSetStragglerBounded(t *testing.T) {
	var p pendingSet
	p.Set(1, pendingMsg{expiry: 1})
	for seq := uint64(2); seq < 1_000_000; seq++ {
		p.Set(seq, pendingMsg{expiry: int64(seq)})
		if seq >= 102 && !p.Delete(seq-100) {
			t.Fatalf("Delete(%d): not pending", seq-100)
		}
	}
	if n := len(p.ring); n > maxSparseness*128 {
		t.Errorf("ring of %d slots for %d pending: the straggler made it sparse", n, p.Len())
	}
	if p.Len() != 101 || !p.Has(1) || !p.Has(999_999) || p.Has(999_899) {
		t.Errorf("Len %d, Has(1) %v, Has(999999) %v, Has(999899) %v", p.Len(), p.Has(1), p.Has(999_999), p.Has(999_899))
	}
}

// BenchmarkPendingWindow is a subscriber's steady state: send one, ack the oldest, 65,536
// in flight.
func BenchmarkPendingWindow(b *testing.B) {
	const inflight = 1 << 16
	b.Run("set", func(b *testing.B) {
		var p pendingSet
		for i := uint64(1); i <= inflight; i++ {
			p.Set(i, pendingMsg{expiry: int64(i)})
		}
		next := uint64(inflight + 1)
		b.ReportAllocs()
		for b.Loop() {
			p.Set(next, pendingMsg{expiry: int64(next)})
			if _, ok := p.Get(next - inflight); !ok || !p.Delete(next-inflight) {
				b.Fatal("lost")
			}
			next++
		}
	})
	b.Run("map", func(b *testing.B) {
		p := map[uint64]pendingMsg{}
		for i := uint64(1); i <= inflight; i++ {
			p[i] = pendingMsg{expiry: int64(i)}
		}
		next := uint64(inflight + 1)
		b.ReportAllocs()
		for b.Loop() {
			p[next] = pendingMsg{expiry: int64(next)}
			if _, ok := p[next-inflight]; !ok {
				b.Fatal("lost")
			}
			delete(p, next-inflight)
			next++
		}
	})
}
