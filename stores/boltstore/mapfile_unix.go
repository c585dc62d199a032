//go:build unix

package boltstore

import (
	"os"
	"syscall"
)

// mapFile maps f (of size bytes) read-only for checkFile; unmap releases it.
func mapFile(f *os.File, size int) (data []byte, unmap func(), err error) {
	data, err = syscall.Mmap(int(f.Fd()), 0, size, syscall.PROT_READ, syscall.MAP_SHARED)
	if err != nil {
		return nil, nil, err
	}
	return data, func() { _ = syscall.Munmap(data) }, nil
}
