package core

import (
	"syscall"
	"unsafe"
)

// inputIdle reports whether c's socket has no unread bytes now (ioctl FIONREAD): at the end
// of a read buffer, a client that sent nothing more is probably waiting for our answers.
// A TLS connection (no raw socket; its layer may hold decrypted bytes) is never idle.
// The ioctl is a raw system call (it never blocks): as an ordinary one it was the first
// accounted call after an idle spell, which wakes the runtime's sysmon (rawio.go).
func (c *client) inputIdle() bool {
	if c.raw == nil {
		return false
	}
	var n int32
	var errno syscall.Errno
	if err := c.raw.Control(func(fd uintptr) {
		_, _, errno = syscall.RawSyscall(syscall.SYS_IOCTL, fd, syscall.TIOCINQ, uintptr(unsafe.Pointer(&n)))
	}); err != nil || errno != 0 {
		return false
	}
	return n == 0
}
