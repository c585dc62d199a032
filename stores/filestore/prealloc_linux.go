package filestore

import (
	"os"
	"syscall"
)

// allocate gives f disk blocks up to size bytes, zero-filled, growing the file to size
// (fallocate(2) mode 0): an fsync after writing into them then has no block allocation or
// size change to journal.
func allocate(f *os.File, size int64) error {
	rc, err := f.SyscallConn()
	if err != nil {
		return err
	}
	var ferr error
	if err := rc.Control(func(fd uintptr) {
		for {
			ferr = syscall.Fallocate(int(fd), 0, 0, size)
			if ferr != syscall.EINTR {
				return
			}
		}
	}); err != nil {
		return err
	}
	return ferr
}
