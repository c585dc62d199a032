//go:build !linux || race

package core

import (
	"runtime"
	"syscall"
)

// sysRead and sysWrite are plain system calls: outside Linux a raw one is not portable
// (OpenBSD's syscall.RawSyscall always fails with ENOSYS; illumos has no SYS_READ), and in
// race builds the detector must see the kernel's accesses to b.
func sysRead(fd uintptr, b []byte) (int, syscall.Errno) { return plainRW(syscall.Read, fd, b) }

func sysWrite(fd uintptr, b []byte) (int, syscall.Errno) { return plainRW(syscall.Write, fd, b) }

// plainRW makes a read or write system call on b, again when interrupted.
func plainRW(rw func(int, []byte) (int, error), fd uintptr, b []byte) (int, syscall.Errno) {
	if len(b) == 0 {
		return 0, 0
	}
	for {
		n, err := rw(int(fd), b)
		if r, e, again := rwResult(n, err); !again {
			return r, e
		}
	}
}

// rwResult is a read's or write's count or errno; again when it was interrupted.
func rwResult(n int, err error) (int, syscall.Errno, bool) {
	if err == nil {
		return max(n, 0), 0, false
	}
	e, ok := err.(syscall.Errno)
	switch {
	case !ok:
		return 0, syscall.EIO, false
	case e == syscall.EINTR:
		return 0, 0, true
	}
	return 0, e, false
}

// spinOS: no spinning for requests (spin.go) where reads are accounted system calls (they
// would wake the runtime's monitor thread at every poll); tests turn it on.
const spinOS = false

// osYield: the tests' spins yield to Go's scheduler.
func osYield() { runtime.Gosched() }
