package filestore

import (
	"errors"
	"os"
)

// Sync implements stores.MsgStore: flush, then fsync the tail segment.
func (ms *msgStore) Sync() error {
	ms.mu.Lock()
	defer ms.mu.Unlock()
	if err := ms.usable(); err != nil {
		return err
	}
	return ms.sync()
}

func (ms *msgStore) sync() error {
	f, err := ms.flushTail()
	if err != nil || f == nil {
		return err
	}
	return fsync(f, f.Name(), ms.opts)
}

// flushTail writes the marker (if First moved) and the buffered records of the tail segment
// to the OS and returns its file, or nil without segments. Caller holds mu.
func (ms *msgStore) flushTail() (*os.File, error) {
	n := len(ms.segs)
	if n == 0 {
		return nil, nil
	}
	seg := ms.segs[n-1]
	if ms.first != ms.markFirst {
		ms.writeMarker(seg)
	}
	err := ms.flush(seg)
	return seg.f, err
}

// Flush implements stores.SplitSyncer: the first half of Sync (marker, buffered records
// to the OS), keeping the tail's handle for SyncFlushed.
func (ms *msgStore) Flush() error {
	ms.mu.Lock()
	defer ms.mu.Unlock()
	if err := ms.usable(); err != nil {
		return err
	}
	f, err := ms.flushTail()
	if err != nil || f == nil {
		return err
	}
	ms.flushed = f
	return nil
}

// SyncFlushed implements stores.SplitSyncer: it fsyncs, without holding mu, the tail as of
// the last Flush. Earlier flushes went to that file or to segments sealed since, and
// sealing fsyncs a segment before it closes it; so a handle closed meanwhile (os.ErrClosed
// from the fsync: os.File holds the descriptor open while a Sync runs) is durable already.
func (ms *msgStore) SyncFlushed() error {
	ms.mu.RLock()
	f, err := ms.flushed, ms.usable()
	ms.mu.RUnlock()
	if err != nil || f == nil {
		return err
	}
	if err := fsync(f, f.Name(), ms.opts); err != nil {
		if !errors.Is(err, os.ErrClosed) {
			return err
		}
		ms.mu.RLock()
		err = ms.usable()
		ms.mu.RUnlock()
		return err
	}
	return nil
}

// Rollback implements stores.MsgStore. TODO(issue 10): truncate to what was synced and
// reopen after a failed write.
func (ms *msgStore) Rollback() error {
	ms.mu.Lock()
	defer ms.mu.Unlock()
	return ms.usable()
}
