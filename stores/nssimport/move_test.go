package nssimport

import (
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"testing"

	"github.com/starling-io/starling/stores"
	"github.com/starling-io/starling/stores/filestore"
)

// TestMoveIntoCrashAtEachStep: an import into an existing empty directory moves the store's
// entries into it one by one; a crash after any step leaves no partial store, and once the
// first top-level file is in place the whole store opens. The files were moved in name order, the file store's
// clean-close proof (meta.end) before meta.log: a crash between the two left a store that
// refused to open (a proof of a missing meta.log) where meta.log alone opens.
func TestMoveIntoCrashAtEachStep(t *testing.T) {
	src, err := Scan(sampleStore(t), Options{})
	if err != nil {
		t.Fatal(err)
	}
	open := func(dir string) (stores.Store, error) { // synced: Close writes meta.end
		return filestore.Open(dir, filestore.Options{Limits: &stores.LimitsSet{}})
	}
	built := filepath.Join(t.TempDir(), "built")
	if err := Import(src, built, open, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(built, "meta.end")); err != nil {
		t.Fatal(err)
	}
	var want map[string]uint64
	for k := 0; ; k++ {
		target := t.TempDir()
		tmp := filepath.Join(target, ".x.import-1")
		copyTree(t, built, tmp)
		steps, err := movePlan(tmp, target)
		if err != nil {
			t.Fatal(err)
		}
		if k > len(steps) {
			break
		}
		fileMoved := false
		for _, st := range steps[:k] {
			if err := st.do(); err != nil {
				t.Fatal(err)
			}
			if fi, err := os.Stat(st.to); st.from != "" && err == nil && !fi.IsDir() {
				fileMoved = true
			}
		}
		if k == len(steps) {
			if err := os.Remove(tmp); err != nil {
				t.Fatal(err)
			}
		}
		got, err := openLasts(open, target)
		switch {
		case fileMoved && err != nil:
			t.Fatalf("crash after %d of %d moves (a store file in place): %v", k, len(steps), err)
		case fileMoved:
			if want == nil {
				want = got
			}
			if !reflect.DeepEqual(got, want) || len(got) != len(src.Channels) {
				t.Fatalf("crash after %d of %d moves: channels %v, want %v", k, len(steps), got, want)
			}
		case err == nil && len(got) > 0:
			// Before meta.log the target is refused (channel directories holding data no
			// record names) or, while only empty ones are there, opens as a new store.
			t.Fatalf("crash after %d of %d moves (no store file in place) opened a partial store: %v", k, len(steps), got)
		}
	}
	if want == nil {
		t.Fatal("no crash point had a store file in place")
	}
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
