package main

import (
	"os"
	"syscall"
)

// allocate reserves f's blocks up to size (fallocate mode 0: the file's size grows to it).
func allocate(f *os.File, size int64) error {
	for {
		err := syscall.Fallocate(int(f.Fd()), 0, 0, size)
		if err != syscall.EINTR {
			return err
		}
	}
}
