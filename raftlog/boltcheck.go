package raftlog

import (
	"bytes"
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
	_, err := readBoltMeta(path)
	return err
}

// boltMeta is what a bolt file's newest valid meta page says; pageSize 0 when neither meta
// page is valid (bbolt's to report).
type boltMeta struct {
	pageSize       uint32
	root, freelist uint64 // the root bucket's page; the freelist's page (^0: not synced)
	pgid           uint64 // pages in use: the high-water mark
}

// readBoltMeta reads the newest valid meta page of the bolt file at path and refuses a file
// shorter than the pages it says are in use. A missing file has the zero boltMeta.
func readBoltMeta(path string) (boltMeta, error) {
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return boltMeta{}, nil
	}
	if err != nil {
		return boltMeta{}, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return boltMeta{}, err
	}
	// bbolt's layout: pages 0 and 1 are meta pages, each a 16-byte page header and then
	// magic, version, pageSize, flags (uint32 at 0, 4, 8, 12), root, sequence, freelist,
	// pgid, txid, checksum (uint64 at 16 … 56), in the machine's order; the checksum is
	// FNV-64a over the 56 bytes before it.
	const hdr, metaLen = 16, 64
	read := func(off int64) (m boltMeta, txid uint64, ok bool) {
		b := make([]byte, metaLen)
		if _, err := f.ReadAt(b, off+hdr); err != nil && !errors.Is(err, io.EOF) {
			return m, 0, false
		}
		le := binary.NativeEndian
		h := fnv.New64a()
		_, _ = h.Write(b[:56])
		if le.Uint32(b[0:]) != 0xED0CDAED || le.Uint32(b[4:]) != 2 || le.Uint64(b[56:]) != h.Sum64() {
			return m, 0, false
		}
		m = boltMeta{pageSize: le.Uint32(b[8:]), root: le.Uint64(b[16:]), freelist: le.Uint64(b[32:]), pgid: le.Uint64(b[40:])}
		return m, le.Uint64(b[48:]), true
	}
	m0, tx0, ok0 := read(0)
	ps := int64(m0.pageSize)
	if !ok0 {
		ps = int64(os.Getpagesize())
	}
	m1, tx1, ok1 := read(ps)
	m := m0
	switch {
	case !ok0 && !ok1:
		return boltMeta{}, nil // bbolt says what is wrong (invalid database, version mismatch)
	case !ok0 || (ok1 && tx1 > tx0):
		m = m1
	}
	if need := int64(m.pgid) * int64(m.pageSize); st.Size() < need {
		return m, fmt.Errorf("torn or truncated: %d bytes, its metadata says %d are in use", st.Size(), need)
	}
	return m, nil
}

// checkBoltTree walks the page tree of the bolt file at path as bbolt walks it to rebuild
// its freelist at Open when the freelist is not synced (NoFreelistSync), and refuses the
// file where bbolt's walk would fault, panic or report anything. That walk runs in a
// goroutine of its own with no bounds checks, and its first report panics Open while the
// walk goes on over a closed transaction: any finding there ends the process. So this walk
// reads through ReadAt with every bound checked and checks what bbolt's does — every branch
// and leaf page of every bucket, each referenced once, of a branch or leaf type, with keys
// in bbolt's order (tx_check.go, v1.5.0) — and, beyond it, inline buckets and a synced
// freelist page, which bbolt later reads without checks.
func checkBoltTree(path string, m boltMeta) error {
	if m.pageSize == 0 {
		return nil // no valid meta page: bbolt refuses the file itself
	}
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	w := treeWalk{f: f, ps: uint64(m.pageSize), hwm: m.pgid, seen: map[uint64]bool{}}
	if m.freelist != ^uint64(0) {
		if err := w.freelist(m.freelist); err != nil {
			return err
		}
	}
	return w.bucket(m.root, 0)
}

// bbolt's page format: a 16-byte header (id uint64, flags uint16, count uint16, overflow
// uint32), then count elements of 16 bytes — branch: pos, ksize uint32, child pgid uint64;
// leaf: flags, pos, ksize, vsize uint32 — whose keys (and values, after the key) lie pos
// bytes from the element. A bucket's value: its root pgid and sequence, then, for an inline
// bucket (root 0), a page of its own.
const (
	boltHeader      = 16
	boltElement     = 16
	boltBranch      = 0x01
	boltLeaf        = 0x02
	boltFreelist    = 0x10
	boltBucketEntry = 0x01
	boltMaxDepth    = 64 // far deeper than a real tree; bounds the walk's recursion
)

type treeWalk struct {
	f    *os.File
	ps   uint64 // page size
	hwm  uint64 // pages in use
	seen map[uint64]bool
}

// read returns n bytes at off, which the caller has checked lie in the file.
func (w *treeWalk) read(off, n uint64) ([]byte, error) {
	b := make([]byte, n)
	if _, err := w.f.ReadAt(b, int64(off)); err != nil {
		return nil, fmt.Errorf("reading %d bytes at %d: %w", n, off, err)
	}
	return b, nil
}

// header reads page id's header and checks that the page, with its overflow, lies below
// the high-water mark and names itself id.
func (w *treeWalk) header(id uint64) (flags, count uint16, span uint64, err error) {
	if id < 2 || id >= w.hwm {
		return 0, 0, 0, fmt.Errorf("page %d: out of range [2, %d)", id, w.hwm)
	}
	h, err := w.read(id*w.ps, boltHeader)
	if err != nil {
		return 0, 0, 0, err
	}
	le := binary.NativeEndian
	if self := le.Uint64(h); self != id {
		return 0, 0, 0, fmt.Errorf("page %d: says it is page %d", id, self)
	}
	overflow := uint64(le.Uint32(h[12:]))
	if id+overflow >= w.hwm {
		return 0, 0, 0, fmt.Errorf("page %d: %d overflow pages run past the high-water mark %d", id, overflow, w.hwm)
	}
	return le.Uint16(h[8:]), le.Uint16(h[10:]), (overflow + 1) * w.ps, nil
}

func (w *treeWalk) freelist(id uint64) error {
	flags, count, span, err := w.header(id)
	if err != nil {
		return fmt.Errorf("freelist: %w", err)
	}
	if flags != boltFreelist {
		return fmt.Errorf("freelist page %d: flags %#x", id, flags)
	}
	n, at := uint64(count), uint64(boltHeader)
	if count == 0xFFFF { // the count is the first id's slot
		b, err := w.read(id*w.ps+boltHeader, 8)
		if err != nil {
			return err
		}
		n, at = binary.NativeEndian.Uint64(b), boltHeader+8
	}
	if n > (span-at)/8 {
		return fmt.Errorf("freelist page %d: %d ids do not fit %d bytes", id, n, span)
	}
	return nil
}

// bucket walks the tree of a bucket whose root is page root (0: inline, checked with its
// parent's element; bbolt's walk skips it), then the buckets its leaves hold.
func (w *treeWalk) bucket(root uint64, depth int) error {
	if root == 0 {
		return nil
	}
	if depth > boltMaxDepth {
		return fmt.Errorf("page %d: buckets nested deeper than %d", root, boltMaxDepth)
	}
	var children []uint64
	if _, err := w.page(root, nil, nil, depth, &children); err != nil {
		return err
	}
	for _, c := range children {
		if err := w.bucket(c, depth+1); err != nil {
			return err
		}
	}
	return nil
}

// page walks page id and the pages below it: in range, referenced once, a branch or a leaf,
// every element's key (and value) inside the page, keys ordered within [minClosed,
// maxOpen) as bbolt orders them; it returns the largest key of the subtree as bbolt's check
// does (nil for an empty leaf) and appends the roots of the buckets its leaves hold.
func (w *treeWalk) page(id uint64, minClosed, maxOpen []byte, depth int, buckets *[]uint64) ([]byte, error) {
	if depth > boltMaxDepth {
		return nil, fmt.Errorf("page %d: deeper than %d", id, boltMaxDepth)
	}
	flags, count, span, err := w.header(id)
	if err != nil {
		return nil, err
	}
	for i := range span / w.ps {
		if w.seen[id+i] {
			return nil, fmt.Errorf("page %d: referenced twice", id+i)
		}
		w.seen[id+i] = true
	}
	if flags != boltBranch && flags != boltLeaf {
		return nil, fmt.Errorf("page %d: flags %#x where a branch or leaf page belongs", id, flags)
	}
	elems := boltHeader + uint64(count)*boltElement
	if elems > span {
		return nil, fmt.Errorf("page %d: %d elements do not fit %d bytes", id, count, span)
	}
	b, err := w.read(id*w.ps, elems)
	if err != nil {
		return nil, err
	}
	where := fmt.Sprintf("page %d", id)
	keys, err := w.keys(b, id*w.ps, span, flags, count, depth, where, buckets)
	if err != nil {
		return nil, err
	}
	if flags == boltLeaf {
		return leafOrder(keys, minClosed, maxOpen, where)
	}
	le := binary.NativeEndian
	var maxKey []byte
	running := minClosed
	for i, k := range keys {
		if err := keyInOrder(i, k, running, maxOpen, where); err != nil {
			return nil, err
		}
		next := maxOpen
		if i < len(keys)-1 {
			next = keys[i+1]
		}
		child := le.Uint64(b[boltHeader+uint64(i)*boltElement+8:])
		if maxKey, err = w.page(child, k, next, depth+1, buckets); err != nil {
			return nil, err
		}
		running = maxKey
	}
	return maxKey, nil
}

// keys checks the bounds of the count elements of the page whose header and elements are
// b (read at off; span bytes in all) and returns their keys. A leaf's buckets: the roots
// go to buckets, inline ones are checked here.
func (w *treeWalk) keys(b []byte, off, span uint64, flags, count uint16, depth int, where string, buckets *[]uint64) ([][]byte, error) {
	le := binary.NativeEndian
	keys := make([][]byte, count)
	for i := range uint64(count) {
		e := boltHeader + i*boltElement
		var pos, ksize, vsize uint64
		var eflags uint32
		if flags == boltBranch {
			pos, ksize = uint64(le.Uint32(b[e:])), uint64(le.Uint32(b[e+4:]))
		} else {
			eflags, pos, ksize, vsize = le.Uint32(b[e:]), uint64(le.Uint32(b[e+4:])), uint64(le.Uint32(b[e+8:])), uint64(le.Uint32(b[e+12:]))
		}
		if e+pos+ksize+vsize > span {
			return nil, fmt.Errorf("%s: element %d's key or value runs past the page", where, i)
		}
		k, err := w.bytesAt(b, off, e+pos, ksize)
		if err != nil {
			return nil, err
		}
		keys[i] = k
		if eflags&boltBucketEntry == 0 {
			continue
		}
		if vsize < boltHeader {
			return nil, fmt.Errorf("%s: element %d: a bucket of %d bytes", where, i, vsize)
		}
		v, err := w.bytesAt(b, off, e+pos+ksize, vsize)
		if err != nil {
			return nil, err
		}
		if root := le.Uint64(v); root != 0 {
			*buckets = append(*buckets, root)
			continue
		}
		if err := w.inline(v[boltHeader:], off+e+pos+ksize+boltHeader, depth+1, fmt.Sprintf("%s element %d's inline bucket", where, i)); err != nil {
			return nil, err
		}
	}
	return keys, nil
}

// bytesAt returns n bytes at offset at of the page read at off: from b when it holds them
// (an inline page), else from the file.
func (w *treeWalk) bytesAt(b []byte, off, at, n uint64) ([]byte, error) {
	if at+n <= uint64(len(b)) {
		return b[at : at+n : at+n], nil
	}
	return w.read(off+at, n)
}

// inline checks an inline bucket's page, all of it in b (read at off), and the buckets
// it holds.
func (w *treeWalk) inline(b []byte, off uint64, depth int, where string) error {
	if depth > boltMaxDepth {
		return fmt.Errorf("%s: deeper than %d", where, boltMaxDepth)
	}
	if len(b) < boltHeader {
		return fmt.Errorf("%s: %d bytes", where, len(b))
	}
	le := binary.NativeEndian
	flags, count := le.Uint16(b[8:]), le.Uint16(b[10:])
	if flags != boltLeaf {
		return fmt.Errorf("%s: flags %#x where a leaf page belongs", where, flags)
	}
	if boltHeader+uint64(count)*boltElement > uint64(len(b)) {
		return fmt.Errorf("%s: %d elements do not fit %d bytes", where, count, len(b))
	}
	var buckets []uint64
	if _, err := w.keys(b, off, uint64(len(b)), flags, count, depth, where, &buckets); err != nil {
		return err
	}
	for _, c := range buckets {
		if err := w.bucket(c, depth+1); err != nil {
			return err
		}
	}
	return nil
}

// leafOrder checks a leaf's keys in bbolt's order and returns the last (nil: none).
func leafOrder(keys [][]byte, minClosed, maxOpen []byte, where string) ([]byte, error) {
	running := minClosed
	for i, k := range keys {
		if err := keyInOrder(i, k, running, maxOpen, where); err != nil {
			return nil, err
		}
		running = k
	}
	if len(keys) == 0 {
		return nil, nil
	}
	return keys[len(keys)-1], nil
}

// keyInOrder is bbolt's verifyKeyOrder: the first key not below the ancestor's, every
// other above the one before, all below the next ancestor key.
func keyInOrder(i int, key, prev, maxOpen []byte, where string) error {
	if (i == 0 && prev != nil && bytes.Compare(prev, key) > 0) || (i > 0 && bytes.Compare(prev, key) >= 0) {
		return fmt.Errorf("%s: key %d (%x) is not above the key before it (%x)", where, i, key, prev)
	}
	if maxOpen != nil && bytes.Compare(key, maxOpen) >= 0 {
		return fmt.Errorf("%s: key %d (%x) is not below the next key of its parent (%x)", where, i, key, maxOpen)
	}
	return nil
}
