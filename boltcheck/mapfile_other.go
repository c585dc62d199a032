//go:build !unix

package boltcheck

import (
	"io"
	"os"
)

// mapFile reads f (of size bytes) for File where mmap is not available.
func mapFile(f *os.File, size int) (data []byte, unmap func(), err error) {
	data = make([]byte, size)
	if _, err := io.ReadFull(io.NewSectionReader(f, 0, int64(size)), data); err != nil {
		return nil, nil, err
	}
	return data, func() {}, nil
}

// tryLockShared: no advisory locks here; bbolt's own lock still guards the open.
func tryLockShared(*os.File) bool { return true }
