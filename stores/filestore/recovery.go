package filestore

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"

	"github.com/starling-io/starling/stores/chunked"
)

// Recovery: opening a segment, trusting or rebuilding its index, scanning and
// verifying records, and telling a torn tail from damage in the middle of a file.

// openSegment opens one segment; the tail segment is always scanned and repaired, a
// sealed one trusts a consistent index. It returns the last marker found in a scan.
func (ms *msgStore) openSegment(base string, first uint64, tail bool) (*segment, uint64, uint64, error) {
	f, err := os.OpenFile(base+".seg", os.O_RDWR, 0o644)
	if err != nil {
		return nil, 0, 0, err
	}
	seg := &segment{first: first, base: base, path: base + ".seg", f: f}
	size, err := ms.readSegHeader(seg, tail)
	if err != nil {
		f.Close()
		return nil, 0, 0, err
	}
	why := ""
	if !tail {
		if why, err = seg.checkIndex(size); err != nil {
			f.Close()
			return nil, 0, 0, err
		}
		if why == "" {
			seg.size, seg.flushed, seg.synced = size, size, size
			f.Close()
			seg.f = nil
			return seg, 0, 0, nil
		}
	}
	end, mf, ml, err := ms.recoverEnd(seg, size, tail)
	if err != nil {
		f.Close()
		return nil, 0, 0, err
	}
	seg.size, seg.flushed, seg.synced = end, end, end
	if !tail { // its index disagreed: rebuilt
		ms.opts.Logger.Warn("filestore: index rebuilt", "file", base+".idx", "why", why)
		err := seg.writeIndex(ms.opts)
		f.Close()
		seg.f = nil
		if err != nil {
			return nil, 0, 0, err
		}
		return seg, mf, ml, nil
	}
	// The tail's index is written when it is sealed (and rebuilt by this scan on open).
	if _, err := f.Seek(end, io.SeekStart); err != nil {
		f.Close()
		return nil, 0, 0, err
	}
	seg.w = bufio.NewWriterSize(newFileWriter(f, base+".seg", ms.opts), ms.opts.BufferSize)
	return seg, mf, ml, nil
}

// readSegHeader reads the header of seg's open file into seg.hdr and returns the file's
// size. The header of a tail a crash tore right after its creation is rewritten. The
// caller closes the file on error.
func (ms *msgStore) readSegHeader(seg *segment, tail bool) (int64, error) {
	f := seg.f
	fi, err := f.Stat()
	if err != nil {
		return 0, err
	}
	size := fi.Size()
	h, torn, err := readHeader(f, magicSeg)
	if tail && errors.Is(err, errBadMagic) && zeroHeader(f) {
		torn, err = true, nil
	}
	if torn && tail && ms.cleanSize > 0 {
		return 0, &DamageError{File: seg.path, Offset: 0, Reason: fmt.Sprintf(
			"tail segment holds %d bytes, but the clean shutdown left %d synced: acknowledged messages are lost", size, ms.cleanSize)}
	}
	if errors.Is(err, errBadMagic) || (torn && !tail) {
		return 0, &DamageError{File: seg.path, Offset: 0, Reason: "bad or missing file header", Err: err}
	}
	if err != nil {
		return 0, err
	}
	if torn { // a crash right after the tail was created: rewrite its header
		ms.opts.Logger.Warn("filestore: torn tail cut", "file", seg.path, "offset", 0, "bytes", size)
		var hb []byte
		h, hb = newHeader(magicSeg)
		err := truncateFile(f, seg.path, 0, ms.opts)
		if err == nil {
			err = writeAt(f, seg.path, hb, 0, ms.opts)
		}
		if err != nil {
			return 0, err
		}
		size = int64(h.size)
	}
	seg.hdr = h
	return size, nil
}

// checkIndex loads a sealed segment's index if it is consistent with a segment of size
// bytes, or returns why not (the segment is then scanned and its index rebuilt). An index
// of an unknown version is an error.
func (seg *segment) checkIndex(size int64) (string, error) {
	if f, err := os.Open(seg.base + ".idx"); err == nil {
		_, _, err = readHeader(f, magicIdx)
		f.Close()
		if errors.Is(err, ErrVersion) {
			return "", err
		}
	}
	return seg.loadIndex(size), nil
}

// recoverEnd scans seg (of size bytes) and returns where its intact records end and the
// last marker found. Bytes after that end are damage (a DamageError) or a torn tail, which
// is cut. The caller closes the file on error.
func (ms *msgStore) recoverEnd(seg *segment, size int64, tail bool) (end int64, mf, ml uint64, err error) {
	var jr *[]jrec
	if tail && ms.collect {
		jr = &ms.recovered
	}
	end, mf, ml, proof, err := seg.scan(size, jr)
	if err != nil {
		return 0, 0, 0, err
	}
	if tail && end < ms.cleanSize {
		return 0, 0, 0, &DamageError{File: seg.path, Offset: end, Reason: fmt.Sprintf(
			"intact records end at offset %d, but the clean shutdown left %d bytes synced: acknowledged messages are lost", end, ms.cleanSize)}
	}
	if end != size {
		reason, err := seg.damage(end, size, proof, tail)
		if err != nil {
			return 0, 0, 0, err
		}
		if reason != "" {
			return 0, 0, 0, &DamageError{File: seg.path, Offset: end, Reason: reason}
		}
		if zeros, err := zeroFrom(seg.f, end, size); err != nil {
			return 0, 0, 0, err
		} else if zeros {
			// Preallocated and never written (prealloc.go), or pages a crash left unwritten.
			ms.opts.Logger.Debug("filestore: zero tail cut", "file", seg.path, "offset", end, "bytes", size-end)
		} else {
			ms.opts.Logger.Warn("filestore: torn tail cut", "file", seg.path, "offset", end, "bytes", size-end)
		}
		if err := truncateFile(seg.f, seg.path, end, ms.opts); err != nil {
			return 0, 0, 0, err
		}
	}
	return end, mf, ml, nil
}

// zeroFrom reports whether f's bytes from off to size are all zero.
func zeroFrom(f *os.File, off, size int64) (bool, error) {
	buf := make([]byte, min(size-off, 256<<10))
	for off < size {
		n, err := f.ReadAt(buf[:min(int64(len(buf)), size-off)], off)
		for _, c := range buf[:n] {
			if c != 0 {
				return false, nil
			}
		}
		if err != nil {
			if errors.Is(err, io.EOF) {
				return true, nil
			}
			return false, err
		}
		off += int64(n)
	}
	return true, nil
}

// zeroHeader reports whether the header bytes of f are all zero: a tail segment created and
// never synced, whose first page a power cut left unwritten. Nothing in it was ever synced
// (a sync would have written the header with the rest), so it is a torn creation.
func zeroHeader(f *os.File) bool {
	var b [hdrSizeV2]byte
	n, _ := f.ReadAt(b[:], 0)
	for _, c := range b[:n] {
		if c != 0 {
			return false
		}
	}
	return true
}

// damage decides whether the bad record at end (of size bytes) is damage — returning why —
// or the start of a torn tail (""). A sealed segment was fsynced whole: always damage. In
// a version 2 tail, damage before the highest offset an intact sync mark proves synced
// (proof, from the scan, or any mark past end) is damage, anything at or after it is torn.
// A version 1 tail has no marks: a torn tail is one that no intact record follows, or
// only after bytes that are all zero.
func (seg *segment) damage(end, size, proof int64, tail bool) (string, error) {
	if !tail {
		return "record fails its checks before the end of a sealed segment", nil
	}
	if seg.hdr.version >= 2 {
		p, err := seg.scanMarks(end, size)
		if err != nil {
			return "", err
		}
		if proof = max(proof, p); end < proof {
			return fmt.Sprintf("record fails its checks before offset %d, which a sync mark proves was synced", proof), nil
		}
		return "", nil
	}
	next, zeros, err := seg.resync(end, size)
	switch {
	case err != nil:
		return "", err
	case next == end:
		return "sequence does not continue the segment", nil
	case next >= 0 && !zeros:
		return fmt.Sprintf("record fails its checks; an intact record follows at offset %d", next), nil
	}
	return "", nil
}

// scanMarks reads the segment from off and returns the highest offset an intact sync mark
// there proves synced (past a bad record, records cannot be followed: every offset is
// tried).
func (seg *segment) scanMarks(off, size int64) (int64, error) {
	data := make([]byte, size-off)
	if _, err := seg.f.ReadAt(data, off); err != nil && !errors.Is(err, io.EOF) {
		return 0, err
	}
	var proof int64
	for p := 0; p+hdrSize <= len(data); p++ {
		if x, ok := seg.syncMarkAt(data[p:], off+int64(p)); ok {
			proof = max(proof, x)
		}
	}
	return proof, nil
}

// syncMarkAt reports whether b starts with an intact sync mark of this segment (its nonce,
// speaking of bytes before off, where it lies) and the offset it proves synced.
func (seg *segment) syncMarkAt(b []byte, off int64) (int64, bool) {
	if binary.LittleEndian.Uint32(b[24:]) != flagSync || binary.LittleEndian.Uint32(b[0:]) != 0 ||
		binary.LittleEndian.Uint64(b[16:]) != seg.hdr.nonce || seg.hdr.version < 2 {
		return 0, false
	}
	x := binary.LittleEndian.Uint64(b[8:])
	if x > uint64(off) || crc32.Checksum(b[8:hdrSize], crcTable) != binary.LittleEndian.Uint32(b[4:]) {
		return 0, false
	}
	return int64(x), true
}

// loadIndex reads the index file and keeps it if it is consistent with a segment of size
// bytes; otherwise it returns why not.
func (seg *segment) loadIndex(size int64) string {
	data, err := os.ReadFile(seg.base + ".idx")
	if err != nil {
		return err.Error()
	}
	ih, torn, err := checkHeader(seg.base+".idx", magicIdx, data)
	if err != nil || torn {
		if err == nil {
			return "torn header"
		}
		return err.Error()
	}
	data = data[ih.size:]
	if len(data)%idxSize != 0 || len(data) == 0 {
		return fmt.Sprintf("%d bytes of entries is not a positive multiple of %d", len(data), idxSize)
	}
	ents := make([]entry, 0, len(data)/idxSize)
	prevEnd := uint64(seg.hdr.size)
	for p := data; len(p) > 0; p = p[idxSize:] {
		if crc32.Checksum(p[:20], crcTable) != binary.LittleEndian.Uint32(p[20:]) {
			return fmt.Sprintf("entry %d fails its CRC", len(ents))
		}
		e := entry{time: int64(binary.LittleEndian.Uint64(p)), off: binary.LittleEndian.Uint32(p[8:]),
			blen: binary.LittleEndian.Uint32(p[12:]), rlen: binary.LittleEndian.Uint32(p[16:])}
		end := uint64(e.off) + hdrSize + uint64(e.blen)
		if uint64(e.off) < prevEnd || e.rlen > e.blen || end > uint64(size) {
			return fmt.Sprintf("entry %d is inconsistent with the segment (%d bytes)", len(ents), size)
		}
		prevEnd = end
		ents = append(ents, e)
	}
	seg.ents = chunked.Of(ents)
	return ""
}

// scan reads the records of the segment, verifying CRCs and sequences, and returns where
// the intact prefix ends, the last marker, and the highest offset its sync marks prove
// synced. It counts the journal records of the intact prefix (seg.jbytes, seg.jlast) and,
// if jr is not nil, appends them (their bodies copied) to *jr.
func (seg *segment) scan(size int64, jr *[]jrec) (end int64, mf, ml uint64, proof int64, err error) {
	start := int64(seg.hdr.size)
	r := bufio.NewReaderSize(io.NewSectionReader(seg.f, start, max(size-start, 0)), 256<<10)
	var hdr [hdrSize]byte
	var body []byte
	seg.ents.Reset()
	seg.jbytes, seg.jlast = 0, 0
	if jr != nil {
		*jr = (*jr)[:0]
	}
	end = start
	for {
		if _, err := io.ReadFull(r, hdr[:]); err != nil {
			return end, mf, ml, proof, nil
		}
		blen := binary.LittleEndian.Uint32(hdr[0:])
		if int64(blen) > size-end-hdrSize {
			return end, mf, ml, proof, nil
		}
		if cap(body) < int(blen) {
			body = make([]byte, blen)
		}
		body = body[:blen]
		if _, err := io.ReadFull(r, body); err != nil {
			return end, mf, ml, proof, nil
		}
		crc := crc32.Update(crc32.Checksum(hdr[8:], crcTable), crcTable, body)
		if crc != binary.LittleEndian.Uint32(hdr[4:]) {
			return end, mf, ml, proof, nil
		}
		seq := binary.LittleEndian.Uint64(hdr[8:])
		tm := int64(binary.LittleEndian.Uint64(hdr[16:]))
		rlen := binary.LittleEndian.Uint32(hdr[28:])
		switch binary.LittleEndian.Uint32(hdr[24:]) {
		case flagMarker:
			mf, ml = seq, uint64(tm)
		case flagSync:
			x, ok := seg.syncMarkAt(hdr[:], end)
			if !ok {
				return end, mf, ml, proof, nil
			}
			proof = max(proof, x)
		case 0:
			if seq != seg.first+uint64(seg.ents.Len()) || rlen > blen {
				return end, mf, ml, proof, nil
			}
			seg.ents.Add(entry{time: tm, off: uint32(end), blen: blen, rlen: rlen})
		case flagJournal:
			// Version 3. LSNs only grow within a file: anything else is not a record this
			// store wrote here.
			if seg.hdr.version < 3 || rlen != 0 || seq == 0 || seq <= seg.jlast || uint64(tm) > journalSnapshot {
				return end, mf, ml, proof, nil
			}
			seg.jlast = seq
			seg.jbytes += hdrSize + int64(blen)
			if jr != nil {
				*jr = append(*jr, jrec{lsn: seq, snap: tm == journalSnapshot, off: end, body: append([]byte(nil), body...)})
			}
		default:
			return end, mf, ml, proof, nil
		}
		end += hdrSize + int64(blen)
	}
}

// resync looks for an intact record after the bad one at off: it returns the offset of the
// first one (-1 if none) and whether every byte from off to it (or to the end) is zero,
// which is what unwritten pages of an unsynced tail read as.
func (seg *segment) resync(off, size int64) (next int64, zeros bool, err error) {
	data := make([]byte, size-off)
	if _, err := seg.f.ReadAt(data, off); err != nil && !errors.Is(err, io.EOF) {
		return -1, false, err
	}
	expect := seg.first + uint64(seg.ents.Len())
	zeros = true
	for p := 0; p < len(data); p++ {
		if p+hdrSize <= len(data) && intactAt(data[p:], expect) {
			return off + int64(p), zeros, nil
		}
		if data[p] != 0 {
			zeros = false
		}
	}
	return -1, zeros, nil
}

// intactAt reports whether b starts with an intact record that could follow sequence
// expect-1 (a message at or after expect, a marker, a sync mark, or a journal record).
func intactAt(b []byte, expect uint64) bool {
	blen := binary.LittleEndian.Uint32(b[0:])
	if uint64(blen) > uint64(len(b)-hdrSize) {
		return false
	}
	seq := binary.LittleEndian.Uint64(b[8:])
	flags := binary.LittleEndian.Uint32(b[24:])
	switch {
	case flags == flagMarker || flags == flagSync:
		if blen != 0 {
			return false
		}
	case flags == flagJournal:
		if binary.LittleEndian.Uint32(b[28:]) != 0 {
			return false
		}
	case flags == 0:
		if seq < expect || seq-expect > 1<<32 || binary.LittleEndian.Uint32(b[28:]) > blen {
			return false
		}
	default:
		return false
	}
	crc := crc32.Checksum(b[8:hdrSize+int(blen)], crcTable)
	return crc == binary.LittleEndian.Uint32(b[4:])
}
