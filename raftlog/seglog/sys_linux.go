package seglog

import (
	"os"
	"syscall"
)

// allocate gives f zero-filled blocks up to size bytes (fallocate mode 0): an fdatasync
// after writing into them has no block allocation or size change to journal.
func allocate(f *os.File, size int64) error {
	for {
		err := syscall.Fallocate(int(f.Fd()), 0, 0, size)
		if err != syscall.EINTR {
			if err == syscall.EOPNOTSUPP {
				return f.Truncate(size)
			}
			return err
		}
	}
}

func fdatasync(f *os.File) error {
	for {
		err := syscall.Fdatasync(int(f.Fd()))
		if err != syscall.EINTR {
			return err
		}
	}
}
