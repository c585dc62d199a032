package filestore

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"os"
)

// Reading a record log: every intact record, a torn tail cut, damage refused.
//
// A version 2 log tells the two apart with sync marks: after each successful fsync, the next
// flush appends a mark stating how many bytes of the file that fsync covered. A record that
// fails its checks before the highest offset any intact mark proves synced is damage; one at
// or after it lies in bytes never known to be synced — a power cut may leave those torn,
// zeroed and intact in any mix — and is cut with everything after it. A version 1 log has no
// marks: damage is a bad record followed by an intact one, as that version always did.

// Record types of the log layer, in both logs (their owners' types are other letters).
const (
	recBatch = 'B' // version 2: the records of one flush, each [uvarint len][record]
	recMark  = 'S' // version 2: sync mark: [offset u64][nonce u64]
)

// markLen is the payload length of a sync mark.
const markLen = 17

// logData is what reading a log found.
type logData struct {
	hdr   fileHdr
	torn  bool     // the header itself is torn: an empty log
	recs  [][]byte // records of the intact prefix in order (batches expanded, marks dropped)
	end   int      // where the intact prefix ends
	size  int
	proof int64 // the highest offset an intact sync mark anywhere in the file proves synced
}

func (ld *logData) intact() bool { return !ld.torn && ld.end == ld.size }

// parseLog reads the log in data. The error is a bad or unknown header; damage past it is
// for classify.
func parseLog(path, magic string, data []byte) (ld logData, err error) {
	ld.size = len(data)
	if len(data) == 0 {
		ld.torn = true
		return ld, nil
	}
	ld.hdr, ld.torn, err = checkHeader(path, magic, data)
	if err != nil || ld.torn {
		return ld, err
	}
	ld.recs, ld.end, ld.proof = walkFrames(data, ld.hdr.size, ld.hdr, nil)
	if ld.end < len(data) && ld.hdr.version >= 2 {
		ld.proof = max(ld.proof, scanLogMarks(data, ld.end+1, ld.hdr.nonce))
	}
	return ld, nil
}

// walkFrames appends the records of the intact frames from off to recs and returns where
// they end and the highest offset their sync marks prove synced.
func walkFrames(data []byte, off int, h fileHdr, recs [][]byte) ([][]byte, int, int64) {
	var proof int64
	for off+8 <= len(data) {
		n := int(binary.LittleEndian.Uint32(data[off:]))
		if n > len(data)-off-8 || (n == 0 && h.version >= 2) {
			break // version 1 took zeroed bytes for empty records; version 2 never writes one
		}
		p := data[off+8 : off+8+n]
		if crc32.Checksum(p, crcTable) != binary.LittleEndian.Uint32(data[off+4:]) {
			break
		}
		if h.version >= 2 && n > 0 && p[0] == recBatch {
			var ok bool
			if recs, ok = splitBatch(p[1:], recs); !ok {
				break
			}
		} else if h.version >= 2 && n > 0 && p[0] == recMark {
			if x, ok := markProof(p, h.nonce, off); ok {
				proof = max(proof, x)
			}
		} else {
			recs = append(recs, p)
		}
		off += 8 + n
	}
	return recs, off, proof
}

// splitBatch appends the records of a batch payload; false if it is malformed.
func splitBatch(b []byte, recs [][]byte) ([][]byte, bool) {
	for len(b) > 0 {
		n, k := binary.Uvarint(b)
		if k <= 0 || n > uint64(len(b)-k) {
			return recs, false
		}
		recs = append(recs, b[k:k+int(n):k+int(n)])
		b = b[k+int(n):]
	}
	return recs, true
}

// markProof returns the offset a sync mark payload at off proves synced: its nonce must be
// the file's, and it can only speak of bytes before itself.
func markProof(p []byte, nonce uint64, off int) (int64, bool) {
	if len(p) != markLen || binary.LittleEndian.Uint64(p[9:]) != nonce {
		return 0, false
	}
	x := binary.LittleEndian.Uint64(p[1:])
	if x > uint64(off) {
		return 0, false
	}
	return int64(x), true
}

// scanLogMarks looks at every offset from off for an intact sync mark of the file (past a
// bad record, frames cannot be followed) and returns the highest offset they prove synced.
func scanLogMarks(data []byte, off int, nonce uint64) int64 {
	var proof int64
	for p := off; p+8+markLen <= len(data); p++ {
		if binary.LittleEndian.Uint32(data[p:]) != markLen || data[p+8] != recMark {
			continue
		}
		pl := data[p+8 : p+8+markLen]
		if crc32.Checksum(pl, crcTable) != binary.LittleEndian.Uint32(data[p+4:]) {
			continue
		}
		if x, ok := markProof(pl, nonce, p); ok {
			proof = max(proof, x)
		}
	}
	return proof
}

// appendMark appends a sync mark frame stating that the first x bytes are synced.
func appendMark(b []byte, x int64, nonce uint64) []byte {
	b = binary.LittleEndian.AppendUint32(b, markLen)
	start := len(b)
	b = binary.LittleEndian.AppendUint32(b, 0)
	b = append(b, recMark)
	b = binary.LittleEndian.AppendUint64(b, uint64(x))
	b = binary.LittleEndian.AppendUint64(b, nonce)
	binary.LittleEndian.PutUint32(b[start:], crc32.Checksum(b[start+4:], crcTable))
	return b
}

// damage reports why the log is damaged (not just torn), or "".
func (ld *logData) damage(data []byte) string {
	if ld.torn || ld.end == len(data) {
		return ""
	}
	if ld.hdr.version == 1 {
		if next := nextFrame(data, ld.end); next >= 0 {
			return fmt.Sprintf("record fails its checks; an intact record follows at offset %d", next)
		}
		return ""
	}
	if int64(ld.end) < ld.proof {
		return fmt.Sprintf("record fails its checks before offset %d, which a sync mark proves was synced", ld.proof)
	}
	return ""
}

// openRecLog reads every intact record of path (cutting a torn tail) and returns the log,
// not yet open for appending: the owner replays the records, attaches itself, then opens
// it with openAppend (an intact, compact, current-version log) or rewrites it. A temporary
// file left by a rewrite that was never committed is removed: the log it was to replace is
// still there. clean is what the last clean Close fsynced of the log: a log whose intact
// records end before it lost records, and is damage.
func openRecLog(path, magic string, opts *Options, clean cleanProof) (*recLog, logData, error) {
	l := &recLog{path: path, magic: magic, opts: opts}
	if err := removeFile(l.tmpPath(), opts); err != nil {
		return nil, logData{}, err
	}
	data, err := os.ReadFile(path)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, logData{}, err
	}
	ld, err := parseLog(path, magic, data)
	if errors.Is(err, errBadMagic) {
		return nil, ld, &DamageError{File: path, Offset: 0, Reason: "bad file header", Err: err}
	}
	if err != nil {
		return nil, ld, err
	}
	// Damage is decided before anything is logged as cut: a refused log is not cut.
	if why := ld.damage(data); why != "" {
		return nil, ld, &DamageError{File: path, Offset: int64(ld.end), Reason: why}
	}
	if why := clean.cut(ld); why != "" {
		return nil, ld, &DamageError{File: path, Offset: int64(ld.end), Reason: why}
	}
	if ld.torn && len(data) > 0 {
		opts.Logger.Warn("filestore: torn header cut", "file", path, "offset", 0, "bytes", len(data))
	}
	if !ld.torn && ld.end != len(data) {
		opts.Logger.Warn("filestore: torn tail cut", "file", path, "offset", ld.end, "bytes", len(data)-ld.end)
	}
	l.nonce = ld.hdr.nonce
	return l, ld, nil
}

// cleanProof is what a clean Close fsynced of a log: its first size bytes (0: nothing
// known), in the file whose header holds nonce (0: whichever file has the log's name).
type cleanProof struct {
	size  int64
	nonce uint64
}

// cut reports why a log read as ld lost records a clean Close had fsynced, or "". A log
// whose header holds another nonce is a later file (a rewrite): the proof is not its.
func (c cleanProof) cut(ld logData) string {
	switch {
	case c.size <= 0:
		return ""
	case c.nonce != 0 && !ld.torn && ld.hdr.nonce != c.nonce:
		return ""
	case ld.size == 0:
		return fmt.Sprintf("missing or empty, yet the clean shutdown left it holding %d synced bytes", c.size)
	case ld.torn || int64(ld.end) < c.size:
		return fmt.Sprintf("intact records end at offset %d, before the %d bytes the clean shutdown synced: records lost", ld.end, c.size)
	}
	return ""
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

// salvageLog returns every intact record of a damaged log: the intact prefix, then those of
// each run of intact frames found past the damage (Repair's quarantine).
func salvageLog(data []byte, h fileHdr) [][]byte {
	recs, off, _ := walkFrames(data, h.size, h, nil)
	for off < len(data) {
		next := nextFrame(data, off)
		if next < 0 {
			break
		}
		var end int
		recs, end, _ = walkFrames(data, next, h, recs)
		off = max(end, next+1)
	}
	return recs
}
