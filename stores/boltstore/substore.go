package boltstore

import (
	"bytes"
	"cmp"
	"encoding/binary"
	"slices"
	"sync"

	bolt "go.etcd.io/bbolt"

	"github.com/starling-io/starling/stores"
	"github.com/starling-io/starling/stores/seqset"
)

// subStore is one channel's subscriptions (bucket s.<channel>) and pending sets (bucket
// p.<channel>). Changes are kept in memory and logged; Sync writes the log in one
// transaction.
type subStore struct {
	mu sync.Mutex // guards everything below; leaf lock. Held across Sync's commit.

	db   *bolt.DB
	skey []byte // bucket s.<channel>
	pkey []byte // bucket p.<channel>

	maxSubs int // 0 = unlimited
	subs    map[uint64]*sub
	last    *sub // cache for runs of events of one subscription in Record

	dirty   []*sub   // subscriptions whose state must be written
	gone    []uint64 // subscriptions to delete (with their pending keys)
	ops     []pendOp // pending-set changes, in order
	scratch []byte   // keys and values of a commit

	closed, deleted bool
}

type sub struct {
	state   stores.SubState
	pending seqset.Set
	dirty   bool // in subStore.dirty
	removed bool
}

type pendOp struct {
	id, seq uint64
	acked   bool
}

func newSubStore(db *bolt.DB, name string, maxSubs int) *subStore {
	return &subStore{
		db:      db,
		skey:    []byte(preSubs + name),
		pkey:    []byte(prePending + name),
		maxSubs: maxSubs,
		subs:    make(map[uint64]*sub),
	}
}

// load reads the subscriptions and pending sets on open.
func (ss *subStore) load(tx *bolt.Tx) error {
	if b := tx.Bucket(ss.skey); b != nil {
		err := b.ForEach(func(_, v []byte) error {
			st, err := decodeSub(v)
			if err == nil {
				ss.subs[st.ID] = &sub{state: st}
			}
			return err
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
	r.removed = true
	delete(ss.subs, id)
	ss.last = nil
	ss.gone = append(ss.gone, id)
	ss.ops = slices.DeleteFunc(ss.ops, func(op pendOp) bool { return op.id == id })
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
				ss.ops = append(ss.ops, pendOp{id: ev.SubID, seq: ev.Seq, acked: true})
			}
			continue
		}
		if r.pending.Add(ev.Seq) {
			ss.ops = append(ss.ops, pendOp{id: ev.SubID, seq: ev.Seq})
		}
		if ev.Seq > r.state.LastSent {
			r.state.LastSent = ev.Seq
			ss.markDirty(r)
		}
	}
	return nil
}

// Sync implements stores.SubStore: one transaction for every change since the last.
func (ss *subStore) Sync() error {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	if err := ss.usable(); err != nil {
		return err
	}
	return ss.flush()
}

// flush commits the logged changes. Caller holds mu.
func (ss *subStore) flush() error {
	if len(ss.dirty) == 0 && len(ss.gone) == 0 && len(ss.ops) == 0 {
		return nil
	}
	ss.scratch = ss.scratch[:0]
	err := ss.db.Update(func(tx *bolt.Tx) error {
		sb, pb := tx.Bucket(ss.skey), tx.Bucket(ss.pkey)
		if sb == nil || pb == nil {
			return stores.ErrChannelDeleted
		}
		var k [16]byte
		for _, id := range ss.gone {
			binary.BigEndian.PutUint64(k[:8], id)
			if err := sb.Delete(k[:8]); err != nil {
				return err
			}
			if err := deletePrefix(pb, k[:8]); err != nil {
				return err
			}
		}
		for _, r := range ss.dirty {
			if r.removed {
				continue
			}
			v, err := encodeSub(&r.state)
			if err != nil {
				return err
			}
			if err := sb.Put(u64(r.state.ID), v); err != nil {
				return err
			}
		}
		for _, op := range ss.ops {
			binary.BigEndian.PutUint64(k[:8], op.id)
			binary.BigEndian.PutUint64(k[8:], op.seq)
			if op.acked {
				if err := pb.Delete(k[:]); err != nil {
					return err
				}
				continue
			}
			// Put keeps the key until commit: copy it into scratch (grown before use
			// would move earlier keys, so allocate a fresh one when full).
			if cap(ss.scratch)-len(ss.scratch) < 16 {
				ss.scratch = make([]byte, 0, max(1024, 16*len(ss.ops)))
			}
			n := len(ss.scratch)
			ss.scratch = append(ss.scratch, k[:]...)
			if err := pb.Put(ss.scratch[n:n+16], nil); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	for _, r := range ss.dirty {
		r.dirty = false
	}
	clear(ss.dirty)
	ss.dirty, ss.gone, ss.ops = ss.dirty[:0], ss.gone[:0], ss.ops[:0]
	return nil
}

// deletePrefix deletes every key of b starting with prefix.
func deletePrefix(b *bolt.Bucket, prefix []byte) error {
	var keys [][]byte
	c := b.Cursor()
	for k, _ := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, _ = c.Next() {
		keys = append(keys, slices.Clone(k))
	}
	for _, k := range keys {
		if err := b.Delete(k); err != nil {
			return err
		}
	}
	return nil
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
	defer ss.mu.Unlock()
	if ss.closed || ss.deleted {
		ss.closed = true
		return nil
	}
	err := ss.flush()
	ss.closed = true
	return err
}

// abandon closes without writing anything (a simulated crash).
func (ss *subStore) abandon() {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	ss.closed = true
}

func (ss *subStore) markDeleted() {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	ss.deleted = true
	ss.subs, ss.last, ss.dirty, ss.gone, ss.ops = nil, nil, nil, nil, nil
}
