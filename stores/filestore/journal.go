package filestore

import (
	"bufio"
	"encoding/binary"
	"hash/crc32"
	"os"
)

// The subscription journal, on the message side. Each Flush of a channel's subStore writes
// its records as one journal record (flag 4, version 3) into the channel's tail segment, so
// that the one fsync of the tail a commit pass pays covers the channel's messages and its
// subscriptions; subs.log is the checkpoint, rewritten now and then and fsynced only then
// (substore.go). Recovery applies subs.log, then the journal records of the tail that
// continue it.
//
// A journal record is live while its LSN is past what subs.log holds durably (jdurable).
// Live records are only ever in the tail, because whenever the tail changes they are
// carried: a roll (a full tail, an empty channel resuming at a new sequence, or the shedding
// below) seals the tail and creates the next one as a temporary file holding a marker and a
// copy of the live records, fsyncs it and renames it into place, so that the tail recovery
// reads always holds every live record; Rollback, which may cut them, first has the
// subStore commit its state to subs.log. The journal is bounded: once the tail holds
// journalBytes of dead records (subs.log holds them durably, since a checkpoint), the tail is
// rolled (it holds messages) or replaced in place (it holds none: a channel that only acks)
// by a file holding only the live records.

// journalSnapshot is the time field of a journal record that holds the whole subscription
// state (one create and one pending record per subscription) rather than one flush's
// records: written when a flush's records could not continue what recovery would find.
const journalSnapshot = 1

// maxLiveRecords bounds the live records kept in memory per channel: past it a checkpoint
// is due whatever their size.
const maxLiveRecords = 4096

// jext locates a live journal record in the tail.
type jext struct {
	off, n int64 // offset and length (header included)
	lsn    uint64
}

// jrec is a journal record recovery found in a tail.
type jrec struct {
	lsn  uint64
	snap bool
	off  int64
	body []byte // [uvarint len][record]...
}

// journalBytes is the bound of the dead journal in a tail, and twice the live journal that
// makes a checkpoint due: Options.CompactBytes, or its default when negative.
func (o *Options) journalBytes() int64 {
	if o.CompactBytes > 0 {
		return int64(o.CompactBytes)
	}
	return DefaultCompactBytes
}

// journalResult is what appendJournal tells the subStore.
type journalResult struct {
	fp        flushPoint // for the SyncFlushed that makes the flush durable
	liveBytes int64      // the live journal, to decide on a checkpoint
	live      int
}

// appendJournal writes the records of subscription flush lsn (body: [uvarint len][record]...)
// as one journal record into the tail, then flushes the tail: this is a Flush of the channel
// (messages appended before it are flushed with it, and syncing its flush point makes them
// durable as it would the MsgStore's). durable is the LSN subs.log holds durably. The
// record holds the whole state instead — the body snapshot appends — when snap is set or
// when a delta would not continue what recovery finds: the previous journal record of this
// tail, or subs.log. ok is false if no tail can carry it (none yet, an older version, a
// failed or closed channel): the subStore writes subs.log then. After a failed write the
// channel is failed (and ok true).
func (ms *msgStore) appendJournal(lsn uint64, body []byte, snap bool, durable uint64, snapshot func([]byte) []byte) (r journalResult, ok bool, err error) {
	ms.mu.Lock()
	defer ms.unlock()
	if !ms.journalOKLocked() {
		return r, false, nil
	}
	seg := ms.segs[len(ms.segs)-1]
	ms.setDurable(durable)
	kind := uint64(0)
	if snap || (seg.jlast != lsn-1 && durable < lsn-1) {
		body = snapshot(ms.jbuf[:0])
		if cap(body) <= 1<<20 {
			ms.jbuf = body[:0]
		}
		kind = journalSnapshot
	}
	if ms.first != ms.markFirst {
		if err := ms.writeMarker(seg); err != nil {
			return r, true, ms.fail(err)
		}
	}
	if seg.proof > seg.marked {
		if err := ms.writeSyncMark(seg); err != nil {
			return r, true, ms.fail(err)
		}
	}
	off := seg.size
	h := &ms.hdr
	binary.LittleEndian.PutUint32(h[0:], uint32(len(body)))
	binary.LittleEndian.PutUint64(h[8:], lsn)
	binary.LittleEndian.PutUint64(h[16:], kind)
	binary.LittleEndian.PutUint32(h[24:], flagJournal)
	binary.LittleEndian.PutUint32(h[28:], 0)
	binary.LittleEndian.PutUint32(h[4:], crc32.Update(crc32.Checksum(h[8:], crcTable), crcTable, body))
	seg.w.Write(h[:])
	if _, err := seg.w.Write(body); err != nil {
		return r, true, ms.fail(err)
	}
	rl := int64(hdrSize + len(body))
	seg.size += rl
	seg.jbytes += rl
	seg.jlast = lsn
	ms.jlive = append(ms.jlive, jext{off: off, n: rl, lsn: lsn})
	ms.jliveBytes += rl
	if err := ms.flush(seg); err != nil {
		return r, true, ms.fail(err)
	}
	r.fp = ms.point(seg)
	ms.dropOld()
	if seg.jbytes-ms.jliveBytes >= ms.opts.journalBytes() {
		if err := ms.shed(); err != nil {
			return r, true, ms.fail(err)
		}
	}
	r.liveBytes, r.live = ms.jliveBytes, len(ms.jlive)
	return r, true, nil
}

// journalOK reports whether the tail can take journal records.
func (ms *msgStore) journalOK() bool {
	ms.mu.RLock()
	defer ms.mu.RUnlock()
	return ms.journalOKLocked()
}

// journalOKLocked is journalOK. Caller holds mu.
func (ms *msgStore) journalOKLocked() bool {
	n := len(ms.segs)
	return ms.usable() == nil && n > 0 && ms.segs[n-1].w != nil && ms.segs[n-1].hdr.version >= 3
}

// journalDurable notes that subs.log holds the journal up to lsn durably.
func (ms *msgStore) journalDurable(lsn uint64) {
	ms.mu.Lock()
	ms.setDurable(lsn)
	ms.unlock()
}

// setDurable: records up to lsn are no longer live. Caller holds mu.
func (ms *msgStore) setDurable(lsn uint64) {
	if lsn <= ms.jdurable {
		return
	}
	ms.jdurable = lsn
	i := 0
	for i < len(ms.jlive) && ms.jlive[i].lsn <= lsn {
		ms.jliveBytes -= ms.jlive[i].n
		i++
	}
	if i > 0 {
		ms.jlive = ms.jlive[:copy(ms.jlive, ms.jlive[i:])]
	}
}

// shed drops the dead journal of the tail: a tail that holds messages rolls to a new one,
// one that holds none is replaced in place; either way the live records are carried. A tail
// that holds messages but does not end at Last (only markers past them survived a crash)
// is left as it is. Caller holds mu.
func (ms *msgStore) shed() error {
	seg := ms.segs[len(ms.segs)-1]
	switch {
	case seg.ents.Len() == 0:
		return ms.replaceTail(seg)
	case seg.first+uint64(seg.ents.Len()) == ms.last+1:
		return ms.newSegment(ms.last + 1)
	}
	return nil
}

// readLive returns a copy of the live journal records of seg (the tail, flushed).
func (ms *msgStore) readLive(seg *segment) ([]byte, error) {
	f := seg.f
	if seg.w == nil {
		var err error
		if f, err = os.Open(seg.path); err != nil {
			return nil, err
		}
		defer f.Close()
	}
	b := make([]byte, ms.jliveBytes)
	p := b
	for _, e := range ms.jlive {
		if _, err := f.ReadAt(p[:e.n], e.off); err != nil {
			return nil, err
		}
		p = p[e.n:]
	}
	return b, nil
}

// replaceTail replaces the tail old, which holds no message, by a file holding a marker and
// its live journal records only. Caller holds mu.
func (ms *msgStore) replaceTail(old *segment) error {
	if err := ms.flush(old); err != nil {
		return err
	}
	carry, err := ms.readLive(old)
	if err != nil {
		return err
	}
	return ms.createCarry(old.first, carry, old)
}

// createCarry creates the tail that starts at first holding a marker and the live journal
// records (carry) as a temporary file, fsyncs it and renames it into place — over old, the
// tail it replaces, if not nil; otherwise the previous tail was sealed — then fsyncs the
// directory. A crash before the rename leaves the previous tail as the tail (and a stray
// temporary file, removed at open); after it, the new tail holds every live record
// durably. Caller holds mu.
func (ms *msgStore) createCarry(first uint64, carry []byte, old *segment) error {
	base := segPath(ms.dir, first)
	path := base + ".seg"
	tmp := path + ".tmp"
	if old == nil {
		if err := removeFile(base+".idx", ms.opts); err != nil {
			return err
		}
	}
	if err := removeFile(tmp, ms.opts); err != nil {
		return err
	}
	f, err := createFile(tmp, ms.opts)
	if err != nil {
		return err
	}
	fw := newFileWriter(f, tmp, ms.opts)
	seg := &segment{first: first, base: base, path: path, f: f, w: bufio.NewWriterSize(fw, ms.opts.BufferSize)}
	h, hb := newHeader(magicSeg)
	seg.hdr = h
	seg.w.Write(hb)
	seg.size = int64(h.size)
	err = ms.writeMarker(seg)
	start := seg.size
	if err == nil {
		_, err = seg.w.Write(carry)
		seg.size += int64(len(carry))
	}
	if err == nil {
		err = seg.w.Flush()
	}
	if err == nil {
		err = fsync(f, tmp, ms.opts)
	}
	if err == nil {
		err = renameFile(tmp, path, ms.opts)
	}
	if err != nil {
		f.Close()
		removeFile(tmp, ms.opts) // or the next open does
		return err
	}
	ms.undoom(base)
	if ms.opts.pending != nil { // NoSync noted the temporary name, which is gone
		ms.opts.pending.addFile(path)
	}
	fw.path = path
	seg.flushed, seg.synced = seg.size, seg.size
	if !ms.opts.NoSync {
		seg.proof = seg.size
	}
	seg.jbytes = int64(len(carry))
	off := start
	for i := range ms.jlive {
		ms.jlive[i].off = off
		off += ms.jlive[i].n
		seg.jlast = ms.jlive[i].lsn
	}
	if old != nil {
		ms.ra.forget(old)
		old.f.Close() // a SyncFlushed fsyncing it finds it closed: replaced by a synced file
		old.f, old.w = nil, nil
		ms.segs[len(ms.segs)-1] = seg
	} else {
		ms.segs = append(ms.segs, seg)
	}
	return syncDir(ms.dir, ms.opts)
}
