package nssimport

import (
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/starling-io/starling/stores"
	"github.com/starling-io/starling/stores/filestore"
)

// TestMoveIntoCrashAtEachStep: an import into an empty directory (made if missing) builds the store in
// a directory inside it, then moves the store's entries into it one by one. A crash at any
// point — while the store is written, or after any step of the move — leaves a directory
// that opens as the whole store or is refused: never one that opens as a new empty store,
// which the server would serve (and publish into) as if nothing had been imported.
// The files were once moved in name order, the file store's clean-close proof (meta.end)
// before meta.log: a crash between the two left a store that refused to open where
// meta.log alone opens. A crash while the store was written, or before meta.log was moved
// (only empty channel directories, or none, in place), left a target that opened as a new
// empty store without a word.
func TestMoveIntoCrashAtEachStep(t *testing.T) {
	src, err := Scan(sampleStore(t), Options{})
	if err != nil {
		t.Fatal(err)
	}
	// A missing target was built beside and renamed in: a crash left no target, which
	// opened as a new empty store, the data hidden beside it.
	for name, rel := range map[string]string{"existing": "", "missing": "new"} {
		t.Run(name, func(t *testing.T) { moveCrashes(t, src, rel) })
	}
}

// moveCrashes is TestMoveIntoCrashAtEachStep for the target rel in a temporary directory
// ("" the directory itself: an existing empty target). Each crash copies that directory.
func moveCrashes(t *testing.T, src *Source, rel string) {
	openFile := func(dir string) (stores.Store, error) { // synced: Close writes meta.end
		return filestore.Open(dir, filestore.Options{Limits: &stores.LimitsSet{}})
	}
	root := t.TempDir()
	target := filepath.Join(root, rel)
	// Copies of root as a crash would leave it: while the store is written, and once it
	// is closed, before the move.
	var writing, written string
	open := func(dir string) (stores.Store, error) {
		st, err := openFile(dir)
		if err != nil {
			return nil, err
		}
		writing = t.TempDir()
		copyTree(t, root, writing)
		return closeHook{st, func() {
			written = t.TempDir()
			copyTree(t, root, written)
		}}, nil
	}
	if err := Import(src, target, open, nil); err != nil {
		t.Fatal(err)
	}
	want, err := openLasts(openFile, target)
	if err != nil || len(want) != len(src.Channels) {
		t.Fatalf("imported store: %v, %v", want, err)
	}
	if got, err := openLasts(openFile, filepath.Join(writing, rel)); err == nil && !reflect.DeepEqual(got, want) {
		t.Errorf("crash while the store was written: the target opened as channels %v, want a refusal", got)
	}
	tmps, _ := filepath.Glob(filepath.Join(written, rel, ".*.import-*"))
	if len(tmps) != 1 {
		t.Fatalf("before the move, the target holds %v", tmps)
	}
	tmpName := filepath.Base(tmps[0])
	for k := 0; ; k++ {
		dir := t.TempDir()
		copyTree(t, filepath.Join(written, rel), dir)
		tmp := filepath.Join(dir, tmpName)
		steps, err := movePlan(tmp, dir)
		if err != nil {
			t.Fatal(err)
		}
		if k > len(steps) {
			break
		}
		for _, st := range steps[:k] {
			if err := st.do(); err != nil {
				t.Fatal(err)
			}
		}
		if k == len(steps) {
			if err := os.RemoveAll(tmp); err != nil { // a plan that left it to moveInto
				t.Fatal(err)
			}
		}
		got, err := openLasts(openFile, dir)
		if err != nil && storeFileIn(t, dir) {
			// Refused for the marker: removed (as the refusal offers), what was moved opens
			// whole once a store file is in place (meta.end only once meta.log is).
			if err := os.Remove(filepath.Join(dir, stores.ImportMarker)); err != nil {
				t.Fatal(err)
			}
			got, err = openLasts(openFile, dir)
			if err != nil || !reflect.DeepEqual(got, want) {
				t.Fatalf("crash after %d of %d steps, marker removed: channels %v, %v; want %v", k, len(steps), got, err, want)
			}
		}
		switch {
		case k == len(steps) && (err != nil || !reflect.DeepEqual(got, want)):
			t.Fatalf("every step done: channels %v, %v; want %v", got, err, want)
		case err == nil && !reflect.DeepEqual(got, want):
			t.Errorf("crash after %d of %d steps: opened without an error as channels %v, want the whole store %v or a refusal",
				k, len(steps), got, want)
		}
	}
}

// storeFileIn reports whether dir holds a file other than the import's marker.
func storeFileIn(t *testing.T, dir string) bool {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if !e.IsDir() && e.Name() != stores.ImportMarker {
			return true
		}
	}
	return false
}

// closeHook is a store that calls after once Close succeeded.
type closeHook struct {
	stores.Store
	after func()
}

func (s closeHook) Close() error {
	if err := s.Store.Close(); err != nil {
		return err
	}
	s.after()
	return nil
}

// openLasts opens the store in dir and returns each channel's Last.
func openLasts(open OpenFunc, dir string) (map[string]uint64, error) {
	st, err := open(dir)
	if err != nil {
		return nil, err
	}
	defer st.Close()
	rs, err := st.Recover()
	if err != nil {
		return nil, err
	}
	m := map[string]uint64{}
	if rs == nil { // a new store
		return m, nil
	}
	for _, rc := range rs.Channels {
		m[rc.Channel.Name] = rc.Channel.Msgs.State().Last
	}
	return m, nil
}

// copyTree copies the directory from (files and directories only) to to.
func copyTree(t *testing.T, from, to string) {
	t.Helper()
	err := filepath.WalkDir(from, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(from, p)
		dst := filepath.Join(to, rel)
		if d.IsDir() {
			return os.MkdirAll(dst, 0o755)
		}
		in, err := os.Open(p)
		if err != nil {
			return err
		}
		defer in.Close()
		out, err := os.Create(dst)
		if err != nil {
			return err
		}
		if _, err := io.Copy(out, in); err != nil {
			out.Close()
			return err
		}
		return out.Close()
	})
	if err != nil {
		t.Fatal(err)
	}
}

// TestImportKeepsTheStoreWhenTheMarkerStays: the last step of an import into an empty
// directory, removing its marker, failed (here the marker is a directory that is not
// empty). The rollback then removed every entry moved in: the whole store was deleted
// for want of removing one file. Now the store stays, and the error names the marker to
// remove; removed, the store opens whole.
func TestImportKeepsTheStoreWhenTheMarkerStays(t *testing.T) {
	src, err := Scan(sampleStore(t), Options{})
	if err != nil {
		t.Fatal(err)
	}
	target := t.TempDir()
	marker := filepath.Join(target, stores.ImportMarker)
	open := func(dir string) (stores.Store, error) {
		if err := os.Remove(marker); err != nil {
			return nil, err
		}
		writeFile(t, filepath.Join(marker, "x"), nil) // os.Remove fails on it
		return openFile(dir)
	}
	err = Import(src, target, open, nil)
	if _, serr := os.Stat(filepath.Join(target, "meta.log")); serr != nil {
		t.Fatalf("the imported store was removed: %v (import: %v)", serr, err)
	}
	if !errors.Is(err, ErrMarkerLeft) || !strings.Contains(err.Error(), "remove "+marker) {
		t.Fatalf("import whose marker stays: %v, want ErrMarkerLeft naming %s", err, marker)
	}
	if _, err := openLasts(openFile, target); !errors.Is(err, stores.ErrImportUnfinished) {
		t.Fatalf("open with the marker there: %v", err)
	}
	if err := os.RemoveAll(marker); err != nil {
		t.Fatal(err)
	}
	got, err := openLasts(openFile, target)
	if err != nil || len(got) != len(src.Channels) || got["orders"] != 30 {
		t.Fatalf("the store once the marker is removed: %v, %v", got, err)
	}
}
