package crashtest

import (
	"errors"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"syscall"

	"github.com/starling-io/starling/stores/filestore"
)

// ErrFrozen is what every write, file change and fsync of a store returns once its Disk is
// frozen.
var ErrFrozen = errors.New("crashtest: disk frozen (power cut)")

// pageSize is the unit a power cut zeroes.
const pageSize = 4096

// Disk tracks what each file's fsyncs covered and cuts a directory as a power loss would.
type Disk struct {
	// gate: writes and changes hold it shared while they run; Freeze takes it exclusively,
	// so that none is in progress once the disk is frozen.
	gate   sync.RWMutex
	frozen bool        // under gate
	armed  atomic.Bool // FreezeAtSync: the next fsync through Do freezes the Disk instead

	mu     sync.Mutex
	synced map[fileID]int64 // bytes the last successful fsync of each file covered
}

type fileID struct{ dev, ino uint64 }

func idOf(fi os.FileInfo) (fileID, bool) {
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return fileID{}, false
	}
	return fileID{uint64(st.Dev), uint64(st.Ino)}, true
}

// New returns a Disk that has seen no fsync.
func New() *Disk { return &Disk{synced: map[fileID]int64{}} }

// Install adds the Disk's hooks to o, after (and around) any hooks already there. Install
// before the first Open of a directory: a file the Disk never saw fsynced is taken as never
// synced.
func (d *Disk) Install(o *filestore.Options) {
	h := &o.Hooks
	prevBefore, prevAfter, prevWrite, prevChange := h.BeforeSync, h.AfterSync, h.Write, h.Change
	h.BeforeSync = func(path string) error {
		if prevBefore != nil {
			if err := prevBefore(path); err != nil {
				return err
			}
		}
		d.gate.RLock()
		defer d.gate.RUnlock()
		if d.frozen {
			return ErrFrozen
		}
		return nil
	}
	h.AfterSync = func(path string, fi os.FileInfo, err error) {
		if prevAfter != nil {
			prevAfter(path, fi, err)
		}
		d.synced1(fi, err)
	}
	h.Write = func(path string, p []byte, write func([]byte) (int, error)) (int, error) {
		d.gate.RLock()
		defer d.gate.RUnlock()
		if d.frozen {
			return 0, ErrFrozen
		}
		if prevWrite != nil {
			return prevWrite(path, p, write)
		}
		return write(p)
	}
	h.Change = func(op, path string, size int64, do func() error) error {
		d.gate.RLock()
		defer d.gate.RUnlock()
		if d.frozen {
			return ErrFrozen
		}
		d.changing(op, path, size)
		if prevChange != nil {
			return prevChange(op, path, size, do)
		}
		return do()
	}
}

// The operations Do takes besides the filestore's Change* ones.
const (
	OpWrite = "write" // bytes are written, ending at offset size
	OpSync  = "sync"  // the file is fsynced: its first size bytes are then durable
)

// Do runs one file operation of a store that is not a filestore under the Disk; its
// signature is raftlog/seglog's Hook (whose operation names are these). op is OpWrite,
// OpSync or a filestore Change* operation (size as for Options.Hooks.Change); do performs
// it. Once the Disk is frozen, Do fails with ErrFrozen and does nothing. An fsync in
// progress holds Freeze back until it returns, and then counts.
func (d *Disk) Do(op, path string, size int64, do func() error) error {
	if op == OpSync && d.armed.CompareAndSwap(true, false) {
		d.Freeze()
		return ErrFrozen
	}
	d.gate.RLock()
	defer d.gate.RUnlock()
	if d.frozen {
		return ErrFrozen
	}
	switch op {
	case OpWrite:
		return do()
	case OpSync:
		if err := do(); err != nil {
			return err
		}
		if fi, err := os.Lstat(path); err == nil {
			if id, ok := idOf(fi); ok {
				d.noteSynced(id, size)
			}
		}
		return nil
	}
	d.changing(op, path, size)
	return do()
}

// synced1 records a successful fsync (not once frozen: the power is off).
func (d *Disk) synced1(fi os.FileInfo, err error) {
	id, ok := idOf(fi)
	if err != nil || !ok || fi.IsDir() {
		return
	}
	d.gate.RLock()
	defer d.gate.RUnlock()
	if !d.frozen {
		d.noteSynced(id, fi.Size())
	}
}

// noteSynced records that an fsync of file id covered its first size bytes. The caller
// holds gate shared and found the Disk not frozen.
func (d *Disk) noteSynced(id fileID, size int64) {
	d.mu.Lock()
	d.synced[id] = max(d.synced[id], size)
	d.mu.Unlock()
}

// changing updates what is known before a file change: a file created over, renamed over
// or removed loses its history (its inode may be reused); a truncated one keeps at most
// its new size.
func (d *Disk) changing(op, path string, size int64) {
	if op == filestore.ChangeAllocate {
		return // zero-filled blocks past what was written: what a fsync covered is unchanged
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if op == filestore.ChangeRemove {
		filepath.WalkDir(path, func(p string, e fs.DirEntry, err error) error {
			if err == nil {
				if fi, err := os.Lstat(p); err == nil {
					if id, ok := idOf(fi); ok {
						delete(d.synced, id)
					}
				}
			}
			return nil
		})
		return
	}
	fi, err := os.Lstat(path)
	if err != nil {
		return
	}
	id, ok := idOf(fi)
	if !ok {
		return
	}
	if op == filestore.ChangeTruncate {
		if s, ok := d.synced[id]; ok {
			d.synced[id] = min(s, size)
		}
		return
	}
	delete(d.synced, id) // ChangeCreate, ChangeRename
}

// Freeze cuts the power: every later write, file change and fsync through the Disk's hooks
// fails with ErrFrozen. It returns once no write or change is in progress.
func (d *Disk) Freeze() {
	d.gate.Lock()
	d.frozen = true
	d.gate.Unlock()
}

// FreezeAtSync arms the Disk to freeze at the next fsync through Do, before it runs: the
// power fails between a write and its fsync, so the cut then has an unsynced write to tear.
func (d *Disk) FreezeAtSync() { d.armed.Store(true) }

// Frozen reports whether the Disk is frozen.
func (d *Disk) Frozen() bool {
	d.gate.RLock()
	defer d.gate.RUnlock()
	return d.frozen
}

// Thaw lets writes through again (the machine is back up). Thaw only once the store that
// was running when the Disk froze is closed or abandoned.
func (d *Disk) Thaw() {
	d.gate.Lock()
	d.frozen = false
	d.gate.Unlock()
}

// PowerLoss freezes the Disk (if it is not) and turns every file under dir into what a
// power cut could leave of it (see the package documentation), choosing with rng. The
// files are then taken as synced as they are. The Disk stays frozen until Thaw.
func (d *Disk) PowerLoss(dir string, rng *rand.Rand) error {
	d.Freeze()
	d.mu.Lock()
	defer d.mu.Unlock()
	return filepath.WalkDir(dir, func(path string, e fs.DirEntry, err error) error {
		if err != nil || !e.Type().IsRegular() {
			return err
		}
		fi, err := os.Lstat(path)
		if err != nil {
			return err
		}
		id, _ := idOf(fi)
		size := fi.Size()
		synced, seen := d.synced[id]
		synced = min(synced, size)
		if !seen && rng.IntN(4) == 0 {
			return os.Remove(path) // never fsynced: may never have reached the disk at all
		}
		keep := synced + rng.Int64N(size-synced+1)
		if err := cut(path, synced, keep, rng); err != nil {
			return fmt.Errorf("crashtest: %s: %w", path, err)
		}
		if fi, err := os.Lstat(path); err == nil {
			if id, ok := idOf(fi); ok {
				d.synced[id] = fi.Size()
			}
		}
		return nil
	})
}

// cut keeps the first keep bytes of path, zeroing random 4 KiB pages (or their part past
// synced) between synced and keep.
func cut(path string, synced, keep int64, rng *rand.Rand) error {
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return err
	}
	defer f.Close()
	zeros := make([]byte, pageSize)
	for page := synced / pageSize * pageSize; page < keep; page += pageSize {
		lo, hi := max(page, synced), min(page+pageSize, keep)
		if lo < hi && rng.IntN(3) == 0 {
			if _, err := f.WriteAt(zeros[:hi-lo], lo); err != nil {
				return err
			}
		}
	}
	return f.Truncate(keep)
}
