package filestore

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/starling-io/starling/stores"
)

// TestOpenRefusesImportMarker: a directory holding stores.ImportMarker is one an import was
// filling when it was killed. Open opened it as a new empty store (only the import's
// temporary directory, or empty channel directories, there) or as whatever part of the store
// had been moved; now Open, Verify and Repair refuse it, naming the marker, and change
// nothing. Removing the marker opens what is there. No store ever writes the marker.
func TestOpenRefusesImportMarker(t *testing.T) {
	full, _ := build(t, 30)
	if _, err := os.Stat(filepath.Join(full, stores.ImportMarker)); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("a store wrote the marker: %v", err)
	}
	empty := t.TempDir() // an interrupted import's temporary directory only
	if err := os.Mkdir(filepath.Join(empty, ".x.import-1"), 0o755); err != nil {
		t.Fatal(err)
	}
	for _, dir := range []string{empty, full} {
		marker := filepath.Join(dir, stores.ImportMarker)
		if err := os.WriteFile(marker, nil, 0o644); err != nil {
			t.Fatal(err)
		}
		before := listTree(t, dir)
		s, err := Open(dir, Options{})
		if err == nil {
			s.Close()
		}
		if !errors.Is(err, stores.ErrImportUnfinished) || !strings.Contains(err.Error(), marker) {
			t.Fatalf("open of %s: %v, want a refusal naming %s", dir, err, marker)
		}
		if _, err := Verify(dir, Options{}); !errors.Is(err, stores.ErrImportUnfinished) {
			t.Fatalf("verify: %v", err)
		}
		if _, err := Repair(dir, Options{Quarantine: true}); !errors.Is(err, stores.ErrImportUnfinished) {
			t.Fatalf("repair: %v", err)
		}
		if after := listTree(t, dir); !reflect.DeepEqual(after, before) {
			t.Fatalf("the refusals changed %s: %v, was %v", dir, after, before)
		}
		if err := os.Remove(marker); err != nil {
			t.Fatal(err)
		}
		s, err = Open(dir, Options{})
		if err != nil {
			t.Fatal(err)
		}
		rs, err := s.Recover()
		if err != nil || (dir == full) != (rs != nil && len(rs.Channels) == 2) {
			t.Fatalf("open of %s once the marker is removed: %+v %v", dir, rs, err)
		}
		s.Close()
	}
}

// listTree returns the paths and sizes under dir.
func listTree(t *testing.T, dir string) map[string]int64 {
	t.Helper()
	m := map[string]int64{}
	err := filepath.Walk(dir, func(p string, fi os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		m[p] = fi.Size()
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return m
}
