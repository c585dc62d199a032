package tests

import (
	"os"
	"path/filepath"
	"testing"
)

// TestMain removes the binaries built for this run (starlingBinary without $STARLING_BIN,
// healthcheckBinary): each is ~20 MB in a directory of its own under $TMPDIR, and every
// run outside make left one behind.
func TestMain(m *testing.M) {
	code := m.Run()
	for _, bin := range []string{builtBin, healthBin} {
		if bin != "" {
			os.RemoveAll(filepath.Dir(bin))
		}
	}
	os.Exit(code)
}
