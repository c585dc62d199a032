package seglog

import (
	"bufio"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/hashicorp/raft"
)

// The segment format (DESIGN.md in raftlog). A segment file is named by the index of its
// first entry (20 decimal digits, ".seg") and holds a header, then one record per entry:
//
//	header  = "RLSEG" version(1 byte, = 1) reserved(2 bytes) nonce(8 bytes)
//	record  = length(u32) crc(u32) payload(length bytes)
//	payload = batch(u64) index(u64) term(u64) type(u8) appendedAt(i64, Unix ns, 0: none)
//	          extensionsLength(uvarint) extensions data
//
// Integers are little-endian. The CRC-32C covers the file's nonce and the payload, so that a
// record copied from another file does not pass for one of this file's. batch is the offset
// at which the record's StoreLogs write began: every earlier byte was fsynced before that
// write. Indexes run on by one within a segment, and terms never fall. Past the last record
// the file holds zeros (it is preallocated) — or, after a crash, the torn rest of the last
// write, which recovery cuts. A bad record followed by a valid one of a later write is
// damage to fsynced data instead: the log is refused (ErrDamaged).
const (
	headerSize = 16
	recHeader  = 8
	payloadMin = 8 + 8 + 8 + 1 + 8 + 1
	maxRecord  = 1 << 30
	segVersion = 1
	segSuffix  = ".seg"
	nameDigits = 20
	segMagic   = "RLSEG"
	allocStep  = 4 << 20 // preallocation step (fallocate): the fsync then journals no size change
)

var crcTable = crc32.MakeTable(crc32.Castagnoli)

// ErrDamaged marks a log whose fsynced part fails its checks: the node must not use it.
var ErrDamaged = errors.New("seglog: damaged")

func segName(first uint64) string {
	return fmt.Sprintf("%0*d%s", nameDigits, first, segSuffix)
}

func parseSegName(name string) (uint64, bool) {
	if len(name) != nameDigits+len(segSuffix) || !strings.HasSuffix(name, segSuffix) {
		return 0, false
	}
	v, err := strconv.ParseUint(name[:nameDigits], 10, 64)
	return v, err == nil
}

// segment is one file; offs[i] is where the record of entry first+i starts.
type segment struct {
	path  string
	f     *os.File
	nonce [8]byte
	first uint64
	offs  []int64
	end   int64  // where the next record goes
	alloc int64  // the file's allocated size (preallocated past end)
	torn  string // opening cut a torn record: what and where
	hook  Hook   // Options.Hook
}

func (s *segment) last() uint64 { return s.first + uint64(len(s.offs)) - 1 }

// createSegment creates (and fsyncs, with its directory) an empty segment for first.
func createSegment(dir string, first uint64, hook Hook) (*segment, error) {
	s := &segment{path: filepath.Join(dir, segName(first)), first: first, end: headerSize, hook: hook}
	if _, err := rand.Read(s.nonce[:]); err != nil {
		return nil, err
	}
	err := hook.run(OpCreate, s.path, 0, func() (err error) {
		s.f, err = os.OpenFile(s.path, os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o600)
		return err
	})
	if err != nil {
		return nil, err
	}
	f := s.f
	var h [headerSize]byte
	copy(h[:], segMagic)
	h[5] = segVersion
	copy(h[8:], s.nonce[:])
	err = s.writeAt(h[:], 0)
	if err == nil {
		err = s.grow(headerSize)
	}
	if err == nil {
		err = hook.run(OpSync, s.path, headerSize, f.Sync)
	}
	if err == nil {
		err = syncDir(dir)
	}
	if err != nil {
		_ = f.Close()
		return nil, err
	}
	return s, nil
}

// grow makes sure the file is allocated up to at least need bytes.
func (s *segment) grow(need int64) error {
	if need <= s.alloc {
		return nil
	}
	size := (need + allocStep - 1) / allocStep * allocStep
	if err := s.hook.run(OpAllocate, s.path, size, func() error { return allocate(s.f, size) }); err != nil {
		return err
	}
	s.alloc = size
	return nil
}

// recordSize is the size of e's record.
func recordSize(e *raft.Log) int64 {
	n := len(e.Extensions)
	v := 1
	for x := n; x >= 0x80; x >>= 7 {
		v++
	}
	return int64(recHeader + payloadMin - 1 + v + n + len(e.Data))
}

// appendRecord appends e's record to b for a segment with nonce, in a write that begins
// at offset batch.
func appendRecord(b []byte, nonce *[8]byte, batch int64, e *raft.Log) []byte {
	start := len(b)
	b = append(b, make([]byte, recHeader)...)
	b = binary.LittleEndian.AppendUint64(b, uint64(batch))
	b = binary.LittleEndian.AppendUint64(b, e.Index)
	b = binary.LittleEndian.AppendUint64(b, e.Term)
	b = append(b, byte(e.Type))
	var at int64
	if !e.AppendedAt.IsZero() {
		at = e.AppendedAt.UnixNano()
	}
	b = binary.LittleEndian.AppendUint64(b, uint64(at))
	b = binary.AppendUvarint(b, uint64(len(e.Extensions)))
	b = append(b, e.Extensions...)
	b = append(b, e.Data...)
	payload := b[start+recHeader:]
	binary.LittleEndian.PutUint32(b[start:], uint32(len(payload)))
	binary.LittleEndian.PutUint32(b[start+4:], recordCRC(nonce, payload))
	return b
}

func recordCRC(nonce *[8]byte, payload []byte) uint32 {
	return crc32.Update(crc32.Checksum(nonce[:], crcTable), crcTable, payload)
}

// decodePayload fills e from a checked payload; Data and Extensions point into it.
func decodePayload(p []byte, e *raft.Log) error {
	if len(p) < payloadMin {
		return fmt.Errorf("%w: a record of %d bytes", ErrDamaged, len(p))
	}
	p = p[8:] // the batch offset: recovery's
	e.Index = binary.LittleEndian.Uint64(p)
	e.Term = binary.LittleEndian.Uint64(p[8:])
	e.Type = raft.LogType(p[16])
	e.AppendedAt = time.Time{}
	if at := int64(binary.LittleEndian.Uint64(p[17:])); at != 0 {
		e.AppendedAt = time.Unix(0, at)
	}
	n, k := binary.Uvarint(p[25:])
	if k <= 0 || n > uint64(len(p)-25-k) {
		return fmt.Errorf("%w: entry %d: bad extensions length", ErrDamaged, e.Index)
	}
	rest := p[25+k:]
	e.Extensions = nil
	if n > 0 {
		e.Extensions = rest[:n:n]
	}
	e.Data = nil
	if len(rest) > int(n) {
		e.Data = rest[n:]
	}
	return nil
}

// read reads entry first+k into e with one pread; Data and Extensions point into a buffer
// of its own.
func (s *segment) read(k int, e *raft.Log) error {
	off, end := s.offs[k], s.end
	if k+1 < len(s.offs) {
		end = s.offs[k+1]
	}
	b := make([]byte, end-off)
	if _, err := s.f.ReadAt(b, off); err != nil {
		return fmt.Errorf("seglog: %s at %d: %w", s.path, off, err)
	}
	if n := binary.LittleEndian.Uint32(b); int64(n) != end-off-recHeader {
		return fmt.Errorf("%w: %s at %d: record length %d", ErrDamaged, s.path, off, n)
	}
	p := b[recHeader:]
	if recordCRC(&s.nonce, p) != binary.LittleEndian.Uint32(b[4:]) {
		return fmt.Errorf("%w: %s at %d: checksum mismatch", ErrDamaged, s.path, off)
	}
	return decodePayload(p, e)
}

// openSegment reads a segment's records and checks them. tail: the newest segment, whose
// end may be torn (its last write was not fsynced): it is cut there, unless a valid record
// follows, which proves that the damage is in fsynced data. Any other segment must hold
// valid records up to zeros or its end.
func openSegment(path string, first uint64, tail bool, hook Hook) (*segment, error) {
	f, err := os.OpenFile(path, os.O_RDWR, 0o600)
	if err != nil {
		return nil, err
	}
	s := &segment{path: path, f: f, first: first, hook: hook}
	fail := func(err error) (*segment, error) {
		_ = f.Close()
		return nil, err
	}
	st, err := f.Stat()
	if err != nil {
		return fail(err)
	}
	size := st.Size()
	s.alloc = size
	// Read sequentially through one buffer: a segment is up to 64 MiB, and reading it
	// into memory whole cost a restart 175 ms for 12 MiB (page faults of a growing buffer).
	r := bufio.NewReaderSize(io.NewSectionReader(f, 0, size), 256<<10)
	if err := s.readHeader(r, size, tail); err != nil {
		return fail(err)
	}
	off, why, err := s.readRecords(r, size)
	if err != nil {
		return fail(err)
	}
	if why != "" {
		if err := s.badRecord(off, size, why, tail); err != nil {
			return fail(err)
		}
	}
	s.end = off
	return s, nil
}

// readHeader reads and checks the header and takes the file's nonce from it; a tail whose
// creation a crash cut short is errTornCreation.
func (s *segment) readHeader(r *bufio.Reader, size int64, tail bool) error {
	var h [headerSize]byte
	if k, _ := io.ReadFull(r, h[:]); k < headerSize || string(h[:5]) != segMagic || h[5] != segVersion {
		if tail && (size <= headerSize || restZero(r)) {
			// A creation torn before its fsync: records are written only after it, so the
			// file holds nothing that was ever acknowledged.
			return errTornCreation
		}
		return fmt.Errorf("%w: %s: bad header", ErrDamaged, s.path)
	}
	copy(s.nonce[:], h[8:16])
	return nil
}

// readRecords reads the valid records after the header into s.offs, and returns the
// offset where they end and, if what follows is not zeros or the file's end, why the
// record there is bad.
func (s *segment) readRecords(r *bufio.Reader, size int64) (int64, string, error) {
	off := int64(headerSize)
	var prevTerm uint64
	var rh [recHeader]byte
	var p []byte
	for {
		why := ""
		k, err := io.ReadFull(r, rh[:])
		n := binary.LittleEndian.Uint32(rh[:])
		switch {
		case err != nil && k == 0:
			if err != io.EOF {
				return 0, "", err
			}
		case err != nil:
			if err != io.ErrUnexpectedEOF {
				return 0, "", err
			}
			if !isZero(rh[:k]) {
				why = "a record header cut short"
			}
		case n == 0:
			if !isZero(rh[:]) || !restZero(r) {
				why = "record length 0"
			}
		case n < payloadMin || n > maxRecord || int64(n) > size-off-recHeader:
			why = fmt.Sprintf("record length %d", n)
		default:
			if cap(p) < int(n) {
				p = make([]byte, n)
			}
			p = p[:n]
			if _, err := io.ReadFull(r, p); err != nil {
				return 0, "", err
			}
			idx, term := binary.LittleEndian.Uint64(p[8:]), binary.LittleEndian.Uint64(p[16:])
			switch {
			case recordCRC(&s.nonce, p) != binary.LittleEndian.Uint32(rh[4:]):
				why = "checksum mismatch"
			case idx != s.first+uint64(len(s.offs)):
				why = fmt.Sprintf("entry %d where %d was due", idx, s.first+uint64(len(s.offs)))
			case term < prevTerm:
				why = fmt.Sprintf("entry %d of term %d after term %d", idx, term, prevTerm)
			default:
				s.offs = append(s.offs, off)
				prevTerm = term
				off += recHeader + int64(n)
				continue
			}
		}
		// why is "" at the end: zeros (preallocated) or the file's end.
		return off, why, nil
	}
}

// badRecord judges the bad record at off (why: what is wrong with it). In a segment but
// the tail, or followed by a record of a later write, it is damage to fsynced data
// (ErrDamaged); otherwise it is the torn end of the last write, noted in s.torn for Open
// to cut.
func (s *segment) badRecord(off, size int64, why string, tail bool) error {
	if !tail {
		return fmt.Errorf("%w: %s at offset %d: %s", ErrDamaged, s.path, off, why)
	}
	rest := make([]byte, size-off)
	if _, err := s.f.ReadAt(rest, off); err != nil && err != io.EOF {
		return err
	}
	idx := s.first + uint64(len(s.offs))
	if laterWriteAfter(rest, off, idx, &s.nonce) || laterWriteChained(rest, off, idx) {
		return fmt.Errorf("%w: %s at offset %d: %s", ErrDamaged, s.path, off, why)
	}
	s.torn = fmt.Sprintf("%s at offset %d", why, off)
	return nil
}

// restZero reports whether r holds only zeros to its end.
func restZero(r *bufio.Reader) bool {
	for {
		b, _ := r.Peek(r.Buffered())
		if len(b) == 0 {
			if _, err := r.Peek(1); err != nil {
				return err == io.EOF
			}
			continue
		}
		if !isZero(b) {
			return false
		}
		_, _ = r.Discard(len(b))
	}
}

var errTornCreation = errors.New("seglog: a segment torn at its creation")

// laterWriteAfter reports whether a valid record of this file (its CRC with the nonce)
// starts after off and belongs to a write that began after off: that write followed an
// fsync covering off, so the bad bytes at off are damage, not the torn end of the last write.
// rest is the file from off on, idx the entry due at off. A candidate's batch and index
// fields are checked before its CRC: the torn write holds client data, and summing a CRC
// at every offset whose bytes read as a plausible length took 40 s for 4 MiB of small
// integers (quadratic).
func laterWriteAfter(rest []byte, off int64, idx uint64, nonce *[8]byte) bool {
	for o := int64(1); o+recHeader+payloadMin <= int64(len(rest)); o++ {
		n := binary.LittleEndian.Uint32(rest[o:])
		if n < payloadMin || n > maxRecord || int64(n) > int64(len(rest))-o-recHeader {
			continue
		}
		p := rest[o+recHeader : o+recHeader+int64(n)]
		// Its write began after off and at or before it; it follows idx, by at most one
		// entry per smallest record.
		batch, index := int64(binary.LittleEndian.Uint64(p)), binary.LittleEndian.Uint64(p[8:])
		if batch <= off || batch > off+o || index <= idx || index-idx > uint64(o)/(recHeader+payloadMin) {
			continue
		}
		if recordCRC(nonce, p) == binary.LittleEndian.Uint32(rest[o+4:]) {
			return true
		}
	}
	return false
}

// laterWriteChained reports whether the records from off on, read by their lengths and
// checked by their index fields alone (idx first), reach one of a write that began after
// off. It catches what no checksum can: a damaged nonce in the header fails every record
// of the file, which laterWriteAfter would take for a torn tail and cut whole. A torn
// last write cannot pass for this: all its records name its own start, at or before off.
func laterWriteChained(rest []byte, off int64, idx uint64) bool {
	for o := int64(0); o+recHeader+payloadMin <= int64(len(rest)); idx++ {
		n := int64(binary.LittleEndian.Uint32(rest[o:]))
		if n < payloadMin || n > maxRecord || n > int64(len(rest))-o-recHeader {
			return false
		}
		p := rest[o+recHeader:]
		batch := int64(binary.LittleEndian.Uint64(p))
		if binary.LittleEndian.Uint64(p[8:]) != idx || batch > off+o {
			return false
		}
		if batch > off {
			return true
		}
		o += recHeader + n
	}
	return false
}

func isZero(b []byte) bool {
	for _, c := range b {
		if c != 0 {
			return false
		}
	}
	return true
}
