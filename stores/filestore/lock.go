package filestore

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
)

// lockName is the file in a store's directory that Open locks for as long as the store is
// open. Without it a second server started on the same directory (a stray process, an
// overlapping restart) appended to the same files beside the first and destroyed
// acknowledged messages; bolt's file and raft.db were locked, the file store was not.
const lockName = "LOCK"

// ErrInUse: the store's directory is locked by another open store, in this process or
// another (a second server on the same directory, or Verify/Repair of a store in use).
var ErrInUse = errors.New("filestore: the store is in use by another process (another server on this directory?)")

// lockDir takes the store directory's lock without waiting: exclusive (Open, Repair; dir
// must exist), or shared (Verify, which changes nothing: without a lock file, no store was
// ever opened there by a version that locks, and it returns nil).
func lockDir(dir string, shared bool) (*os.File, error) {
	path := filepath.Join(dir, lockName)
	var f *os.File
	var err error
	if shared {
		f, err = os.Open(path)
		if errors.Is(err, os.ErrNotExist) {
			return nil, nil
		}
	} else {
		f, err = os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o644)
	}
	if err != nil {
		return nil, fmt.Errorf("filestore: lock %s: %w", path, err)
	}
	if err := flock(f, shared); err != nil {
		_ = f.Close()
		if errors.Is(err, errLocked) {
			return nil, fmt.Errorf("%w: %s is locked", ErrInUse, path)
		}
		return nil, fmt.Errorf("filestore: lock %s: %w", path, err)
	}
	return f, nil
}
