package memstore

import (
	"fmt"
	"os"
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/starling-io/starling/stores"
)

// The footprint of a big channel (issue 13): memory per stored message, and what one
// garbage collection costs as the number of stored messages grows. Only the public API is
// used, so that the same file measures another version of the store.

// fill stores n messages of size bytes on one unlimited channel, in batches of 64 (a
// publish group), and returns the store.
func fill(tb testing.TB, n, size int) *Store {
	tb.Helper()
	s, err := New(Options{Limits: &stores.LimitsSet{}})
	if err != nil {
		tb.Fatal(err)
	}
	ch, err := s.CreateChannel("footprint", 1)
	if err != nil {
		tb.Fatal(err)
	}
	data := make([]byte, size)
	batch := make([]stores.Msg, 64)
	for seq := uint64(1); seq <= uint64(n); {
		k := min(len(batch), n-int(seq)+1)
		for i := range batch[:k] {
			batch[i] = stores.Msg{Seq: seq, Time: int64(seq), Data: data}
			seq++
		}
		if err := ch.Msgs.Append(batch[:k]); err != nil {
			tb.Fatal(err)
		}
	}
	return s
}

// memUse is the process's resident set (0 where /proc is missing) and Go heap in use,
// after a collection that returns freed heap to the OS (so that a previous
// sub-benchmark's memory does not hide this one's).
type memUse struct{ rss, heap uint64 }

func measure() memUse {
	debug.FreeOSMemory()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	u := memUse{heap: ms.HeapAlloc}
	if b, err := os.ReadFile("/proc/self/statm"); err == nil {
		if f := strings.Fields(string(b)); len(f) > 1 {
			pages, _ := strconv.ParseUint(f[1], 10, 64)
			u.rss = pages * uint64(os.Getpagesize())
		}
	}
	return u
}

// held is what the store added: the resident set where it is known (it includes the Go
// heap and memory mapped outside it), else the Go heap.
func held(before, after memUse) uint64 {
	if after.rss > 0 {
		return after.rss - min(before.rss, after.rss)
	}
	return after.heap - min(before.heap, after.heap)
}

// TestFootprint1M: a million 128-byte messages are held in at most 1.5× their payload
// (issue 13; nats-streaming-server needs ~430 MiB, 3.5×).
func TestFootprint1M(t *testing.T) {
	const n, size = 1_000_000, 128
	before := measure()
	s := fill(t, n, size)
	after := measure()
	h := held(before, after)
	t.Logf("%d × %d B: %.1f MiB held (%.1f B/msg, %.2f× payload); Go heap +%.1f MiB",
		n, size, float64(h)/(1<<20), float64(h)/n, float64(h)/(n*size), float64(after.heap-min(before.heap, after.heap))/(1<<20))
	if h > n*size*3/2 {
		t.Errorf("%d bytes held for %d bytes of payload: more than 1.5×", h, n*size)
	}
	runtime.KeepAlive(s)
}

// BenchmarkFootprint fills a channel with msgs × 128 B, then times forced collections:
// ns/op is one runtime.GC() (mark and the full sweep, wall time), gc-cpu-ns/op the GC
// CPU time per cycle (runtime/metrics), B/msg the memory held per message (resident set
// where known) and heap-B/msg the part of it on the Go heap. The cost of a cycle should
// not grow with msgs. The times swing with other load on a shared machine; marked-MiB and
// heap-objects (what the last cycle marked; the sweep visits their spans) do not. 10M
// (~1.5 GB) is skipped under -short.
func BenchmarkFootprint(b *testing.B) {
	for _, n := range []int{100_000, 1_000_000, 10_000_000} {
		b.Run(fmt.Sprintf("msgs=%d", n), func(b *testing.B) {
			if n > 1_000_000 && testing.Short() {
				b.Skip("10M messages under -short")
			}
			before := measure()
			s := fill(b, n, 128)
			after := measure()
			gc := []metrics.Sample{
				{Name: "/cpu/classes/gc/total:cpu-seconds"},
				{Name: "/gc/heap/live:bytes"},
				{Name: "/gc/heap/objects:objects"},
			}
			metrics.Read(gc)
			cpu0 := gc[0].Value.Float64()
			b.ResetTimer()
			for b.Loop() {
				runtime.GC()
			}
			b.StopTimer()
			metrics.Read(gc)
			b.ReportMetric(float64(held(before, after))/float64(n), "B/msg")
			b.ReportMetric(float64(after.heap-min(before.heap, after.heap))/float64(n), "heap-B/msg")
			b.ReportMetric((gc[0].Value.Float64()-cpu0)*float64(time.Second)/float64(b.N), "gc-cpu-ns/op")
			b.ReportMetric(float64(gc[1].Value.Uint64())/(1<<20), "marked-MiB")
			b.ReportMetric(float64(gc[2].Value.Uint64()), "heap-objects")
			runtime.KeepAlive(s)
			s.Close()
		})
	}
}

// TestFootprintReleased: Close gives the messages' memory back at once, and a store
// dropped without Close gives it back when collected. Where the resident set is not
// known (no /proc), there is nothing to check.
func TestFootprintReleased(t *testing.T) {
	const n, size, want = 400_000, 128, 40 << 20 // ~58 MiB stored; at least 40 MiB back
	base := measure()
	if base.rss == 0 {
		t.Skip("no /proc/self/statm")
	}
	s := fill(t, n, size)
	full := measure()
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if after := measure(); full.rss-min(full.rss, after.rss) < want {
		t.Fatalf("Close: resident set %d -> %d", full.rss, after.rss)
	}

	s = fill(t, n, size) // dropped without Close
	full = measure()
	runtime.KeepAlive(s)
	deadline := time.Now().Add(10 * time.Second)
	for {
		if after := measure(); full.rss-min(full.rss, after.rss) >= want {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("dropped store: resident set still %d (from %d)", measure().rss, full.rss)
		}
		time.Sleep(10 * time.Millisecond) // the cleanup runs on its own goroutine after a GC
	}
}
