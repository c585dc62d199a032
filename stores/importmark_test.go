package stores

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

// TestImportLeftovers: only the hidden temporary directories of an import are named, and the
// marker's refusal names them with it (it named the marker alone, leaving a directory that
// may hold the whole imported store hidden once the marker was removed).
func TestImportLeftovers(t *testing.T) {
	dir := t.TempDir()
	left := filepath.Join(dir, ".store.import-42")
	for _, d := range []string{left, filepath.Join(dir, "ch00000001"), filepath.Join(dir, ".hidden")} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(dir, ".x.import-file"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if got := ImportLeftovers(dir); !reflect.DeepEqual(got, []string{left}) {
		t.Fatalf("leftovers %v, want %v", got, []string{left})
	}
	if err := CheckImportMarker(dir); err != nil {
		t.Fatalf("no marker: %v", err)
	}
	marker := filepath.Join(dir, ImportMarker)
	if err := os.WriteFile(marker, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	err := CheckImportMarker(dir)
	if !errors.Is(err, ErrImportUnfinished) || !strings.Contains(err.Error(), marker) || !strings.Contains(err.Error(), left) {
		t.Fatalf("refusal %v, want one naming %s and %s", err, marker, left)
	}
}
