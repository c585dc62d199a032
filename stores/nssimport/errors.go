package nssimport

import (
	"errors"
	"fmt"
)

// Errors returned by Scan and Import (compare with errors.Is).
var (
	// ErrDamaged: a file of the nss store cannot be read as nss wrote it (a checksum
	// mismatch, a record cut short, a payload that does not decode, sequences that do not
	// follow). The error is a *FormatError naming the file and the byte offset.
	ErrDamaged = errors.New("nss store damaged")

	// ErrNotNSSStore: the source directory is not a nats-streaming-server file store (no
	// server.dat, or one that holds no server information).
	ErrNotNSSStore = errors.New("not a nats-streaming-server file store")

	// ErrTargetExists: the target directory exists and is not empty; an import only ever
	// creates a new store.
	ErrTargetExists = errors.New("target directory exists and is not empty")

	// ErrInterruptedImport: the target does not exist, but the temporary directory of an
	// earlier import into it (.TARGET.import-*) is beside it: one by an earlier version
	// (which built beside the target) killed before it could clean up, or still running.
	ErrInterruptedImport = errors.New("an earlier import into the target did not finish")

	// ErrMarkerLeft: the store was imported whole into the target, but the import could
	// not remove its temporary directory or stores.ImportMarker (or fsync the removal):
	// the store is left in place, and the error names what to remove by hand.
	ErrMarkerLeft = errors.New("store imported, but its import marker is left")

	// ErrTargetNotEmpty: the store opened in the temporary directory already holds state
	// (a bug in the caller's Open, which must create a fresh store).
	ErrTargetNotEmpty = errors.New("target store is not empty")
)

// FormatError is damage found in one file of the nss store: the file (its path as given to
// Scan, joined with the file's name) and the byte offset of the record (or header) at
// fault. It unwraps to ErrDamaged.
type FormatError struct {
	File   string
	Offset int64
	Reason string
}

func (e *FormatError) Error() string {
	return fmt.Sprintf("%s: offset %d: %s", e.File, e.Offset, e.Reason)
}

func (e *FormatError) Unwrap() error { return ErrDamaged }

func damaged(file string, off int64, format string, a ...any) *FormatError {
	return &FormatError{File: file, Offset: off, Reason: fmt.Sprintf(format, a...)}
}
