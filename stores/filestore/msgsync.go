package filestore

import (
	"errors"
	"fmt"
	"os"
)

// Making messages durable, and coming back from a failure. A failed write or fsync makes
// the channel failed (msgStore.fail) until Rollback, which cuts the tail back to what the
// last successful sync covered and rebuilds the channel from the files.

// Sync implements stores.MsgStore: flush, then fsync the tail segment.
func (ms *msgStore) Sync() error {
	ms.mu.Lock()
	defer ms.mu.Unlock()
	if err := ms.usable(); err != nil {
		return err
	}
	return ms.sync()
}

// sync flushes and fsyncs the tail. Caller holds mu.
func (ms *msgStore) sync() error {
	seg, err := ms.flushTail()
	if err != nil || seg == nil {
		return err
	}
	if err := fsync(seg.f, seg.path, ms.opts); err != nil {
		return ms.fail(err)
	}
	seg.synced = seg.flushed
	if !ms.opts.NoSync { // NoSync's "sync" proves nothing about power loss
		seg.proof = seg.flushed
	}
	ms.syncedLast, ms.syncedFirst = ms.last, ms.markFirst
	ms.dropOld()
	return nil
}

// flushTail writes the marker (if First moved) and the buffered records of the tail segment
// to the OS and returns the tail, or nil without segments. A failure fails the channel.
// Caller holds mu.
func (ms *msgStore) flushTail() (*segment, error) {
	n := len(ms.segs)
	if n == 0 {
		return nil, nil
	}
	seg := ms.segs[n-1]
	if ms.first != ms.markFirst {
		if err := ms.writeMarker(seg); err != nil {
			return nil, ms.fail(err)
		}
	}
	if ms.markDue(seg) {
		if err := ms.writeSyncMark(seg); err != nil {
			return nil, ms.fail(err)
		}
	}
	if err := ms.flush(seg); err != nil {
		return nil, ms.fail(err)
	}
	return seg, nil
}

// Flush implements stores.SplitSyncer: the first half of Sync (marker, buffered records
// to the OS), noting the tail for SyncFlushed.
func (ms *msgStore) Flush() error {
	ms.mu.Lock()
	defer ms.mu.Unlock()
	if err := ms.usable(); err != nil {
		return err
	}
	seg, err := ms.flushTail()
	if err != nil || seg == nil {
		return err
	}
	ms.flushedSeg, ms.flushedLast, ms.flushedFirst = seg, ms.last, ms.markFirst
	ms.dropOld()
	return nil
}

// SyncFlushed implements stores.SplitSyncer: it fsyncs, without holding mu, the tail as of
// the last Flush. Earlier flushes went to that file or to segments sealed since, and
// sealing fsyncs a segment before it closes it; so a segment sealed meanwhile (or whose
// handle a roll closed during the fsync: os.ErrClosed) is durable already.
//
// It reports nil only if the channel is still healthy once the fsync returns: after a
// failure elsewhere in the channel (a failed fsync at a roll, say, which may have consumed
// the error this fsync would have seen) nothing is reported durable until Rollback.
func (ms *msgStore) SyncFlushed() error {
	ms.mu.RLock()
	seg, last, first, epoch, err := ms.flushedSeg, ms.flushedLast, ms.flushedFirst, ms.epoch, ms.usable()
	var f *os.File
	var size int64
	if seg != nil && seg.w != nil {
		f, size = seg.f, seg.flushed
	}
	ms.mu.RUnlock()
	if err != nil || seg == nil {
		return err
	}
	var serr error
	if f != nil { // else sealed since the Flush: the seal fsynced it
		serr = fsync(f, seg.path, ms.opts)
	}
	ms.mu.Lock()
	defer ms.mu.Unlock()
	if err := ms.usable(); err != nil {
		return err
	}
	if ms.epoch != epoch {
		return fmt.Errorf("filestore: channel %q: rolled back while syncing", ms.name)
	}
	if serr != nil {
		if !errors.Is(serr, os.ErrClosed) || seg.w != nil {
			return ms.fail(serr)
		}
		// sealed meanwhile: the seal fsynced it
	}
	seg.synced = max(seg.synced, size)
	if !ms.opts.NoSync {
		seg.proof = max(seg.proof, size)
	}
	ms.syncedLast = max(ms.syncedLast, last)
	ms.syncedFirst = max(ms.syncedFirst, first)
	return nil
}

// Rollback implements stores.MsgStore: after a failure, it cuts from the files every
// message appended after the last successful Sync or SyncFlushed (whole segments rolled to
// since, and the rest of the segment that holds the first of them, sealed or not) and
// whatever the tail holds past its last fsync, then rebuilds the channel from its files as
// Open would.
func (ms *msgStore) Rollback() error {
	ms.mu.Lock()
	defer ms.mu.Unlock()
	if ms.closed || ms.deleted || ms.failed == nil {
		return ms.usable()
	}
	if err := ms.cutUnsynced(); err != nil {
		return fmt.Errorf("filestore: channel %q: rollback: %w", ms.name, err)
	}
	ms.release()
	ms.ra.reset()
	fresh, err := openMsgStore(ms.dir, ms.name, ms.base, ms.limits, ms.opts, ms.fds)
	if err != nil {
		return fmt.Errorf("filestore: channel %q: rollback: %w", ms.name, err)
	}
	ms.segs = fresh.segs
	ms.first, ms.last, ms.msgs, ms.bytes, ms.markFirst = fresh.first, fresh.last, fresh.msgs, fresh.bytes, fresh.markFirst
	ms.syncedLast, ms.flushedLast = fresh.last, fresh.last
	ms.syncedFirst, ms.flushedFirst = fresh.first, fresh.first
	ms.failed, ms.flushedSeg = nil, nil
	ms.epoch++
	return nil
}

// cutUnsynced removes what Rollback drops from the files. A failure leaves the channel as
// it was for the next try: each step can be done again.
func (ms *msgStore) cutUnsynced() error {
	cut := ms.syncedLast + 1
	for n := len(ms.segs); n > 0 && ms.segs[n-1].first >= cut; n = len(ms.segs) {
		seg := ms.segs[n-1] // rolled to after the last sync: nothing in it was synced
		if err := removeFile(seg.base+".idx", ms.opts); err != nil {
			return err
		}
		if err := removeFile(seg.base+".seg", ms.opts); err != nil {
			return err
		}
		ms.closeSegment(seg)
		ms.segs = ms.segs[:n-1]
	}
	n := len(ms.segs)
	if n == 0 {
		return nil
	}
	seg := ms.segs[n-1]
	path := seg.base + ".seg"
	if i := cut - seg.first; i < uint64(len(seg.ents)) {
		off := int64(seg.ents[i].off)
		if seg.w != nil {
			return truncateFile(seg.f, path, off, ms.opts)
		}
		// Sealed since the sync: it becomes the tail again, which has no index.
		if err := removeFile(seg.base+".idx", ms.opts); err != nil {
			return err
		}
		f, err := os.OpenFile(path, os.O_RDWR, 0)
		if err != nil {
			return err
		}
		defer f.Close()
		return truncateFile(f, path, off, ms.opts)
	}
	if seg.w != nil { // no message to drop: what a failed write left after the last fsync
		return truncateFile(seg.f, path, seg.synced, ms.opts)
	}
	return nil
}
