//go:build !linux

package filestore

import (
	"errors"
	"os"
)

// allocate: without fallocate(2) tails grow as they are written.
func allocate(f *os.File, size int64) error { return errors.ErrUnsupported }
