package boltstore

import (
	"errors"
	"fmt"
)

// ErrCorrupt reports a database file whose structure is damaged (see boltcheck.File) or
// whose contents bbolt or this store cannot read. Open fails with it; nothing is
// repaired or rewritten.
var ErrCorrupt = errors.New("boltstore: corrupt database file")

// ErrNotUTF8 reports a subscription or client whose strings are not valid UTF-8:
// CreateSub, UpdateSub and AddClient refuse it, since its protobuf record could never be
// written (and a record that cannot be written would fail every later Flush).
var ErrNotUTF8 = errors.New("boltstore: string is not valid UTF-8")

// ErrForeign reports a bbolt file that is not a Starling store: it holds buckets this
// store never creates. Open refuses it without changing it.
var ErrForeign = errors.New("boltstore: not a Starling store file")

// errOpenWrite marks the failure of Open's own transaction (load) to write the file, which
// openStore does not report as ErrCorrupt.
var errOpenWrite = errors.New("writing the file failed")

// DamageError reports a stored message whose record fails its checksum: Load refuses it
// (the other messages are served) and Verify lists it. It wraps ErrCorrupt.
type DamageError struct {
	Path    string // the database file
	Channel string
	Seq     uint64
	Block   uint64 // the key (first sequence) of the block holding it
}

func (e *DamageError) Error() string {
	return fmt.Sprintf("boltstore: %s: channel %q: message %d (in block %d) fails its checksum: damaged on disk",
		e.Path, e.Channel, e.Seq, e.Block)
}

func (e *DamageError) Unwrap() error { return ErrCorrupt }
