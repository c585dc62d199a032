package filestore

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"log/slog"
	"os"
)

// FormatVersion is the on-disk format version written in every file's header.
const FormatVersion = 1

// fileHdrSize is the size of the header at offset 0 of every file: a 6-byte magic naming
// the kind of file, then the format version (u16).
const fileHdrSize = 8

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

func fileHeader(magic string) []byte {
	b := make([]byte, fileHdrSize)
	copy(b, magic)
	binary.LittleEndian.PutUint16(b[6:], FormatVersion)
	return b
}

// checkHeader checks the first bytes of a file (data may be longer than the header).
// A file shorter than the header whose bytes are a prefix of a valid header is torn
// (torn = true, err = nil).
func checkHeader(path, magic string, data []byte) (torn bool, err error) {
	want := fileHeader(magic)
	if len(data) < fileHdrSize {
		if bytes.HasPrefix(want, data) {
			return true, nil
		}
		if len(data) < 6 || string(data[:6]) != magic {
			return false, fmt.Errorf("%w: %s: not a %s file", errBadMagic, path, magic)
		}
		return true, nil
	}
	if string(data[:6]) != magic {
		return false, fmt.Errorf("%w: %s: not a %s file (magic %q)", errBadMagic, path, magic, data[:6])
	}
	if v := binary.LittleEndian.Uint16(data[6:]); v != FormatVersion {
		return false, fmt.Errorf("%w: %s has version %d, this build reads version %d", ErrVersion, path, v, FormatVersion)
	}
	return false, nil
}

// readHeader reads and checks the header of an open file.
func readHeader(f *os.File, magic string) (torn bool, err error) {
	var b [fileHdrSize]byte
	n, err := f.ReadAt(b[:], 0)
	if err != nil && !errors.Is(err, io.EOF) {
		return false, err
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
