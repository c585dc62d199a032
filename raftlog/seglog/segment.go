package seglog

import (
	"bytes"
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
}

func (s *segment) last() uint64 { return s.first + uint64(len(s.offs)) - 1 }

// createSegment creates (and fsyncs, with its directory) an empty segment for first.
func createSegment(dir string, first uint64) (*segment, error) {
	s := &segment{path: filepath.Join(dir, segName(first)), first: first, end: headerSize}
	if _, err := rand.Read(s.nonce[:]); err != nil {
		return nil, err
	}
	f, err := os.OpenFile(s.path, os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return nil, err
	}
	s.f = f
	var h [headerSize]byte
	copy(h[:], segMagic)
	h[5] = segVersion
	copy(h[8:], s.nonce[:])
	_, err = f.WriteAt(h[:], 0)
	if err == nil {
		err = s.grow(headerSize)
	}
	if err == nil {
		err = f.Sync()
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
	if err := allocate(s.f, size); err != nil {
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

// decodePayload fills e from a checked payload; Data and Extensions are copies.
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
		e.Extensions = bytes.Clone(rest[:n])
	}
	e.Data = nil
	if len(rest) > int(n) {
		e.Data = bytes.Clone(rest[n:])
	}
	return nil
}

// read reads the record at off into e.
func (s *segment) read(off int64, e *raft.Log) error {
	var h [recHeader]byte
	if _, err := s.f.ReadAt(h[:], off); err != nil {
		return fmt.Errorf("seglog: %s at %d: %w", s.path, off, err)
	}
	n := binary.LittleEndian.Uint32(h[:])
	if n > maxRecord || int64(n) > s.end-off-recHeader {
		return fmt.Errorf("%w: %s at %d: record length %d", ErrDamaged, s.path, off, n)
	}
	p := make([]byte, n)
	if _, err := s.f.ReadAt(p, off+recHeader); err != nil {
		return fmt.Errorf("seglog: %s at %d: %w", s.path, off, err)
	}
	if recordCRC(&s.nonce, p) != binary.LittleEndian.Uint32(h[4:]) {
		return fmt.Errorf("%w: %s at %d: checksum mismatch", ErrDamaged, s.path, off)
	}
	return decodePayload(p, e)
}

// openSegment reads a segment's records and checks them. tail: the newest segment, whose
// end may be torn (its last write was not fsynced): it is cut there, unless a valid record
// follows, which proves that the damage is in fsynced data. Any other segment must hold
// valid records up to zeros or its end.
func openSegment(path string, first uint64, tail bool) (*segment, error) {
	f, err := os.OpenFile(path, os.O_RDWR, 0o600)
	if err != nil {
		return nil, err
	}
	s := &segment{path: path, f: f, first: first}
	fail := func(err error) (*segment, error) {
		_ = f.Close()
		return nil, err
	}
	data, err := io.ReadAll(f)
	if err != nil {
		return fail(err)
	}
	s.alloc = int64(len(data))
	if len(data) < headerSize || string(data[:5]) != segMagic || data[5] != segVersion {
		if tail && (len(data) <= headerSize || isZero(data[headerSize:])) {
			// A creation torn before its fsync: records are written only after it, so the
			// file holds nothing that was ever acknowledged.
			return fail(errTornCreation)
		}
		return fail(fmt.Errorf("%w: %s: bad header", ErrDamaged, path))
	}
	copy(s.nonce[:], data[8:16])
	off := int64(headerSize)
	var prevTerm uint64
	for {
		why := ""
		if int64(len(data))-off < recHeader {
			if isZero(data[off:]) {
				break
			}
			why = "a record header cut short"
		} else if n := binary.LittleEndian.Uint32(data[off:]); n == 0 && isZero(data[off:]) {
			break
		} else if n < payloadMin || n > maxRecord || int64(n) > int64(len(data))-off-recHeader {
			why = fmt.Sprintf("record length %d", n)
		} else if p := data[off+recHeader : off+recHeader+int64(n)]; recordCRC(&s.nonce, p) != binary.LittleEndian.Uint32(data[off+4:]) {
			why = "checksum mismatch"
		} else if idx, term := binary.LittleEndian.Uint64(p[8:]), binary.LittleEndian.Uint64(p[16:]); idx != first+uint64(len(s.offs)) {
			why = fmt.Sprintf("entry %d where %d was due", idx, first+uint64(len(s.offs)))
		} else if term < prevTerm {
			why = fmt.Sprintf("entry %d of term %d after term %d", idx, term, prevTerm)
		} else {
			s.offs = append(s.offs, off)
			prevTerm = term
			off += recHeader + int64(n)
			continue
		}
		if !tail || laterWriteAfter(data, off, &s.nonce) {
			return fail(fmt.Errorf("%w: %s at offset %d: %s", ErrDamaged, path, off, why))
		}
		s.torn = fmt.Sprintf("%s at offset %d", why, off)
		break
	}
	s.end = off
	return s, nil
}

var errTornCreation = errors.New("seglog: a segment torn at its creation")

// laterWriteAfter reports whether a valid record of this file (its CRC with the nonce)
// starts after off and belongs to a write that began after off: that write followed an
// fsync covering off, so the bad bytes at off are damage, not the torn end of the last write.
func laterWriteAfter(data []byte, off int64, nonce *[8]byte) bool {
	for o := off + 1; o+recHeader+payloadMin <= int64(len(data)); o++ {
		n := binary.LittleEndian.Uint32(data[o:])
		if n < payloadMin || n > maxRecord || int64(n) > int64(len(data))-o-recHeader {
			continue
		}
		p := data[o+recHeader : o+recHeader+int64(n)]
		if recordCRC(nonce, p) == binary.LittleEndian.Uint32(data[o+4:]) && int64(binary.LittleEndian.Uint64(p)) > off {
			return true
		}
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
