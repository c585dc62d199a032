//go:build linux && (amd64 || arm64)

package memstore

import (
	"fmt"
	"os"
	"sync"
	"syscall"
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

func mmap(n int) []byte {
	addr, _, errno := syscall.Syscall6(syscall.SYS_MMAP, 0, uintptr(n),
		syscall.PROT_READ|syscall.PROT_WRITE, syscall.MAP_PRIVATE|syscall.MAP_ANONYMOUS, ^uintptr(0), 0)
	if errno != 0 {
		panic(fmt.Sprintf("memstore: cannot map %d bytes: %v", n, errno))
	}
	// The address is of memory the Go runtime does not manage (not a Go pointer hidden
	// in a uintptr), so it can be turned into a pointer.
	return unsafe.Slice(*(**byte)(unsafe.Pointer(&addr)), n)
}

func munmap(b []byte) {
	if _, _, errno := syscall.Syscall(syscall.SYS_MUNMAP, uintptr(unsafe.Pointer(unsafe.SliceData(b))), uintptr(len(b)), 0); errno != 0 {
		panic(fmt.Sprintf("memstore: cannot unmap %d bytes: %v", len(b), errno))
	}
}

// The blocks of a busy channel's full chunks (DefaultChunkMsgs entries and
// DefaultChunkBytes of arena: 1 MiB) are halves of 2 MiB regions aligned for a transparent
// huge page (MADV_HUGEPAGE). Filling a block of 4 KiB pages takes a page fault per 4 KiB
// — on the benchmark machine 12 µs each, 3 µs per KiB stored, more than all the rest of
// a 1 KiB publish — where a huge page takes one fault per 2 MiB. Blocks a little smaller
// (a full arena with fewer entries) take a half too, wasting at most halfSlack. A region
// goes back to the kernel once both halves are free; a free half is reused first, cleared
// (a directory from makeDir must start zeroed; 1 MiB clears in tens of µs, against ~3 ms of
// faults for a fresh one in 4 KiB pages). Smaller blocks — small channels, the memory of
// short messages, where a huge page would hold mostly unused bytes — keep 4 KiB pages.
const (
	regionBytes = 2 << 20
	halfBytes   = regionBytes / 2
	halfSlack   = 64 << 10
)

func isHalf(n int) bool { return n > halfBytes-halfSlack && n <= halfBytes }

var halves = halfPool{free: map[uintptr]uintptr{}}

// halfPool hands out the halves of huge regions.
type halfPool struct {
	mu   sync.Mutex
	free map[uintptr]uintptr // region start → the address of its one free half
}

func (p *halfPool) get() []byte {
	p.mu.Lock()
	defer p.mu.Unlock()
	for region, half := range p.free {
		delete(p.free, region)
		b := unsafe.Slice(*(**byte)(unsafe.Pointer(&half)), halfBytes)
		clear(b)
		return b
	}
	r := alignedRegion()
	base := uintptr(unsafe.Pointer(unsafe.SliceData(r)))
	p.free[base] = base + halfBytes
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
	p.free[region] = addr
}

// alignedRegion maps regionBytes at an address aligned to regionBytes (more is mapped,
// the rest unmapped) and asks for a huge page there.
func alignedRegion() []byte {
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
	// Advice only: without transparent huge pages the region still works, page by page.
	_, _, _ = syscall.Syscall(syscall.SYS_MADVISE, uintptr(unsafe.Pointer(unsafe.SliceData(r))), regionBytes, madvHugepage)
	return r
}

const madvHugepage = 14 // MADV_HUGEPAGE

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
