package filestore

import (
	"os"
	"syscall"
)

// syncFileRangeWrite is SYNC_FILE_RANGE_WRITE (linux/fs.h), which package syscall lacks.
const syncFileRangeWrite = 0x2

// startWriteback asks the kernel to start writing f's dirty pages to disk, without waiting
// for them (sync_file_range(2) with SYNC_FILE_RANGE_WRITE over the whole file). It makes
// nothing durable: the metadata and the disk's cache still need the fsync.
func startWriteback(f *os.File) {
	rc, err := f.SyscallConn()
	if err != nil {
		return
	}
	_ = rc.Control(func(fd uintptr) {
		for {
			if err := syscall.SyncFileRange(int(fd), 0, 0, syncFileRangeWrite); err != syscall.EINTR {
				return
			}
		}
	})
}
