package boltstore

import "errors"

// ErrCorrupt reports a database file whose structure is damaged (see checkFile) or
// whose contents bbolt or this store cannot read. Open fails with it; nothing is
// repaired or rewritten.
var ErrCorrupt = errors.New("boltstore: corrupt database file")
