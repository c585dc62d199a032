//go:build linux && !race

package core

import (
	"syscall"
	"unsafe"
)

// sysRead and sysWrite are raw system calls (rawio.go says why). Not in race builds: the
// race detector does not see the kernel's accesses to b in a raw call (syscall.RawSyscall
// is not instrumented), where syscall.Read and syscall.Write record them.
func sysRead(fd uintptr, b []byte) (int, syscall.Errno) { return rawSyscallRW(syscall.SYS_READ, fd, b) }

func sysWrite(fd uintptr, b []byte) (int, syscall.Errno) {
	return rawSyscallRW(syscall.SYS_WRITE, fd, b)
}

// rawSyscallRW makes a read or write system call on b, again when interrupted.
func rawSyscallRW(trap, fd uintptr, b []byte) (int, syscall.Errno) {
	if len(b) == 0 {
		return 0, 0
	}
	for {
		r, _, e := syscall.RawSyscall(trap, fd, uintptr(unsafe.Pointer(unsafe.SliceData(b))), uintptr(len(b)))
		if e == syscall.EINTR {
			continue
		}
		if e != 0 {
			return 0, e
		}
		return int(r), 0
	}
}

// spinOS: the reader may spin for a request (spin.go), polling with raw reads.
const spinOS = true

// osYield gives the CPU to another runnable thread, if any (spin.go), without the
// runtime's system call accounting.
func osYield() { syscall.RawSyscall(syscall.SYS_SCHED_YIELD, 0, 0, 0) }
