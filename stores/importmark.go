package stores

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// ImportMarker is the file an import into an existing directory (stores/nssimport) writes
// there, durably, before it builds anything, and removes once the store it moved in is
// whole. A crash in between can leave part of a store, or nothing but the import's
// temporary directory, which a store would open as a new empty one and the server serve as
// if nothing had been imported: a store that finds the marker refuses to open. No store
// ever writes it.
const ImportMarker = "import.unfinished"

// CheckImportMarker returns an error wrapping ErrImportUnfinished, naming the marker, the
// import's temporary directories (ImportLeftovers) and what to do, if dir holds ImportMarker.
func CheckImportMarker(dir string) error {
	p := filepath.Join(dir, ImportMarker)
	if _, err := os.Lstat(p); err != nil {
		return nil // absent; or dir unreadable, which the store's own open reports
	}
	err := fmt.Errorf("%w: %s is there (the import was interrupted: the directory holds part of a store, or none): "+
		"empty the directory and import again, or remove %s to open what it holds as it is", ErrImportUnfinished, p, p)
	if left := ImportLeftovers(dir); len(left) > 0 {
		err = fmt.Errorf("%w (%s: the import's temporary directory, no part of the store opened, holding what was not "+
			"moved yet, up to the whole store; remove it too, once you no longer need it)", err, strings.Join(left, ", "))
	}
	return err
}

// ImportLeftovers returns the temporary directories (.TARGET.import-*) an interrupted import
// left in dir, where it builds the store before moving its entries up. No store reads or
// removes them: a marker removed by hand leaves them there, holding what the import had
// not moved (the whole store if it had moved nothing), hidden from ls.
func ImportLeftovers(dir string) []string {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil
	}
	var out []string
	for _, e := range entries {
		if n := e.Name(); e.IsDir() && strings.HasPrefix(n, ".") && strings.Contains(n, ".import-") {
			out = append(out, filepath.Join(dir, n))
		}
	}
	return out
}
