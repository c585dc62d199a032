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
	defer ms.unlock()
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
	if err := ms.syncEntries(); err != nil {
		return ms.fail(err)
	}
	if err := fsyncUpTo(seg.f, seg.path, seg.flushed, ms.opts); err != nil {
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

// syncEntries fsyncs the directory if a tail was created in it since the last time. Caller
// holds mu.
func (ms *msgStore) syncEntries() error {
	if ms.dirGen == ms.dirSynced {
		return nil
	}
	if err := syncDir(ms.dir, ms.opts); err != nil {
		return err
	}
	ms.dirSynced = ms.dirGen
	return nil
}

// Flush implements stores.SplitSyncer: the first half of Sync (marker, buffered records
// to the OS), noting the tail for SyncFlushed.
func (ms *msgStore) Flush() error {
	ms.mu.Lock()
	defer ms.unlock()
	if err := ms.usable(); err != nil {
		return err
	}
	seg, err := ms.flushTail()
	if err != nil || seg == nil {
		return err
	}
	ms.fp = ms.point(seg)
	ms.dropOld()
	return nil
}

// flushPoint is what one Flush of the channel — the MsgStore's, or the subStore's, which
// writes its journal record into the tail (journal.go) — handed to the OS, for the
// SyncFlushed that makes it durable.
type flushPoint struct {
	seg         *segment // the tail then
	size        int64    // its bytes in the file then
	last, first uint64   // Last, and First as of the last marker, then
	epoch       uint64
}

// point is the flush point of the tail seg, just flushed. Caller holds mu.
func (ms *msgStore) point(seg *segment) flushPoint {
	return flushPoint{seg: seg, size: seg.flushed, last: ms.last, first: ms.markFirst, epoch: ms.epoch}
}

// SyncFlushed implements stores.SplitSyncer: it makes the last Flush durable (syncPoint).
func (ms *msgStore) SyncFlushed() error {
	ms.mu.RLock()
	fp := ms.fp
	ms.mu.RUnlock()
	return ms.syncPoint(fp)
}

// syncPoint makes what the flush fp handed to the OS durable: it fsyncs, without holding mu,
// the tail as of that flush — unless an fsync since (the MsgStore's or the subStore's: both
// flush into the tail) already covered it, so that a commit pass that syncs both pays one
// fsync. Earlier flushes went to that file or to segments sealed since, and sealing fsyncs
// a segment before it closes it; so a segment sealed meanwhile (or whose handle a roll
// closed during the fsync: os.ErrClosed) is durable already. A tail replaced meanwhile
// (journal.go) was replaced by a synced file holding what it held that was needed.
//
// It reports nil only if the channel is still healthy once the fsync returns: after a
// failure elsewhere in the channel (a failed fsync at a roll, say, which may have consumed
// the error this fsync would have seen) nothing is reported durable until Rollback.
func (ms *msgStore) syncPoint(fp flushPoint) error {
	ms.mu.RLock()
	seg, err := fp.seg, ms.usable()
	if err == nil && seg != nil && fp.epoch != ms.epoch {
		err = fmt.Errorf("filestore: channel %q: rolled back while syncing", ms.name)
	}
	var f *os.File
	var size int64
	if err == nil && seg != nil && seg.w != nil && seg.synced < fp.size {
		f, size = seg.f, seg.flushed
	}
	dirGen := ms.dirGen
	needDir := dirGen != ms.dirSynced
	ms.mu.RUnlock()
	if err != nil || seg == nil {
		return err
	}
	var derr, serr error
	if needDir { // a tail created since: its entry too (newSegment)
		derr = syncDir(ms.dir, ms.opts)
	}
	if f != nil && derr == nil { // else covered already, or sealed since the Flush: the seal fsynced it
		serr = fsyncCommit(f, seg.path, size, ms.opts)
	}
	ms.mu.Lock()
	defer ms.unlock()
	if err := ms.usable(); err != nil {
		return err
	}
	if derr != nil {
		return ms.fail(derr)
	}
	if needDir {
		ms.dirSynced = max(ms.dirSynced, dirGen)
	}
	if ms.epoch != fp.epoch {
		return fmt.Errorf("filestore: channel %q: rolled back while syncing", ms.name)
	}
	if serr != nil {
		if !errors.Is(serr, os.ErrClosed) || seg.w != nil {
			return ms.fail(serr)
		}
		// sealed meanwhile: the seal fsynced it
	} else if f != nil {
		seg.synced = max(seg.synced, size)
		if !ms.opts.NoSync {
			seg.proof = max(seg.proof, size)
		}
	}
	ms.syncedLast = max(ms.syncedLast, fp.last)
	ms.syncedFirst = max(ms.syncedFirst, fp.first)
	return nil
}

// Rollback implements stores.MsgStore: after a failure, it cuts from the files every
// message appended after the last successful Sync or SyncFlushed (whole segments rolled to
// since, and the rest of the segment that holds the first of them, sealed or not) and
// whatever the tail holds past its last fsync, then rebuilds the channel from its files as
// Open would.
//
// The cut may take journal records (journal.go) with it: so first, if the tail holds any
// that subs.log does not hold durably, the subStore commits its whole state to subs.log
// (memory is the truth for subscriptions), and the cut loses nothing it needs.
func (ms *msgStore) Rollback() error {
	ms.mu.Lock()
	if recommit := ms.recommit; ms.fenced != nil && recommit != nil && !ms.closed && !ms.deleted {
		ms.unlock() // the commit lifts the fence under the Store's lock, then ours
		if err := recommit(); err != nil {
			return fmt.Errorf("filestore: channel %q: rollback: %w", ms.name, err)
		}
		ms.mu.Lock()
	}
	if ms.closed || ms.deleted || ms.failed == nil {
		defer ms.unlock()
		return ms.usable()
	}
	live := len(ms.jlive) > 0
	ms.unlock()
	if ms.subs != nil { // its locks come before mu
		if err := ms.subs.rolledBack(live); err != nil {
			return fmt.Errorf("filestore: channel %q: rollback: %w", ms.name, err)
		}
	}
	ms.mu.Lock()
	defer ms.unlock()
	if ms.closed || ms.deleted || ms.failed == nil {
		return ms.usable()
	}
	if len(ms.jlive) > 0 {
		return fmt.Errorf("filestore: channel %q: rollback: subscription journal not committed", ms.name)
	}
	if err := ms.cutUnsynced(); err != nil {
		return fmt.Errorf("filestore: channel %q: rollback: %w", ms.name, err)
	}
	ms.release()
	ms.ra.reset()
	fresh, err := openMsgStore(ms.dir, ms.name, ms.base, ms.limits, ms.opts, ms.fds, false, nil)
	if err != nil {
		return fmt.Errorf("filestore: channel %q: rollback: %w", ms.name, err)
	}
	ms.segs = fresh.segs
	ms.first, ms.last, ms.msgs, ms.bytes, ms.markFirst = fresh.first, fresh.last, fresh.msgs, fresh.bytes, fresh.markFirst
	ms.syncedLast, ms.syncedFirst = fresh.last, fresh.first
	ms.failed, ms.fp = nil, flushPoint{}
	ms.jlive, ms.jliveBytes = ms.jlive[:0], 0
	ms.epoch++
	return nil
}

// cutUnsynced removes what Rollback drops from the files. A failure leaves the channel as
// it was for the next try: each step can be done again.
func (ms *msgStore) cutUnsynced() error {
	cut := ms.syncedLast + 1
	if len(ms.segs) > 0 && ms.segs[0].first >= cut && ms.syncedLast > ms.base {
		// Every segment goes (an emptied channel resumed at a gap since): the synced Last
		// only they state, so a tail stating it is in place before they go.
		return ms.replaceAll(cut)
	}
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
	if i := cut - seg.first; i < uint64(seg.ents.Len()) {
		off := int64(seg.ents.At(int(i)).off)
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

// replaceAll replaces every segment, all rolled to after the last sync, by a tail at cut
// holding only a marker {First: cut, Last: cut-1}, synced and renamed into place before the
// others are removed: a crash in between leaves them past its First, which recovery drops.
// After a failure the segments left stay in segs for the next try.
func (ms *msgStore) replaceAll(cut uint64) error {
	old := ms.segs
	first, last, markFirst := ms.first, ms.last, ms.markFirst
	ms.segs, ms.first, ms.last = nil, cut, cut-1
	// keep leaves old[:n] (but one whose file the new tail replaced) after the new tail.
	keep := func(n int, err error) error {
		ms.first, ms.last, ms.markFirst = first, last, markFirst
		kept := old[:n]
		if len(kept) > 0 && kept[0].first == cut {
			ms.ra.forget(kept[0])
			ms.closeSegment(kept[0])
			kept = kept[1:]
		}
		ms.segs = append(ms.segs, kept...)
		return err
	}
	if err := ms.createCarry(cut, nil, nil); err != nil {
		if len(ms.segs) == 0 { // not in place
			ms.segs = old
			return keep(0, err)
		}
		return keep(len(old), err) // in place, the directory's fsync failed
	}
	for i := len(old) - 1; i >= 0; i-- {
		seg := old[i]
		if seg.first != cut { // else the new tail took its name
			err := removeFile(seg.base+".idx", ms.opts)
			if err == nil {
				err = removeFile(seg.base+".seg", ms.opts)
			}
			if err != nil {
				return keep(i+1, err)
			}
		}
		ms.ra.forget(seg)
		ms.closeSegment(seg)
	}
	return nil
}
