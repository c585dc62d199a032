//go:build !linux

package seglog

import "os"

func allocate(f *os.File, size int64) error {
	fi, err := f.Stat()
	if err != nil || fi.Size() >= size {
		return err
	}
	return f.Truncate(size)
}

func fdatasync(f *os.File) error { return f.Sync() }
