// Package seglog is a raft.LogStore of append-only segment files: each StoreLogs is one
// write and one fdatasync into a preallocated file, where raft-boltdb's bbolt transaction
// costs two fdatasyncs, a B+tree copy-on-write and a msgpack encoding per entry. Recovery
// cuts the torn end of the last write and refuses a log whose fsynced part is damaged.
// Format and reasons: segment.go and raftlog's DESIGN.md ("The segment log").
package seglog

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"sync"

	"github.com/hashicorp/raft"
)

// DefaultSegmentSize is where a segment is sealed and the next one begins.
const DefaultSegmentSize = 64 << 20

// writeChunk is the most StoreLogs buffers before it writes.
const writeChunk = 1 << 20

// Options configures Open.
type Options struct {
	SegmentSize int64        // default DefaultSegmentSize
	NoSync      bool         // no fdatasync: unsafe, for tests and Config.NoSync
	Logger      *slog.Logger // recovery's notes (a torn tail cut); nil: slog.Default()
	Hook        Hook         // tests: sees every file change (a simulated power cut); nil: none
}

// Store is the segment log. Writers (StoreLogs, DeleteRange: raft's main loop and its
// compaction) take wmu, one at a time; the index (segs, first, last) is guarded by mu,
// which readers (GetLog: replication, the FSM) share while they read a file.
type Store struct {
	dir  string
	opts Options

	wmu    sync.Mutex
	buf    []byte
	offs   []int64 // StoreLogs' scratch: the batch's record offsets
	failed error   // a write or fsync failed: what reached the disk is unknown until reopened

	mu          sync.RWMutex
	segs        []*segment // by first index; the last one is written
	first, last uint64     // 0, 0: empty
	closed      bool
}

// Open opens (or creates) the log in dir.
func Open(dir string, o Options) (*Store, error) {
	if o.SegmentSize <= 0 {
		o.SegmentSize = DefaultSegmentSize
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	firsts, err := segmentFirsts(dir)
	if err != nil {
		return nil, err
	}
	s := &Store{dir: dir, opts: o}
	if err := s.openSegments(firsts); err != nil {
		s.closeFiles()
		return nil, err
	}
	if err := s.dropBeforeGap(); err != nil {
		s.closeFiles()
		return nil, err
	}
	if len(s.segs) > 0 && len(s.segs[0].offs) > 0 {
		s.first, s.last = s.segs[0].first, s.tail().last()
		if len(s.tail().offs) == 0 {
			s.last = s.tail().first - 1
		}
	}
	return s, nil
}

// segmentFirsts creates dir if need be and returns the first indexes of its segments,
// sorted.
func segmentFirsts(dir string) ([]uint64, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	var firsts []uint64
	for _, e := range ents {
		if f, ok := parseSegName(e.Name()); ok && e.Type().IsRegular() {
			firsts = append(firsts, f)
		}
	}
	slices.Sort(firsts)
	return firsts, nil
}

// openSegments opens and checks the segments, oldest first, into s.segs: it cuts the
// newest one's torn tail and removes what a crash left of a segment's creation or roll.
// On error s.segs holds the files opened so far.
func (s *Store) openSegments(firsts []uint64) error {
	o := s.opts
	for i, first := range firsts {
		path := filepath.Join(s.dir, segName(first))
		tail := i == len(firsts)-1
		seg, err := openSegment(path, first, tail, o.Hook)
		if errors.Is(err, errTornCreation) {
			o.Logger.Warn("seglog: removing a segment whose creation a crash cut short", "file", path)
			if err := o.Hook.run(OpRemove, path, 0, func() error { return os.Remove(path) }); err != nil {
				return err
			}
			continue
		}
		if err != nil {
			return err
		}
		s.segs = append(s.segs, seg)
		if seg.torn != "" {
			o.Logger.Warn("seglog: cutting the torn end of the last write", "file", path, "at", seg.torn)
			if err := cut(seg, seg.end, o.NoSync); err != nil {
				return err
			}
		}
		if len(seg.offs) == 0 && !tail {
			// Never a log of its own (a roll or a restart the crash cut short).
			o.Logger.Warn("seglog: removing an empty segment", "file", path)
			if err := s.removeSeg(len(s.segs) - 1); err != nil {
				return err
			}
		}
	}
	return nil
}

// dropBeforeGap makes the log the run of contiguous segments that ends with the newest.
// Before a gap: raft deleted the whole log (a snapshot installed past it) and went on
// after it, and a crash kept files that deletion had removed. Segments that overlap, or
// whose terms fall where they join, are refused (ErrDamaged).
func (s *Store) dropBeforeGap() error {
	keep := len(s.segs) - 1
	for keep > 0 {
		prev, next := s.segs[keep-1], s.segs[keep]
		if len(next.offs) == 0 && next.first != prev.last()+1 {
			s.opts.Logger.Warn("seglog: removing an empty segment after a gap", "file", next.path)
			if err := s.removeSeg(keep); err != nil {
				return err
			}
			keep--
			continue
		}
		if next.first <= prev.last() {
			return fmt.Errorf("%w: %s overlaps %s", ErrDamaged, next.path, prev.path)
		}
		if next.first != prev.last()+1 {
			break
		}
		if err := checkTermsJoin(prev, next); err != nil {
			return err
		}
		keep--
	}
	if keep > 0 {
		s.opts.Logger.Warn("seglog: dropping the segments before a gap", "dir", s.dir, "from", s.segs[keep].first)
		if err := s.removeSegs(keep); err != nil {
			return err
		}
	}
	return nil
}

// checkTermsJoin refuses next, which continues prev, if its first entry's term is below
// prev's last.
func checkTermsJoin(prev, next *segment) error {
	if len(next.offs) == 0 {
		return nil
	}
	var a, b raft.Log
	if err := prev.read(len(prev.offs)-1, &a); err != nil {
		return err
	}
	if err := next.read(0, &b); err != nil {
		return err
	}
	if b.Term < a.Term {
		return fmt.Errorf("%w: %s begins with term %d after term %d", ErrDamaged, next.path, b.Term, a.Term)
	}
	return nil
}

// cut truncates seg at off (a torn tail, a deleted suffix) and fsyncs the cut, so that no
// later write can leave bytes of the old tail after its own.
func cut(seg *segment, off int64, noSync bool) error {
	if err := seg.hook.run(OpTruncate, seg.path, off, func() error { return seg.f.Truncate(off) }); err != nil {
		return err
	}
	if !noSync {
		if err := seg.hook.run(OpSync, seg.path, off, seg.f.Sync); err != nil {
			return err
		}
	}
	seg.end, seg.alloc = off, off
	return nil
}

// removeSegs closes and deletes the first n segments, oldest first (a crash then leaves a
// contiguous suffix), and syncs the directory.
func (s *Store) removeSegs(n int) error {
	for _, seg := range s.segs[:n] {
		if err := seg.remove(); err != nil && !errors.Is(err, os.ErrNotExist) {
			return err
		}
	}
	s.segs = slices.Delete(s.segs, 0, n)
	return syncDir(s.dir)
}

// removeSeg closes and deletes segment i.
func (s *Store) removeSeg(i int) error {
	seg := s.segs[i]
	s.segs = slices.Delete(s.segs, i, i+1)
	if err := seg.remove(); err != nil {
		return err
	}
	return syncDir(s.dir)
}

// FirstIndex implements raft.LogStore.
func (s *Store) FirstIndex() (uint64, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.first, nil
}

// LastIndex implements raft.LogStore.
func (s *Store) LastIndex() (uint64, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.last, nil
}

// GetLog implements raft.LogStore: one pread, checked.
func (s *Store) GetLog(index uint64, out *raft.Log) error {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed {
		return errClosed
	}
	if s.first == 0 || index < s.first || index > s.last {
		return raft.ErrLogNotFound
	}
	i := sort.Search(len(s.segs), func(i int) bool { return s.segs[i].first > index }) - 1
	if i < 0 || index-s.segs[i].first >= uint64(len(s.segs[i].offs)) {
		return raft.ErrLogNotFound
	}
	seg := s.segs[i]
	if err := seg.read(int(index-seg.first), out); err != nil {
		return err
	}
	if out.Index != index {
		return fmt.Errorf("%w: %s holds entry %d where %d was due", ErrDamaged, seg.path, out.Index, index)
	}
	return nil
}

var errClosed = errors.New("seglog: closed")

// StoreLog implements raft.LogStore.
func (s *Store) StoreLog(l *raft.Log) error { return s.StoreLogs([]*raft.Log{l}) }

// StoreLogs implements raft.LogStore: the entries, contiguous, go to the end of the log in
// one write and one fdatasync. An entry at or below the last one replaces it and all after
// it; one past a gap (raft went on after a snapshot beyond the log) starts a new segment.
func (s *Store) StoreLogs(logs []*raft.Log) error {
	if len(logs) == 0 {
		return nil
	}
	if err := checkContiguous(logs); err != nil {
		return err
	}
	s.wmu.Lock()
	defer s.wmu.Unlock()
	if s.failed != nil {
		return s.failed
	}
	idx := logs[0].Index
	tail, err := s.tailFor(idx)
	if err != nil {
		return err
	}
	// The records' offsets, in a slice kept for the next batch (wmu): a fresh one per
	// call escaped to the heap past a few entries.
	offs := slices.Grow(s.offs[:0], len(logs))[:len(logs)]
	s.offs = offs
	end, err := s.writeRecords(tail, logs, offs)
	if err != nil {
		return err
	}
	s.mu.Lock()
	tail.offs = append(tail.offs, offs...)
	tail.end = end
	if s.first == 0 {
		s.first = idx
	}
	s.last = logs[len(logs)-1].Index
	s.mu.Unlock()
	return nil
}

func checkContiguous(logs []*raft.Log) error {
	for i := 1; i < len(logs); i++ {
		if logs[i].Index != logs[i-1].Index+1 {
			return fmt.Errorf("seglog: entries %d and %d are not contiguous", logs[i-1].Index, logs[i].Index)
		}
	}
	return nil
}

// tailFor returns the segment that entries from idx on go to, created if need be: first it
// drops the entries they replace, starts the log again past a gap, or seals a full tail.
// The caller holds wmu.
func (s *Store) tailFor(idx uint64) (*segment, error) {
	s.mu.RLock()
	closed, first, last := s.closed, s.first, s.last
	s.mu.RUnlock()
	if closed {
		return nil, errClosed
	}
	if first != 0 && idx <= last {
		if idx <= first {
			if err := s.deleteAll(); err != nil {
				return nil, err
			}
		} else if err := s.deleteSuffix(idx); err != nil {
			return nil, err
		}
		s.mu.RLock()
		first, last = s.first, s.last
		s.mu.RUnlock()
	}
	tail := s.tail()
	switch {
	case tail == nil:
	case first == 0 && len(tail.offs) == 0 && tail.first != idx, first != 0 && idx > last+1:
		// An empty log's empty segment named for another index, or a gap: raft installed a
		// snapshot past the end of this log and goes on after it, so every entry here is
		// older than the snapshot. The log starts again at idx (recovery drops what is
		// before a gap the same way).
		if err := s.deleteAll(); err != nil {
			return nil, err
		}
		tail = nil
	case tail.end >= s.opts.SegmentSize:
		tail.seal()
		tail = nil
	}
	if tail == nil {
		seg, err := createSegment(s.dir, idx, s.opts.Hook)
		if err != nil {
			return nil, err
		}
		s.mu.Lock()
		s.segs = append(s.segs, seg)
		s.mu.Unlock()
		tail = seg
	}
	return tail, nil
}

// writeRecords writes the records of logs at tail's end and fdatasyncs them, filling offs
// with where each starts, and returns where they end. A failed write or fdatasync stops
// the store taking writes. The caller holds wmu.
func (s *Store) writeRecords(tail *segment, logs []*raft.Log, offs []int64) (int64, error) {
	size := int64(0)
	for _, l := range logs {
		size += recordSize(l)
	}
	end := tail.end + size
	if err := tail.grow(end); err != nil {
		return 0, err // nothing written: a full disk is refused cleanly
	}
	// Written in pieces of at most writeChunk through one reused buffer, so that a batch
	// of large entries (raft sends up to MaxAppendEntries at once) takes no buffer of its
	// size; one fdatasync covers them all.
	b, at, err := s.buf[:0], tail.end, error(nil)
	for i, l := range logs {
		offs[i] = at + int64(len(b))
		b = appendRecord(b, &tail.nonce, tail.end, l)
		if len(b) >= writeChunk || i == len(logs)-1 {
			if err = tail.writeAt(b, at); err != nil {
				break
			}
			at += int64(len(b))
			b = b[:0]
		}
	}
	if cap(b) <= 2*writeChunk {
		s.buf = b[:0]
	}
	if err == nil && !s.opts.NoSync {
		err = tail.datasync(end)
	}
	if err != nil {
		s.failed = fmt.Errorf("seglog: writing %s failed; the log takes no more writes until reopened: %w", tail.path, err)
		return 0, s.failed
	}
	return end, nil
}

func (s *Store) tail() *segment {
	if len(s.segs) == 0 {
		return nil
	}
	return s.segs[len(s.segs)-1]
}

// seal cuts a full segment's preallocated rest (no fsync: zeros are cut again at open).
func (seg *segment) seal() {
	if seg.alloc > seg.end {
		_ = seg.hook.run(OpTruncate, seg.path, seg.end, func() error { return seg.f.Truncate(seg.end) })
		seg.alloc = seg.end
	}
}

// DeleteRange implements raft.LogStore for the ranges raft deletes: a prefix (compaction
// after a snapshot), a suffix (entries that conflict with the leader's) or everything.
func (s *Store) DeleteRange(min, max uint64) error {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	if s.failed != nil {
		return s.failed
	}
	s.mu.RLock()
	first, last := s.first, s.last
	s.mu.RUnlock()
	switch {
	case first == 0 || min > max || max < first || min > last:
		return nil
	case min <= first && max >= last:
		return s.deleteAll()
	case min <= first:
		return s.deletePrefix(max)
	case max >= last:
		return s.deleteSuffix(min)
	}
	return fmt.Errorf("seglog: deleting entries %d to %d from the middle of the log (%d to %d)", min, max, first, last)
}

func (s *Store) deleteAll() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.first, s.last = 0, 0
	return s.removeSegs(len(s.segs))
}

// deletePrefix drops the entries up to max: whole segments are deleted, a partly deleted
// one stays (its entries before first are simply not served; after a restart the log
// starts at the segment's first entry again, which raft allows).
func (s *Store) deletePrefix(max uint64) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for n < len(s.segs)-1 && s.segs[n].last() <= max {
		n++
	}
	s.first = max + 1
	if n == 0 {
		return nil
	}
	return s.removeSegs(n)
}

// deleteSuffix drops the entries from min on: later segments are deleted newest first,
// then the one holding min is cut there, durably, before anything else is written.
func (s *Store) deleteSuffix(min uint64) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	removed := false
	for len(s.segs) > 1 && s.segs[len(s.segs)-1].first >= min {
		seg := s.segs[len(s.segs)-1]
		if err := seg.remove(); err != nil {
			return err
		}
		s.segs = s.segs[:len(s.segs)-1]
		removed = true
	}
	if removed {
		if err := syncDir(s.dir); err != nil {
			return err
		}
	}
	seg := s.segs[len(s.segs)-1]
	// k == len(seg.offs): min began the segments just removed, nothing here to cut.
	if k := int(min - seg.first); k < len(seg.offs) {
		if err := cut(seg, seg.offs[k], s.opts.NoSync); err != nil {
			s.failed = fmt.Errorf("seglog: cutting %s failed; the log takes no more writes until reopened: %w", seg.path, err)
			return s.failed
		}
		seg.offs = seg.offs[:k]
	}
	s.last = min - 1
	if s.last < s.first {
		s.first, s.last = 0, 0
	}
	return nil
}

// Close closes the files.
func (s *Store) Close() error {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil
	}
	s.closed = true
	if t := s.tail(); t != nil {
		t.seal()
	}
	s.closeFiles()
	return nil
}

func (s *Store) closeFiles() {
	for _, seg := range s.segs {
		_ = seg.f.Close()
	}
}

// syncDir makes the directory's entries (files created or removed) durable.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	_ = d.Close()
	return err
}
