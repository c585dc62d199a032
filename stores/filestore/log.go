package filestore

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"os"
	"path/filepath"
)

var crcTable = crc32.MakeTable(crc32.Castagnoli)

// ErrCorrupt marks data that fails its checks somewhere other than a repairable tail.
var ErrCorrupt = errors.New("filestore: corrupt data")

// recLog is an append-only log of framed records ([len u32][crc u32][payload]).
type recLog struct {
	path  string
	magic string
	f     *os.File
	w     *bufio.Writer
	opts  *Options
	frame [8]byte
	clean bool // opened with no torn tail: may be appended to as it is
}

// openRecLog reads every intact record of path (cutting a torn tail) and opens it for
// appending. The caller compacts it with rewrite.
func openRecLog(path, magic string, opts *Options) (*recLog, [][]byte, error) {
	data, err := os.ReadFile(path)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, nil, err
	}
	l := &recLog{path: path, magic: magic, opts: opts}
	if len(data) == 0 {
		return l, nil, nil
	}
	torn, err := checkHeader(path, magic, data)
	if errors.Is(err, errBadMagic) {
		return nil, nil, &DamageError{File: path, Offset: 0, Reason: "bad file header", Err: err}
	}
	if err != nil {
		return nil, nil, err
	}
	if torn {
		opts.Logger.Warn("filestore: torn header cut", "file", path, "offset", 0, "bytes", len(data))
		return l, nil, nil
	}
	recs, off := readFrames(data)
	if off != len(data) {
		if next := nextFrame(data, off); next >= 0 {
			return nil, nil, &DamageError{File: path, Offset: int64(off),
				Reason: fmt.Sprintf("record fails its checks; an intact record follows at offset %d", next)}
		}
		opts.Logger.Warn("filestore: torn tail cut", "file", path, "offset", off, "bytes", len(data)-off)
	} else {
		l.clean = true
	}
	return l, recs, nil
}

// openAppend opens an intact log for appending as it is (no compaction).
func (l *recLog) openAppend() error {
	f, err := os.OpenFile(l.path, os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	l.f, l.w = f, bufio.NewWriterSize(f, 32<<10)
	return nil
}

// nextFrame returns the offset of the first intact, non-empty frame after off, or -1.
// Zeroed bytes (unwritten pages of an unsynced tail) never form one.
func nextFrame(data []byte, off int) int {
	for p := off + 1; p+8 < len(data); p++ {
		n := int(binary.LittleEndian.Uint32(data[p:]))
		if n == 0 || n > len(data)-p-8 {
			continue
		}
		if crc32.Checksum(data[p+8:p+8+n], crcTable) == binary.LittleEndian.Uint32(data[p+4:]) {
			return p
		}
	}
	return -1
}

// readFrames returns the intact framed records after the file header and where they end.
func readFrames(data []byte) ([][]byte, int) {
	var recs [][]byte
	off := fileHdrSize
	for off+8 <= len(data) {
		n := int(binary.LittleEndian.Uint32(data[off:]))
		if n > len(data)-off-8 {
			break
		}
		p := data[off+8 : off+8+n]
		if crc32.Checksum(p, crcTable) != binary.LittleEndian.Uint32(data[off+4:]) {
			break
		}
		recs = append(recs, p)
		off += 8 + n
	}
	return recs, off
}

// rewrite replaces the log with recs atomically (temp file, fsync, rename, fsync dir) and
// leaves it open for appending.
func (l *recLog) rewrite(recs [][]byte) error {
	if l.f != nil {
		l.f.Close()
		l.f = nil
	}
	tmp := l.path + ".tmp"
	f, err := os.OpenFile(tmp, os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return err
	}
	w := bufio.NewWriter(f)
	w.Write(fileHeader(l.magic))
	for _, r := range recs {
		writeFrame(w, r, &l.frame)
	}
	err = w.Flush()
	if err == nil && !l.opts.NoSync {
		err = f.Sync()
	}
	f.Close()
	if err == nil {
		err = os.Rename(tmp, l.path)
	}
	if err == nil && l.opts.pending != nil {
		l.opts.pending.addFile(l.path)
	}
	if err == nil {
		err = syncDir(filepath.Dir(l.path), l.opts)
	}
	if err != nil {
		return fmt.Errorf("filestore: rewrite %s: %w", l.path, err)
	}
	if l.f, err = os.OpenFile(l.path, os.O_WRONLY|os.O_APPEND, 0o644); err != nil {
		return err
	}
	l.w = bufio.NewWriterSize(l.f, 32<<10)
	return nil
}

func writeFrame(w *bufio.Writer, p []byte, frame *[8]byte) {
	binary.LittleEndian.PutUint32(frame[0:], uint32(len(p)))
	binary.LittleEndian.PutUint32(frame[4:], crc32.Checksum(p, crcTable))
	w.Write(frame[:])
	w.Write(p)
}

// add buffers one record.
func (l *recLog) add(p []byte) { writeFrame(l.w, p, &l.frame) }

// sync flushes and fsyncs.
func (l *recLog) sync() error {
	if err := l.w.Flush(); err != nil {
		return err
	}
	return fsync(l.f, l.opts)
}

// close syncs (if flush) and closes; without flush it abandons the buffer (crash).
func (l *recLog) close(flush bool) error {
	if l.f == nil {
		return nil
	}
	var err error
	if flush {
		err = l.sync()
	}
	if cerr := l.f.Close(); err == nil {
		err = cerr
	}
	l.f = nil
	return err
}

func fsync(f *os.File, opts *Options) error {
	if opts.Hooks.BeforeSync != nil {
		if err := opts.Hooks.BeforeSync(f.Name()); err != nil {
			return err
		}
	}
	if opts.NoSync {
		if opts.pending != nil {
			opts.pending.addFile(f.Name())
		}
		return nil
	}
	return f.Sync()
}

func syncDir(dir string, opts *Options) error {
	if opts.NoSync {
		if opts.pending != nil {
			opts.pending.addDir(dir)
		}
		return nil
	}
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	d.Close()
	return err
}

// Encoding helpers for metadata records.

func putStr(b []byte, s string) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

func putUv(b []byte, v uint64) []byte { return binary.AppendUvarint(b, v) }
func putIv(b []byte, v int64) []byte  { return binary.AppendVarint(b, v) }

type dec struct {
	b   []byte
	bad bool
}

func (d *dec) uv() uint64 {
	v, n := binary.Uvarint(d.b)
	if n <= 0 {
		d.bad = true
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *dec) iv() int64 {
	v, n := binary.Varint(d.b)
	if n <= 0 {
		d.bad = true
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *dec) bytes() []byte {
	n := d.uv()
	if d.bad || n > uint64(len(d.b)) {
		d.bad = true
		return nil
	}
	p := d.b[:n:n]
	d.b = d.b[n:]
	return p
}

func (d *dec) str() string { return string(d.bytes()) }

// optStr decodes a trailing string field added after the record's first version: a
// record that ends before it (written by an older build) has "".
func (d *dec) optStr() string {
	if d.bad || len(d.b) == 0 {
		return ""
	}
	return d.str()
}

func (d *dec) byte1() byte {
	if len(d.b) == 0 {
		d.bad = true
		return 0
	}
	c := d.b[0]
	d.b = d.b[1:]
	return c
}
