//go:build linux && (amd64 || arm64)

package memstore

import (
	"fmt"
	"os"
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
	addr, _, errno := syscall.Syscall6(syscall.SYS_MMAP, 0, uintptr(n),
		syscall.PROT_READ|syscall.PROT_WRITE, syscall.MAP_PRIVATE|syscall.MAP_ANONYMOUS, ^uintptr(0), 0)
	if errno != 0 {
		panic(fmt.Sprintf("memstore: cannot map %d bytes: %v", n, errno))
	}
	// The address is of memory the Go runtime does not manage (not a Go pointer hidden
	// in a uintptr), so it can be turned into a pointer.
	return unsafe.Slice(*(**byte)(unsafe.Pointer(&addr)), n)
}

// unmapBytes returns a block from mapBytes (the whole slice, as returned) to the kernel.
func unmapBytes(b []byte) {
	if _, _, errno := syscall.Syscall(syscall.SYS_MUNMAP, uintptr(unsafe.Pointer(unsafe.SliceData(b))), uintptr(len(b)), 0); errno != 0 {
		panic(fmt.Sprintf("memstore: cannot unmap %d bytes: %v", len(b), errno))
	}
}

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
