package nssimport

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
)

// The framing of every nss file (nats-streaming-server v0.25, stores/filestore.go): a 4-byte
// little-endian file version (1), then records of [u32 header][u32 CRC-32 of the payload]
// [payload]. In typed files (clients.dat, subs.dat) the header's high byte is the record
// type and its low 24 bits the payload size; in the others (server.dat, msgs.N.dat) the
// header is the size. A record header of zeros is padding a crash left at the end of a
// file: nss cuts the file there. FORMAT.md has the whole layout.
const (
	fileVersion = 1
	versionSize = 4
	headerSize  = 8
)

// recordReader reads the records of one file in order, tracking the offset of each. Every
// size is checked against what is left of the file before anything is allocated, so a
// damaged header cannot ask for more memory than the file holds.
type recordReader struct {
	file    string // for errors
	r       io.Reader
	off     int64 // offset of the next record
	size    int64 // file size
	typed   bool
	table   *crc32.Table
	buf     []byte
	padding int64 // offset where zero padding began (0: none)
}

// newRecordReader checks the file version and returns a reader positioned on the first
// record. r must be buffered by the caller if it is a file.
func newRecordReader(file string, r io.Reader, size int64, typed bool, table *crc32.Table) (*recordReader, error) {
	rr := &recordReader{file: file, r: r, size: size, typed: typed, table: table}
	if err := readVersion(file, r, size); err != nil {
		return nil, err
	}
	rr.off = versionSize
	return rr, nil
}

// readVersion reads and checks the 4-byte version every nss file starts with.
func readVersion(file string, r io.Reader, size int64) error {
	if size < versionSize {
		return damaged(file, 0, "file of %d bytes has no version header (nss writes 4 bytes first)", size)
	}
	var v [versionSize]byte
	if _, err := io.ReadFull(r, v[:]); err != nil {
		return fmt.Errorf("%s: %w", file, err)
	}
	if n := binary.LittleEndian.Uint32(v[:]); n != fileVersion {
		return damaged(file, 0, "unsupported file version %d (nats-streaming-server writes %d)", n, fileVersion)
	}
	return nil
}

// next returns the next record: its type (0 in untyped files), its payload (valid until
// the next call) and its offset. It returns io.EOF at the end of the file, or where zero
// padding begins (then rr.padding is set); a damaged or cut record is a *FormatError.
func (rr *recordReader) next() (typ byte, payload []byte, at int64, err error) {
	at = rr.off
	left := rr.size - rr.off
	if left == 0 {
		return 0, nil, at, io.EOF
	}
	if left < headerSize {
		return 0, nil, at, damaged(rr.file, at, "record header cut short: %d of %d bytes (the file ends mid-record)", left, headerSize)
	}
	var h [headerSize]byte
	if _, err := io.ReadFull(rr.r, h[:]); err != nil {
		return 0, nil, at, rr.ioErr(at, err)
	}
	first, crc := binary.LittleEndian.Uint32(h[:4]), binary.LittleEndian.Uint32(h[4:])
	if first == 0 && crc == 0 {
		if err := rr.zerosToEnd(at, at+headerSize); err != nil {
			return 0, nil, at, err
		}
		rr.padding, rr.off = at, rr.size
		return 0, nil, at, io.EOF
	}
	size := int64(first)
	if rr.typed {
		typ, size = byte(first>>24), int64(first&0xFFFFFF)
	}
	if size > left-headerSize {
		return 0, nil, at, damaged(rr.file, at, "record of %d bytes runs past the end of the file (%d bytes left): the file ends mid-record", size, left-headerSize)
	}
	if int64(cap(rr.buf)) < size {
		rr.buf = make([]byte, size)
	}
	payload = rr.buf[:size]
	if _, err := io.ReadFull(rr.r, payload); err != nil {
		return 0, nil, at, rr.ioErr(at, err)
	}
	if c := crc32.Checksum(payload, rr.table); c != crc {
		return 0, nil, at, damaged(rr.file, at, "record checksum mismatch: stored 0x%08x, computed 0x%08x", crc, c)
	}
	rr.off = at + headerSize + size
	return typ, payload, at, nil
}

// skipTo moves forward to offset off (an index entry's record).
func (rr *recordReader) skipTo(off int64) error {
	if off < rr.off || off > rr.size {
		return damaged(rr.file, off, "index entry points to offset %d, outside the unread part of the file [%d, %d]", off, rr.off, rr.size)
	}
	if n := off - rr.off; n > 0 {
		if _, err := io.CopyN(io.Discard, rr.r, n); err != nil {
			return rr.ioErr(rr.off, err)
		}
	}
	rr.off = off
	return nil
}

// zerosToEnd checks that the rest of the file, from off, is zeros: padding nss would cut
// (at, where the zero header is), not a record header destroyed in the middle of the file.
func (rr *recordReader) zerosToEnd(at, off int64) error {
	var chunk [4096]byte
	for off < rr.size {
		n := min(int64(len(chunk)), rr.size-off)
		if _, err := io.ReadFull(rr.r, chunk[:n]); err != nil {
			return rr.ioErr(off, err)
		}
		for i, b := range chunk[:n] {
			if b != 0 {
				return damaged(rr.file, at, "record header of zeros followed by data at offset %d: not the padding a crash leaves at the end", off+int64(i))
			}
		}
		off += n
	}
	return nil
}

// ioErr turns a read failure into an error naming the file; a file shorter than its size
// (changed while read) is damage at that offset.
func (rr *recordReader) ioErr(at int64, err error) error {
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return damaged(rr.file, at, "file shorter than its size: changed while being read?")
	}
	return fmt.Errorf("%s: offset %d: %w", rr.file, at, err)
}

// newBufReader buffers file reads for a recordReader.
func newBufReader(r io.Reader) *bufio.Reader { return bufio.NewReaderSize(r, 256<<10) }
