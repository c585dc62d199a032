package filestore

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"log/slog"
	"math/rand/v2"
	"os"
)

// FormatVersion is the on-disk format version of the files this build writes. It reads
// versions 1 and 2 too (see FORMAT.md): an older log is rewritten at open, an older tail
// segment is appended to in its version (no journal records, and for version 1 no sync
// marks) until it rolls.
const FormatVersion = 3

// The header at offset 0 of every file: a 6-byte magic naming the kind of file, the format
// version (u16), and from version 2 a random nonce (u64) that the file's sync marks repeat,
// so that no record data (a client's bytes) can pass for one. Version 3 has the header of
// version 2; it adds journal records to segments and LSN records to subs.log.
const (
	hdrSizeV1 = 8
	hdrSizeV2 = 16
)

// Magics of the files of a store.
const (
	magicSeg  = "STRSEG"
	magicIdx  = "STRIDX"
	magicMeta = "STRMET"
	magicSubs = "STRSUB"
)

// ErrVersion is returned (wrapped, naming the file) for a file written in a format version
// this build does not know.
var ErrVersion = errors.New("filestore: unsupported format version")

// errBadMagic marks a file that does not start with the header of its kind.
var errBadMagic = errors.New("filestore: bad file header")

// fileHdr is what a file's header says.
type fileHdr struct {
	version uint16
	nonce   uint64 // 0 in version 1
	size    int    // of the header: where records start
}

// newHeader returns the header of a new file of kind magic (the current version, a fresh
// nonce) and its encoding.
func newHeader(magic string) (fileHdr, []byte) {
	h := fileHdr{version: FormatVersion, nonce: rand.Uint64() | 1, size: hdrSizeV2}
	b := make([]byte, hdrSizeV2)
	copy(b, magic)
	binary.LittleEndian.PutUint16(b[6:], FormatVersion)
	binary.LittleEndian.PutUint64(b[8:], h.nonce)
	return h, b
}

// checkHeader checks the first bytes of a file (data may be longer than the header). A file
// shorter than its header whose bytes are a prefix of a valid one is torn (torn = true,
// err = nil): a crash right after it was created.
func checkHeader(path, magic string, data []byte) (h fileHdr, torn bool, err error) {
	n := min(len(data), 6)
	if string(data[:n]) != magic[:n] {
		return h, false, fmt.Errorf("%w: %s: not a %s file (magic %q)", errBadMagic, path, magic, data[:n])
	}
	if len(data) < hdrSizeV1 {
		return h, true, nil
	}
	h.version = binary.LittleEndian.Uint16(data[6:])
	switch h.version {
	case 1:
		h.size = hdrSizeV1
	case 2, 3:
		if len(data) < hdrSizeV2 {
			return h, true, nil
		}
		h.size, h.nonce = hdrSizeV2, binary.LittleEndian.Uint64(data[8:])
	default:
		return h, false, fmt.Errorf("%w: %s has version %d, this build reads versions 1 to %d", ErrVersion, path, h.version, FormatVersion)
	}
	return h, false, nil
}

// readHeader reads and checks the header of an open file.
func readHeader(f *os.File, magic string) (h fileHdr, torn bool, err error) {
	var b [hdrSizeV2]byte
	n, err := f.ReadAt(b[:], 0)
	if err != nil && !errors.Is(err, io.EOF) {
		return h, false, err
	}
	return checkHeader(f.Name(), magic, b[:n])
}

// DamageError reports data damaged somewhere other than a repairable tail: the channel it
// belongs to is not opened (see Store.Damaged) and Repair refuses to drop it unless told to
// quarantine it.
type DamageError struct {
	Channel string // channel name ("" if not known)
	File    string
	Offset  int64
	Reason  string
	Err     error // underlying error, if any
}

func (e *DamageError) Error() string {
	s := fmt.Sprintf("filestore: %s damaged at offset %d: %s", e.File, e.Offset, e.Reason)
	if e.Channel != "" {
		s = fmt.Sprintf("filestore: channel %q: %s damaged at offset %d: %s", e.Channel, e.File, e.Offset, e.Reason)
	}
	if e.Err != nil {
		s += ": " + e.Err.Error()
	}
	return s
}

// Unwrap returns ErrCorrupt (and the underlying error).
func (e *DamageError) Unwrap() []error {
	if e.Err != nil {
		return []error{ErrCorrupt, e.Err}
	}
	return []error{ErrCorrupt}
}

func slogDiscard() *slog.Logger { return slog.New(slog.DiscardHandler) }

func crc32Checksum(b []byte) uint32 { return crc32.Checksum(b, crcTable) }
