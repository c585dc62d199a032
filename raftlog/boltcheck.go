package raftlog

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"os"
)

// checkBoltFile reports a raft.db shorter than the pages its newest valid meta page says
// are in use: a torn or truncated file. bbolt does not check this at Open; it maps the
// file and reads the pages past its end, and the process dies of SIGBUS (checkLogFile's
// recover cannot catch it) with a stack trace that names no file (found by
// TestStanClusterCorruptTornLog, raft.db cut to three quarters). A missing file is fine (a
// new node); anything else checkLogFile and bbolt check.
func checkBoltFile(path string) error {
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return err
	}
	// bbolt's layout: pages 0 and 1 are meta pages, each a 16-byte page header and then
	// magic, version, pageSize, flags (uint32 at 0, 4, 8, 12), root, sequence, freelist,
	// pgid, txid, checksum (uint64 at 16 … 56), in the machine's order; the checksum is
	// FNV-64a over the 56 bytes before it.
	const hdr, metaLen = 16, 64
	read := func(off int64) (pageSize uint32, pgid, txid uint64, ok bool) {
		b := make([]byte, metaLen)
		if _, err := f.ReadAt(b, off+hdr); err != nil && !errors.Is(err, io.EOF) {
			return 0, 0, 0, false
		}
		le := binary.NativeEndian
		h := fnv.New64a()
		_, _ = h.Write(b[:56])
		if le.Uint32(b[0:]) != 0xED0CDAED || le.Uint32(b[4:]) != 2 || le.Uint64(b[56:]) != h.Sum64() {
			return 0, 0, 0, false
		}
		return le.Uint32(b[8:]), le.Uint64(b[40:]), le.Uint64(b[48:]), true
	}
	ps0, pgid0, tx0, ok0 := read(0)
	ps := ps0
	if !ok0 {
		ps = uint32(os.Getpagesize())
	}
	ps1, pgid1, tx1, ok1 := read(int64(ps))
	pageSize, pgid := ps0, pgid0
	switch {
	case !ok0 && !ok1:
		return nil // bbolt says what is wrong (invalid database, version mismatch)
	case !ok0 || (ok1 && tx1 > tx0):
		pageSize, pgid = ps1, pgid1
	}
	if need := int64(pgid) * int64(pageSize); st.Size() < need {
		return fmt.Errorf("torn or truncated: %d bytes, its metadata says %d are in use", st.Size(), need)
	}
	return nil
}
