// Package boltcheck validates a bbolt file before bbolt maps it, so that a damaged file
// is an error naming the page and the reason, never a crash. The bolt streaming store and
// the raft log (raft-boltdb) both check their files with it.
package boltcheck

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/fnv"
	"io/fs"
	"os"
)

// File validates the structure of the bbolt file at path before bbolt maps it, so that
// a garbled file is a *DamageError (ErrDamaged) naming the page and the reason, never a
// crash.
//
// Why: bbolt trusts its pages. A page id past the end of the file, an element running
// past its page, or a garbled freelist makes it read outside its mmap (a fault the Go
// runtime cannot recover) or panic, sometimes on a goroutine of its own where no
// recover of ours reaches — among them the walk with which bbolt rebuilds a freelist it
// did not sync (NoFreelistSync), whose first finding panics Open while the walk goes on
// over a closed transaction. So before bolt.Open this walks, with bounds-checked Go slices
// over a read-only mapping, everything bbolt will reach from the meta page it is going
// to choose: every branch and leaf page of every bucket (header id, type, element
// bounds, key order within the page and against the parent, each page referenced once),
// inline buckets, and the persisted freelist (ids in range, none reachable, none twice).
// Pages past the high-water mark — an uncommitted transaction's torn tail — are not
// read: they are free space, exactly as bbolt sees them.
//
// Values carry no checksum in a bbolt file; a garbled byte inside a value that leaves the
// page structure intact is not detectable here (the bolt store checksums its records).
//
// A missing or empty file, and a file of only zero bytes too small to have held a commit
// (freshMax: at most the four pages bbolt's creation writes and fsyncs before any commit —
// a creation torn before that fsync), are fresh: the latter is truncated so bbolt
// initialises it. A larger zero-filled file may have held commits and is damage. The check
// holds a shared flock, and skips a file another process holds (bolt.Open then reports
// the lock); it releases it before bolt.Open locks the file.
func File(path string) error {
	_, err := FileWarn(path)
	return err
}

// FileWarn is File, and also returns a warning (or "") when one of the two meta pages is
// invalid while the file is sound. bbolt then silently uses the other, the previous
// commit: if the invalid page held the newer commit — torn by a crash while bbolt wrote
// it, or damaged since — that commit is lost, and nothing in the file tells the two apart.
// The warning says which page and why; the caller logs it naming the file. bbolt's next
// commit overwrites that page, so this is the one chance to say it.
func FileWarn(path string) (warning string, err error) {
	_, warning, err = check(path, true)
	return warning, err
}

// Check validates the file at path as FileWarn does, read-only: it reports a fresh file
// (missing, empty, or zero-filled as a torn creation) as fresh instead of truncating it.
// For offline tools (`starling store verify`).
func Check(path string) (fresh bool, warning string, err error) {
	return check(path, false)
}

func check(path string, fix bool) (fresh bool, warning string, err error) {
	flag := os.O_RDONLY
	if fix {
		flag = os.O_RDWR
	}
	f, err := os.OpenFile(path, flag, 0)
	if errors.Is(err, fs.ErrNotExist) {
		return true, "", nil
	}
	if err != nil {
		return false, "", fmt.Errorf("boltcheck: open %s: %w", path, err)
	}
	defer f.Close()
	if !tryLockShared(f) {
		// Open by another process, which may be writing it: leave the verdict to
		// bolt.Open, which waits for the lock and times out.
		return false, "", nil
	}
	fi, err := f.Stat()
	if err != nil {
		return false, "", fmt.Errorf("boltcheck: open %s: %w", path, err)
	}
	if fi.Size() == 0 {
		return true, "", nil
	}
	if int64(int(fi.Size())) != fi.Size() {
		return false, "", &DamageError{Path: path, Err: fmt.Errorf("file of %d bytes is too large to check", fi.Size())}
	}
	data, unmap, err := mapFile(f, int(fi.Size()))
	if err != nil {
		return false, "", fmt.Errorf("boltcheck: map %s: %w", path, err)
	}
	c := checker{data: data}
	err = c.run()
	unmap()
	if errors.Is(err, errZeroFile) {
		if fresh := freshMax(); fi.Size() > fresh {
			return false, "", &DamageError{Path: path, Err: fmt.Errorf("all %d bytes are zero: more than a creation torn "+
				"before its fsync leaves here (%d bytes), so it may have held commits, and lost them (remove it only if "+
				"no server ever ran on it)", fi.Size(), fresh)}
		}
		if !fix {
			return true, "", nil
		}
		if err := f.Truncate(0); err != nil {
			return false, "", fmt.Errorf("boltcheck: truncate zero-filled %s: %w", path, err)
		}
		return true, "", f.Sync()
	}
	if err != nil {
		return false, "", &DamageError{Path: path, Err: err}
	}
	return false, c.warning, nil
}

// hostPageSize is the page size bbolt creates a file with on this host (its
// DefaultPageSize; no caller sets Options.PageSize). A variable for tests.
var hostPageSize = os.Getpagesize

// committedMin is the least size of a bbolt file that held a commit, whatever its page
// size: bbolt maps at least 32 KiB, and the first commit grows the file to its mapping
// (DB.grow, while the mapping is below AllocSize); a page size of 8 KiB or more makes it
// larger still (TestCommittedFileSize).
const committedMin = 32 << 10

// freshMax is the largest zero-filled file taken for a creation torn before bbolt's
// fsync (fresh). bbolt's creation writes four pages, but a zero-filled file has no page
// size of its own to read: one created on this host has four of the host's pages, one
// created where pages are smaller (4 KiB) and copied here may have held commits from
// 32 KiB on. So the limit is both: four host pages, and below committedMin — on a host
// of 4 KiB pages 16 KiB as before; on one of 64 KiB pages a torn creation over 32 KiB
// is refused (loudly, a rare manual removal) rather than a lost store reinitialised.
func freshMax() int64 { return min(4*int64(hostPageSize()), committedMin-1) }

// ErrDamaged: the file's structure is damaged (errors.Is of a *DamageError).
var ErrDamaged = errors.New("damaged bbolt file")

// DamageError names a damaged file and what is wrong with it.
type DamageError struct {
	Path string
	Err  error // the finding: the page and the reason
}

func (e *DamageError) Error() string        { return e.Path + ": " + e.Err.Error() }
func (e *DamageError) Unwrap() error        { return e.Err }
func (e *DamageError) Is(target error) bool { return target == ErrDamaged }

// Report is what Inspect found: the geometry bbolt will use and which pages are live.
type Report struct {
	PageSize int
	HWM      uint64 // pages in use (the chosen meta page's high-water mark)
	MetaPage int    // the meta page bbolt will use: 0 or 1
	TxID     uint64 // its transaction id
	Root     uint64 // the root bucket's page
	Freelist uint64 // the freelist's page; NoFreelist when the freelist is not synced
	Warning  string // one meta page is invalid (see FileWarn); "" if both are valid
	live     []uint64
}

// Live reports whether page id is reached from the meta page (tree or freelist page).
func (r Report) Live(id uint64) bool {
	return id/64 < uint64(len(r.live)) && r.live[id/64]&(1<<(id%64)) != 0
}

// Inspect checks a whole file's bytes as File does and reports what it found (for tests
// and tools that damage files on purpose).
func Inspect(data []byte) (Report, error) {
	c := checker{data: data}
	err := c.run()
	return Report{PageSize: int(c.psz), HWM: c.hwm, MetaPage: c.mpg, TxID: c.meta.txid, Root: c.meta.root,
		Freelist: c.meta.free, Warning: c.warning, live: c.seen}, err
}

// bbolt's on-disk constants (go.etcd.io/bbolt/internal/common), native byte order.
const (
	boltMagic      = 0xED0CDAED
	boltVersion    = 2
	pageHeader     = 16 // id u64, flags u16, count u16, overflow u32
	elemSize       = 16 // branch: pos u32, ksize u32, pgid u64; leaf: flags u32, pos u32, ksize u32, vsize u32
	metaSize       = 64
	bucketHeader   = 16 // root pgid u64, sequence u64
	flagBranch     = 0x01
	flagLeaf       = 0x02
	flagFreelist   = 0x10
	flagBucketLeaf = 0x01
)

// NoFreelist is a meta page's freelist page when the freelist is not synced.
const NoFreelist = ^uint64(0)

var errZeroFile = errors.New("zero-filled file")

var ne = binary.NativeEndian

type boltMeta struct {
	pageSize        uint32
	root, free, hwm uint64
	txid            uint64
	valid           bool
	why             string
}

type checker struct {
	data []byte
	psz  uint64
	hwm  uint64
	seen []uint64 // bitmap: page reached (tree or freelist page)
	free []uint64 // bitmap: page listed in the freelist
	meta boltMeta // the meta bbolt will use
	mpg  int      // its page: 0 or 1

	warning string // the other meta page is invalid (FileWarn)
}

// readMeta decodes and validates the meta page at file offset off (as bbolt's
// Meta.Validate: magic, version, FNV-64a checksum).
func (c *checker) readMeta(off int) boltMeta {
	var m boltMeta
	b := c.data[min(off+pageHeader, len(c.data)):]
	if len(b) < metaSize {
		m.why = "past the end of the file"
		return m
	}
	h := fnv.New64a()
	_, _ = h.Write(b[:56])
	switch {
	case ne.Uint32(b[0:]) != boltMagic:
		m.why = "bad magic"
	case ne.Uint32(b[4:]) != boltVersion:
		m.why = fmt.Sprintf("version %d", ne.Uint32(b[4:]))
	case ne.Uint64(b[56:]) != h.Sum64():
		m.why = "bad checksum"
	default:
		m.valid = true
	}
	m.pageSize = ne.Uint32(b[8:])
	m.root = ne.Uint64(b[16:])
	m.free = ne.Uint64(b[32:])
	m.hwm = ne.Uint64(b[40:])
	m.txid = ne.Uint64(b[48:])
	return m
}

func (c *checker) run() error {
	size := len(c.data)
	// The page size, found as bbolt's getPageSize does: meta 0, else a meta 1 at
	// 1 KiB << i.
	var psz uint32
	if size >= 0x1000 {
		if m := c.readMeta(0); m.valid {
			psz = m.pageSize
		}
	}
	for i := 0; psz == 0 && i <= 14; i++ {
		pos := 1024 << i
		if pos >= size-1024 {
			break
		}
		if m := c.readMeta(pos); m.valid {
			psz = m.pageSize
		}
	}
	if psz == 0 {
		if !bytes.ContainsFunc(c.data, func(r rune) bool { return r != 0 }) {
			return errZeroFile
		}
		return errors.New("no valid meta page")
	}
	if psz < 1024 || psz > 1<<24 {
		return fmt.Errorf("meta page gives a page size of %d", psz)
	}
	c.psz = uint64(psz)
	if uint64(size) < 2*c.psz {
		return fmt.Errorf("file of %d bytes is shorter than its two meta pages of %d", size, psz)
	}
	// The meta bbolt will use: the higher txid of the valid ones (meta 0 on a tie).
	m0, m1 := c.readMeta(0), c.readMeta(int(c.psz))
	m := m0
	if !m0.valid || (m1.valid && m1.txid > m0.txid) {
		m, c.mpg = m1, 1
	}
	c.meta = m
	if !m.valid {
		return fmt.Errorf("both meta pages are invalid (%s; %s)", m0.why, m1.why)
	}
	if bad := &m1; !m0.valid || !m1.valid {
		if !m0.valid {
			bad = &m0
		}
		c.warning = metaWarning(1-c.mpg, bad, &m)
	}
	switch {
	case m.pageSize != psz:
		return fmt.Errorf("meta of txid %d: page size %d, not %d", m.txid, m.pageSize, psz)
	case m.hwm < 3:
		return fmt.Errorf("meta of txid %d: high-water mark %d", m.txid, m.hwm)
	case m.hwm > uint64(size)/c.psz: // bbolt grows the file before it commits
		return fmt.Errorf("meta of txid %d: high-water mark %d is past the end of the file (%d pages): truncated", m.txid, m.hwm, uint64(size)/c.psz)
	case m.root < 2 || m.root >= m.hwm:
		return fmt.Errorf("meta of txid %d: root page %d outside 2..%d", m.txid, m.root, m.hwm-1)
	case m.free != NoFreelist && (m.free < 2 || m.free >= m.hwm):
		return fmt.Errorf("meta of txid %d: freelist page %d outside 2..%d", m.txid, m.free, m.hwm-1)
	}
	c.hwm = m.hwm
	c.seen = make([]uint64, (m.hwm+63)/64)
	if err := c.tree(m.root, nil, nil); err != nil {
		return fmt.Errorf("meta of txid %d: %w", m.txid, err)
	}
	if m.free != NoFreelist {
		if err := c.freelist(m.free); err != nil {
			return fmt.Errorf("meta of txid %d: %w", m.txid, err)
		}
	}
	return nil
}

// metaWarning describes invalid meta page page (bad) beside the valid one bbolt uses (m).
func metaWarning(page int, bad, m *boltMeta) string {
	// The txid field may be intact (a flip elsewhere in the page): a hint, not proof.
	hint := ""
	switch bad.txid {
	case m.txid + 1:
		hint = fmt.Sprintf("; it reads txid %d, so it most likely held the newer commit", bad.txid)
	case m.txid - 1:
		hint = fmt.Sprintf("; it reads txid %d, so it most likely held the older commit, and nothing is lost", bad.txid)
	}
	return fmt.Sprintf("meta page %d is invalid (%s%s): bbolt uses meta page %d, of transaction %d — if the invalid "+
		"page held the newer commit (%d), that commit is lost: torn by a crash while bbolt wrote it (then never "+
		"acknowledged), or damaged on disk since", page, bad.why, hint, 1-page, m.txid, m.txid+1)
}

func mark(set []uint64, id uint64) (was bool) {
	was = set[id/64]&(1<<(id%64)) != 0
	set[id/64] |= 1 << (id % 64)
	return was
}

// page returns the bytes of page id with its overflow pages, after checking that they
// lie below the high-water mark and inside the file, that the header names id, and
// that no other reference reached them before.
func (c *checker) page(id uint64) (p []byte, flags, count uint16, err error) {
	if id < 2 || id >= c.hwm {
		return nil, 0, 0, fmt.Errorf("page %d: outside 2..%d", id, c.hwm-1)
	}
	off := id * c.psz
	if off+pageHeader > uint64(len(c.data)) {
		return nil, 0, 0, fmt.Errorf("page %d: past the end of the file (%d bytes)", id, len(c.data))
	}
	h := c.data[off:]
	if got := ne.Uint64(h); got != id {
		return nil, 0, 0, fmt.Errorf("page %d: header names page %d", id, got)
	}
	flags, count = ne.Uint16(h[8:]), ne.Uint16(h[10:])
	over := uint64(ne.Uint32(h[12:]))
	if id+over >= c.hwm {
		return nil, 0, 0, fmt.Errorf("page %d: %d overflow pages run past the high-water mark %d", id, over, c.hwm)
	}
	end := off + (over+1)*c.psz
	if end > uint64(len(c.data)) {
		return nil, 0, 0, fmt.Errorf("page %d: %d overflow pages run past the end of the file", id, over)
	}
	for i := id; i <= id+over; i++ {
		if mark(c.seen, i) {
			return nil, 0, 0, fmt.Errorf("page %d: reached twice", i)
		}
	}
	return c.data[off:end], flags, count, nil
}

// tree checks the B+tree under page id, whose keys must lie in [lo, hi) (nil: open).
func (c *checker) tree(id uint64, lo, hi []byte) error {
	p, flags, count, err := c.page(id)
	if err != nil {
		return err
	}
	switch flags {
	case flagBranch:
		if count == 0 {
			return fmt.Errorf("page %d: empty branch", id)
		}
		keys, children, err := branchElems(p, int(count))
		if err != nil {
			return fmt.Errorf("page %d: %w", id, err)
		}
		if err := checkOrder(keys, lo, hi); err != nil {
			return fmt.Errorf("page %d: %w", id, err)
		}
		for i, child := range children {
			chi := hi
			if i+1 < len(keys) {
				chi = keys[i+1]
			}
			if err := c.tree(child, keys[i], chi); err != nil {
				return err
			}
		}
		return nil
	case flagLeaf:
		if err := c.leaf(p, int(count), lo, hi); err != nil {
			return fmt.Errorf("page %d: %w", id, err)
		}
		return nil
	}
	return fmt.Errorf("page %d: type %#x is neither branch nor leaf", id, flags)
}

// leaf checks a leaf page (or an inline bucket's page) p and the buckets it holds.
func (c *checker) leaf(p []byte, count int, lo, hi []byte) error {
	if pageHeader+count*elemSize > len(p) {
		return fmt.Errorf("%d elements do not fit in %d bytes", count, len(p))
	}
	var prev []byte
	for i := range count {
		e := pageHeader + i*elemSize
		flags := ne.Uint32(p[e:])
		pos, ks, vs := uint64(ne.Uint32(p[e+4:])), uint64(ne.Uint32(p[e+8:])), uint64(ne.Uint32(p[e+12:]))
		k0 := uint64(e) + pos
		if k0+ks+vs > uint64(len(p)) {
			return fmt.Errorf("element %d of %d runs past the page", i, count)
		}
		key, val := p[k0:k0+ks], p[k0+ks:k0+ks+vs]
		if err := keyInRange(i, key, prev, lo, hi); err != nil {
			return err
		}
		prev = key
		if flags&flagBucketLeaf == 0 {
			continue
		}
		if len(val) < bucketHeader {
			return fmt.Errorf("bucket %q: header of %d bytes", key, len(val))
		}
		if root := ne.Uint64(val); root != 0 {
			if err := c.tree(root, nil, nil); err != nil {
				return fmt.Errorf("bucket %q: %w", key, err)
			}
			continue
		}
		in := val[bucketHeader:]
		if len(in) < pageHeader || ne.Uint16(in[8:]) != flagLeaf {
			return fmt.Errorf("bucket %q: inline page is not a leaf", key)
		}
		if err := c.leaf(in, int(ne.Uint16(in[10:])), nil, nil); err != nil {
			return fmt.Errorf("bucket %q (inline): %w", key, err)
		}
	}
	return nil
}

// branchElems returns the keys and child page ids of a branch page.
func branchElems(p []byte, count int) (keys [][]byte, children []uint64, err error) {
	if pageHeader+count*elemSize > len(p) {
		return nil, nil, fmt.Errorf("%d elements do not fit in %d bytes", count, len(p))
	}
	keys, children = make([][]byte, count), make([]uint64, count)
	for i := range count {
		e := pageHeader + i*elemSize
		pos, ks := uint64(ne.Uint32(p[e:])), uint64(ne.Uint32(p[e+4:]))
		k0 := uint64(e) + pos
		if k0+ks > uint64(len(p)) {
			return nil, nil, fmt.Errorf("element %d of %d runs past the page", i, count)
		}
		keys[i], children[i] = p[k0:k0+ks], ne.Uint64(p[e+8:])
	}
	return keys, children, nil
}

// checkOrder: keys strictly increasing, within [lo, hi).
func checkOrder(keys [][]byte, lo, hi []byte) error {
	for i, k := range keys {
		var prev []byte
		if i > 0 {
			prev = keys[i-1]
		}
		if err := keyInRange(i, k, prev, lo, hi); err != nil {
			return err
		}
	}
	return nil
}

// keyInRange is bbolt's Check key-order rule for element i: above the previous key,
// at or above the parent's key lo, below the parent's next key hi.
func keyInRange(i int, key, prev, lo, hi []byte) error {
	switch {
	case i == 0 && lo != nil && bytes.Compare(key, lo) < 0:
		return fmt.Errorf("key %d (%x) below its parent's key %x", i, key, lo)
	case i > 0 && bytes.Compare(prev, key) >= 0:
		return fmt.Errorf("key %d (%x) not above the previous key %x", i, key, prev)
	case hi != nil && bytes.Compare(key, hi) >= 0:
		return fmt.Errorf("key %d (%x) not below its parent's next key %x", i, key, hi)
	}
	return nil
}

// freelist checks the persisted freelist page: every id in range, none reached from
// the tree, none listed twice.
func (c *checker) freelist(id uint64) error {
	p, flags, count, err := c.page(id)
	if err != nil {
		return fmt.Errorf("freelist: %w", err)
	}
	if flags != flagFreelist {
		return fmt.Errorf("freelist: page %d: type %#x", id, flags)
	}
	start, n := uint64(pageHeader), uint64(count)
	if count == 0xFFFF {
		if len(p) < pageHeader+8 {
			return fmt.Errorf("freelist: page %d: no count", id)
		}
		start, n = pageHeader+8, ne.Uint64(p[pageHeader:])
	}
	if n > (uint64(len(p))-start)/8 {
		return fmt.Errorf("freelist: page %d: %d ids do not fit in %d bytes", id, n, len(p))
	}
	c.free = make([]uint64, len(c.seen))
	for i := range n {
		f := ne.Uint64(p[start+8*i:])
		switch {
		case f < 2 || f >= c.hwm:
			return fmt.Errorf("freelist: page %d: free page %d outside 2..%d", id, f, c.hwm-1)
		case c.seen[f/64]&(1<<(f%64)) != 0:
			return fmt.Errorf("freelist: page %d: page %d is both free and in use", id, f)
		case mark(c.free, f):
			return fmt.Errorf("freelist: page %d: page %d listed twice", id, f)
		}
	}
	return nil
}
