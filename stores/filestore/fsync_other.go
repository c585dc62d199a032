//go:build !linux

package filestore

import "os"

// syncHoldingP: the raw fsync is Linux's (fsync_linux.go); elsewhere the ordinary one.
func syncHoldingP(f *os.File) error { return f.Sync() }
