package filestore

import (
	"bufio"
	"container/list"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"

	"github.com/starling-io/starling/stores"
)

const (
	hdrSize    = 32
	idxSize    = 24
	flagMarker = 1
)

// entry locates one message of a segment (also its on-disk index entry).
type entry struct {
	time int64
	off  uint32 // record offset in the segment
	blen uint32 // reply + data
	rlen uint32
}

type segment struct {
	first   uint64 // sequence of ents[0]
	ents    []entry
	base    string        // path without extension
	f       *os.File      // tail: read/write, owned by the msgStore; sealed: read handle, owned by fdCache
	w       *bufio.Writer // nil once sealed
	elem    *list.Element // in fdCache.lru (sealed, open)
	refs    int           // readers using f (sealed; under fdCache.mu)
	size    int64         // bytes written (including buffered)
	flushed int64         // bytes in the file
}

// msgStore is one channel's messages in segment files.
type msgStore struct {
	mu sync.RWMutex // guards everything below; leaf lock

	dir      string
	name     string
	overhead uint64
	limits   stores.Limits
	opts     *Options
	fds      *fdCache

	segs []*segment

	first, last uint64
	msgs, bytes uint64
	markFirst   uint64 // First as of the last marker written

	closed, deleted bool
	failed          error // a write failed mid-batch: the in-memory state is not trusted
	hdr             [hdrSize]byte
}

func segPath(dir string, first uint64) string {
	return filepath.Join(dir, fmt.Sprintf("%020d", first))
}

// openMsgStore recovers the channel kept in dir; base is the Last recorded in the metadata
// (the last sequence of a deleted predecessor).
func openMsgStore(dir, name string, base uint64, limits stores.Limits, opts *Options, fds *fdCache) (*msgStore, error) {
	ms := &msgStore{dir: dir, name: name, overhead: uint64(len(name) + stores.MsgOverhead), limits: limits, opts: opts, fds: fds}
	names, err := filepath.Glob(filepath.Join(dir, "*.seg"))
	if err != nil {
		return nil, err
	}
	sort.Strings(names)
	markFirst, markLast := uint64(0), uint64(0)
	for i, n := range names {
		var first uint64
		if _, err := fmt.Sscanf(filepath.Base(n), "%020d.seg", &first); err != nil {
			continue
		}
		seg, mf, ml, err := ms.openSegment(strings.TrimSuffix(n, ".seg"), first, i == len(names)-1)
		if err != nil {
			ms.abandon()
			var de *DamageError
			if errors.As(err, &de) {
				de.Channel = name
				return nil, de
			}
			return nil, fmt.Errorf("filestore: channel %q: %w", name, err)
		}
		if mf != 0 {
			markFirst, markLast = mf, ml
		}
		ms.segs = append(ms.segs, seg)
	}
	if markFirst == 0 {
		// The tail lost its marker (a crash right after a roll): the latest one is in an
		// earlier segment, which was loaded from its index.
		for i := len(ms.segs) - 2; i >= 0 && markFirst == 0; i-- {
			seg := ms.segs[i]
			f, err := os.Open(seg.base + ".seg")
			if err != nil {
				continue
			}
			saved := seg.ents
			seg.ents, seg.f = nil, f
			_, markFirst, markLast, _ = seg.scan(seg.size)
			seg.ents, seg.f = saved, nil
			f.Close()
		}
	}
	last := max(base, markLast)
	for i := len(ms.segs) - 1; i >= 0; i-- {
		if t := ms.segs[i]; len(t.ents) > 0 {
			last = max(last, t.first+uint64(len(t.ents))-1)
			break
		}
	}
	first := markFirst
	if len(ms.segs) > 0 {
		first = max(first, ms.segs[0].first)
	}
	ms.last = last
	ms.first = max(first, 1)
	// Drop sealed segments wholly before First; check that the rest are contiguous.
	for len(ms.segs) > 1 && ms.segs[0].first+uint64(len(ms.segs[0].ents)) <= ms.first {
		ms.dropSegment()
	}
	for i := 1; i < len(ms.segs); i++ {
		p := ms.segs[i-1]
		if p.first+uint64(len(p.ents)) != ms.segs[i].first {
			ms.abandon()
			return nil, &DamageError{Channel: name, File: ms.segs[i].base + ".seg", Offset: 0,
				Reason: fmt.Sprintf("gap: the previous segment ends at sequence %d, this one starts at %d", p.first+uint64(len(p.ents))-1, ms.segs[i].first)}
		}
	}
	if len(ms.segs) > 0 && ms.first < ms.segs[0].first {
		ms.first = ms.segs[0].first
	}
	if ms.first > ms.last {
		ms.first = ms.last + 1
	}
	for seq := ms.first; seq <= ms.last; {
		seg := ms.find(seq)
		if seg == nil {
			ms.first = ms.last + 1 // the tail was cut: only markers survive
			ms.msgs, ms.bytes = 0, 0
			break
		}
		for i := seq - seg.first; i < uint64(len(seg.ents)); i++ {
			ms.msgs++
			ms.bytes += ms.overhead + uint64(seg.ents[i].blen)
		}
		seq = seg.first + uint64(len(seg.ents))
	}
	ms.markFirst = markFirst
	return ms, nil
}

// openSegment opens one segment; the tail segment is always scanned and repaired, a
// sealed one trusts a consistent index. It returns the last marker found in a scan.
func (ms *msgStore) openSegment(base string, first uint64, tail bool) (*segment, uint64, uint64, error) {
	f, err := os.OpenFile(base+".seg", os.O_RDWR, 0o644)
	if err != nil {
		return nil, 0, 0, err
	}
	seg := &segment{first: first, base: base, f: f}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, 0, 0, err
	}
	size := fi.Size()
	torn, err := readHeader(f, magicSeg)
	if errors.Is(err, errBadMagic) || (torn && !tail) {
		f.Close()
		return nil, 0, 0, &DamageError{File: base + ".seg", Offset: 0, Reason: "bad or missing file header", Err: err}
	}
	if err != nil {
		f.Close()
		return nil, 0, 0, err
	}
	if torn { // a crash right after the tail was created: rewrite its header
		ms.opts.Logger.Warn("filestore: torn tail cut", "file", base+".seg", "offset", 0, "bytes", size)
		err := f.Truncate(0)
		if err == nil {
			_, err = f.WriteAt(fileHeader(magicSeg), 0)
		}
		if err != nil {
			f.Close()
			return nil, 0, 0, err
		}
		size = fileHdrSize
	}
	var mf, ml uint64
	why := ""
	if !tail {
		if f, err := os.Open(base + ".idx"); err == nil {
			_, err = readHeader(f, magicIdx)
			f.Close()
			if errors.Is(err, ErrVersion) {
				seg.f.Close()
				return nil, 0, 0, err
			}
		}
		if why = seg.loadIndex(size); why == "" {
			seg.size, seg.flushed = size, size
			f.Close()
			seg.f = nil
			return seg, 0, 0, nil
		}
	}
	end, mf, ml, err := seg.scan(size)
	if err != nil {
		f.Close()
		return nil, 0, 0, err
	}
	if end != size {
		next, zeros, rerr := seg.resync(end, size)
		if rerr != nil {
			f.Close()
			return nil, 0, 0, rerr
		}
		if !tail || (next >= 0 && !zeros) {
			f.Close()
			reason := "record fails its checks before the end of a sealed segment"
			if next == end {
				reason = "sequence does not continue the segment"
			} else if next >= 0 {
				reason = fmt.Sprintf("record fails its checks; an intact record follows at offset %d", next)
			}
			return nil, 0, 0, &DamageError{File: base + ".seg", Offset: end, Reason: reason}
		}
		ms.opts.Logger.Warn("filestore: torn tail cut", "file", base+".seg", "offset", end, "bytes", size-end)
		if err := f.Truncate(end); err != nil {
			f.Close()
			return nil, 0, 0, err
		}
	}
	seg.size, seg.flushed = end, end
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
	seg.w = bufio.NewWriterSize(f, 256<<10)
	return seg, mf, ml, nil
}

// loadIndex reads the index file and keeps it if it is consistent with a segment of size
// bytes; otherwise it returns why not.
func (seg *segment) loadIndex(size int64) string {
	data, err := os.ReadFile(seg.base + ".idx")
	if err != nil {
		return err.Error()
	}
	if _, err := checkHeader(seg.base+".idx", magicIdx, data); err != nil || len(data) < fileHdrSize {
		if err == nil {
			return "torn header"
		}
		return err.Error()
	}
	data = data[fileHdrSize:]
	if len(data)%idxSize != 0 || len(data) == 0 {
		return fmt.Sprintf("%d bytes of entries is not a positive multiple of %d", len(data), idxSize)
	}
	ents := make([]entry, 0, len(data)/idxSize)
	prevEnd := uint64(fileHdrSize)
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
	seg.ents = ents
	return ""
}

// scan reads the records of the segment, verifying CRCs and sequences, and returns where
// the intact prefix ends and the last marker.
func (seg *segment) scan(size int64) (end int64, mf, ml uint64, err error) {
	r := bufio.NewReaderSize(io.NewSectionReader(seg.f, fileHdrSize, max(size-fileHdrSize, 0)), 256<<10)
	var hdr [hdrSize]byte
	var body []byte
	seg.ents = seg.ents[:0]
	end = fileHdrSize
	for {
		if _, err := io.ReadFull(r, hdr[:]); err != nil {
			return end, mf, ml, nil
		}
		blen := binary.LittleEndian.Uint32(hdr[0:])
		if int64(blen) > size-end-hdrSize {
			return end, mf, ml, nil
		}
		if cap(body) < int(blen) {
			body = make([]byte, blen)
		}
		body = body[:blen]
		if _, err := io.ReadFull(r, body); err != nil {
			return end, mf, ml, nil
		}
		crc := crc32.Update(crc32.Checksum(hdr[8:], crcTable), crcTable, body)
		if crc != binary.LittleEndian.Uint32(hdr[4:]) {
			return end, mf, ml, nil
		}
		seq := binary.LittleEndian.Uint64(hdr[8:])
		tm := int64(binary.LittleEndian.Uint64(hdr[16:]))
		flags := binary.LittleEndian.Uint32(hdr[24:])
		rlen := binary.LittleEndian.Uint32(hdr[28:])
		if flags&flagMarker != 0 {
			mf, ml = seq, uint64(tm)
		} else {
			if seq != seg.first+uint64(len(seg.ents)) || rlen > blen {
				return end, mf, ml, nil
			}
			seg.ents = append(seg.ents, entry{time: tm, off: uint32(end), blen: blen, rlen: rlen})
		}
		end += hdrSize + int64(blen)
	}
}

// writeIndex rewrites the index file from ents and fsyncs it.
func (seg *segment) writeIndex(opts *Options) error {
	f, err := os.OpenFile(seg.base+".idx", os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return err
	}
	w := bufio.NewWriter(f)
	w.Write(fileHeader(magicIdx))
	var b [idxSize]byte
	for i := range seg.ents {
		putIdx(&b, &seg.ents[i])
		w.Write(b[:])
	}
	err = w.Flush()
	if err == nil {
		err = fsync(f, opts)
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

func (ms *msgStore) usable() error {
	switch {
	case ms.deleted:
		return stores.ErrChannelDeleted
	case ms.closed:
		return stores.ErrClosed
	case ms.failed != nil:
		return ms.failed
	}
	return nil
}

// newSegment creates the segment that starts at first and writes a marker into it. The
// previous tail is sealed (flushed and fsynced). Caller holds mu.
func (ms *msgStore) newSegment(first uint64) error {
	if n := len(ms.segs); n > 0 {
		if err := ms.seal(ms.segs[n-1]); err != nil {
			return err
		}
	}
	base := segPath(ms.dir, first)
	f, err := os.OpenFile(base+".seg", os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return err
	}
	os.Remove(base + ".idx")
	if err := syncDir(ms.dir, ms.opts); err != nil {
		f.Close()
		return err
	}
	seg := &segment{first: first, base: base, f: f, w: bufio.NewWriterSize(f, 256<<10)}
	seg.w.Write(fileHeader(magicSeg))
	seg.size = fileHdrSize
	if n := len(ms.segs); n > 0 {
		// A channel that filled a segment will likely fill the next one alike.
		seg.ents = make([]entry, 0, cap(ms.segs[n-1].ents))
	}
	ms.segs = append(ms.segs, seg)
	ms.writeMarker(seg)
	return nil
}

// seal flushes and fsyncs a tail segment and its index; it stays open for reading.
func (ms *msgStore) seal(seg *segment) error {
	if seg.w == nil {
		return nil
	}
	if err := ms.flush(seg); err != nil {
		return err
	}
	if err := fsync(seg.f, ms.opts); err != nil {
		return err
	}
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
	if err := seg.w.Flush(); err != nil {
		return err
	}
	seg.flushed = seg.size
	return nil
}

// writeMarker records the current First and Last in the tail. Caller holds mu.
func (ms *msgStore) writeMarker(seg *segment) {
	h := &ms.hdr
	binary.LittleEndian.PutUint32(h[0:], 0)
	binary.LittleEndian.PutUint64(h[8:], ms.first)
	binary.LittleEndian.PutUint64(h[16:], ms.last)
	binary.LittleEndian.PutUint32(h[24:], flagMarker)
	binary.LittleEndian.PutUint32(h[28:], 0)
	binary.LittleEndian.PutUint32(h[4:], crc32.Checksum(h[8:], crcTable))
	seg.w.Write(h[:])
	seg.size += hdrSize
	ms.markFirst = ms.first
}

// Append implements stores.MsgStore.
func (ms *msgStore) Append(batch []stores.Msg) error {
	ms.mu.Lock()
	defer ms.mu.Unlock()
	if err := ms.usable(); err != nil {
		return err
	}
	if len(batch) == 0 {
		return nil
	}
	if err := ms.check(batch); err != nil {
		return err
	}
	if ms.msgs == 0 {
		// An empty channel may resume after a gap: start a new segment at the batch.
		if n := len(ms.segs); n == 0 || ms.segs[n-1].first+uint64(len(ms.segs[n-1].ents)) != batch[0].Seq {
			for len(ms.segs) > 0 {
				ms.dropSegment()
			}
			ms.first = batch[0].Seq
			if err := ms.newSegment(batch[0].Seq); err != nil {
				ms.failed = fmt.Errorf("filestore: channel %q: %w", ms.name, err)
				return ms.failed
			}
		}
	}
	for i := range batch {
		if err := ms.write(&batch[i]); err != nil {
			// Reopening the store recovers a consistent prefix.
			ms.failed = fmt.Errorf("filestore: channel %q: %w", ms.name, err)
			return ms.failed
		}
	}
	if ms.msgs == 0 {
		ms.first = batch[0].Seq
	}
	ms.last = batch[len(batch)-1].Seq
	ms.msgs += uint64(len(batch))
	ms.enforce()
	ms.dropOld()
	return nil
}

func (ms *msgStore) check(batch []stores.Msg) error {
	seq := batch[0].Seq
	if ms.msgs > 0 {
		if seq != ms.last+1 {
			return stores.ErrBadSequence
		}
		if batch[0].Time < ms.timeOf(ms.last) {
			return stores.ErrBadTime
		}
	} else if seq <= ms.last {
		return stores.ErrBadSequence
	}
	for i := 1; i < len(batch); i++ {
		if batch[i].Seq != seq+uint64(i) {
			return stores.ErrBadSequence
		}
		if batch[i].Time < batch[i-1].Time {
			return stores.ErrBadTime
		}
	}
	return nil
}

// write appends one record to the tail, rolling to a new segment when it is full.
func (ms *msgStore) write(m *stores.Msg) error {
	blen := len(m.Reply) + len(m.Data)
	seg := ms.segs[len(ms.segs)-1]
	if len(seg.ents) > 0 && seg.size+hdrSize+int64(blen) > ms.opts.SegmentBytes {
		if err := ms.newSegment(m.Seq); err != nil {
			return err
		}
		seg = ms.segs[len(ms.segs)-1]
	}
	h := &ms.hdr
	binary.LittleEndian.PutUint32(h[0:], uint32(blen))
	binary.LittleEndian.PutUint64(h[8:], m.Seq)
	binary.LittleEndian.PutUint64(h[16:], uint64(m.Time))
	binary.LittleEndian.PutUint32(h[24:], 0)
	binary.LittleEndian.PutUint32(h[28:], uint32(len(m.Reply)))
	crc := crc32.Checksum(h[8:], crcTable)
	crc = crc32.Update(crc, crcTable, []byte(m.Reply)) // no copy: converted for reading only
	crc = crc32.Update(crc, crcTable, m.Data)
	binary.LittleEndian.PutUint32(h[4:], crc)
	seg.w.Write(h[:])
	seg.w.WriteString(m.Reply)
	seg.w.Write(m.Data)
	e := entry{time: m.Time, off: uint32(seg.size), blen: uint32(blen), rlen: uint32(len(m.Reply))}
	seg.size += hdrSize + int64(blen)
	seg.ents = append(seg.ents, e)
	ms.bytes += ms.overhead + uint64(blen)
	return nil
}

// find returns the segment holding seq, or nil. Caller holds mu.
func (ms *msgStore) find(seq uint64) *segment {
	n := len(ms.segs)
	if n == 0 {
		return nil
	}
	i := n - 1
	if seq < ms.segs[i].first {
		i = sort.Search(n, func(i int) bool { return ms.segs[i].first > seq }) - 1
		if i < 0 {
			return nil
		}
	}
	seg := ms.segs[i]
	if seq-seg.first >= uint64(len(seg.ents)) {
		return nil
	}
	return seg
}

func (ms *msgStore) timeOf(seq uint64) int64 {
	seg := ms.find(seq)
	return seg.ents[seq-seg.first].time
}

func (ms *msgStore) enforce() (removed int) {
	for ms.msgs > 1 && ms.limits.Exceeded(ms.msgs, ms.bytes) {
		ms.removeFirst()
		removed++
	}
	return removed
}

func (ms *msgStore) removeFirst() {
	seg := ms.find(ms.first)
	ms.bytes -= ms.overhead + uint64(seg.ents[ms.first-seg.first].blen)
	ms.msgs--
	ms.first++
}

// dropOld deletes sealed segments whose messages have all been removed.
func (ms *msgStore) dropOld() {
	for len(ms.segs) > 1 && ms.segs[0].first+uint64(len(ms.segs[0].ents)) <= ms.first {
		ms.dropSegment()
	}
}

// dropSegment closes and deletes segs[0].
func (ms *msgStore) dropSegment() {
	seg := ms.segs[0]
	ms.closeSegment(seg)
	os.Remove(seg.base + ".seg")
	os.Remove(seg.base + ".idx")
	ms.segs[0] = nil
	ms.segs = ms.segs[1:]
}

// closeSegment closes a segment's handle. Caller holds mu (no reader uses it).
func (ms *msgStore) closeSegment(seg *segment) {
	if seg.w == nil {
		ms.fds.forget(seg)
		return
	}
	seg.f.Close()
	seg.f, seg.w = nil, nil
}

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
	n := len(ms.segs)
	if n == 0 {
		return nil
	}
	seg := ms.segs[n-1]
	if ms.first != ms.markFirst {
		ms.writeMarker(seg)
	}
	if err := ms.flush(seg); err != nil {
		return err
	}
	return fsync(seg.f, ms.opts)
}

// Load implements stores.MsgStore: one ReadAt into into.Data.
func (ms *msgStore) Load(seq uint64, into *stores.Msg) error {
	ms.mu.RLock()
	for {
		if err := ms.usable(); err != nil {
			ms.mu.RUnlock()
			return err
		}
		if seq < ms.first || seq > ms.last || ms.msgs == 0 {
			ms.mu.RUnlock()
			return stores.ErrNotFound
		}
		seg := ms.find(seq)
		e := seg.ents[seq-seg.first]
		if int64(e.off)+hdrSize+int64(e.blen) <= seg.flushed {
			var err error
			if seg.w != nil {
				err = readMsg(seg.f, &e, seq, into)
			} else {
				var f *os.File
				if f, err = ms.fds.acquire(seg); err == nil {
					err = readMsg(f, &e, seq, into)
					ms.fds.release(seg)
				}
			}
			ms.mu.RUnlock()
			if err != nil {
				if de, ok := err.(*DamageError); ok {
					de.Channel = ms.name
				}
				return err
			}
			into.Seq, into.Time = seq, e.time
			return nil
		}
		// Still in the write buffer: flush it under the write lock, then retry.
		ms.mu.RUnlock()
		ms.mu.Lock()
		var err error
		if ms.usable() == nil && len(ms.segs) > 0 {
			err = ms.flush(ms.segs[len(ms.segs)-1])
		}
		ms.mu.Unlock()
		if err != nil {
			return err
		}
		ms.mu.RLock()
	}
}

func readMsg(f *os.File, e *entry, seq uint64, into *stores.Msg) error {
	n := int(e.blen)
	if cap(into.Data) < hdrSize+n {
		into.Data = make([]byte, hdrSize+n)
	}
	buf := into.Data[:hdrSize+n]
	if _, err := f.ReadAt(buf, int64(e.off)); err != nil {
		return fmt.Errorf("filestore: read: %w", err)
	}
	// The record's own CRC and sequence: damage a trusted index did not reveal is an error,
	// never wrong data.
	if binary.LittleEndian.Uint32(buf[0:]) != e.blen || binary.LittleEndian.Uint64(buf[8:]) != seq ||
		crc32.Checksum(buf[8:], crcTable) != binary.LittleEndian.Uint32(buf[4:]) {
		return &DamageError{File: f.Name(), Offset: int64(e.off), Reason: fmt.Sprintf("record of sequence %d fails its checks", seq)}
	}
	reply := buf[hdrSize : hdrSize+int(e.rlen)]
	if into.Reply != string(reply) {
		into.Reply = string(reply)
	}
	copy(buf, buf[hdrSize+int(e.rlen):])
	into.Data = buf[:n-int(e.rlen)]
	return nil
}

// SeqAtTime implements stores.MsgStore by binary search over segments, then entries.
func (ms *msgStore) SeqAtTime(ns int64) uint64 {
	ms.mu.RLock()
	defer ms.mu.RUnlock()
	if ms.msgs == 0 {
		return ms.last + 1
	}
	start := 0
	for start < len(ms.segs) && ms.segs[start].first+uint64(len(ms.segs[start].ents)) <= ms.first {
		start++
	}
	segs := ms.segs[start:]
	si := sort.Search(len(segs), func(i int) bool {
		ents := segs[i].ents
		return len(ents) > 0 && ents[len(ents)-1].time >= ns
	})
	if si == len(segs) {
		return ms.last + 1
	}
	seg := segs[si]
	lo := 0
	if seg.first < ms.first {
		lo = int(ms.first - seg.first)
	}
	j := lo + sort.Search(len(seg.ents)-lo, func(k int) bool { return seg.ents[lo+k].time >= ns })
	return seg.first + uint64(j)
}

// State implements stores.MsgStore.
func (ms *msgStore) State() stores.ChannelState {
	ms.mu.RLock()
	defer ms.mu.RUnlock()
	return stores.ChannelState{First: ms.first, Last: ms.last, Msgs: ms.msgs, Bytes: ms.bytes}
}

// SetLimits implements stores.MsgStore.
func (ms *msgStore) SetLimits(l stores.Limits) {
	ms.mu.Lock()
	ms.limits = l
	ms.mu.Unlock()
}

// Expire implements stores.MsgStore.
func (ms *msgStore) Expire(now int64) (removed int, next int64) {
	ms.mu.Lock()
	defer ms.mu.Unlock()
	if ms.usable() != nil {
		return 0, 0
	}
	defer ms.dropOld()
	removed = ms.enforce()
	for ms.msgs > 0 {
		t := ms.timeOf(ms.first)
		if !ms.limits.Expired(t, now) {
			return removed, ms.limits.ExpiresAt(t)
		}
		ms.removeFirst()
		removed++
	}
	return removed, 0
}

// Close implements stores.MsgStore: it syncs and closes the files.
func (ms *msgStore) Close() error {
	ms.mu.Lock()
	defer ms.mu.Unlock()
	if ms.closed || ms.deleted {
		return nil
	}
	ms.closed = true
	err := ms.sync()
	ms.release()
	return err
}

// release closes every file. Caller holds mu.
func (ms *msgStore) release() {
	for _, seg := range ms.segs {
		ms.closeSegment(seg)
	}
	ms.segs = nil
}

// abandon closes the files without writing anything (simulated crash, failed open).
func (ms *msgStore) abandon() {
	ms.mu.Lock()
	defer ms.mu.Unlock()
	ms.closed = true
	for _, seg := range ms.segs {
		ms.closeSegment(seg)
	}
	ms.segs = nil
}

// markDeleted makes every later call fail with ErrChannelDeleted and returns Last; the
// caller removes the directory.
func (ms *msgStore) markDeleted() uint64 {
	ms.mu.Lock()
	defer ms.mu.Unlock()
	ms.deleted = true
	for _, seg := range ms.segs {
		ms.closeSegment(seg)
	}
	ms.segs = nil
	ms.first, ms.msgs, ms.bytes = ms.last+1, 0, 0
	return ms.last
}

// resync looks for an intact record after the bad one at off: it returns the offset of the
// first one (-1 if none) and whether every byte from off to it (or to the end) is zero,
// which is what unwritten pages of an unsynced tail read as.
func (seg *segment) resync(off, size int64) (next int64, zeros bool, err error) {
	data := make([]byte, size-off)
	if _, err := seg.f.ReadAt(data, off); err != nil && !errors.Is(err, io.EOF) {
		return -1, false, err
	}
	expect := seg.first + uint64(len(seg.ents))
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
// expect-1 (a message at or after expect, or a marker).
func intactAt(b []byte, expect uint64) bool {
	blen := binary.LittleEndian.Uint32(b[0:])
	if uint64(blen) > uint64(len(b)-hdrSize) {
		return false
	}
	seq := binary.LittleEndian.Uint64(b[8:])
	flags := binary.LittleEndian.Uint32(b[24:])
	switch {
	case flags == flagMarker:
		if blen != 0 {
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
