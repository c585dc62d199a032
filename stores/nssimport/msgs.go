package nssimport

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"path/filepath"
)

// A message slice is msgs.N.dat (the MsgProto records) with msgs.N.idx beside it: a version
// header, then one 32-byte entry per message: [seq u64][offset u64][timestamp i64][size u32]
// [CRC-32 of the first 28 bytes u32], little-endian. nss trusts the index when its last
// entry matches the data file and otherwise reads the data file from the start; so do we.
const idxEntrySize = 32

// slice is one msgs.N.dat of a channel, as Scan found it.
type slice struct {
	num         int64
	dat, idx    string // paths; idx is "" when there is no index file
	useIndex    bool   // read the messages the index lists (else every record of dat)
	before      uint64 // the next slice's first sequence (0: none): records past the index stop there
	msgs        uint64
	first, last uint64
}

type idxEntry struct {
	seq  uint64
	off  int64
	time int64
	size uint32
}

// indexReader reads the entries of an index file.
type indexReader struct {
	file  string
	r     io.Reader
	off   int64
	size  int64
	table *crc32.Table
}

func newIndexReader(file string, r io.Reader, size int64, table *crc32.Table) (*indexReader, error) {
	if err := readVersion(file, r, size); err != nil {
		return nil, err
	}
	return &indexReader{file: file, r: r, off: versionSize, size: size, table: table}, nil
}

// next returns the next entry, io.EOF at the end (or at an entry of zeros, the padding a
// crash leaves), or a *FormatError.
func (ir *indexReader) next() (idxEntry, error) {
	at := ir.off
	if at == ir.size {
		return idxEntry{}, io.EOF
	}
	if ir.size-at < idxEntrySize {
		return idxEntry{}, damaged(ir.file, at, "index entry cut short: %d of %d bytes", ir.size-at, idxEntrySize)
	}
	var b [idxEntrySize]byte
	if _, err := io.ReadFull(ir.r, b[:]); err != nil {
		return idxEntry{}, damaged(ir.file, at, "file shorter than its size: changed while being read?")
	}
	ir.off += idxEntrySize
	le := binary.LittleEndian
	e := idxEntry{seq: le.Uint64(b[0:]), off: int64(le.Uint64(b[8:])), time: int64(le.Uint64(b[16:])), size: le.Uint32(b[24:])}
	crc := le.Uint32(b[28:])
	if b == ([idxEntrySize]byte{}) {
		ir.off = ir.size
		return idxEntry{}, io.EOF
	}
	if c := crc32.Checksum(b[:28], ir.table); c != crc {
		return idxEntry{}, damaged(ir.file, at, "index entry checksum mismatch: stored 0x%08x, computed 0x%08x", crc, c)
	}
	return e, nil
}

// openSized opens a file and returns it with its size.
func openSized(path string) (*os.File, int64, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, 0, err
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, 0, err
	}
	return f, fi.Size(), nil
}

// checkIndex decides whether sl's index can be used, as nss does on recovery: every entry
// readable, sequences and offsets increasing, and the last entry naming the record the data
// file holds there. It returns why not ("" when usable or absent).
func checkIndex(sl *slice, table *crc32.Table) (bool, string) {
	if sl.idx == "" {
		return false, ""
	}
	f, size, err := openSized(sl.idx)
	if err != nil {
		return false, err.Error()
	}
	defer f.Close()
	ir, err := newIndexReader(sl.idx, newBufReader(f), size, table)
	if err != nil {
		return false, err.Error()
	}
	var last idxEntry
	n := 0
	for {
		e, err := ir.next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return false, err.Error()
		}
		if n > 0 && (e.seq <= last.seq || e.off <= last.off) || e.off < versionSize {
			return false, fmt.Sprintf("%s: offset %d: entry for sequence %d at offset %d does not follow sequence %d at offset %d",
				sl.idx, ir.off-idxEntrySize, e.seq, e.off, last.seq, last.off)
		}
		last = e
		n++
	}
	if n == 0 {
		return false, "" // an empty index: nss reads the data file
	}
	d, dsize, err := openSized(sl.dat)
	if err != nil {
		return false, err.Error()
	}
	defer d.Close()
	if last.off >= dsize {
		return false, fmt.Sprintf("%s: its last entry (sequence %d) points to offset %d, past the end of %s (%d bytes)", sl.idx, last.seq, last.off, sl.dat, dsize)
	}
	rr := &recordReader{file: sl.dat, r: io.NewSectionReader(d, last.off, dsize-last.off), off: last.off, size: dsize, table: table}
	_, payload, _, err := rr.next()
	if err == nil && len(payload) != int(last.size) {
		err = fmt.Errorf("%s: offset %d: record of %d bytes, the index says %d", sl.dat, last.off, len(payload), last.size)
	}
	var m nssMsg
	if err == nil {
		if derr := decodeMsg(payload, &m); derr != nil {
			err = fmt.Errorf("%s: offset %d: message does not decode: %v", sl.dat, last.off, derr)
		} else if m.Seq != last.seq {
			err = fmt.Errorf("%s: offset %d: record holds sequence %d, the index says %d", sl.dat, last.off, m.Seq, last.seq)
		}
	}
	if errors.Is(err, io.EOF) {
		err = fmt.Errorf("%s: its last entry points to padding in %s", sl.idx, sl.dat)
	}
	if err != nil {
		return false, err.Error()
	}
	return true, ""
}

// readSlice calls fn with each message of sl in order: those its index lists when
// sl.useIndex, else every record of the data file. m and its slices are valid only during
// the call. note receives what was tolerated (padding at the end of the data file).
func readSlice(sl *slice, table *crc32.Table, note func(string), fn func(m *nssMsg, file string, at int64) error) error {
	d, dsize, err := openSized(sl.dat)
	if err != nil {
		return err
	}
	defer d.Close()
	rr, err := newRecordReader(sl.dat, newBufReader(d), dsize, false, table)
	if err != nil {
		return err
	}
	var m nssMsg
	if !sl.useIndex {
		for {
			_, payload, at, err := rr.next()
			if err == io.EOF {
				if rr.padding > 0 {
					note(fmt.Sprintf("%s: zero padding from offset %d to the end ignored (nss cuts it too)", sl.dat, rr.padding))
				}
				return nil
			}
			if err != nil {
				return err
			}
			if err := decodeMsg(payload, &m); err != nil {
				return damaged(sl.dat, at, "message record does not decode: %v", err)
			}
			if err := fn(&m, sl.dat, at); err != nil {
				return err
			}
		}
	}
	f, size, err := openSized(sl.idx)
	if err != nil {
		return err
	}
	defer f.Close()
	ir, err := newIndexReader(sl.idx, newBufReader(f), size, table)
	if err != nil {
		return err
	}
	var last uint64
	for {
		e, err := ir.next()
		if err == io.EOF {
			return readPastIndex(sl, rr, last, &m, note, fn)
		}
		if err != nil {
			return err
		}
		if err := rr.skipTo(e.off); err != nil {
			return err
		}
		_, payload, at, err := rr.next()
		if err == io.EOF {
			return damaged(sl.dat, e.off, "the index entry for sequence %d points to the end of the file", e.seq)
		}
		if err != nil {
			return err
		}
		if len(payload) != int(e.size) {
			return damaged(sl.dat, at, "record of %d bytes where the index (%s) says %d", len(payload), sl.idx, e.size)
		}
		if err := decodeMsg(payload, &m); err != nil {
			return damaged(sl.dat, at, "message record does not decode: %v", err)
		}
		if m.Seq != e.seq {
			return damaged(sl.dat, at, "record holds sequence %d where the index (%s) says %d", m.Seq, sl.idx, e.seq)
		}
		if err := fn(&m, sl.dat, at); err != nil {
			return err
		}
		last = m.Seq
	}
}

// readPastIndex reads the records of sl's data file after its last indexed one (rr is
// just past it): the index is written after the data, so a crash without --file_sync can
// keep messages nss stored, and delivered, with no index entry. Those that follow the
// sequence are kept; the first that does not (a torn record, damage) ends the slice, noted.
func readPastIndex(sl *slice, rr *recordReader, last uint64, m *nssMsg, note func(string), fn func(m *nssMsg, file string, at int64) error) error {
	n := 0
	defer func() {
		if n > 0 {
			note(fmt.Sprintf("%s: %d message(s) past its last entry imported from %s (nss would ignore them)", sl.idx, n, filepath.Base(sl.dat)))
		}
	}()
	for {
		_, payload, at, err := rr.next()
		if err == io.EOF {
			return nil
		}
		var why string
		switch {
		case err != nil:
			why = err.Error()
		case decodeMsg(payload, m) != nil:
			why = "message record does not decode"
		case m.Seq != last+1:
			why = fmt.Sprintf("sequence %d does not follow %d", m.Seq, last)
		case sl.before != 0 && m.Seq >= sl.before:
			why = fmt.Sprintf("sequence %d is in the next slice", m.Seq)
		}
		if why != "" {
			note(fmt.Sprintf("%s: offset %d to the end (%d bytes) past its index left out: %s", sl.dat, at, rr.size-at, why))
			return nil
		}
		if err := fn(m, sl.dat, at); err != nil {
			return err
		}
		last = m.Seq
		n++
	}
}

var errFirst = errors.New("first message read")

// firstSeq returns the sequence of sl's first message, 0 if none or unreadable (reading
// the slice reports why).
func firstSeq(sl *slice, table *crc32.Table) uint64 {
	var seq uint64
	_ = readSlice(sl, table, func(string) {}, func(m *nssMsg, _ string, _ int64) error {
		seq = m.Seq
		return errFirst
	})
	return seq
}
