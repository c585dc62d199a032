package filestore

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"os"
	"path/filepath"
	"sync"

	"github.com/starling-io/starling/stores"
)

var crcTable = crc32.MakeTable(crc32.Castagnoli)

// ErrCorrupt marks data that fails its checks somewhere other than a repairable tail.
var ErrCorrupt = errors.New("filestore: corrupt data")

// errRewritePending: a log must be rewritten (its records piled up past the compaction
// threshold without a flush) while the commit of its previous rewrite is still running.
var errRewritePending = errors.New("filestore: log rewrite pending")

// DefaultCompactBytes is the size from which meta.log and subs.log are compacted while the
// store runs (Options.CompactBytes).
const DefaultCompactBytes = 4 << 20

// recLog is an append-only log of framed records ([len u32][crc u32][payload]) that
// recreates its owner's in-memory state: meta.log for the Store, subs.log for a channel's
// subStore. Memory is the truth; the log only has to be able to recreate it. So a failed
// write or fsync is never sticky: the next flush rewrites the whole log from the owner's
// snapshot into a new file (an fsync that failed leaves a page cache that cannot be trusted,
// so the old file is never synced again), and the commit after it makes that file the log.
// The same rewrite compacts the log once it has grown well past its live size.
//
// The owner changes the log under its own lock (mu): add and flush run on the writer
// goroutine and never wait for an fsync. A commit (syncFlushed) takes the job under mu,
// fsyncs (and renames a rewrite over the log) without it, then records the result under mu
// again, so the writer keeps adding and flushing meanwhile.
type recLog struct {
	path, magic string
	opts        *Options
	mu          *sync.Mutex           // the owner's lock: guards every field below but syncMu
	snapshot    func(b []byte) []byte // appends the framed records recreating the owner's state

	// syncMu serialises what makes the log durable: commits (SyncFlushed, Sync), Close and
	// the Store's durable-on-return changes. It is taken before mu, never under it.
	syncMu sync.Mutex

	f         *os.File // appended to: the log, or (onTmp) its rewrite until a commit renames it
	w         *fileWriter
	nonce     uint64 // of f's header, repeated by its sync marks
	gen       uint64 // bumped whenever f is replaced
	onTmp     bool
	size      int64  // bytes of f written
	committed int64  // bytes of f a commit made durable
	pend      []byte // the records not yet written: one batch frame, its header reserved
	proof     int64  // bytes of f a real fsync covered: the next sync mark states it
	marked    int64  // the proof the last sync mark written states
	// carried: the size of f at open when an earlier run's clean close had proven it
	// (carryProof), else 0: Close need not fsync a log still of that size.
	carried  int64
	broken   error // a write or fsync of f failed: the next flush rewrites the log
	overflow bool  // pend was dropped (too big between flushes): the next flush rewrites
	busy     bool  // a commit runs outside mu
	renaming bool  // ... on a rewrite, which it renames over the log
	retired  *os.File
	live     int64 // size of the log as last rewritten (the compaction baseline)
	scratch  []byte
	closed   bool
	closing  bool // close's last flush: no compaction (it would drop meta.log's clean mark)
	// onCommit: called under mu after each successful commit (nil: none).
	onCommit func()
}

// logJob is what one commit makes durable: f up to size, renamed over the log if tmp.
type logJob struct {
	f    *os.File
	name string
	gen  uint64
	size int64
	tmp  bool
}

func (l *recLog) tmpPath() string { return l.path + ".tmp" }

// openAppend opens an intact, compact log for appending as it is. What it holds is taken
// as committed: a commit with nothing new to write does not fsync.
func (l *recLog) openAppend() error {
	f, err := os.OpenFile(l.path, os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return err
	}
	l.f, l.w = f, newFileWriter(f, l.path, l.opts)
	l.size, l.committed, l.live = fi.Size(), fi.Size(), fi.Size()
	return nil
}

// carryProof records that an earlier run's clean close fsynced the first proven bytes of
// the log opened for appending (openAppend), so that they count as proven in this run: a
// later mark or close states them without an fsync of its own. The bytes past them (that
// close's last mark, never fsynced) are not.
func (l *recLog) carryProof(proven int64) {
	if proven <= 0 || proven > l.size {
		return
	}
	l.proof, l.marked, l.carried = proven, proven, l.size
}

// add buffers one record. The records of one flush form one batch frame, so a power cut
// keeps all of a flush or none of it.
func (l *recLog) add(p []byte) {
	if l.overflow {
		return // the next flush rewrites the whole state anyway
	}
	if len(l.pend) == 0 {
		l.pend = append(l.pend, 0, 0, 0, 0, 0, 0, 0, 0, recBatch)
	}
	l.pend = binary.AppendUvarint(l.pend, uint64(len(p)))
	l.pend = append(l.pend, p...)
	if len(l.pend) > l.opts.CompactBytes && l.opts.CompactBytes > 0 {
		// Records that pile up past the compaction threshold without a flush: memory is the
		// truth, so drop them and let the next flush write the (smaller) snapshot.
		l.pend, l.overflow = l.pend[:0], true
	}
}

func appendFrame(b, p []byte) []byte {
	b = binary.LittleEndian.AppendUint32(b, uint32(len(p)))
	b = binary.LittleEndian.AppendUint32(b, crc32.Checksum(p, crcTable))
	return append(b, p...)
}

// beginFrame reserves a frame header at the end of b; endFrame fills it in over what was
// appended since, so a record is encoded in place.
func beginFrame(b []byte) ([]byte, int) { return append(b, make([]byte, 8)...), len(b) }

func endFrame(b []byte, start int) []byte {
	p := b[start+8:]
	binary.LittleEndian.PutUint32(b[start:], uint32(len(p)))
	binary.LittleEndian.PutUint32(b[start+4:], crc32.Checksum(p, crcTable))
	return b
}

// compactDue: the log has grown past CompactBytes and twice its size when last rewritten.
// Rewriting then costs at most about what was appended since, and replaying it at open
// stays bounded by max(CompactBytes, 2 × the live state).
func (l *recLog) compactDue() bool {
	c := int64(l.opts.CompactBytes)
	return c > 0 && !l.onTmp && !l.closing && l.size >= c && l.size >= 2*l.live
}

// flush hands the pending records to the OS, or, after a failure or when the log is due for
// compaction, writes the owner's snapshot into a new file that appends continue in; the
// next commit makes it the log. Caller holds mu.
func (l *recLog) flush() error {
	if l.closed {
		return stores.ErrClosed
	}
	// A log with no file yet (a subs.log never written: it reads as empty) is created by a
	// rewrite too, so that a crash never finds it half-created under its name.
	if l.broken != nil || l.overflow || l.compactDue() || l.f == nil && len(l.pend) > 0 {
		switch {
		case !l.renaming:
			return l.rewrite()
		case l.broken != nil:
			return l.broken
		case l.overflow:
			return errRewritePending
		}
		// Compaction waits for the rename in flight.
	}
	if len(l.pend) == 0 {
		return nil
	}
	l.pend = endFrame(l.pend, 0)
	if l.proof > l.marked {
		l.pend = appendMark(l.pend, l.proof, l.nonce)
		l.marked = l.proof
	}
	return l.write()
}

// write writes pend. Caller holds mu.
func (l *recLog) write() error {
	n, err := l.w.Write(l.pend)
	if err != nil {
		l.pend = l.pend[:0] // the snapshot of the rewrite that follows holds what it held
		l.broken = fmt.Errorf("filestore: write %s: %w", l.w.path, err)
		return l.broken
	}
	l.size += int64(n)
	l.pend = l.pend[:0]
	return nil
}

// rewrite writes the file header and the owner's snapshot (which holds whatever pend holds)
// into a new temporary file and continues appending there. Nothing is fsynced: the next
// commit fsyncs it and renames it over the log. Caller holds mu, and no commit is renaming.
func (l *recLog) rewrite() error {
	tmp := l.tmpPath()
	if l.onTmp { // an earlier rewrite that was never committed: replaced
		l.f.Close()
		l.f = nil
	}
	err := removeFile(tmp, l.opts)
	var f *os.File
	if err == nil {
		f, err = createFile(tmp, l.opts)
	}
	if err != nil {
		return l.rewriteFailed(err)
	}
	h, hb := newHeader(l.magic)
	b := append(l.scratch[:0], hb...)
	b = l.snapshot(b)
	// "Everything before me is synced": true whenever this file is the log, since the
	// commit renames it over the log only after fsyncing it.
	b = appendMark(b, int64(len(b)), h.nonce)
	w := newFileWriter(f, tmp, l.opts)
	if _, err := w.Write(b); err != nil {
		f.Close()
		removeFile(tmp, l.opts)
		return l.rewriteFailed(err)
	}
	if cap(b) <= 1<<20 {
		l.scratch = b[:0] // keep a small buffer for the next one; a big one goes
	}
	if l.f != nil {
		if l.busy { // a commit is fsyncing it: closed when that commit finishes
			l.retired = l.f
		} else {
			l.f.Close()
		}
	}
	l.f, l.w, l.onTmp, l.nonce = f, w, true, h.nonce
	l.gen++
	l.size, l.committed, l.live = int64(len(b)), 0, int64(len(b))
	l.proof, l.marked, l.carried = 0, 0, 0
	l.pend, l.broken, l.overflow = l.pend[:0], nil, false
	return nil
}

// rewriteFailed keeps the log broken after a failed rewrite. If the failed rewrite replaced
// a temporary file, f is gone: the log has no file to append to until a rewrite succeeds.
func (l *recLog) rewriteFailed(err error) error {
	l.broken = fmt.Errorf("filestore: rewrite %s: %w", l.path, err)
	if l.f == nil {
		l.onTmp = false
	}
	return l.broken
}

// takeJob returns what the next commit must make durable; ok is false when nothing was
// written since the last commit. A broken log is never committed (it is rewritten first).
// Caller holds mu (and syncMu).
func (l *recLog) takeJob() (j logJob, ok bool, err error) {
	if l.closed {
		return j, false, stores.ErrClosed
	}
	if l.broken != nil {
		return j, false, l.broken
	}
	if l.size == l.committed && !l.onTmp {
		return j, false, nil
	}
	l.busy, l.renaming = true, l.onTmp
	return logJob{f: l.f, name: l.w.path, gen: l.gen, size: l.size, tmp: l.onTmp}, true, nil
}

// commit fsyncs the job's file and, for a rewrite, renames it over the log and fsyncs the
// directory. It runs without mu. renamed reports whether the rename happened (even if the
// directory's fsync then failed).
func (l *recLog) commit(j logJob) (renamed bool, err error) {
	if err := fsync(j.f, j.name, l.opts); err != nil {
		return false, fmt.Errorf("filestore: sync %s: %w", j.name, err)
	}
	if !j.tmp {
		return false, nil
	}
	if err := renameFile(j.name, l.path, l.opts); err != nil {
		return false, fmt.Errorf("filestore: rewrite %s: %w", l.path, err)
	}
	if l.opts.pending != nil { // NoSync noted the temporary name, which is gone
		l.opts.pending.addFile(l.path)
	}
	if err := syncDir(filepath.Dir(l.path), l.opts); err != nil {
		return true, fmt.Errorf("filestore: rewrite %s: %w", l.path, err)
	}
	return true, nil
}

// finish records a commit's result. Caller holds mu.
func (l *recLog) finish(j logJob, renamed bool, err error) {
	l.busy, l.renaming = false, false
	if l.retired != nil {
		l.retired.Close()
		l.retired = nil
	}
	if j.gen != l.gen {
		return // f was replaced meanwhile: the result concerns a file no longer used
	}
	if renamed {
		l.onTmp = false
		l.w.path = l.path
	}
	if err != nil {
		if l.broken == nil {
			l.broken = err
		}
		return
	}
	l.committed = max(l.committed, j.size)
	if !l.opts.NoSync { // NoSync's "sync" proves nothing about power loss
		l.proof = max(l.proof, j.size)
	}
	if l.onCommit != nil {
		l.onCommit()
	}
}

// syncFlushed commits what was flushed: everything written before it is durable when it
// returns nil. usable is the owner's check, called under mu.
func (l *recLog) syncFlushed(usable func() error) error {
	l.syncMu.Lock()
	defer l.syncMu.Unlock()
	l.mu.Lock()
	if err := usable(); err != nil {
		l.mu.Unlock()
		return err
	}
	j, ok, err := l.takeJob()
	l.mu.Unlock()
	if !ok {
		return err
	}
	renamed, err := l.commit(j)
	l.mu.Lock()
	defer l.mu.Unlock()
	l.finish(j, renamed, err)
	if uerr := usable(); uerr != nil {
		return uerr
	}
	return err
}

// syncLocked flushes and commits while holding mu (and syncMu): the Store's changes that
// are durable when they return, Close, and the rewrite at open.
func (l *recLog) syncLocked() error {
	if err := l.flush(); err != nil {
		return err
	}
	j, ok, err := l.takeJob()
	if !ok {
		return err
	}
	renamed, err := l.commit(j)
	l.finish(j, renamed, err)
	return err
}

// close syncs (if flush) and closes the log; without flush it abandons what is buffered
// (a simulated crash) and leaves any temporary file for the next open to remove. Caller
// holds mu (and syncMu if flush).
func (l *recLog) close(flush bool) error {
	if l.closed {
		return nil
	}
	var err error
	if flush {
		l.closing = true
		err = l.syncLocked()
		if err == nil && !l.opts.NoSync && l.proof < l.size && l.f != nil && l.size != l.carried {
			// Nothing to commit, but what the file held at open was never fsynced by this
			// run: an fsync proves it, so that the last mark (and subs.log's L record)
			// states the whole file.
			if err = fsync(l.f, l.w.path, l.opts); err == nil {
				l.proof = l.size
			}
		}
		if err == nil && l.proof > l.marked {
			// A last mark (not fsynced) proves the whole log synced to the next open.
			l.pend = appendMark(l.pend[:0], l.proof, l.nonce)
			l.marked = l.proof
			l.write()
		}
	}
	l.closed = true
	for _, f := range []*os.File{l.f, l.retired} {
		if f != nil {
			if cerr := f.Close(); err == nil && flush {
				err = cerr
			}
		}
	}
	l.f, l.retired = nil, nil
	return err
}

// writeLog replaces the log at path with recs atomically (temporary file, fsync, rename,
// fsync directory): Repair's rewrite of a damaged log.
func writeLog(path, magic string, recs [][]byte, opts *Options) error {
	var mu sync.Mutex
	l := &recLog{path: path, magic: magic, opts: opts, mu: &mu, snapshot: func(b []byte) []byte {
		for _, r := range recs {
			b = appendFrame(b, r)
		}
		return b
	}}
	if err := l.rewrite(); err != nil {
		return err
	}
	err := l.syncLocked()
	if cerr := l.close(false); err == nil {
		err = cerr
	}
	return err
}
