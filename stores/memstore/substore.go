package memstore

import (
	"cmp"
	"slices"
	"sync"

	"github.com/starling-io/starling/stores"
	"github.com/starling-io/starling/stores/seqset"
)

// subStore is one channel's subscriptions, each with its pending set.
type subStore struct {
	mu sync.Mutex // guards everything below; leaf lock

	maxSubs int // 0 = unlimited
	subs    map[uint64]*sub
	last    *sub // cache for runs of events of one subscription in Record

	closed, deleted bool
}

type sub struct {
	state   stores.SubState
	pending seqset.Set
}

func newSubStore(maxSubs int) *subStore {
	return &subStore{maxSubs: maxSubs, subs: make(map[uint64]*sub)}
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
	ss.subs[s.ID] = &sub{state: *s}
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
	return nil
}

// DeleteSub implements stores.SubStore.
func (ss *subStore) DeleteSub(id uint64) error {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	if err := ss.usable(); err != nil {
		return err
	}
	if _, ok := ss.subs[id]; !ok {
		return stores.ErrNotFound
	}
	delete(ss.subs, id)
	ss.last = nil
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
			r.pending.Remove(ev.Seq)
			continue
		}
		r.pending.Add(ev.Seq)
		r.state.LastSent = max(r.state.LastSent, ev.Seq)
	}
	return nil
}

// Sync implements stores.SubStore: memory only, nothing to make durable.
func (ss *subStore) Sync() error {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	return ss.usable()
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

// Close implements stores.SubStore.
func (ss *subStore) Close() error {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	ss.closed = true
	return nil
}

func (ss *subStore) markDeleted() {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	ss.deleted = true
	ss.subs, ss.last = nil, nil
}
