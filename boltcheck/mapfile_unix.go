//go:build unix

package boltcheck

import (
	"os"
	"syscall"
)

// mapFile maps f (of size bytes) read-only for File; unmap releases it.
func mapFile(f *os.File, size int) (data []byte, unmap func(), err error) {
	data, err = syscall.Mmap(int(f.Fd()), 0, size, syscall.PROT_READ, syscall.MAP_SHARED)
	if err != nil {
		return nil, nil, err
	}
	return data, func() { _ = syscall.Munmap(data) }, nil
}

// tryLockShared takes a shared flock on f without waiting: false when another process
// holds the file (bbolt's writer keeps an exclusive flock for as long as it is open).
// Closing f releases it.
func tryLockShared(f *os.File) bool {
	return syscall.Flock(int(f.Fd()), syscall.LOCK_SH|syscall.LOCK_NB) == nil
}
