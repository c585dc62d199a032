package filestore

import (
	"bufio"
	"container/list"
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"os"
	"path/filepath"
	"slices"

	"github.com/starling-io/starling/stores/chunked"
)

// entry locates one message of a segment (also its on-disk index entry).
type entry struct {
	time int64
	off  uint32 // record offset in the segment
	blen uint32 // reply + data
	rlen uint32
}

type segment struct {
	hdr     fileHdr
	first   uint64 // sequence of ents[0]
	ents    chunked.Seq[entry]
	base    string        // path without extension
	path    string        // base + ".seg" (kept: a Sync must not build it)
	f       *os.File      // tail: read/write, owned by the msgStore; sealed: read handle, owned by fdCache
	w       *bufio.Writer // nil once sealed
	elem    *list.Element // in fdCache.lru (sealed, open)
	refs    int           // readers using f (sealed; under fdCache.mu)
	size    int64         // bytes written (including buffered)
	flushed int64         // bytes in the file
	// synced: the file's bytes the last successful Sync or SyncFlushed covered (all of it
	// once sealed; what recovery found for a tail opened by Open): where Rollback cuts.
	synced int64
	proof  int64  // bytes a real fsync covered (not with NoSync): the next sync mark states it
	marked int64  // the proof the last sync mark written states
	jbytes int64  // bytes of journal records in the file
	jlast  uint64 // LSN of the last journal record in the file (0: none)
	// alloc: the tail's file size as preallocated (prealloc.go), past size; 0 when it is not.
	alloc int64
	// wbMark: size when the tail's writeback was last started (writeback.go).
	wbMark int64
	// markEnd: an offset by which a marker of the tail ends (0: none yet). Once synced
	// that far, the tail states First and Last without the segments before it.
	markEnd int64
}

func segPath(dir string, first uint64) string {
	return filepath.Join(dir, fmt.Sprintf("%020d", first))
}

// writeIndex rewrites the index file from ents and fsyncs it.
func (seg *segment) writeIndex(opts *Options) error {
	path := seg.base + ".idx"
	f, err := createFile(path, opts)
	if err != nil {
		return err
	}
	w := bufio.NewWriter(newFileWriter(f, path, opts))
	_, hb := newHeader(magicIdx)
	w.Write(hb)
	var b [idxSize]byte
	for i := range seg.ents.Len() {
		putIdx(&b, seg.ents.At(i))
		w.Write(b[:]) // an error sticks in w: Flush returns it
	}
	err = w.Flush()
	if err == nil {
		err = fsync(f, path, opts)
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

func putIdx(b *[idxSize]byte, e *entry) {
	binary.LittleEndian.PutUint64(b[0:], uint64(e.time))
	binary.LittleEndian.PutUint32(b[8:], e.off)
	binary.LittleEndian.PutUint32(b[12:], e.blen)
	binary.LittleEndian.PutUint32(b[16:], e.rlen)
	binary.LittleEndian.PutUint32(b[20:], crc32.Checksum(b[:20], crcTable))
}

// newSegment creates the segment that starts at first and writes a marker into it. The
// previous tail is sealed (flushed and fsynced); if it holds live journal records, the new
// tail is created holding a copy of them, synced before it takes the name (journal.go).
// So is a tail that does not continue the previous one (an empty channel resuming at a
// gap): until its marker is durable, the old segments hold the channel's Last.
// Caller holds mu.
func (ms *msgStore) newSegment(first uint64) error {
	if n := len(ms.segs); n > 0 && (len(ms.jlive) > 0 || ms.segs[n-1].first+uint64(ms.segs[n-1].ents.Len()) != first) {
		old := ms.segs[n-1]
		if err := ms.flush(old); err != nil {
			return err
		}
		carry, err := ms.readLive(old)
		if err != nil {
			return err
		}
		if err := ms.seal(old); err != nil {
			return err
		}
		return ms.createCarry(first, carry, nil)
	}
	if n := len(ms.segs); n > 0 {
		if err := ms.seal(ms.segs[n-1]); err != nil {
			return err
		}
	}
	base := segPath(ms.dir, first)
	if err := removeFile(base+".idx", ms.opts); err != nil {
		return err
	}
	f, err := createFile(base+".seg", ms.opts)
	if err != nil {
		return err
	}
	ms.undoom(base)
	// Its directory entry is made durable before anything in it is reported durable — by
	// the sync that covers it (sync, syncPoint) or its seal — not here: a channel's first
	// message, or a roll, then fsyncs the directory on the committer's goroutine, not the
	// writer's. A power cut before then may lose the file: it held nothing reported durable,
	// and the sealed segment before it (if any) is the last again, as after a cut just
	// before its creation.
	ms.dirGen++
	seg := &segment{first: first, base: base, path: base + ".seg", f: f}
	seg.w = bufio.NewWriterSize(newFileWriter(f, seg.path, ms.opts), ms.opts.BufferSize)
	// In segs before anything is written: Rollback finds a tail it must remove.
	ms.segs = append(ms.segs, seg)
	h, hb := newHeader(magicSeg)
	seg.hdr = h
	if _, err := seg.w.Write(hb); err != nil {
		return err
	}
	seg.size = int64(h.size)
	return ms.writeMarker(seg)
}

// undoom keeps unlock from deleting the files of a segment dropped under this lock whose
// name the segment at base now takes (an emptied tail that started past the sequence the
// channel resumed at): they are replaced, and deleting them would take the new one.
func (ms *msgStore) undoom(base string) {
	ms.doomed = slices.DeleteFunc(ms.doomed, func(p string) bool {
		return p == base+".seg" || p == base+".idx"
	})
}

// seal flushes and fsyncs a tail segment and its index; it stays open for reading.
func (ms *msgStore) seal(seg *segment) error {
	if seg.w == nil {
		return nil
	}
	if err := ms.flush(seg); err != nil {
		return err
	}
	if err := seg.trim(ms.opts); err != nil { // a sealed segment is exactly its records
		return err
	}
	if err := fsync(seg.f, seg.path, ms.opts); err != nil {
		return err
	}
	// Its entry durable before the next tail's is made: a power cut never keeps a later
	// segment and loses this one (a gap, which is damage).
	if err := ms.syncEntries(); err != nil {
		return err
	}
	seg.synced = seg.size
	if err := seg.writeIndex(ms.opts); err != nil {
		return err
	}
	seg.f.Close()
	seg.f, seg.w = nil, nil // reopened for reading through the fdCache
	return nil
}

func (ms *msgStore) flush(seg *segment) error {
	if seg.w == nil {
		return nil
	}
	// Best effort: where the file system cannot, the channel's tails grow as written (and a
	// full disk is reported by the write). Without fsyncs there is nothing to gain.
	if seg.size > seg.alloc && !ms.noPrealloc && !ms.opts.NoSync {
		if err := seg.preallocate(ms.opts); err != nil {
			ms.noPrealloc = true
			ms.opts.Logger.Debug("filestore: tails are not preallocated", "channel", ms.name, "err", err)
		}
	}
	if err := seg.w.Flush(); err != nil {
		return err
	}
	seg.flushed = seg.size
	return nil
}

// writeSyncMark states in the tail (version 2) that its first seg.proof bytes are synced, so
// that recovery tells damage in them from a torn tail after them. Caller holds mu.
func (ms *msgStore) writeSyncMark(seg *segment) error {
	h := &ms.hdr
	binary.LittleEndian.PutUint32(h[0:], 0)
	binary.LittleEndian.PutUint64(h[8:], uint64(seg.proof))
	binary.LittleEndian.PutUint64(h[16:], seg.hdr.nonce)
	binary.LittleEndian.PutUint32(h[24:], flagSync)
	binary.LittleEndian.PutUint32(h[28:], 0)
	binary.LittleEndian.PutUint32(h[4:], crc32.Checksum(h[8:], crcTable))
	if _, err := seg.w.Write(h[:]); err != nil {
		return err
	}
	seg.size += hdrSize
	seg.marked = seg.proof
	return nil
}

// markDue: the tail is version 2, a real fsync covered more than its last sync mark says,
// and something new is about to be flushed (an idle tail gets no mark of its own).
func (ms *msgStore) markDue(seg *segment) bool {
	return seg.hdr.version >= 2 && seg.proof > seg.marked && seg.size > seg.flushed
}

// writeMarker records the current First and Last in the tail. Caller holds mu.
func (ms *msgStore) writeMarker(seg *segment) error {
	h := &ms.hdr
	binary.LittleEndian.PutUint32(h[0:], 0)
	binary.LittleEndian.PutUint64(h[8:], ms.first)
	binary.LittleEndian.PutUint64(h[16:], ms.last)
	binary.LittleEndian.PutUint32(h[24:], flagMarker)
	binary.LittleEndian.PutUint32(h[28:], 0)
	binary.LittleEndian.PutUint32(h[4:], crc32.Checksum(h[8:], crcTable))
	if _, err := seg.w.Write(h[:]); err != nil {
		return err
	}
	seg.size += hdrSize
	if seg.markEnd == 0 {
		seg.markEnd = seg.size
	}
	ms.markFirst = ms.first
	return nil
}

// anchored reports whether seg, the segment after the ones dropOld would drop, states the
// channel's First and Last durably on its own: sealed, or a tail whose marker is synced.
// Until then the segments before it hold the durable Last (a channel emptied by MaxAge).
func (seg *segment) anchored() bool {
	return seg.w == nil || seg.markEnd > 0 && seg.synced >= seg.markEnd
}
