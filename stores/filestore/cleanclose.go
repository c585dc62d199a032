package filestore

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
)

// What a clean Close proves it fsynced (DESIGN.md, "Clean shutdown"): of each channel's
// tail and subs.log, meta.log's T and L records; of meta.log, meta.end.

// cleanClose is what a clean Close left of a channel's files: its tail (meta.log's T record;
// nil if unknown) and the bytes of subs.log it fsynced (the L record; 0 if unknown).
type cleanClose struct {
	tail *tailAt
	subs int64
}

// closeRecord returns the entry of closeAt for directory number dn, made if new: a T or
// L record fills it in.
func (s *Store) closeRecord(dn uint64) *cleanClose {
	if s.closeAt == nil {
		s.closeAt = map[uint64]*cleanClose{}
	}
	c := s.closeAt[dn]
	if c == nil {
		c = &cleanClose{}
		s.closeAt[dn] = c
	}
	return c
}

// meta.end: meta.log holds the proof of each tail and subs.log (its T and L records) but cannot hold
// its own: a meta.log cut after a clean stop read as a crash's torn tail. So Close, once
// meta.log is fsynced with its clean mark, states meta.log's nonce and the bytes fsynced in
// meta.end, fsynced with the store directory. The record speaks of the file of that nonce
// only: the rewrite at the next open gives meta.log a new one, so the record goes stale
// without being removed (no fsync at open), and a later crash's torn tail is cut as before.

const (
	metaEndName    = "meta.end"
	magicEnd       = "STREND"
	metaEndVersion = 1
	// magic, version u16, meta.log's nonce u64, bytes fsynced u64, CRC-32C u32 of the rest
	metaEndLen = 28
)

// readMetaEnd returns the proof meta.end in dir states; zero if there is none. One that is
// not a whole record (why says so) is ignored: a Close cut short while writing it, after
// meta.log was fsynced, or a newer build's.
func readMetaEnd(dir string) (c cleanProof, why string, err error) {
	b, err := os.ReadFile(filepath.Join(dir, metaEndName))
	if errors.Is(err, os.ErrNotExist) {
		return c, "", nil
	}
	if err != nil {
		return c, "", err
	}
	le := binary.LittleEndian
	if len(b) != metaEndLen || string(b[:6]) != magicEnd || le.Uint16(b[6:]) != metaEndVersion ||
		crc32Checksum(b[:24]) != le.Uint32(b[24:]) || le.Uint64(b[8:]) == 0 || int64(le.Uint64(b[16:])) <= 0 {
		return c, fmt.Sprintf("%d bytes, not a whole record", len(b)), nil
	}
	return cleanProof{nonce: le.Uint64(b[8:]), size: int64(le.Uint64(b[16:]))}, "", nil
}

// writeMetaEnd makes c (meta.log's, just fsynced by a clean Close) meta.end's record,
// durably. What it replaces is stale: meta.log was rewritten since.
func writeMetaEnd(dir string, c cleanProof, opts *Options) error {
	path := filepath.Join(dir, metaEndName)
	b := make([]byte, 0, metaEndLen)
	b = append(b, magicEnd...)
	b = binary.LittleEndian.AppendUint16(b, metaEndVersion)
	b = binary.LittleEndian.AppendUint64(b, c.nonce)
	b = binary.LittleEndian.AppendUint64(b, uint64(c.size))
	b = binary.LittleEndian.AppendUint32(b, crc32Checksum(b))
	f, err := createFile(path, opts)
	if err != nil {
		return err
	}
	_, err = newFileWriter(f, path, opts).Write(b)
	if err == nil {
		err = fsync(f, path, opts)
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = syncDir(dir, opts)
	}
	if err != nil {
		return fmt.Errorf("filestore: write %s: %w", path, err)
	}
	return nil
}
