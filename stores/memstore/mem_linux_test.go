//go:build linux && (amd64 || arm64)

package memstore

import (
	"syscall"
	"testing"
	"time"
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
	for i := 0; i < halfBytes; i += 4096 { // the fresh half is handed out without a clear
		if a[i] != 0 || b[i] != 0 {
			t.Fatalf("byte %d of a fresh half is not zero", i)
		}
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
// (~0.003 where regions are huge pages; 4 KiB pages faulted in by MADV_POPULATE_WRITE
// count one each, 0.256 a message), cpu-ns/op the process's CPU per message. Start it a few
// seconds after other memory was freed to see cold huge pages (newRegion).
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

// TestPageChooser: huge pages first; small ones tried only when a huge region was slow to
// fault in; then the cheaper kind, trying the other after probeMin regions, then twice as
// far apart each time it loses (up to probeMax), and switching back at once when a trial
// wins.
func TestPageChooser(t *testing.T) {
	const ms = time.Millisecond
	var c pageChooser
	if !c.choose() {
		t.Fatal("the first region is not huge")
	}
	c.observe(true, ms/5) // warm: stays huge, small never tried
	for i := 0; i < 3*probeMax; i++ {
		if !c.choose() {
			t.Fatalf("region %d: small pages tried while huge ones fault in at 0.2 ms", i)
		}
		c.observe(true, ms/5)
	}

	// The host goes cold: huge regions take 6 ms, small ones 1.
	run := func(regions int, hugeCost time.Duration) (trials []int) {
		for i := 0; i < regions; i++ {
			if c.choose() {
				trials = append(trials, i)
				c.observe(true, hugeCost)
			} else {
				c.observe(false, ms)
			}
		}
		return trials
	}
	c = pageChooser{}
	c.choose()
	c.observe(true, 6*ms)
	if c.choose() {
		t.Fatal("small pages not tried after a huge region took 6 ms")
	}
	c.observe(false, ms)
	trials := run(2000, 6*ms)
	var gaps []int
	for i := 1; i < len(trials); i++ {
		gaps = append(gaps, trials[i]-trials[i-1])
	}
	want := []int{32, 64, 128, 256, 256}
	if len(gaps) < len(want) {
		t.Fatalf("huge trials at %v: want gaps starting %v", trials, want)
	}
	for i, g := range want {
		if gaps[i] != g {
			t.Fatalf("huge trials at %v (gaps %v): want gaps starting %v", trials, gaps, want)
		}
	}

	// The host warms up: the next trial of huge pages wins, and huge pages are used from then on.
	for i := 0; !c.choose(); i++ {
		if i > probeMax {
			t.Fatalf("no trial of huge pages in %d regions", i)
		}
		c.observe(false, ms)
	}
	c.observe(true, ms/5)
	for i := 0; i < probeMin-1; i++ {
		if !c.choose() {
			t.Fatalf("region %d after a winning trial: small pages (average small %v, huge %v)", i, c.cost[0], c.cost[1])
		}
		c.observe(true, ms/5)
	}
}

// TestSmallRegionZeroed: a region in small pages, faulted in at once, is whole, writable
// and zeroed, as mapBytes promises.
func TestSmallRegionZeroed(t *testing.T) {
	for _, huge := range []bool{false, true} {
		r := alignedRegion(huge)
		populate(r)
		for i := 0; i < len(r); i += 4096 {
			if r[i] != 0 {
				t.Fatalf("huge=%v: byte %d is %d", huge, i, r[i])
			}
		}
		r[0], r[len(r)-1] = 1, 1
		munmap(r)
	}
}
