//go:build linux && (amd64 || arm64)

package memstore

import (
	"fmt"
	"os"
	"runtime"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
	"unsafe"
)

// On 64-bit Linux (amd64 and arm64, where mmap takes its six arguments directly) the
// chunks' blocks, and the directory of a channel past half a page of chunks, are
// anonymous private mappings: memory outside the Go heap, which the garbage collector
// neither marks, scans nor sweeps, and which does not count towards its heap goal (so a
// million stored messages do not let the server's garbage grow by as much again before
// a collection). A block goes back to the kernel as soon as it is freed.
//
// The mappings are made with raw system calls rather than syscall.Mmap, which records
// every mapping in a map on the Go heap (one more thing for the GC to scan per chunk).
//
// Memory from these functions must hold no pointer into the Go heap: the GC cannot see
// it. A chunk holds only slices of its own block.

// mapBytes returns n bytes or more (rounded up to whole pages), zeroed. Running out of
// memory is fatal, as it is for make.
func mapBytes(n int) []byte {
	n = roundPage(n)
	if isHalf(n) {
		return halves.get()
	}
	return mmap(n)
}

// unmapBytes returns a block from mapBytes (the whole slice, as returned) to the kernel.
func unmapBytes(b []byte) {
	if isHalf(len(b)) {
		halves.put(b)
		return
	}
	munmap(b)
}

// mmap and munmap, like the advice and the fault-in of a region (alignedRegion, populate),
// are raw system calls (syscall.RawSyscall), which the Go runtime does not account as system
// calls. Accounted, the first of them after the server went idle woke Go's sysmon from its
// deep sleep into polling every 20 µs again (entersyscallWakeSysmon): with the PubAcks
// written raw (streaming's engine, core.Conn.FlushInPlace) a new region's mmap was that first
// call for about half of sysmon's wake-ups in a 1 KiB publish run. Mapping and unmapping
// take microseconds (nothing is faulted in or, for a block never written, freed); unmapping
// a region written full frees its pages, some tens of µs, during which the thread keeps
// its P, as for populate.
func mmap(n int) []byte {
	addr, _, errno := syscall.RawSyscall6(syscall.SYS_MMAP, 0, uintptr(n),
		syscall.PROT_READ|syscall.PROT_WRITE, syscall.MAP_PRIVATE|syscall.MAP_ANONYMOUS, ^uintptr(0), 0)
	if errno != 0 {
		panic(fmt.Sprintf("memstore: cannot map %d bytes: %v", n, errno))
	}
	// The address is of memory the Go runtime does not manage (not a Go pointer hidden
	// in a uintptr), so it can be turned into a pointer.
	return unsafe.Slice(*(**byte)(unsafe.Pointer(&addr)), n)
}

func munmap(b []byte) {
	if _, _, errno := syscall.RawSyscall(syscall.SYS_MUNMAP, uintptr(unsafe.Pointer(unsafe.SliceData(b))), uintptr(len(b)), 0); errno != 0 {
		panic(fmt.Sprintf("memstore: cannot unmap %d bytes: %v", len(b), errno))
	}
}

// The blocks of a busy channel's full chunks (DefaultChunkMsgs entries and
// DefaultChunkBytes of arena: 1 MiB) are halves of 2 MiB regions aligned for a transparent
// huge page, so that a region can fault in as one huge page when that is cheaper than 512
// small ones (newRegion says when). Blocks a little smaller (a full arena with fewer
// entries) take a half too, wasting at most halfSlack. A region goes back to the kernel
// once both halves are free; a free half is reused first, cleared if it held data (a
// directory from makeDir must start zeroed; 1 MiB clears in tens of µs, against ~1 ms to
// fault in a fresh one). Smaller blocks — small channels, the memory of short messages, where a huge page
// would hold mostly unused bytes — keep 4 KiB pages and fault in as they are written.
const (
	regionBytes = 2 << 20
	halfBytes   = regionBytes / 2
	halfSlack   = 64 << 10
)

func isHalf(n int) bool { return n > halfBytes-halfSlack && n <= halfBytes }

var halves = halfPool{free: map[uintptr]uintptr{}}

// halfPool hands out the halves of huge regions.
type halfPool struct {
	mu    sync.Mutex
	free  map[uintptr]uintptr // region start → the address of its one free half, | usedHalf
	pages pageChooser
}

func (p *halfPool) get() []byte {
	p.mu.Lock()
	for region, half := range p.free {
		delete(p.free, region)
		p.mu.Unlock()
		addr := half &^ usedHalf
		b := unsafe.Slice(*(**byte)(unsafe.Pointer(&addr)), halfBytes)
		if half&usedHalf != 0 {
			clear(b) // a fresh half is zero already
		}
		return b
	}
	huge, trial := p.pages.choose()
	p.mu.Unlock()
	r, cost := newRegion(huge) // ~1 ms: not under the lock
	base := uintptr(unsafe.Pointer(unsafe.SliceData(r)))
	p.mu.Lock()
	p.pages.observe(huge, trial, cost)
	p.free[base] = base + halfBytes
	p.mu.Unlock()
	return r[:halfBytes:halfBytes]
}

func (p *halfPool) put(b []byte) {
	addr := uintptr(unsafe.Pointer(unsafe.SliceData(b)))
	region := addr &^ (regionBytes - 1)
	p.mu.Lock()
	defer p.mu.Unlock()
	if _, other := p.free[region]; other {
		delete(p.free, region) // both halves free: the region goes back
		munmap(unsafe.Slice(*(**byte)(unsafe.Pointer(&region)), regionBytes))
		return
	}
	p.free[region] = addr | usedHalf
}

// usedHalf marks a free half that held data (halves are aligned, so bit 0 is spare).
const usedHalf = 1

// newRegion maps a region in huge pages or small ones, faults it in whole and says how
// long that took; halfPool.get asks its pageChooser which kind.
//
// Why not always huge pages: how much a fresh page costs depends on the host. This VM's
// balloon reports free 2 MiB blocks to the host after ~2 s, and a huge page taken from such
// a block faults in from the host 4 KiB at a time: 5–8 ms per region on 2026-12-06, where a
// huge page from a block freed moments before (another process just exited) took 0.2 ms
// and 512 small pages — which the kernel takes from memory it has not reported — 0.9–1.5
// ms. On 2026-12-03 small pages cost 12 µs each, 6 ms a region. So the store measures
// rather than assumes: it faults each region in at once (MADV_POPULATE_WRITE, one system
// call for the whole region; the second half is needed by the next full chunk anyway),
// times it, and keeps to the cheaper kind, trying the other now and then.
func newRegion(huge bool) ([]byte, time.Duration) {
	r := alignedRegion(huge)
	// The thread's CPU time, not the clock: a thread preempted mid-fault on a busy
	// machine would make a warm region look cold. (A host stall is CPU time to the guest.)
	runtime.LockOSThread()
	start := threadCPU()
	populate(r)
	d := threadCPU() - start
	runtime.UnlockOSThread()
	return r, d
}

// threadCPU is the calling thread's CPU time.
func threadCPU() time.Duration {
	var ts syscall.Timespec
	_, _, _ = syscall.RawSyscall(syscall.SYS_CLOCK_GETTIME, clockThreadCPUTimeID, uintptr(unsafe.Pointer(&ts)), 0)
	return time.Duration(ts.Nano())
}

const clockThreadCPUTimeID = 3 // CLOCK_THREAD_CPUTIME_ID

// alignedRegion maps regionBytes at an address aligned to regionBytes (more is mapped,
// the rest unmapped) and asks for huge pages there, or for small ones (where transparent
// huge pages are "always" on).
func alignedRegion(huge bool) []byte {
	m := mmap(2 * regionBytes)
	start := uintptr(unsafe.Pointer(unsafe.SliceData(m)))
	skip := int((regionBytes - start%regionBytes) % regionBytes)
	if skip > 0 {
		munmap(m[:skip:skip])
	}
	if tail := m[skip+regionBytes:]; len(tail) > 0 {
		munmap(tail)
	}
	r := m[skip : skip+regionBytes : skip+regionBytes]
	advice := uintptr(madvNoHugepage)
	if huge {
		advice = madvHugepage
	}
	// Advice only: without transparent huge pages the region still works, page by page.
	_, _, _ = syscall.RawSyscall(syscall.SYS_MADVISE, uintptr(unsafe.Pointer(unsafe.SliceData(r))), regionBytes, advice)
	return r
}

// populate faults b in for writing: one system call where the kernel has
// MADV_POPULATE_WRITE (5.14), else a write to each small page (a huge page faults in
// whole at its first).
//
// A raw system call, as the page faults it replaces were: the thread keeps its P for the
// millisecond or so it takes. Through syscall.Syscall, Go's sysmon would hand the P to
// another thread midway (a wake-up, and sysmon itself polling every 20 µs again): with
// the region faulted in that way, the two were 9 % of the server's CPU in a 1 KiB
// publish-and-subscribe run. The price: a stop of the world waits for the whole region
// (~1–1.5 ms in small pages here) where it waited for one page fault at a time.
func populate(b []byte) {
	_, _, errno := syscall.RawSyscall(syscall.SYS_MADVISE, uintptr(unsafe.Pointer(unsafe.SliceData(b))), uintptr(len(b)), madvPopulateWrite)
	if errno == 0 {
		return
	}
	page := os.Getpagesize()
	for i := 0; i < len(b); i += page {
		// An atomic store: a plain one of a zero the compiler could prove redundant.
		atomic.StoreUint32((*uint32)(unsafe.Pointer(&b[i])), 0)
	}
}

// pageChooser picks the page size for the next region from what regions of each kind
// cost to fault in: the kind in use by a moving average of its regions, the other by its
// last trial. Now and then it maps one region of the other kind, so a change in the
// host's state shows: every probeMin regions after a switch, twice as far apart each time
// the trial confirms the choice, up to probeMax (a cold huge region costs about six
// small ones here, so a trial should be rare while small pages win). A kind not yet
// measured is tried first.
type pageChooser struct {
	cost     [2]time.Duration // [small, huge]
	seen     [2]bool
	n, every int // regions since the last trial, and how many between trials
}

const (
	probeMin = 16
	probeMax = 256
)

// hugeWarm is a fault-in time a huge region only reaches when the host backs it (about
// 0.2 ms here); small pages never come close.
const hugeWarm = 500 * time.Microsecond

func (c *pageChooser) best() bool { return c.cost[1] <= c.cost[0] }

// choose says which kind the next region takes, and whether it is a trial of the other;
// observe takes both back with the region's cost (regions are mapped outside the pool's
// lock, so another's choice may come in between).
func (c *pageChooser) choose() (huge, trial bool) {
	switch {
	case !c.seen[1]:
		return true, false
	case !c.seen[0]:
		return c.cost[1] <= hugeWarm, false // a warm huge page needs no comparison
	}
	if c.every == 0 {
		c.every = probeMin
	}
	if c.n++; c.n >= c.every {
		c.n = 0
		return !c.best(), true
	}
	return c.best(), false
}

func (c *pageChooser) observe(huge, trial bool, d time.Duration) {
	k := 0
	if huge {
		k = 1
	}
	switch was := c.best(); {
	case !c.seen[k] || trial:
		c.seen[k], c.cost[k] = true, d
		if trial {
			if c.best() == was {
				c.every = min(2*c.every, probeMax)
			} else {
				c.every = probeMin
			}
		}
	default:
		c.cost[k] = (3*c.cost[k] + d) / 4
	}
}

const (
	madvHugepage      = 14 // MADV_HUGEPAGE
	madvNoHugepage    = 15 // MADV_NOHUGEPAGE
	madvPopulateWrite = 23 // MADV_POPULATE_WRITE
)

const chunkSize = int(unsafe.Sizeof(chunk{}))

// makeDir returns a zeroed directory of n chunks or more: on the Go heap up to half a
// page (a channel of a few chunks costs no mapping of its own), else mapped (its chunks
// point only to mapped blocks, so the GC need not see them).
func makeDir(n int) []chunk {
	if dirOnHeap(n) {
		return make([]chunk, n)
	}
	b := mapBytes(n * chunkSize)
	return unsafe.Slice((*chunk)(unsafe.Pointer(unsafe.SliceData(b))), len(b)/chunkSize)
}

// freeDir releases a directory from makeDir (whole, as returned); its chunks must already
// be freed.
func freeDir(d []chunk) {
	if !dirOnHeap(cap(d)) {
		unmapBytes(unsafe.Slice((*byte)(unsafe.Pointer(unsafe.SliceData(d))), roundPage(cap(d)*chunkSize)))
	}
}

// dirOnHeap tells a heap directory from a mapped one by its capacity: a mapped one spans
// at least a page, so holds more than half a page of chunks (a chunk is far smaller than
// half a page).
func dirOnHeap(n int) bool { return n*chunkSize <= os.Getpagesize()/2 }

func roundPage(n int) int {
	p := os.Getpagesize()
	return (n + p - 1) &^ (p - 1)
}
