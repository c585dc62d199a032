package stores

import (
	"fmt"
	"os"
	"path/filepath"
)

// ImportMarker is the file an import into an existing directory (stores/nssimport) writes
// there, durably, before it builds anything, and removes once the store it moved in is
// whole. A crash in between can leave part of a store, or nothing but the import's
// temporary directory, which a store would open as a new empty one and the server serve as
// if nothing had been imported: a store that finds the marker refuses to open. No store
// ever writes it.
const ImportMarker = "import.unfinished"

// CheckImportMarker returns an error wrapping ErrImportUnfinished, naming the marker and
// what to do, if dir holds ImportMarker.
func CheckImportMarker(dir string) error {
	p := filepath.Join(dir, ImportMarker)
	if _, err := os.Lstat(p); err != nil {
		return nil // absent; or dir unreadable, which the store's own open reports
	}
	return fmt.Errorf("%w: %s is there (the import was interrupted: the directory holds part of a store, or none): "+
		"empty the directory and import again, or remove %s to open what it holds as it is", ErrImportUnfinished, p, p)
}
