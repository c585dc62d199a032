package crashtest

import (
	"bytes"
	"errors"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"

	"github.com/starling-io/starling/stores/filestore"
)

func fill(n int, b byte) []byte { return bytes.Repeat([]byte{b}, n) }

// write appends p to path through the hooks.
func write(t *testing.T, h *filestore.Hooks, path string, p []byte) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := h.Write(path, p, f.Write); err != nil {
		t.Fatal(err)
	}
}

// synced reports a successful fsync of path covering its current size.
func synced(t *testing.T, h *filestore.Hooks, path string) {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	h.AfterSync(path, fi, nil)
}

// PowerLoss keeps what fsyncs covered and at most the rest, zeroed by pages; a file never
// synced may vanish; a truncation lowers what is synced; a frozen disk refuses everything.
func TestPowerLoss(t *testing.T) {
	zeroed, vanished := 0, 0
	for seed := range uint64(50) {
		dir := t.TempDir()
		d := New()
		var o filestore.Options
		d.Install(&o)
		h := &o.Hooks
		a, b, c := filepath.Join(dir, "a"), filepath.Join(dir, "b"), filepath.Join(dir, "c")
		write(t, h, a, fill(6000, 'a'))
		synced(t, h, a)
		write(t, h, a, fill(10000, 'A'))
		write(t, h, b, fill(9000, 'b'))
		write(t, h, c, fill(8000, 'c'))
		synced(t, h, c)
		f, _ := os.OpenFile(c, os.O_RDWR, 0)
		if err := h.Change(filestore.ChangeTruncate, c, 3000, func() error { return f.Truncate(3000) }); err != nil {
			t.Fatal(err)
		}
		f.Close()
		write(t, h, c, fill(2000, 'C'))

		d.Freeze()
		if _, err := h.Write(a, []byte("x"), func(p []byte) (int, error) { t.Fatal("write while frozen"); return 0, nil }); !errors.Is(err, ErrFrozen) {
			t.Fatalf("Write while frozen = %v", err)
		}
		if err := h.Change(filestore.ChangeRemove, a, 0, func() error { t.Fatal("change while frozen"); return nil }); !errors.Is(err, ErrFrozen) {
			t.Fatalf("Change while frozen = %v", err)
		}
		if err := h.BeforeSync(a); !errors.Is(err, ErrFrozen) {
			t.Fatalf("BeforeSync while frozen = %v", err)
		}
		if err := d.PowerLoss(dir, rand.New(rand.NewPCG(seed, 1))); err != nil {
			t.Fatal(err)
		}
		for _, tc := range []struct {
			path   string
			synced int
			old    byte
			size   int
		}{{a, 6000, 'a', 16000}, {b, 0, 0, 9000}, {c, 3000, 'c', 5000}} {
			data, err := os.ReadFile(tc.path)
			if errors.Is(err, os.ErrNotExist) && tc.synced == 0 {
				vanished++
				continue // never synced: vanished
			}
			if bytes.IndexByte(data[tc.synced:], 0) >= 0 {
				zeroed++
			}
			if err != nil || len(data) < tc.synced || len(data) > tc.size {
				t.Fatalf("seed %d: %s: %d bytes, %v", seed, tc.path, len(data), err)
			}
			if tc.synced > 0 && !bytes.Equal(data[:tc.synced], fill(tc.synced, tc.old)) {
				t.Fatalf("seed %d: %s: synced bytes changed", seed, tc.path)
			}
			for i := tc.synced; i < len(data); i++ {
				if data[i] != 0 && data[i] != bytes.ToUpper([]byte{filepath.Base(tc.path)[0]})[0] && data[i] != filepath.Base(tc.path)[0] {
					t.Fatalf("seed %d: %s: byte %d is %q", seed, tc.path, i, data[i])
				}
			}
		}
		d.Thaw()
		write(t, h, a, []byte("after"))
	}
	if zeroed == 0 || vanished == 0 {
		t.Fatalf("in 50 cuts, %d files had zeroed pages and %d vanished", zeroed, vanished)
	}
}

// Do: a preallocated file's fsync covers the size Do is told, not the file's size; a
// truncation lowers it; FreezeAtSync freezes the Disk at the next fsync, which then never
// runs, and a frozen Disk refuses every operation.
func TestDo(t *testing.T) {
	dir := t.TempDir()
	d := New()
	path := filepath.Join(dir, "seg")
	var f *os.File
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(d.Do(filestore.ChangeCreate, path, 0, func() (err error) { f, err = os.Create(path); return err }))
	defer f.Close()
	must(d.Do(filestore.ChangeAllocate, path, 1<<16, func() error { return f.Truncate(1 << 16) }))
	must(d.Do(OpWrite, path, 5000, func() error { _, err := f.WriteAt(fill(5000, 'a'), 0); return err }))
	must(d.Do(OpSync, path, 5000, f.Sync))
	must(d.Do(OpWrite, path, 9000, func() error { _, err := f.WriteAt(fill(4000, 'b'), 5000); return err }))
	d.FreezeAtSync()
	ran := false
	if err := d.Do(OpSync, path, 9000, func() error { ran = true; return nil }); !errors.Is(err, ErrFrozen) || ran {
		t.Fatalf("the armed fsync: %v, ran %v; want ErrFrozen, not run", err, ran)
	}
	if err := d.Do(OpWrite, path, 9001, func() error { ran = true; return nil }); !errors.Is(err, ErrFrozen) || ran {
		t.Fatalf("a write once frozen: %v, ran %v; want ErrFrozen, not run", err, ran)
	}
	must(d.PowerLoss(dir, rand.New(rand.NewPCG(1, 2))))
	got, err := os.ReadFile(path)
	must(err)
	if len(got) < 5000 || !bytes.Equal(got[:5000], fill(5000, 'a')) {
		t.Fatalf("the synced 5000 bytes did not survive: %d bytes left", len(got))
	}
	d.Thaw()
	must(d.Do(filestore.ChangeTruncate, path, 100, func() error { return f.Truncate(100) }))
	d.mu.Lock()
	covered := 0
	for _, s := range d.synced {
		covered = int(s)
	}
	d.mu.Unlock()
	if covered != 100 {
		t.Fatalf("after a truncation to 100 bytes the Disk takes %d as synced", covered)
	}
}
