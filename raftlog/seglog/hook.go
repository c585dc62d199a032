package seglog

import "os"

// Hook lets a test watch and intercept every change the store makes to its files, to
// simulate a power cut (the tests' crashtest.Disk, which learns from OpSync what is
// durable and cuts the rest). op is one of the Op constants, path the file, size what the
// operation leaves (see each constant), do the operation itself: a hook calls do at most
// once and returns its error, or fails the operation with an error of its own instead.
// Directory fsyncs and reads are not shown. Options.Hook nil (production): no hook.
type Hook func(op, path string, size int64, do func() error) error

// The operations a Hook sees. The values are the filestore's Change* names, so that one
// crashtest.Disk serves both stores.
const (
	OpCreate   = "create"   // path is created, or emptied if it exists (size 0)
	OpWrite    = "write"    // bytes are written to path, ending at offset size
	OpSync     = "sync"     // path is fsynced: its first size bytes are then durable
	OpAllocate = "allocate" // path grows to size bytes of zero-filled blocks, its content unchanged
	OpTruncate = "truncate" // path is cut to size bytes
	OpRemove   = "remove"   // path is removed
)

// run performs do through h (rare operations: the closure is allowed to escape).
func (h Hook) run(op, path string, size int64, do func() error) error {
	if h == nil {
		return do()
	}
	return h(op, path, size, do)
}

// writeAt writes b at off. The hot path makes no closure unless a hook is set.
func (s *segment) writeAt(b []byte, off int64) error {
	if s.hook == nil {
		_, err := s.f.WriteAt(b, off)
		return err
	}
	return s.hook(OpWrite, s.path, off+int64(len(b)), func() error {
		_, err := s.f.WriteAt(b, off)
		return err
	})
}

// datasync fdatasyncs the file, whose written bytes end at end (it is preallocated past
// them: end, not its size, is what becomes durable).
func (s *segment) datasync(end int64) error {
	if s.hook == nil {
		return fdatasync(s.f)
	}
	return s.hook(OpSync, s.path, end, func() error { return fdatasync(s.f) })
}

// remove deletes the segment's file (closed first).
func (s *segment) remove() error {
	_ = s.f.Close()
	return s.hook.run(OpRemove, s.path, 0, func() error { return os.Remove(s.path) })
}
