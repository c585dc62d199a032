package filestore

import (
	"errors"
	"io/fs"
	"sync"
)

// syncSet collects the files and directories whose fsync NoSync skipped, for the next
// AutoSync pass. add is on the Sync path: a map insert of a path already present does
// not allocate.
type syncSet struct {
	mu    sync.Mutex
	files map[string]struct{}
	dirs  map[string]struct{}
	take  []string // reused by the pass (only the autoSync goroutine or Close uses it)
}

func newSyncSet() *syncSet {
	return &syncSet{files: map[string]struct{}{}, dirs: map[string]struct{}{}}
}

func (s *syncSet) addFile(path string) {
	s.mu.Lock()
	s.files[path] = struct{}{}
	s.mu.Unlock()
}

func (s *syncSet) addDir(path string) {
	s.mu.Lock()
	s.dirs[path] = struct{}{}
	s.mu.Unlock()
}

// pass fsyncs every file, then every directory, added before it started. A file that is
// gone (a segment dropped by limits, a log replaced by its rewrite, which added the new
// one) is skipped. It returns the number synced and the first error.
func (s *syncSet) pass(opts *Options) (n int, err error) {
	s.mu.Lock()
	paths := s.take[:0]
	for p := range s.files {
		paths = append(paths, p)
	}
	nfiles := len(paths)
	for p := range s.dirs {
		paths = append(paths, p)
	}
	clear(s.files)
	clear(s.dirs)
	s.mu.Unlock()
	for i, p := range paths {
		oerr := syncPath(p, opts)
		if errors.Is(oerr, fs.ErrNotExist) {
			continue
		}
		if oerr != nil {
			if err == nil {
				err = oerr
			}
			// Retry at the next pass: what it holds is still not known to be durable.
			if i < nfiles {
				s.addFile(p)
			} else {
				s.addDir(p)
			}
			continue
		}
		n++
	}
	s.take = paths[:0]
	return n, err
}

// autoSyncPass runs one pass, logging a failure (the files stay pending for the next).
func (s *Store) autoSyncPass() error {
	n, err := s.opts.pending.pass(&s.opts)
	if err != nil {
		s.opts.Logger.Error("filestore: auto sync", "err", err)
	}
	if h := s.opts.Hooks.AfterAutoSync; h != nil {
		h(n, err)
	}
	return err
}
