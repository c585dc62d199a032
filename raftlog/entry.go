package raftlog

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
)

// entryFormat is the first byte of every raft entry a Node writes: a reader that meets
// another value stops rather than guess (a newer version wrote it, or the entry is corrupt).
// Format 2 ends with a CRC-32C of what precedes it: raft-boltdb checks nothing, so a bit
// flipped on one node's disk would otherwise reach a node that catches up from it as a
// valid command. Format 1 (no checksum), written by earlier versions, is still read.
//
// Format 3 is a fragment: a piece of one command too large for an entry (MaxEntryBytes),
// written over several contiguous entries so that no entry, and so no AppendEntries of
// MaxAppendEntries of them nor the log cache, grows with the largest message.
const (
	entryFormat   = 2
	entryFormatV1 = 1
	entryFragment = 3
	entryCRCLen   = 4
)

var crcTable = crc32.MakeTable(crc32.Castagnoli)

// encodeEntry returns the raft entry that carries cs: the format byte, the number of commands
// as a uvarint, then each command's Data as a uvarint length and the bytes, then the
// checksum. Only Data is written; Value is the proposer's and is not replicated. One
// allocation, sized exactly.
func encodeEntry(cs []Command) []byte {
	size := 1 + uvarintLen(uint64(len(cs))) + entryCRCLen
	for i := range cs {
		size += uvarintLen(uint64(len(cs[i].Data))) + len(cs[i].Data)
	}
	b := make([]byte, 0, size)
	b = append(b, entryFormat)
	b = binary.AppendUvarint(b, uint64(len(cs)))
	for i := range cs {
		b = binary.AppendUvarint(b, uint64(len(cs[i].Data)))
		b = append(b, cs[i].Data...)
	}
	return binary.BigEndian.AppendUint32(b, crc32.Checksum(b, crcTable))
}

// entryHeaderMax bounds what an entry adds to its commands: the format byte, the count, the
// checksum.
const entryHeaderMax = 1 + binary.MaxVarintLen64 + entryCRCLen

// fragment = format(1 byte, = 3) total(uvarint) offset(uvarint) data crc32c(4 bytes): the
// bytes at offset of a command of total bytes. fragHeaderMax bounds what it adds to them.
const fragHeaderMax = 1 + 2*binary.MaxVarintLen64 + entryCRCLen

// minFragment is the smallest piece a fragment carries, whatever MaxEntryBytes says.
const minFragment = 64

// oversized reports whether c alone makes an entry larger than limit (and has bytes to
// split).
func oversized(c Command, limit int) bool {
	return len(c.Data) > 0 && 1+1+uvarintLen(uint64(len(c.Data)))+len(c.Data)+entryCRCLen > limit
}

// appendFragments appends to parts the fragments that carry data, each an entry of at most
// limit bytes (or minFragment of data); only the last one completes the command (n = 1).
func appendFragments(parts []entryPart, data []byte, limit int) []entryPart {
	piece := max(limit-fragHeaderMax, minFragment)
	for off := 0; off < len(data); off += piece {
		end := min(off+piece, len(data))
		b := make([]byte, 0, fragHeaderMax+end-off)
		b = append(b, entryFragment)
		b = binary.AppendUvarint(b, uint64(len(data)))
		b = binary.AppendUvarint(b, uint64(off))
		b = append(b, data[off:end]...)
		b = binary.BigEndian.AppendUint32(b, crc32.Checksum(b, crcTable))
		parts = append(parts, entryPart{data: b})
	}
	parts[len(parts)-1].n = 1
	return parts
}

// entryEnds splits cs into runs that each fit an entry of at most max bytes (a command
// larger than that is a run of its own) and returns where each run ends; nil when cs fits
// one entry.
func entryEnds(cs []Command, max int) []int {
	var ends []int
	size := 0
	for i := range cs {
		c := uvarintLen(uint64(len(cs[i].Data))) + len(cs[i].Data)
		if size > 0 && entryHeaderMax+size+c > max {
			ends = append(ends, i)
			size = 0
		}
		size += c
	}
	if ends == nil {
		return nil
	}
	return append(ends, len(cs))
}

func uvarintLen(v uint64) int {
	n := 1
	for v >= 0x80 {
		v >>= 7
		n++
	}
	return n
}

// entryReader walks an entry's commands in place: each command's bytes are a sub-slice of
// the entry, not a copy.
type entryReader struct {
	rest []byte // what follows the commands read so far
	n    int    // commands in the entry
	i    int    // commands read so far

	// A fragment (format 3) holds no whole command (n = 0) but frag, the bytes at offset
	// of a command of total bytes.
	frag          []byte
	total, offset uint64
}

var errEntryTruncated = errors.New("truncated")

// readEntry checks an entry's header and returns a reader over its commands. Every error
// names what is wrong; nothing here panics on any input.
func readEntry(b []byte) (entryReader, error) {
	if len(b) == 0 {
		return entryReader{}, errors.New("empty entry")
	}
	switch b[0] {
	case entryFormat, entryFragment:
		if len(b) < 1+entryCRCLen {
			return entryReader{}, fmt.Errorf("checksum: %w", errEntryTruncated)
		}
		body, sum := b[:len(b)-entryCRCLen], binary.BigEndian.Uint32(b[len(b)-entryCRCLen:])
		if got := crc32.Checksum(body, crcTable); got != sum {
			return entryReader{}, fmt.Errorf("checksum %08x, want %08x: the entry is corrupt", got, sum)
		}
		b = body
	case entryFormatV1:
	default:
		return entryReader{}, fmt.Errorf("entry format %d, want %d to %d (written by a newer version, or corrupt)", b[0], entryFormatV1, entryFragment)
	}
	if b[0] == entryFragment {
		return readFragment(b[1:])
	}
	n, k := binary.Uvarint(b[1:])
	if k <= 0 {
		return entryReader{}, fmt.Errorf("command count: %w", errEntryTruncated)
	}
	rest := b[1+k:]
	// Each command takes at least its one-byte length, which bounds a corrupt count.
	if n == 0 || n > uint64(len(rest)) {
		return entryReader{}, fmt.Errorf("command count %d in an entry of %d bytes", n, len(b))
	}
	return entryReader{rest: rest, n: int(n)}, nil
}

// readFragment reads a fragment's header and bytes (b: after the format byte, checksum cut).
func readFragment(b []byte) (entryReader, error) {
	total, k := binary.Uvarint(b)
	if k <= 0 {
		return entryReader{}, fmt.Errorf("fragment total: %w", errEntryTruncated)
	}
	b = b[k:]
	offset, k := binary.Uvarint(b)
	if k <= 0 {
		return entryReader{}, fmt.Errorf("fragment offset: %w", errEntryTruncated)
	}
	b = b[k:]
	if len(b) == 0 || offset >= total || uint64(len(b)) > total-offset {
		return entryReader{}, fmt.Errorf("fragment of %d bytes at %d of a command of %d", len(b), offset, total)
	}
	return entryReader{frag: b[:len(b):len(b)], total: total, offset: offset}, nil
}

// more reports whether another command follows.
func (r *entryReader) more() bool { return r.i < r.n }

// next returns the next command's bytes.
func (r *entryReader) next() ([]byte, error) {
	l, k := binary.Uvarint(r.rest)
	if k <= 0 {
		return nil, fmt.Errorf("command %d of %d: length: %w", r.i+1, r.n, errEntryTruncated)
	}
	r.rest = r.rest[k:]
	if l > uint64(len(r.rest)) {
		return nil, fmt.Errorf("command %d of %d: length %d, only %d bytes left", r.i+1, r.n, l, len(r.rest))
	}
	data := r.rest[:l:l] // capped: the state machine cannot append into the next command
	r.rest = r.rest[l:]
	r.i++
	return data, nil
}

// end checks that nothing follows the last command.
func (r *entryReader) end() error {
	if len(r.rest) != 0 {
		return fmt.Errorf("%d bytes after the last of %d commands", len(r.rest), r.n)
	}
	return nil
}
