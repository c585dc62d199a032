package filestore

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"

	"github.com/starling-io/starling/stores"
	"github.com/starling-io/starling/stores/chunked"
)

const (
	hdrSize     = 32
	idxSize     = 24
	flagMarker  = 1 // seq: the channel's First, time: its Last
	flagSync    = 2 // version 2 sync mark: seq: bytes of the file an fsync covered, time: the file's nonce
	flagJournal = 4 // version 3 journal record: seq: LSN, time: 0 (records) or 1 (snapshot), body: subscription records
)

// maxSegFile bounds a segment file (message offsets are u32): journal records may take it
// past SegmentBytes, which counts the messages only.
const maxSegFile = 3 << 30

// msgStore is one channel's messages in segment files. Its many methods (STYLE.md asks a
// reason past ~40) are the steps of one segment log — open and recover, append, flush and
// sync, load, limits, roll back, verify — over the same segments, index and locks; split
// into types, each would reach into the others' state under the same mutex.
type msgStore struct {
	mu sync.RWMutex // guards everything below; leaf lock

	dir      string
	name     string
	base     uint64 // Last of a deleted predecessor (from meta.log): recovery's floor
	overhead uint64
	limits   stores.Limits
	opts     *Options
	fds      *fdCache

	segs []*segment

	first, last uint64
	msgs, bytes uint64
	markFirst   uint64 // First as of the last marker written

	closed, deleted bool
	noPrealloc      bool // the file system refused a preallocation (prealloc.go): tails grow as written
	// failed: a write or fsync failed. Every later write and sync returns it, so nothing
	// appended after the failure is reported durable, until Rollback rebuilds the channel
	// from what is on disk (the in-memory state may be ahead of it meanwhile).
	failed error
	// fenced: a failed deletion may have left meta.log not naming the channel; set and
	// cleared by the Store (channels.go). Rollback does not clear it: it calls recommit,
	// the Store's commit of meta.log, whose success does.
	fenced   error
	recommit func() error
	epoch    uint64 // bumped by Rollback: a SyncFlushed that started before it reports nothing
	hdr      [hdrSize]byte

	fp         flushPoint // the last Flush: what SyncFlushed makes durable
	syncedLast uint64     // Last as of the last successful Sync or SyncFlushed: Rollback's cut
	// First as of the marker the last successful sync covered: segments are deleted only
	// once their removal is durable, or a power cut could take messages still in the
	// durable window.
	syncedFirst uint64
	// dirGen counts the tails created in dir (newSegment), dirSynced how many of them a
	// directory fsync covered: the entry of a new tail is made durable by the next sync of
	// the channel, or by its seal, not by its creation (on the writer's goroutine).
	dirGen, dirSynced uint64

	// The subscription journal (journal.go): each Flush of the channel's subStore writes its
	// records into the tail, so that one fsync of the tail covers messages and
	// subscriptions. The records with an LSN past what subs.log holds durably are live: they
	// are carried into the next tail whenever the tail changes.
	subs       *subStore // the channel's subscriptions: Rollback commits them first
	jlive      []jext    // the tail's live journal records, in order
	jliveBytes int64
	jdurable   uint64 // the LSN subs.log holds durably, as the subStore last said
	jbuf       []byte // scratch: snapshot bodies, carried records
	collect    bool   // opening: the tail's scan keeps its journal records in recovered
	recovered  []jrec

	ra readAhead // sequential Loads (a subscriber replaying) read blocks, not records

	doomed []string // files of dropped segments, deleted once mu is released (unlock)

	// cleanSize: opening after a clean close, the bytes of the tail that Close had fsynced
	// (meta.log's T record): a tail whose intact records end before is damage, not torn.
	cleanSize int64
	// closedTail: set by a Close whose fsync covered the tail, for meta.log's T record.
	closedTail tailAt
}

// tailAt is what a clean Close left of a channel's tail (meta.log's T record): the tail
// segment's first sequence, the bytes of it Close's fsync covered, and the channel's Last.
type tailAt struct {
	first, size, last uint64
}

// openMsgStore recovers the channel kept in dir; base is the Last recorded in the metadata
// (the last sequence of a deleted predecessor).
// With collect, the journal records of the tail are kept in ms.recovered for the subStore.
// With clean (opening after a clean close that fsynced the tail), a tail segment other
// than clean's, or shorter than it, is damage.
func openMsgStore(dir, name string, base uint64, limits stores.Limits, opts *Options, fds *fdCache, collect bool, clean *tailAt) (*msgStore, error) {
	ms := &msgStore{dir: dir, name: name, base: base, overhead: uint64(len(name) + stores.MsgOverhead), limits: limits, opts: opts, fds: fds, collect: collect}
	if err := removeTmpSegs(dir, opts); err != nil {
		return nil, err
	}
	names, err := filepath.Glob(filepath.Join(dir, "*.seg"))
	if err != nil {
		return nil, err
	}
	sort.Strings(names)
	if clean != nil {
		if err := ms.checkCleanTail(names, clean); err != nil {
			return nil, err
		}
	}
	markFirst, markLast, err := ms.openSegments(names)
	if err != nil {
		ms.abandon()
		return nil, err
	}
	if markFirst == 0 {
		markFirst, markLast = ms.sealedMarker()
	}
	ms.setBounds(markFirst, markLast)
	ms.dropBeforeFirst()
	if err := ms.checkContiguous(); err != nil {
		ms.abandon() // after the check: it empties segs
		return nil, err
	}
	ms.countMsgs()
	ms.markFirst = markFirst
	if n := len(ms.segs); n > 0 && ms.segs[n-1].markEnd == 0 {
		ms.markFirst = 0 // the tail lost its marker: the next flush writes one
	}
	ms.syncedLast, ms.syncedFirst = ms.last, ms.first
	deleteFiles(ms.doomed, ms.opts) // the segments recovery dropped (nobody else holds ms yet)
	ms.doomed = nil
	return ms, nil
}

// removeTmpSegs removes the *.seg.tmp files in dir. A tail being created with the journal
// records it carries (journal.go) is renamed into place once synced: one left over was
// never the tail.
func removeTmpSegs(dir string, opts *Options) error {
	tmps, err := filepath.Glob(filepath.Join(dir, "*.seg.tmp"))
	if err != nil {
		return err
	}
	for _, t := range tmps {
		if err := removeFile(t, opts); err != nil {
			return err
		}
	}
	return nil
}

// checkCleanTail checks that the tail segment among names (sorted) is the one the clean
// close fsynced, and keeps the bytes it fsynced of it in ms.cleanSize.
func (ms *msgStore) checkCleanTail(names []string, clean *tailAt) error {
	tail := ""
	for _, n := range names {
		var first uint64
		if _, err := fmt.Sscanf(filepath.Base(n), "%020d.seg", &first); err == nil {
			tail = n
		}
	}
	if want := segPath(ms.dir, clean.first) + ".seg"; tail != want {
		return &DamageError{Channel: ms.name, File: want, Reason: fmt.Sprintf(
			"tail segment missing: the clean shutdown left it holding %d synced bytes (Last %d)", clean.size, clean.last)}
	}
	ms.cleanSize = int64(clean.size)
	return nil
}

// openSegments opens the segments names (sorted; the last is the tail) into ms.segs and
// returns the last marker found. On error the caller abandons ms.
func (ms *msgStore) openSegments(names []string) (uint64, uint64, error) {
	markFirst, markLast := uint64(0), uint64(0)
	for i, n := range names {
		var first uint64
		if _, err := fmt.Sscanf(filepath.Base(n), "%020d.seg", &first); err != nil {
			continue
		}
		seg, mf, ml, err := ms.openSegment(strings.TrimSuffix(n, ".seg"), first, i == len(names)-1)
		if err != nil {
			var de *DamageError
			if errors.As(err, &de) {
				de.Channel = ms.name
				return 0, 0, de
			}
			return 0, 0, fmt.Errorf("filestore: channel %q: %w", ms.name, err)
		}
		if mf != 0 {
			markFirst, markLast = mf, ml
			if seg.w != nil { // the tail: what Open found counts as synced
				seg.markEnd = seg.synced
			}
		}
		ms.segs = append(ms.segs, seg)
	}
	return markFirst, markLast, nil
}

// sealedMarker returns the latest marker of the sealed segments. The tail lost its marker
// (a crash right after a roll): the latest one is in an earlier segment, which was loaded
// from its index.
func (ms *msgStore) sealedMarker() (markFirst, markLast uint64) {
	for i := len(ms.segs) - 2; i >= 0 && markFirst == 0; i-- {
		seg := ms.segs[i]
		f, err := os.Open(seg.base + ".seg")
		if err != nil {
			continue
		}
		saved := seg.ents
		seg.ents, seg.f = chunked.Seq[entry]{}, f
		_, markFirst, markLast, _, _ = seg.scan(seg.size, nil)
		seg.ents, seg.f = saved, nil
		f.Close()
	}
	return markFirst, markLast
}

// setBounds sets First and Last from the latest marker, the floor ms.base and the records
// the segments hold.
func (ms *msgStore) setBounds(markFirst, markLast uint64) {
	last := max(ms.base, markLast)
	for i := len(ms.segs) - 1; i >= 0; i-- {
		if t := ms.segs[i]; t.ents.Len() > 0 {
			last = max(last, t.first+uint64(t.ents.Len())-1)
			break
		}
	}
	first := markFirst
	if len(ms.segs) > 0 {
		first = max(first, ms.segs[0].first)
	}
	ms.last = last
	ms.first = max(first, 1)
}

// dropBeforeFirst drops sealed segments wholly before First. The last one stays while the
// tail has no marker (it states Last) and continues into it: one a gap separates from it
// (left by an earlier build) would only be found a gap.
func (ms *msgStore) dropBeforeFirst() {
	for len(ms.segs) > 1 {
		p, next := ms.segs[0], ms.segs[1]
		end := p.first + uint64(p.ents.Len())
		if end > ms.first || !next.anchored() && end == next.first {
			break
		}
		ms.dropSegment()
	}
}

// checkContiguous checks that each segment continues the one before it.
func (ms *msgStore) checkContiguous() error {
	for i := 1; i < len(ms.segs); i++ {
		p := ms.segs[i-1]
		if p.first+uint64(p.ents.Len()) != ms.segs[i].first {
			return &DamageError{Channel: ms.name, File: ms.segs[i].base + ".seg", Offset: 0,
				Reason: fmt.Sprintf("gap: the previous segment ends at sequence %d, this one starts at %d", p.first+uint64(p.ents.Len())-1, ms.segs[i].first)}
		}
	}
	return nil
}

// countMsgs moves First to the first segment's if it is before it, and counts the
// messages and bytes from First to Last.
func (ms *msgStore) countMsgs() {
	if len(ms.segs) > 0 && ms.first < ms.segs[0].first {
		ms.first = ms.segs[0].first
	}
	if ms.first > ms.last {
		ms.first = ms.last + 1
	}
	for seq := ms.first; seq <= ms.last; {
		seg := ms.find(seq)
		if seg == nil {
			ms.first = ms.last + 1 // the tail was cut: only markers survive
			ms.msgs, ms.bytes = 0, 0
			break
		}
		for i := seq - seg.first; i < uint64(seg.ents.Len()); i++ {
			ms.msgs++
			ms.bytes += ms.overhead + uint64(seg.ents.At(int(i)).blen)
		}
		seq = seg.first + uint64(seg.ents.Len())
	}
}

// fail makes the channel failed with err (see msgStore.failed) and returns the error.
// Caller holds mu.
func (ms *msgStore) fail(err error) error {
	if ms.failed == nil {
		ms.failed = fmt.Errorf("filestore: channel %q: %w", ms.name, err)
	}
	return ms.failed
}

func (ms *msgStore) usable() error {
	switch {
	case ms.deleted:
		return stores.ErrChannelDeleted
	case ms.closed:
		return stores.ErrClosed
	case ms.fenced != nil:
		return ms.fenced
	case ms.failed != nil:
		return ms.failed
	}
	return nil
}

// Append implements stores.MsgStore.
func (ms *msgStore) Append(batch []stores.Msg) error {
	ms.mu.Lock()
	defer ms.unlock()
	if err := ms.usable(); err != nil {
		return err
	}
	if len(batch) == 0 {
		return nil
	}
	if err := ms.check(batch); err != nil {
		return err
	}
	rolled := false
	if ms.msgs == 0 {
		// An empty channel may resume after a gap: start a new segment at the batch.
		if n := len(ms.segs); n == 0 || ms.segs[n-1].first+uint64(ms.segs[n-1].ents.Len()) != batch[0].Seq {
			rolled = true
			// The tail rolls first to a synced new tail (carrying any live journal records,
			// journal.go), and the old segments go once its marker is durable: dropped
			// before, a crash would lose the Last they hold. A crash in between leaves old
			// segments wholly before the First of the new tail's marker, which recovery drops.
			ms.first = batch[0].Seq
			if err := ms.newSegment(batch[0].Seq); err != nil {
				return ms.fail(err)
			}
			late := false
			for len(ms.segs) > 1 {
				if ms.segs[0].first < batch[0].Seq {
					ms.dropSegment()
					continue
				}
				// An old tail that started past the batch (a resume whose messages a crash
				// lost) sorts after the new tail: left behind by a crash, it would be taken
				// for the tail and the new one, torn, for a damaged sealed segment. It holds
				// no message: deleted now, before any is written.
				seg := ms.segs[0]
				ms.dropSegment()
				ms.doomed = ms.doomed[:len(ms.doomed)-2]
				for _, p := range []string{seg.base + ".seg", seg.base + ".idx"} {
					if err := removeFile(p, ms.opts); err != nil {
						return ms.fail(err)
					}
				}
				late = true
			}
			if late {
				if err := syncDir(ms.dir, ms.opts); err != nil {
					return ms.fail(err)
				}
			}
		}
	}
	if ms.first != ms.markFirst && !rolled {
		// Removals since the last marker (an expiry pass, limits) go into the tail ahead of
		// the records that follow them, not at the next flush behind records the buffered
		// writer may have spilled already: a store that recovers a message recovers every
		// removal made before it was appended. A replica replaying its raft log relies on
		// it (streaming: an expiry pass is skipped on a store holding later messages).
		if err := ms.writeMarker(ms.segs[len(ms.segs)-1]); err != nil {
			return ms.fail(err)
		}
	}
	for i := range batch {
		if err := ms.write(&batch[i]); err != nil {
			return ms.fail(err) // Rollback (or a reopen) recovers what is on disk
		}
	}
	if ms.msgs == 0 {
		ms.first = batch[0].Seq
	}
	ms.last = batch[len(batch)-1].Seq
	ms.msgs += uint64(len(batch))
	ms.enforce()
	ms.dropOld()
	ms.writeBehind()
	return nil
}

func (ms *msgStore) check(batch []stores.Msg) error {
	seq := batch[0].Seq
	if ms.msgs > 0 {
		if seq != ms.last+1 {
			return stores.ErrBadSequence
		}
		if batch[0].Time < ms.timeOf(ms.last) {
			return stores.ErrBadTime
		}
	} else if seq <= ms.last {
		return stores.ErrBadSequence
	}
	for i := 1; i < len(batch); i++ {
		if batch[i].Seq != seq+uint64(i) {
			return stores.ErrBadSequence
		}
		if batch[i].Time < batch[i-1].Time {
			return stores.ErrBadTime
		}
	}
	return nil
}

// write appends one record to the tail, rolling to a new segment when it is full.
func (ms *msgStore) write(m *stores.Msg) error {
	blen := len(m.Reply) + len(m.Data)
	seg := ms.segs[len(ms.segs)-1]
	if seg.ents.Len() > 0 && ms.full(seg, blen, m.Time) {
		if err := ms.newSegment(m.Seq); err != nil {
			return err
		}
		seg = ms.segs[len(ms.segs)-1]
	}
	h := &ms.hdr
	binary.LittleEndian.PutUint32(h[0:], uint32(blen))
	binary.LittleEndian.PutUint64(h[8:], m.Seq)
	binary.LittleEndian.PutUint64(h[16:], uint64(m.Time))
	binary.LittleEndian.PutUint32(h[24:], 0)
	binary.LittleEndian.PutUint32(h[28:], uint32(len(m.Reply)))
	crc := crc32.Checksum(h[8:], crcTable)
	crc = crc32.Update(crc, crcTable, []byte(m.Reply)) // no copy: converted for reading only
	crc = crc32.Update(crc, crcTable, m.Data)
	binary.LittleEndian.PutUint32(h[4:], crc)
	// A bufio.Writer keeps its first error: checking the last write catches one in any.
	seg.w.Write(h[:])
	seg.w.WriteString(m.Reply)
	if _, err := seg.w.Write(m.Data); err != nil {
		return err
	}
	e := entry{time: m.Time, off: uint32(seg.size), blen: uint32(blen), rlen: uint32(len(m.Reply))}
	seg.size += hdrSize + int64(blen)
	seg.ents.Add(e)
	ms.bytes += ms.overhead + uint64(blen)
	return nil
}

// full reports whether the tail seg (holding messages) must roll before a record of
// blen bytes written at time t: SegmentBytes (journal records not counted: they are
// bounded on their own, and carried whole into the next tail), SegmentMsgs, SegmentAge.
func (ms *msgStore) full(seg *segment, blen int, t int64) bool {
	o := ms.opts
	return seg.size-seg.jbytes+hdrSize+int64(blen) > o.SegmentBytes || seg.size+hdrSize+int64(blen) > maxSegFile ||
		(o.SegmentMsgs > 0 && seg.ents.Len() >= o.SegmentMsgs) ||
		(o.SegmentAge > 0 && t-seg.ents.At(0).time >= int64(o.SegmentAge))
}

// find returns the segment holding seq, or nil. Caller holds mu.
func (ms *msgStore) find(seq uint64) *segment {
	n := len(ms.segs)
	if n == 0 {
		return nil
	}
	i := n - 1
	if seq < ms.segs[i].first {
		i = sort.Search(n, func(i int) bool { return ms.segs[i].first > seq }) - 1
		if i < 0 {
			return nil
		}
	}
	seg := ms.segs[i]
	if seq-seg.first >= uint64(seg.ents.Len()) {
		return nil
	}
	return seg
}

func (ms *msgStore) timeOf(seq uint64) int64 {
	seg := ms.find(seq)
	return seg.ents.At(int(seq - seg.first)).time
}

func (ms *msgStore) enforce() (removed int) {
	for ms.msgs > 1 && ms.limits.Exceeded(ms.msgs, ms.bytes) {
		ms.removeFirst()
		removed++
	}
	return removed
}

func (ms *msgStore) removeFirst() {
	seg := ms.find(ms.first)
	ms.bytes -= ms.overhead + uint64(seg.ents.At(int(ms.first-seg.first)).blen)
	ms.msgs--
	ms.first++
}

// dropOld deletes sealed segments whose messages have all been removed, once a marker
// stating a First past them is durable. Until then they stay (Load and SeqAtTime skip what
// is before First), so that a power cut that loses the appends which moved First finds the
// messages that were still in the channel as of the last sync.
func (ms *msgStore) dropOld() {
	for len(ms.segs) > 1 && ms.segs[0].first+uint64(ms.segs[0].ents.Len()) <= min(ms.first, ms.syncedFirst) && ms.segs[1].anchored() {
		ms.dropSegment()
	}
}

// dropSegment closes segs[0] and dooms its files: unlock deletes them.
func (ms *msgStore) dropSegment() {
	seg := ms.segs[0]
	ms.ra.forget(seg)
	ms.closeSegment(seg)
	ms.doomed = append(ms.doomed, seg.base+".seg", seg.base+".idx")
	ms.segs[0] = nil
	ms.segs = ms.segs[1:]
}

// unlock releases mu, then deletes the files of the segments dropped under it. Unlinking a
// 64 MiB segment whose pages are still being written back took seconds on a busy disk
// (three nodes' bulk replication on one disk), and under mu it held up State, Load and so
// monitoring for as long. A failure, or a crash before it, leaves the files for the next
// open, which drops them, as it always did.
func (ms *msgStore) unlock() {
	doomed := ms.doomed
	ms.doomed = nil
	ms.mu.Unlock()
	deleteFiles(doomed, ms.opts)
}

// deleteFiles removes the files of dropped segments; a failure leaves them for the next open.
func deleteFiles(paths []string, opts *Options) {
	for _, p := range paths {
		removeFile(p, opts)
	}
}

// closeSegment closes a segment's handle. Caller holds mu (no reader uses it).
func (ms *msgStore) closeSegment(seg *segment) {
	if seg.w == nil {
		ms.fds.forget(seg)
		return
	}
	seg.f.Close()
	seg.f, seg.w = nil, nil
}

// SeqAtTime implements stores.MsgStore by binary search over segments, then entries.
func (ms *msgStore) SeqAtTime(ns int64) uint64 {
	ms.mu.RLock()
	defer ms.mu.RUnlock()
	if ms.msgs == 0 {
		return ms.last + 1
	}
	start := 0
	for start < len(ms.segs) && ms.segs[start].first+uint64(ms.segs[start].ents.Len()) <= ms.first {
		start++
	}
	segs := ms.segs[start:]
	si := sort.Search(len(segs), func(i int) bool {
		// Only the tail may hold no message (a fresh one): it holds none before ns.
		ents := &segs[i].ents
		return ents.Len() == 0 || ents.Last().time >= ns
	})
	if si == len(segs) {
		return ms.last + 1
	}
	seg := segs[si]
	lo := 0
	if seg.first < ms.first {
		lo = int(ms.first - seg.first)
	}
	j := seg.ents.Search(lo, func(e *entry) bool { return e.time >= ns })
	return seg.first + uint64(j)
}

// State implements stores.MsgStore.
func (ms *msgStore) State() stores.ChannelState {
	ms.mu.RLock()
	defer ms.mu.RUnlock()
	return stores.ChannelState{First: ms.first, Last: ms.last, Msgs: ms.msgs, Bytes: ms.bytes}
}

// SetLimits implements stores.MsgStore.
func (ms *msgStore) SetLimits(l stores.Limits) {
	ms.mu.Lock()
	ms.limits = l
	ms.unlock()
}

// Expire implements stores.MsgStore.
func (ms *msgStore) Expire(now int64) (removed int, next int64) {
	ms.mu.Lock()
	defer ms.unlock()
	if ms.usable() != nil {
		return 0, 0
	}
	defer ms.dropOld()
	removed = ms.enforce()
	for ms.msgs > 0 {
		t := ms.timeOf(ms.first)
		if !ms.limits.Expired(t, now) {
			return removed, ms.limits.ExpiresAt(t)
		}
		ms.removeFirst()
		removed++
	}
	return removed, 0
}

// Close implements stores.MsgStore: it syncs and closes the files.
func (ms *msgStore) Close() error {
	ms.mu.Lock()
	defer ms.unlock()
	if ms.closed || ms.deleted {
		return nil
	}
	err := ms.failed // what a failed channel holds past its last sync is not to be synced
	if err == nil {
		err = ms.sync()
	}
	if n := len(ms.segs); err == nil && n > 0 {
		// A last sync mark (not fsynced) proves the whole tail synced to the next open.
		if seg := ms.segs[n-1]; seg.w != nil && seg.hdr.version >= 2 && seg.proof > seg.marked {
			if ms.writeSyncMark(seg) == nil {
				ms.flush(seg)
			}
		}
		if seg := ms.segs[n-1]; seg.w != nil && seg.proof > 0 {
			// Every record of the tail is fsynced (not with NoSync: proof stays 0): the
			// Store states it in meta.log, so that the next open finds a cut tail damaged.
			ms.closedTail = tailAt{first: seg.first, size: uint64(seg.proof), last: ms.last}
		}
		if seg := ms.segs[n-1]; seg.w != nil {
			seg.trim(ms.opts) // best effort: zeros left behind are cut at the next open
		}
	}
	ms.closed = true
	ms.release()
	return err
}

// closedTailAt returns what Close left of the tail (zero: nothing proven).
func (ms *msgStore) closedTailAt() tailAt {
	ms.mu.RLock()
	defer ms.mu.RUnlock()
	return ms.closedTail
}

// release closes every file. Caller holds mu.
func (ms *msgStore) release() {
	for _, seg := range ms.segs {
		ms.closeSegment(seg)
	}
	ms.segs = nil
}

// abandon closes the files without writing anything (simulated crash, failed open).
func (ms *msgStore) abandon() {
	ms.mu.Lock()
	defer ms.unlock()
	ms.closed = true
	for _, seg := range ms.segs {
		ms.closeSegment(seg)
	}
	ms.segs = nil
}

// setFence sets or (nil) clears msgStore.fenced.
func (ms *msgStore) setFence(err error, recommit func() error) {
	ms.mu.Lock()
	ms.fenced, ms.recommit = err, recommit
	ms.unlock()
}

// markDeleted makes every later call fail with ErrChannelDeleted and returns Last; the
// caller removes the directory.
func (ms *msgStore) markDeleted() uint64 {
	ms.mu.Lock()
	defer ms.unlock()
	ms.deleted = true
	for _, seg := range ms.segs {
		ms.closeSegment(seg)
	}
	ms.segs = nil
	ms.first, ms.msgs, ms.bytes = ms.last+1, 0, 0
	return ms.last
}
