//go:build linux && (amd64 || arm64)

package memstore

import (
	"bytes"
	"os"
	"slices"
	"strings"
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
	// step maps one region at these costs and says whether it was huge.
	step := func(hugeCost, smallCost time.Duration) bool {
		huge, trial := c.choose()
		d := smallCost
		if huge {
			d = hugeCost
		}
		c.observe(huge, trial, d)
		return huge
	}
	for i := 0; i < 3*probeMax; i++ { // warm huge pages: small ones never tried
		if !step(ms/5, ms) {
			t.Fatalf("region %d: small pages tried while huge ones fault in at 0.2 ms", i)
		}
	}

	// The host goes cold: huge regions take 6 ms, small ones 1.
	c = pageChooser{}
	if !step(6*ms, ms) {
		t.Fatal("the first region is not huge")
	}
	if step(6*ms, ms) {
		t.Fatal("small pages not tried after a huge region took 6 ms")
	}
	var trials []int
	for i := 0; i < 2000; i++ {
		if step(6*ms, ms) {
			trials = append(trials, i)
		}
	}
	var gaps []int
	for i := 1; i < len(trials); i++ {
		gaps = append(gaps, trials[i]-trials[i-1])
	}
	want := []int{32, 64, 128, 256, 256}
	if len(gaps) < len(want) || !slices.Equal(gaps[:len(want)], want) {
		t.Fatalf("huge trials at %v (gaps %v): want gaps starting %v", trials, gaps, want)
	}

	// The host warms up: the next trial of huge pages wins, and huge pages are used from then on.
	for i := 0; !step(ms/5, ms); i++ {
		if i > probeMax {
			t.Fatalf("no trial of huge pages in %d regions", i)
		}
	}
	for i := 0; i < probeMin-1; i++ {
		if !step(ms/5, ms) {
			t.Fatalf("region %d after a winning trial: small pages (average small %v, huge %v)", i, c.cost[0], c.cost[1])
		}
	}

	// A trial's result counts as a trial even when another region's result comes in
	// between (regions are mapped outside the pool's lock).
	c = pageChooser{}
	step(6*ms, ms)
	step(6*ms, ms)
	for {
		huge, trial := c.choose()
		if !trial {
			c.observe(huge, false, ms)
			continue
		}
		other, _ := c.choose() // mapped meanwhile, finishes first
		c.observe(other, false, ms)
		c.observe(huge, trial, ms/5) // the huge trial wins
		break
	}
	if h, _ := c.choose(); !h {
		t.Fatalf("a winning trial observed late did not switch to huge pages (small %v, huge %v)", c.cost[0], c.cost[1])
	}
}

// TestRegionZeroed: a region in small pages or huge ones, faulted in at once, is whole,
// writable and zeroed, as mapBytes promises.
func TestRegionZeroed(t *testing.T) {
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

// TestMappingIsRaw: the store's mapping system calls are raw (mem_linux.go says why: an
// accounted one, the first after an idle spell, set Go's sysmon polling every 20 µs again).
// Which kind of call the runtime made is not observable from a test without a trace parser,
// so this reads the source: no syscall.Syscall or Syscall6 in mem_linux.go.
func TestMappingIsRaw(t *testing.T) {
	src, err := os.ReadFile("mem_linux.go")
	if err != nil {
		t.Fatal(err)
	}
	for _, accounted := range []string{"syscall.Syscall(", "syscall.Syscall6("} {
		if bytes.Contains(src, []byte(accounted)) {
			t.Errorf("mem_linux.go calls %s: an accounted system call", strings.TrimSuffix(accounted, "("))
		}
	}
}
