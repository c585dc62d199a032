package boltstore

import (
	"cmp"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"sync"

	bolt "go.etcd.io/bbolt"

	"github.com/starling-io/starling/proto/storepb"
	"github.com/starling-io/starling/stores"
	"github.com/starling-io/starling/stores/seqset"
)

// subStore is one channel's subscriptions (bucket s.<channel>) and pending sets (bucket
// p.<channel>). Memory is the truth: changes are logged (dirty states, deleted
// subscriptions, pending-set changes in order), and Flush encodes the log into a batch
// for the store's next commit (committer), which writes it in its transaction.
type subStore struct {
	mu sync.Mutex // guards everything below but st; leaf lock after committer.mu.

	c    *committer
	skey []byte // bucket s.<channel>
	pkey []byte // bucket p.<channel>

	maxSubs int // 0 = unlimited
	subs    map[uint64]*sub
	last    *sub // cache for runs of events of one subscription in Record

	dirty []*sub   // subscriptions whose state must be written
	gone  []uint64 // subscriptions to delete (with their pending keys)
	ops   []pendOp // pending-set changes, in order
	pb    storepb.SubState
	epoch uint64 // Flushes so far

	closed, deleted bool

	st stager // guarded by committer.stageMu
}

type sub struct {
	state   stores.SubState
	pending seqset.Set
	dirty   bool // in subStore.dirty
	removed bool // deleted: its logged pending changes are dropped at Flush

	// Where the pending set is kept (see inlineMax): inline in the state record, or as
	// keys of the pending bucket. restage: this Flush moves it, writing it whole.
	inline, restage bool
	epoch           uint64 // the Flush that last chose
}

// A small pending set — a subscriber keeping up, the usual case — is written inline in
// the subscription's state record, which a Flush rewrites anyway when the subscription
// was sent anything (LastSent): no B+tree put per delivery and delete per ack. A set
// larger than keysMin goes to the pending bucket, one key per sequence, where each change
// costs one key rather than a rewrite of the whole set; it comes back inline once it
// shrinks to inlineMax. Recovery reads both (their union: a sequence in both is pending).
const (
	inlineMax = 256
	keysMin   = 1024
)

type pendOp struct {
	r     *sub
	seq   uint64
	acked bool
}

func newSubStore(c *committer, name string, maxSubs int) *subStore {
	return &subStore{
		c:       c,
		skey:    []byte(preSubs + name),
		pkey:    []byte(prePending + name),
		maxSubs: maxSubs,
		subs:    make(map[uint64]*sub),
		st:      stager{what: fmt.Sprintf("channel %q subscriptions", name)},
	}
}

// load reads the subscriptions and pending sets on open. Both buckets are created with
// the channel's record and deleted with it: a missing one is damage (read as empty, its
// subscriptions were gone without a word, and the first commit writing one failed, with
// every channel's messages in it).
func (ss *subStore) load(tx *bolt.Tx) error {
	for _, k := range [...][]byte{ss.skey, ss.pkey} {
		if tx.Bucket(k) == nil {
			return fmt.Errorf("%w: no bucket %q", ErrCorrupt, k)
		}
	}
	if b := tx.Bucket(ss.skey); b != nil {
		err := b.ForEach(func(k, v []byte) error {
			r := &sub{}
			st, err := decodeSub(v, &r.pending)
			switch {
			case err != nil:
				return fmt.Errorf("subscription record %x: %w", k, err)
			case len(k) != 8 || binary.BigEndian.Uint64(k) != st.ID:
				// Written under its ID: under another key, DeleteSub would miss it.
				return fmt.Errorf("%w: subscription record under key %x names subscription %d", ErrCorrupt, k, st.ID)
			}
			// A record holding a pending set keeps it inline: it is rewritten (or
			// cleared, should the set move to keys) at the next change.
			r.state, r.inline = st, r.pending.Len() > 0
			ss.subs[st.ID] = r
			return nil
		})
		if err != nil {
			return err
		}
	}
	if b := tx.Bucket(ss.pkey); b != nil {
		return b.ForEach(func(k, _ []byte) error {
			if len(k) == 16 {
				if r := ss.subs[binary.BigEndian.Uint64(k)]; r != nil {
					r.pending.Add(binary.BigEndian.Uint64(k[8:]))
				}
			}
			return nil
		})
	}
	return nil
}

func (ss *subStore) usable() error {
	switch {
	case ss.deleted:
		return stores.ErrChannelDeleted
	case ss.closed:
		return stores.ErrClosed
	}
	return nil
}

func (ss *subStore) setMaxSubs(n int) {
	ss.mu.Lock()
	ss.maxSubs = n
	ss.mu.Unlock()
}

func (ss *subStore) markDirty(r *sub) {
	if !r.dirty {
		r.dirty = true
		ss.dirty = append(ss.dirty, r)
	}
}

// CreateSub implements stores.SubStore.
func (ss *subStore) CreateSub(s *stores.SubState) error {
	if err := checkSub(s); err != nil {
		return err
	}
	ss.mu.Lock()
	defer ss.mu.Unlock()
	if err := ss.usable(); err != nil {
		return err
	}
	if _, ok := ss.subs[s.ID]; ok {
		return stores.ErrExists
	}
	if ss.maxSubs > 0 && len(ss.subs) >= ss.maxSubs {
		return stores.ErrTooManySubs
	}
	r := &sub{state: *s}
	ss.subs[s.ID] = r
	ss.markDirty(r)
	return nil
}

// UpdateSub implements stores.SubStore.
func (ss *subStore) UpdateSub(s *stores.SubState) error {
	if err := checkSub(s); err != nil {
		return err
	}
	ss.mu.Lock()
	defer ss.mu.Unlock()
	if err := ss.usable(); err != nil {
		return err
	}
	r, ok := ss.subs[s.ID]
	if !ok {
		return stores.ErrNotFound
	}
	r.state = *s
	ss.markDirty(r)
	return nil
}

// DeleteSub implements stores.SubStore.
func (ss *subStore) DeleteSub(id uint64) error {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	if err := ss.usable(); err != nil {
		return err
	}
	r, ok := ss.subs[id]
	if !ok {
		return stores.ErrNotFound
	}
	r.removed = true // its logged ops are skipped at Flush: O(1) here
	delete(ss.subs, id)
	ss.last = nil
	ss.gone = append(ss.gone, id)
	return nil
}

// Record implements stores.SubStore.
func (ss *subStore) Record(events []stores.SubEvent) error {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	if err := ss.usable(); err != nil {
		return err
	}
	for i := range events {
		ev := &events[i]
		r := ss.last
		if r == nil || r.state.ID != ev.SubID {
			if r = ss.subs[ev.SubID]; r == nil {
				continue
			}
			ss.last = r
		}
		if ev.Acked {
			if r.pending.Remove(ev.Seq) {
				ss.ops = append(ss.ops, pendOp{r: r, seq: ev.Seq, acked: true})
			}
			continue
		}
		if r.pending.Add(ev.Seq) {
			ss.ops = append(ss.ops, pendOp{r: r, seq: ev.Seq})
		}
		if ev.Seq > r.state.LastSent {
			r.state.LastSent = ev.Seq
			ss.markDirty(r)
		}
	}
	return nil
}

// Sync implements stores.SubStore: Flush, then SyncFlushed.
func (ss *subStore) Sync() error {
	if err := ss.Flush(); err != nil {
		return err
	}
	return ss.SyncFlushed()
}

// Flush implements stores.SplitSyncer: it encodes the changes logged so far into the
// store's next commit — or, after a failed commit lost some, the whole state.
func (ss *subStore) Flush() error {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	if err := ss.usable(); err != nil {
		return err
	}
	ss.c.stageMu.Lock()
	defer ss.c.stageMu.Unlock()
	if ss.st.rewrite {
		return ss.stageAll()
	}
	if len(ss.dirty) == 0 && len(ss.gone) == 0 && len(ss.ops) == 0 {
		return nil
	}
	ss.epoch++
	for _, op := range ss.ops {
		if !op.r.removed {
			ss.place(op.r)
		}
	}
	b := ss.c.batchFor(&ss.st)
	var k [16]byte
	for _, id := range ss.gone {
		binary.BigEndian.PutUint64(k[:8], id)
		b.op(wopDelete, ss.skey, k[:8])
		b.op(wopDelPrefix, ss.pkey, k[:8])
	}
	for _, r := range ss.dirty {
		if r.removed {
			continue
		}
		ss.place(r)
		binary.BigEndian.PutUint64(k[:8], r.state.ID)
		if r.restage && r.inline {
			b.op(wopDelPrefix, ss.pkey, k[:8]) // its keys, now inline
		}
		if err := ss.putState(b, r); err != nil {
			return err
		}
		if r.restage && !r.inline {
			ss.putKeys(b, r)
		}
	}
	for _, op := range ss.ops {
		if op.r.removed || op.r.inline || op.r.restage {
			continue // written whole above
		}
		binary.BigEndian.PutUint64(k[:8], op.r.state.ID)
		binary.BigEndian.PutUint64(k[8:], op.seq)
		if op.acked {
			b.op(wopDelete, ss.pkey, k[:])
		} else {
			b.put(ss.pkey, k[:], nil)
		}
	}
	ss.clearLog()
	return nil
}

// stageAll stages the whole state: both buckets emptied, then every subscription and
// pending sequence. Caller holds mu and stageMu.
func (ss *subStore) stageAll() error {
	b := ss.c.batchFor(&ss.st)
	b.op(wopReset, ss.skey, nil)
	b.op(wopReset, ss.pkey, nil)
	for _, r := range ss.subs {
		r.inline = r.pending.Len() <= inlineMax
		r.epoch, r.restage = ss.epoch, false
		if err := ss.putState(b, r); err != nil {
			return err
		}
		if !r.inline {
			ss.putKeys(b, r)
		}
	}
	ss.clearLog()
	ss.st.rewrite = false
	return nil
}

// place chooses, once per Flush, where r's pending set is written (inlineMax), marking r
// for a state write when the set goes inline or stays there. Caller holds mu.
func (ss *subStore) place(r *sub) {
	if r.epoch == ss.epoch {
		return
	}
	r.epoch = ss.epoch
	n := r.pending.Len()
	switch {
	case !r.inline && n <= inlineMax:
		r.inline, r.restage = true, true
	case r.inline && n > keysMin:
		r.inline, r.restage = false, true
	}
	if r.inline || r.restage {
		ss.markDirty(r)
	}
}

// putKeys stages r's whole pending set as keys. Caller holds mu and stageMu.
func (ss *subStore) putKeys(b *batch, r *sub) {
	var k [16]byte
	binary.BigEndian.PutUint64(k[:8], r.state.ID)
	r.pending.Ascend(func(seq uint64) bool {
		binary.BigEndian.PutUint64(k[8:], seq)
		b.put(ss.pkey, k[:], nil)
		return true
	})
}

// putState stages r's state, with its pending set when it is inline. Caller holds mu and
// stageMu.
func (ss *subStore) putState(b *batch, r *sub) error {
	setSubPB(&ss.pb, &r.state)
	if r.inline {
		prev := uint64(0)
		r.pending.Ascend(func(seq uint64) bool {
			ss.pb.Pending = append(ss.pb.Pending, seq-prev)
			prev = seq
			return true
		})
	}
	var k [8]byte
	binary.BigEndian.PutUint64(k[:], r.state.ID)
	if err := b.putProto(ss.skey, k[:], &ss.pb); err != nil {
		return fmt.Errorf("boltstore: subscription %d: %w", r.state.ID, err)
	}
	return nil
}

// clearLog empties the change log once staged. Caller holds mu.
func (ss *subStore) clearLog() {
	for _, r := range ss.dirty {
		r.dirty, r.restage = false, false
	}
	clear(ss.dirty)
	clear(ss.ops) // drop the *sub references
	ss.dirty, ss.gone, ss.ops = ss.dirty[:0], ss.gone[:0], ss.ops[:0]
}

// SyncFlushed implements stores.SplitSyncer: everything flushed before it is durable when
// it returns nil. The first SyncFlushed to run after a Flush commits everything the store
// has staged (see committer); later ones find their flush durable and return at once.
func (ss *subStore) SyncFlushed() error {
	ss.mu.Lock()
	err := ss.usable()
	ss.mu.Unlock()
	if err != nil {
		return err
	}
	target := ss.c.stagedOf(&ss.st)
	return ss.c.syncTo(func() (bool, error) { return ss.c.covered(&ss.st, target) })
}

// Subs implements stores.SubStore.
func (ss *subStore) Subs() ([]stores.RecoveredSub, error) {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	if err := ss.usable(); err != nil {
		return nil, err
	}
	out := make([]stores.RecoveredSub, 0, len(ss.subs))
	for _, r := range ss.subs {
		out = append(out, stores.RecoveredSub{State: r.state, Pending: r.pending.AppendTo(nil)})
	}
	slices.SortFunc(out, func(a, b stores.RecoveredSub) int { return cmp.Compare(a.State.ID, b.State.ID) })
	return out, nil
}

// Close implements stores.SubStore: it syncs and closes.
func (ss *subStore) Close() error {
	ss.mu.Lock()
	if ss.closed || ss.deleted {
		ss.closed = true
		ss.mu.Unlock()
		return nil
	}
	ss.mu.Unlock()
	err := ss.Sync()
	ss.mu.Lock()
	ss.closed = true
	ss.mu.Unlock()
	return err
}

// flushForClose stages everything for the Store's final commit — for a SubStore closed on
// its own, what a failed commit lost, which memory still holds. Caller holds committer.mu.
func (ss *subStore) flushForClose() error {
	ss.mu.Lock()
	if ss.closed && !ss.deleted {
		defer ss.mu.Unlock()
		ss.c.stageMu.Lock()
		defer ss.c.stageMu.Unlock()
		if ss.st.rewrite {
			return ss.stageAll()
		}
		return nil
	}
	ss.mu.Unlock()
	if err := ss.Flush(); err != nil && !errors.Is(err, stores.ErrClosed) && !errors.Is(err, stores.ErrChannelDeleted) {
		return err
	}
	return nil
}

// markClosed closes after the Store's final commit.
func (ss *subStore) markClosed() {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	ss.closed = true
}

// abandon closes without writing anything (a simulated crash).
func (ss *subStore) abandon() {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	ss.closed = true
}

// markDeleted makes every later call fail with ErrChannelDeleted. Caller holds
// committer.mu and takes the channel out of the queue.
func (ss *subStore) markDeleted() {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	ss.deleted = true
	ss.subs, ss.last, ss.dirty, ss.gone, ss.ops = nil, nil, nil, nil, nil
}
