package filestore

import (
	"errors"
	"io/fs"
	"os"

	"github.com/starling-io/starling/stores/rawsync"
)

// Every change the store makes to its files goes through the helpers of this file, so that
// Options.Hooks see all of them: fault injection (a full disk, a failed fsync) and the
// crashtest layer, which must learn what each fsync covered and which files a rename, a
// truncation or a removal replaced. Without hooks each helper costs one nil check.

// Kinds of file changes passed to Hooks.Change.
const (
	ChangeCreate   = "create"   // path is created, or truncated to zero if it exists
	ChangeTruncate = "truncate" // path is cut to size bytes
	ChangeRename   = "rename"   // a file is renamed over path (path is the destination)
	ChangeRemove   = "remove"   // path is removed: a file, or a directory with all it holds
	ChangeAllocate = "allocate" // path grows to size bytes of zero-filled blocks, its content unchanged
)

// fileWriter writes to a store file through Hooks.Write: it is the io.Writer under a
// segment's or an index's bufio.Writer, and a log's. Its writes up to 1 MiB are raw
// write(2)s on 64-bit Linux (rawsync.Write): an ordinary one, the first system call of a
// commit pass, woke the runtime's sysmon out of its deep sleep whenever the server had been
// idle — a thread wake-up (a futex call) before every synchronous publish's write, and
// sysmon then polling through the pass's fsync.
type fileWriter struct {
	f    *os.File
	path string // the file's current name (a log's changes when its rewrite is renamed)
	hook func(path string, p []byte, write func([]byte) (int, error)) (int, error)
}

func newFileWriter(f *os.File, path string, opts *Options) *fileWriter {
	return &fileWriter{f: f, path: path, hook: opts.Hooks.Write}
}

func (w *fileWriter) Write(p []byte) (int, error) {
	if w.hook != nil {
		return w.hook(w.path, p, w.write)
	}
	return rawsync.Write(w.f, p)
}

func (w *fileWriter) write(p []byte) (int, error) { return rawsync.Write(w.f, p) }

// change does one change to the files through Hooks.Change.
func change(opts *Options, op, path string, size int64, do func() error) error {
	if opts.Hooks.Change != nil {
		return opts.Hooks.Change(op, path, size, do)
	}
	return do()
}

// createFile creates path for reading and writing, truncating it if it exists.
func createFile(path string, opts *Options) (f *os.File, err error) {
	err = change(opts, ChangeCreate, path, 0, func() error {
		f, err = os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o644)
		return err
	})
	return f, err
}

func truncateFile(f *os.File, path string, size int64, opts *Options) error {
	return change(opts, ChangeTruncate, path, size, func() error { return f.Truncate(size) })
}

func renameFile(from, to string, opts *Options) error {
	return change(opts, ChangeRename, to, 0, func() error { return os.Rename(from, to) })
}

// removeFile removes path if it exists.
func removeFile(path string, opts *Options) error {
	return change(opts, ChangeRemove, path, 0, func() error {
		if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return err
		}
		return nil
	})
}

func removeAll(path string, opts *Options) error {
	return change(opts, ChangeRemove, path, 0, func() error { return os.RemoveAll(path) })
}

// writeAt writes p at off through Hooks.Write.
func writeAt(f *os.File, path string, p []byte, off int64, opts *Options) error {
	write := func(b []byte) (int, error) { return f.WriteAt(b, off) }
	var err error
	if h := opts.Hooks.Write; h != nil {
		_, err = h(path, p, write)
	} else {
		_, err = write(p)
	}
	return err
}

// allocateFile grows f (named path) to size bytes of allocated, zero-filled blocks.
func allocateFile(f *os.File, path string, size int64, opts *Options) error {
	return change(opts, ChangeAllocate, path, size, func() error { return allocate(f, size) })
}

// fsync makes f (named path) durable; with NoSync it only notes it for AutoSync.
func fsync(f *os.File, path string, opts *Options) error {
	return fsyncUpTo(f, path, -1, opts)
}

// sizedInfo is a file's FileInfo that reports, as its size, the bytes written into it: a
// preallocated tail is larger on disk than what its fsync makes durable.
type sizedInfo struct {
	os.FileInfo
	size int64
}

func (fi sizedInfo) Size() int64 { return fi.size }

// fsyncUpTo is fsync for a file whose written bytes end at written (a preallocated tail;
// -1: the file's size), which is what Hooks.AfterSync learns the fsync covered.
func fsyncUpTo(f *os.File, path string, written int64, opts *Options) error {
	return fsyncWith(f, path, written, opts, (*os.File).Sync)
}

// fsyncCommit is fsyncUpTo for a commit pass's fsync of a tail (syncPoint), the one fsync of
// the publish path: it keeps its P on 64-bit Linux (rawsync.Fsync).
func fsyncCommit(f *os.File, path string, written int64, opts *Options) error {
	return fsyncWith(f, path, written, opts, rawsync.Fsync)
}

// fsyncWith is fsyncUpTo making the file durable with sync.
func fsyncWith(f *os.File, path string, written int64, opts *Options, sync func(*os.File) error) error {
	h := &opts.Hooks
	if h.BeforeSync != nil {
		if err := h.BeforeSync(path); err != nil {
			return err
		}
	}
	if opts.NoSync {
		if opts.pending != nil {
			opts.pending.addFile(path)
		}
		return nil
	}
	if h.AfterSync == nil {
		return sync(f)
	}
	fi, err := f.Stat() // what the fsync covers at least
	if err != nil {
		return err
	}
	if written >= 0 && written < fi.Size() {
		fi = sizedInfo{fi, written}
	}
	err = sync(f)
	h.AfterSync(path, fi, err)
	return err
}

// syncPath opens path and fsyncs it (the AutoSync pass).
func syncPath(path string, opts *Options) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	h := &opts.Hooks
	if h.BeforeSync != nil {
		if err := h.BeforeSync(path); err != nil {
			return err
		}
	}
	fi, err := f.Stat()
	if err != nil {
		return err
	}
	err = f.Sync()
	if h.AfterSync != nil && !fi.IsDir() {
		h.AfterSync(path, fi, err)
	}
	return err
}

// syncDir makes the entries of dir (files created, renamed or removed) durable.
func syncDir(dir string, opts *Options) error {
	if h := opts.Hooks.BeforeSync; h != nil {
		if err := h(dir); err != nil {
			return err
		}
	}
	if opts.NoSync {
		if opts.pending != nil {
			opts.pending.addDir(dir)
		}
		return nil
	}
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	d.Close()
	return err
}
