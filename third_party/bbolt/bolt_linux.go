package bbolt

import (
	"syscall"
)

// fdatasync flushes written data to a file descriptor.
func fdatasync(db *DB) error {
	if db.fileOps.Fdatasync != nil {
		return db.fileOps.Fdatasync(db.file)
	}
	return syscall.Fdatasync(int(db.file.Fd()))
}
