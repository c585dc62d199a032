package core

import (
	"syscall"
	"unsafe"
)

// inputIdle reports whether c's socket has no unread bytes now (ioctl FIONREAD): at the end
// of a read buffer, a client that sent nothing more is probably waiting for our answers.
// A TLS connection (no raw socket; its layer may hold decrypted bytes) is never idle.
func (c *client) inputIdle() bool {
	if c.raw == nil {
		return false
	}
	var n int32
	var errno syscall.Errno
	if err := c.raw.Control(func(fd uintptr) {
		_, _, errno = syscall.Syscall(syscall.SYS_IOCTL, fd, syscall.TIOCINQ, uintptr(unsafe.Pointer(&n)))
	}); err != nil || errno != 0 {
		return false
	}
	return n == 0
}
