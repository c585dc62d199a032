//go:build !(linux && (amd64 || arm64))

package rawsync

import (
	"os"
	"time"
)

// Fsync is f.Sync: the raw calls are 64-bit amd64 and arm64 Linux's (rawsync_raw.go).
func Fsync(f *os.File) error { return f.Sync() }

// Fdatasync is f.Sync: the raw call is 64-bit Linux's.
func Fdatasync(f *os.File) error { return f.Sync() }

// Size is f.Stat's size: the raw call is 64-bit Linux's.
func Size(f *os.File) (int64, error) {
	fi, err := f.Stat()
	if err != nil {
		return 0, err
	}
	return fi.Size(), nil
}

// WriteAt is f.WriteAt: the raw call is 64-bit Linux's.
func WriteAt(f *os.File, b []byte, off int64) (int, error) { return f.WriteAt(b, off) }

// Write is f.Write: the raw call is 64-bit Linux's.
func Write(f *os.File, b []byte) (int, error) { return f.Write(b) }

// RawCalls counts the raw calls made: none here.
func RawCalls() uint64 { return 0 }

// SetSlow sets the slow-call threshold and ends a back-off under way; it returns the
// previous threshold. For tests.
func SetSlow(d time.Duration) time.Duration { return d }
