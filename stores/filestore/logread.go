package filestore

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"os"
)

// Reading a record log at open: every intact record, a torn tail cut, damage refused.

// openRecLog reads every intact record of path (cutting a torn tail) and returns the log,
// not yet open for appending: the owner replays the records, attaches itself, then opens
// it with openAppend (an intact, compact log) or rewrites it. A temporary file left by a
// rewrite that was never committed is removed: the log it was to replace is still there.
func openRecLog(path, magic string, opts *Options) (l *recLog, recs [][]byte, clean bool, err error) {
	l = &recLog{path: path, magic: magic, opts: opts}
	if err := removeFile(l.tmpPath(), opts); err != nil {
		return nil, nil, false, err
	}
	data, err := os.ReadFile(path)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, nil, false, err
	}
	if len(data) == 0 {
		return l, nil, false, nil
	}
	torn, err := checkHeader(path, magic, data)
	if errors.Is(err, errBadMagic) {
		return nil, nil, false, &DamageError{File: path, Offset: 0, Reason: "bad file header", Err: err}
	}
	if err != nil {
		return nil, nil, false, err
	}
	if torn {
		opts.Logger.Warn("filestore: torn header cut", "file", path, "offset", 0, "bytes", len(data))
		return l, nil, false, nil
	}
	recs, off := readFrames(data)
	if off != len(data) {
		if next := nextFrame(data, off); next >= 0 {
			return nil, nil, false, &DamageError{File: path, Offset: int64(off),
				Reason: fmt.Sprintf("record fails its checks; an intact record follows at offset %d", next)}
		}
		opts.Logger.Warn("filestore: torn tail cut", "file", path, "offset", off, "bytes", len(data)-off)
		return l, recs, false, nil
	}
	return l, recs, true, nil
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
