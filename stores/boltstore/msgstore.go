package boltstore

import (
	"encoding/binary"
	"errors"
	"fmt"
	"sync"

	bolt "go.etcd.io/bbolt"

	"github.com/starling-io/starling/stores"
	"github.com/starling-io/starling/stores/chunked"
)

// msgStore is one channel's messages in bucket m.<channel>. Messages appended since the
// last commit are held as block records in pbuf (Load serves them from there); the store's
// group commit (committer) writes the flushed ones as one block (a bucket of its own) and
// deletes the blocks that limits emptied, in its transaction. idx holds (time, size, offset
// in its block) of every stored message, durable or not, for SeqAtTime, limits, Expire and
// Load.
type msgStore struct {
	mu sync.RWMutex // guards everything below but queued and c*; leaf lock after committer.mu.

	c        *committer
	db       *bolt.DB
	name     string
	mkey     []byte // bucket name m.<channel>
	ckey     []byte // channel name, key in chans
	id       uint64
	overhead uint64 // len(name) + stores.MsgOverhead
	limits   stores.Limits

	idx chunked.Seq[ent] // idx.At(i) describes message first+i

	first, last uint64
	msgs, bytes uint64

	// Appended, not yet committed: message pfirst+i is the block record
	// pbuf[poff[i]:poff[i+1] or end]; poff[0] is 0.
	pfirst uint64
	poff   []uint32
	pbuf   []byte
	keys   []byte // scratch keys of a commit (bolt keeps them until commit)

	dfirst, dlast uint64 // messages on disk (none when dfirst > dlast)
	plast         uint64 // last as recorded in chans
	dead          uint64 // as recorded in chans: messages through it are deleted, even in a block still on disk

	flushedN   int    // pending messages (a prefix) handed to the next commit by Flush
	flast      uint64 // Last at the last Flush: limits may remove flushed messages, not their sequences
	committing bool   // a commit is writing a prefix of the pending messages: keep them in place
	flushes    uint64
	durable    uint64 // flushes covered by a successful commit
	failed     error  // a commit failed: sticky until Rollback

	closed, deleted bool

	queued bool // in committer.chans; guarded by committer.stageMu

	// The running commit's snapshot (owned by the commit: committer.mu held).
	cwrite        bool // the snapshot has something to write; retire settles it
	cn            int
	cpfirst       uint64
	cdfirst       uint64
	cdlast        uint64
	cdelHi, clast uint64
	cdead         uint64
	coffs         []uint32
	cbuf          []byte
	cflushes      uint64
}

type ent struct {
	time int64
	size uint32 // len(Reply) + len(Data)
	off  uint32 // of its record in its block, once committed (unused for a per-key message)
}

// blockMax bounds a block: a commit writes its messages as blocks of at most this many
// bytes (or one larger message), so a block stays a sensible read and offsets fit uint32.
var blockMax = 4 << 20

// blockEnd returns the end (exclusive) of the block that starts at record i of a commit
// whose records start at offs.
func blockEnd(offs []uint32, i int) int {
	j := i + 1
	for j < len(offs) && offs[j]-offs[i] < uint32(blockMax) {
		j++
	}
	return j
}

func newMsgStore(c *committer, name string, id uint64, limits stores.Limits, last, dead uint64) *msgStore {
	return &msgStore{
		c:        c,
		db:       c.db,
		name:     name,
		mkey:     []byte(preMsgs + name),
		ckey:     []byte(name),
		id:       id,
		overhead: uint64(len(name) + stores.MsgOverhead),
		limits:   limits,
		first:    last + 1,
		last:     last,
		dfirst:   last + 1,
		dlast:    last,
		plast:    last,
		dead:     dead,
	}
}

// load rebuilds the index from the channel's bucket on open. A key holds a block (a
// bucket) of consecutive messages from its sequence on, or — written by an older version —
// one message.
func (ms *msgStore) load(tx *bolt.Tx) error {
	b := tx.Bucket(ms.mkey)
	if b == nil {
		return fmt.Errorf("%w: no bucket %q", ErrCorrupt, ms.mkey)
	}
	seen := false
	c := b.Cursor()
	for k, v := c.First(); k != nil; k, v = c.Next() {
		if len(k) != 8 {
			return fmt.Errorf("%w: message key %x", ErrCorrupt, k)
		}
		seq := binary.BigEndian.Uint64(k)
		if v != nil {
			if err := ms.loadMsg(seq, v, 0, &seen); err != nil {
				return err
			}
			continue
		}
		blk, sums := blockOf(b.Bucket(k))
		if len(blk) == 0 {
			return fmt.Errorf("%w: block %d has no records", ErrCorrupt, seq)
		}
		for off := uint32(0); int(off) < len(blk); seq++ {
			v, _, next, ok := record(blk, off, sums)
			if !ok {
				return fmt.Errorf("%w: block %d: record %d at %d is cut", ErrCorrupt, binary.BigEndian.Uint64(k), seq, off)
			}
			if err := ms.loadMsg(seq, v, off, &seen); err != nil {
				return err
			}
			off = next
		}
	}
	switch {
	case ms.msgs > 0 && ms.plast > ms.dlast:
		// chans[name] is rewritten in every commit that stores messages, and limits delete
		// from the front: its Last beyond the last message on disk is damage. Taken as
		// it is, sequences up to it would read beyond the index, and new messages would
		// be indexed at the wrong place.
		return fmt.Errorf("%w: channel record says last %d, messages end at %d", ErrCorrupt, ms.plast, ms.dlast)
	case ms.msgs > 0:
		ms.dfirst = ms.first
		ms.last = max(ms.dlast, ms.plast)
		ms.plast = ms.last
	case seen:
		// Limits delete a block in the commit that deletes its last message.
		return fmt.Errorf("%w: messages through %d are on disk, all deleted", ErrCorrupt, ms.dlast)
	}
	return nil
}

// loadMsg adds stored message seq (value v, at off in its block) to the index unless it
// is deleted (seq <= dead). Caller is load.
func (ms *msgStore) loadMsg(seq uint64, v []byte, off uint32, seen *bool) error {
	t, size, ok := msgTime(v)
	switch {
	case seq == 0:
		// Sequences start at 1 and never wrap: a key of 0, or a block running past the
		// largest sequence.
		return fmt.Errorf("%w: a message of sequence 0 (after %d)", ErrCorrupt, ms.dlast)
	case !ok:
		return fmt.Errorf("%w: message %d: value of %d bytes", ErrCorrupt, seq, len(v))
	case *seen && seq != ms.dlast+1:
		// Commits are atomic and limits delete from the front: a gap is damage.
		return fmt.Errorf("%w: message %d follows %d", ErrCorrupt, seq, ms.dlast)
	}
	*seen = true
	ms.dlast = seq
	if seq <= ms.dead {
		return nil
	}
	if ms.msgs == 0 {
		ms.first = seq
	}
	ms.idx.Add(ent{time: t, size: size, off: off})
	ms.msgs++
	ms.bytes += ms.overhead + uint64(size)
	return nil
}

func (ms *msgStore) usable() error {
	switch {
	case ms.deleted:
		return stores.ErrChannelDeleted
	case ms.closed:
		return stores.ErrClosed
	}
	return nil
}

// writable is usable, and not failed. Caller holds mu.
func (ms *msgStore) writable() error {
	if err := ms.usable(); err != nil {
		return err
	}
	return ms.failed
}

// Append implements stores.MsgStore.
func (ms *msgStore) Append(batch []stores.Msg) error {
	ms.mu.Lock()
	defer ms.mu.Unlock()
	// A channel emptied by limits may resume after a gap; its pending messages must then be
	// gone first, which a running commit delays: wait for it (committer.mu comes before mu).
	for len(batch) > 0 && ms.committing && ms.msgs == 0 && len(ms.poff) > 0 &&
		batch[0].Seq != ms.pfirst+uint64(len(ms.poff)) {
		ms.mu.Unlock()
		ms.c.mu.Lock() // the running commit holds it
		ms.mu.Lock()
		ms.c.mu.Unlock()
	}
	if err := ms.writable(); err != nil {
		return err
	}
	if len(batch) == 0 {
		return nil
	}
	if err := ms.check(batch); err != nil {
		return err
	}
	if ms.msgs == 0 {
		ms.first = batch[0].Seq // a resumed channel may start after last+1
	}
	ms.trimPending()
	if len(ms.poff) == 0 {
		ms.pfirst = batch[0].Seq
	}
	for i := range batch {
		m := &batch[i]
		ms.poff = append(ms.poff, uint32(len(ms.pbuf)))
		ms.pbuf = appendRecord(ms.pbuf, m)
		size := uint32(len(m.Reply) + len(m.Data))
		ms.idx.Add(ent{time: m.Time, size: size})
		ms.msgs++
		ms.bytes += ms.overhead + uint64(size)
		ms.enforce()
	}
	ms.last = batch[len(batch)-1].Seq
	return nil
}

// check validates a batch against the channel. Caller holds mu.
func (ms *msgStore) check(batch []stores.Msg) error {
	seq, t := batch[0].Seq, batch[0].Time
	if seq <= ms.last || (ms.msgs > 0 && seq != ms.last+1) {
		return stores.ErrBadSequence
	}
	if ms.msgs > 0 && t < ms.idx.Last().time {
		return stores.ErrBadTime
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

// trimPending drops pending messages already removed by limits (seq < first), so that
// the pending messages are exactly first.. or none. Caller holds mu.
func (ms *msgStore) trimPending() {
	n := len(ms.poff)
	if n == 0 || ms.pfirst >= ms.first || ms.committing {
		return
	}
	k := ms.first - ms.pfirst
	if k >= uint64(n) {
		ms.poff, ms.pbuf = ms.poff[:0], ms.pbuf[:0]
		return
	}
	ms.dropPending(int(k))
}

// dropPending removes the first k pending messages. Caller holds mu; 0 < k < len(poff)
// or k == len(poff).
func (ms *msgStore) dropPending(k int) {
	if k >= len(ms.poff) {
		ms.pfirst += uint64(len(ms.poff))
		ms.poff, ms.pbuf = ms.poff[:0], ms.pbuf[:0]
		ms.flushedN = 0
		return
	}
	off := ms.poff[k]
	ms.pbuf = ms.pbuf[:copy(ms.pbuf, ms.pbuf[off:])]
	ms.poff = ms.poff[:copy(ms.poff, ms.poff[k:])]
	for i := range ms.poff {
		ms.poff[i] -= off
	}
	ms.pfirst += uint64(k)
	ms.flushedN = max(ms.flushedN-k, 0)
}

// enforce removes the oldest messages while over MaxMsgs or MaxBytes, keeping the
// newest. Caller holds mu.
func (ms *msgStore) enforce() (removed int) {
	for ms.msgs > 1 && ms.limits.Exceeded(ms.msgs, ms.bytes) {
		ms.removeFirst()
		removed++
	}
	return removed
}

// removeFirst removes the oldest message from the index; the next Sync deletes it from
// disk (or skips it if still pending). Caller holds mu; msgs > 0.
func (ms *msgStore) removeFirst() {
	ms.bytes -= ms.overhead + uint64(ms.idx.At(0).size)
	ms.msgs--
	ms.first++
	ms.idx.RemoveFirst()
}

// Sync implements stores.MsgStore: Flush, then SyncFlushed.
func (ms *msgStore) Sync() error {
	if err := ms.Flush(); err != nil {
		return err
	}
	return ms.SyncFlushed()
}

// Flush implements stores.SplitSyncer: the messages appended so far, and the removals made
// by limits, go to the store's next commit. Nothing reaches the OS before the commit's
// transaction: bolt's write is its fsync.
func (ms *msgStore) Flush() error {
	ms.mu.Lock()
	defer ms.mu.Unlock()
	if err := ms.writable(); err != nil {
		return err
	}
	ms.flushedN, ms.flast = len(ms.poff), ms.last
	if len(ms.poff) > 0 || min(ms.first-1, ms.dlast) >= ms.dfirst || ms.plast != ms.last {
		ms.flushes++
		ms.c.queueChan(ms)
	}
	return nil
}

// SyncFlushed implements stores.SplitSyncer: everything flushed before it is durable when it
// returns nil. If a commit that started after the last Flush has not covered it yet, this
// one runs the store's commit — which writes every channel's flushed messages and all
// staged metadata in one transaction — while Append and Load go on.
func (ms *msgStore) SyncFlushed() error {
	ms.mu.RLock()
	err, target := ms.writable(), ms.flushes
	ms.mu.RUnlock()
	if err != nil {
		return err
	}
	return ms.c.syncTo(func() (bool, error) { return ms.covered(target) })
}

// covered reports whether the flushes up to target are durable (see committer.covered).
func (ms *msgStore) covered(target uint64) (bool, error) {
	ms.mu.RLock()
	defer ms.mu.RUnlock()
	if err := ms.writable(); err != nil {
		return false, err
	}
	return ms.durable >= target, nil
}

// snapshot takes what the running commit writes for this channel: the flushed prefix of the
// pending messages and the removals by limits. It reports whether there is anything to
// write; if not, every flush so far is already durable. Caller holds committer.mu.
func (ms *msgStore) snapshot() bool {
	ms.mu.Lock()
	defer ms.mu.Unlock()
	ms.cwrite = false
	if ms.writable() != nil {
		return false
	}
	ms.trimPending()
	n := min(ms.flushedN, len(ms.poff))
	delHi := min(ms.first-1, ms.dlast)
	last := ms.plast // what chans will say: the last message on disk after this commit
	switch {
	case n > 0:
		last = ms.pfirst + uint64(n) - 1
	case len(ms.poff) == 0:
		last = ms.last // nothing pending: limits may have removed everything
	}
	// Flushed messages that limits removed since are acknowledged once this commit is: it
	// records their Last even if none of them is left to write.
	last = max(last, ms.flast)
	if n == 0 && ms.dfirst > delHi && ms.plast == last {
		ms.durable = ms.flushes
		return false
	}
	// The prefix stays in place until retired (trimPending waits for committing), and Append
	// only adds after it, so these views stay valid without mu.
	end := len(ms.pbuf)
	if n < len(ms.poff) {
		end = int(ms.poff[n])
	}
	ms.cwrite, ms.cn, ms.cpfirst, ms.cdfirst, ms.cdlast, ms.cdelHi, ms.clast = true, n, ms.pfirst, ms.dfirst, ms.dlast, delHi, last
	ms.cdead = ms.dead
	if delHi >= ms.dfirst {
		ms.cdead = max(ms.dead, delHi)
	}
	ms.coffs, ms.cbuf, ms.cflushes = ms.poff[:n:n], ms.pbuf[:end:end], ms.flushes
	ms.committing = true
	if cap(ms.keys) < 8*n {
		ms.keys = make([]byte, 8*n)
	}
	return true
}

// writeDeletes deletes the blocks (and per-key messages) whose messages are all at or
// below the snapshot's cdelHi. A block's last message is the one before the next key's,
// or the last on disk.
func (ms *msgStore) writeDeletes(b *bolt.Bucket) error {
	if ms.cdelHi < ms.cdfirst {
		return nil
	}
	dels := ms.keys[:0] // 9 bytes each: the key, then 1 for a block
	c := b.Cursor()
	k, v := c.First()
	for len(k) == 8 {
		nk, nv := c.Next()
		last := ms.cdlast
		if len(nk) == 8 {
			last = binary.BigEndian.Uint64(nk) - 1
		}
		if last > ms.cdelHi {
			break
		}
		dels = append(append(dels, k...), b2u8(v == nil))
		k, v = nk, nv
	}
	for i := 0; i+9 <= len(dels); i += 9 {
		k := dels[i : i+8]
		var err error
		if dels[i+8] == 1 {
			err = b.DeleteBucket(k)
		} else {
			err = b.Delete(k)
		}
		if err != nil {
			return fmt.Errorf("boltstore: channel %q: delete %d: %w", ms.name, binary.BigEndian.Uint64(k), err)
		}
	}
	ms.keys = dels[:0] // keeps a grown capacity
	return nil
}

func b2u8(b bool) byte {
	if b {
		return 1
	}
	return 0
}

// write writes the snapshot in the commit's transaction. No lock: the snapshot belongs to
// the commit.
func (ms *msgStore) write(tx *bolt.Tx) error {
	if !ms.cwrite {
		return nil
	}
	b := tx.Bucket(ms.mkey)
	chans := tx.Bucket([]byte(bktChans))
	if b == nil || chans == nil {
		return fmt.Errorf("%w: channel %q: no bucket", ErrCorrupt, ms.name)
	}
	if err := ms.writeDeletes(b); err != nil {
		return err
	}
	// A block is a bucket of its own so that the next commit's block does not rewrite it:
	// bolt rewrites a dirty leaf whole, and a leaf holds at least two values however large.
	b.FillPercent = 0.95 // sequential keys: fill pages
	keys, offs, buf := ms.keys[:8*ms.cn], ms.coffs, ms.cbuf
	for i := 0; i < ms.cn; {
		j := blockEnd(offs, i)
		e := len(buf)
		if j < ms.cn {
			e = int(offs[j])
		}
		key := keys[8*i : 8*i+8]
		binary.BigEndian.PutUint64(key, ms.cpfirst+uint64(i))
		bb, err := b.CreateBucket(key)
		if err == nil {
			err = bb.Put(sumKey, buf[offs[i]:e])
		}
		if err != nil {
			return fmt.Errorf("boltstore: channel %q: block %d: %w", ms.name, ms.cpfirst+uint64(i), err)
		}
		i = j
	}
	var meta [24]byte
	binary.BigEndian.PutUint64(meta[:8], ms.id)
	binary.BigEndian.PutUint64(meta[8:], ms.clast)
	binary.BigEndian.PutUint64(meta[16:], ms.cdead)
	return chans.Put(ms.ckey, meta[:])
}

// retire settles the commit's snapshot: on success the written prefix leaves the pending
// buffer; on failure the channel fails until Rollback. Caller holds committer.mu.
func (ms *msgStore) retire(err error) {
	ms.mu.Lock()
	defer ms.mu.Unlock()
	if !ms.cwrite {
		return
	}
	ms.cwrite, ms.committing = false, false
	offs := ms.coffs
	ms.coffs, ms.cbuf = nil, nil
	if ms.usable() != nil {
		return // closed meanwhile (a simulated crash)
	}
	if err != nil {
		ms.failed = fmt.Errorf("boltstore: channel %q: commit failed (Rollback to go on): %w", ms.name, err)
		return
	}
	ms.setOffsets(offs)
	ms.dead = ms.cdead
	if ms.cdelHi >= ms.dfirst {
		ms.dfirst = ms.cdelHi + 1
	}
	if ms.cn > 0 {
		if ms.dfirst > ms.dlast { // nothing was on disk
			ms.dfirst = ms.cpfirst
		}
		ms.dlast = ms.clast
		ms.dropPending(ms.cn)
	}
	ms.plast = ms.clast
	ms.durable = ms.cflushes
	ms.trimPending()
}

// setOffsets records where the commit put each of its messages still in the index: the
// offset of its record in its block. Caller holds mu.
func (ms *msgStore) setOffsets(offs []uint32) {
	for i := 0; i < len(offs); {
		j := blockEnd(offs, i)
		for k := i; k < j; k++ {
			if seq := ms.cpfirst + uint64(k); seq >= ms.first && seq <= ms.last && ms.msgs > 0 {
				ms.idx.At(int(seq - ms.first)).off = offs[k] - offs[i]
			}
		}
		i = j
	}
}

// Load implements stores.MsgStore: unsynced messages come from the pending buffer,
// others from a read transaction (taken without holding mu).
func (ms *msgStore) Load(seq uint64, into *stores.Msg) error {
	ms.mu.RLock()
	if err := ms.usable(); err != nil {
		ms.mu.RUnlock()
		return err
	}
	if seq < ms.first || seq > ms.last || ms.msgs == 0 {
		ms.mu.RUnlock()
		return stores.ErrNotFound
	}
	if n := uint64(len(ms.poff)); n > 0 && seq >= ms.pfirst && seq < ms.pfirst+n {
		i := seq - ms.pfirst
		end := len(ms.pbuf)
		if i+1 < n {
			end = int(ms.poff[i+1])
		}
		err := decodeMsg(seq, ms.pbuf[ms.poff[i]+recHeader:end], into)
		ms.mu.RUnlock()
		return err
	}
	off := ms.idx.At(int(seq - ms.first)).off
	ms.mu.RUnlock()
	// Committed: a concurrent Sync may delete it (limits), which reads as not found.
	return ms.db.View(func(tx *bolt.Tx) error {
		b := tx.Bucket(ms.mkey)
		if b == nil {
			return stores.ErrNotFound
		}
		var k [8]byte
		binary.BigEndian.PutUint64(k[:], seq)
		c := b.Cursor()
		bk, v := c.Seek(k[:])
		switch {
		case bk == nil:
			bk, v = c.Last()
		case string(bk) != string(k[:]):
			bk, v = c.Prev()
		}
		if len(bk) != 8 {
			return stores.ErrNotFound
		}
		if v != nil { // one message (per-key layout)
			if binary.BigEndian.Uint64(bk) != seq {
				return stores.ErrNotFound
			}
			return decodeMsg(seq, v, into)
		}
		blk, sums := blockOf(b.Bucket(bk))
		v, sum, _, ok := record(blk, off, sums)
		switch {
		case !ok:
			return fmt.Errorf("boltstore: message %d: no record at %d of block %d", seq, off, binary.BigEndian.Uint64(bk))
		case sums && msgSum(seq, v) != sum:
			// Served as it is, a flipped bit reaches the subscribers: refused, as the
			// file store refuses a record that fails its CRC.
			return ms.damaged(seq, binary.BigEndian.Uint64(bk))
		}
		return decodeMsg(seq, v, into)
	})
}

// SeqAtTime implements stores.MsgStore by binary search over the in-memory index.
func (ms *msgStore) SeqAtTime(ns int64) uint64 {
	ms.mu.RLock()
	defer ms.mu.RUnlock()
	if ms.msgs == 0 {
		return ms.last + 1
	}
	return ms.first + uint64(ms.idx.Search(0, func(e *ent) bool { return e.time >= ns }))
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
	ms.mu.Unlock()
}

// Expire implements stores.MsgStore. The removals reach the disk at the next commit.
func (ms *msgStore) Expire(now int64) (removed int, next int64) {
	ms.mu.Lock()
	defer ms.mu.Unlock()
	if ms.writable() != nil {
		return 0, 0
	}
	removed = ms.enforce()
	for ms.msgs > 0 {
		t := ms.idx.At(0).time
		if !ms.limits.Expired(t, now) {
			return removed, ms.limits.ExpiresAt(t)
		}
		ms.removeFirst()
		removed++
	}
	return removed, 0
}

// Close implements stores.MsgStore: it syncs, then releases the index. A failed channel
// closes with its failure: what it did not commit is lost.
func (ms *msgStore) Close() error {
	ms.mu.Lock()
	if ms.closed || ms.deleted {
		ms.closed = true
		ms.mu.Unlock()
		return nil
	}
	err := ms.failed
	ms.mu.Unlock()
	if err == nil {
		err = ms.Sync()
	}
	ms.mu.Lock()
	defer ms.mu.Unlock()
	ms.closed = true
	ms.release()
	return err
}

// flushForClose queues everything for the Store's final commit, or returns the channel's
// failure. Caller holds committer.mu.
func (ms *msgStore) flushForClose() error {
	err := ms.Flush()
	if errors.Is(err, stores.ErrClosed) { // closed on its own: a failure it closed with stands
		ms.mu.RLock()
		err = ms.failed
		ms.mu.RUnlock()
	}
	if err != nil && !errors.Is(err, stores.ErrChannelDeleted) {
		return err
	}
	return nil
}

// abandon closes without writing anything (a simulated crash).
func (ms *msgStore) abandon() {
	ms.mu.Lock()
	defer ms.mu.Unlock()
	ms.closed = true
	ms.release()
}

// markDeleted makes every later call fail with ErrChannelDeleted and returns Last.
func (ms *msgStore) markDeleted() uint64 {
	ms.mu.Lock()
	defer ms.mu.Unlock()
	ms.deleted = true
	ms.release()
	return ms.last
}

// release drops the memory; State keeps reporting the final range. Caller holds mu.
func (ms *msgStore) release() {
	ms.idx, ms.poff, ms.pbuf, ms.keys, ms.flushedN = chunked.Seq[ent]{}, nil, nil, nil, 0
	ms.first, ms.msgs, ms.bytes = ms.last+1, 0, 0
}

// Rollback implements stores.MsgStore: after a failed commit it drops everything not
// committed and rebuilds the channel from the file, as Open does — the file, not memory,
// says what the failed commit left, since bbolt may have written part of it (see
// DESIGN.md). If reading the file fails, the channel stays failed.
func (ms *msgStore) Rollback() error {
	ms.c.mu.Lock() // no commit holds a snapshot of this channel meanwhile
	defer ms.c.mu.Unlock()
	ms.mu.Lock()
	defer ms.mu.Unlock()
	if err := ms.usable(); err != nil {
		return err
	}
	if ms.failed == nil {
		return nil
	}
	var fresh *msgStore
	err := ms.db.View(func(tx *bolt.Tx) error {
		chans := tx.Bucket([]byte(bktChans))
		if chans == nil {
			return fmt.Errorf("%w: no bucket %q", ErrCorrupt, bktChans)
		}
		_, last, dead, err := chanMeta(chans.Get(ms.ckey))
		if err != nil {
			return err
		}
		fresh = newMsgStore(ms.c, ms.name, ms.id, ms.limits, last, dead)
		return fresh.load(tx)
	})
	if err != nil {
		return fmt.Errorf("boltstore: channel %q: rollback: %w", ms.name, err)
	}
	ms.c.forget(ms, nil)
	ms.idx = fresh.idx
	ms.first, ms.last, ms.msgs, ms.bytes = fresh.first, fresh.last, fresh.msgs, fresh.bytes
	ms.dfirst, ms.dlast, ms.plast, ms.dead = fresh.dfirst, fresh.dlast, fresh.plast, fresh.dead
	ms.pfirst, ms.poff, ms.pbuf, ms.flushedN, ms.flast = 0, ms.poff[:0], ms.pbuf[:0], 0, 0
	ms.durable, ms.failed = ms.flushes, nil
	return nil
}

// damaged is the error of message seq, in the block of key block, failing its checksum.
func (ms *msgStore) damaged(seq, block uint64) error {
	return &DamageError{Path: ms.db.Path(), Channel: ms.name, Seq: seq, Block: block}
}
