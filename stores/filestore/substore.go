package filestore

import (
	"cmp"
	"slices"
	"sync"

	"github.com/starling-io/starling/stores"
	"github.com/starling-io/starling/stores/seqset"
)

// Record types of subs.log.
const (
	subCreate  = 'C' // full state, empty pending
	subUpdate  = 'U' // full state, pending kept
	subDelete  = 'D' // id
	subEvents  = 'E' // count, then (id, seq, acked) each
	subPending = 'P' // id, count, seqs: sets pending (compaction)
)

// subStore is one channel's subscriptions, in memory and in subs.log.
type subStore struct {
	mu sync.Mutex // guards everything below; leaf lock

	log     *recLog
	maxSubs int
	subs    map[uint64]*sub
	buf     []byte

	closed, deleted bool
}

type sub struct {
	state   stores.SubState
	pending seqset.Set
}

func openSubStore(path string, maxSubs int, opts *Options) (*subStore, error) {
	l, ld, err := openRecLog(path, magicSubs, opts)
	if err != nil {
		return nil, err
	}
	ss := &subStore{log: l, maxSubs: maxSubs, subs: make(map[uint64]*sub)}
	l.mu, l.snapshot = &ss.mu, ss.appendSnapshot
	for _, r := range ld.recs {
		ss.replay(r)
	}
	// Rewriting costs a file, two fsyncs and a rename per channel: only when the log has
	// something to drop (records beyond the compact form, one or two per subscription, or
	// a torn tail) or is of an older format version.
	if ld.intact() && ld.hdr.version == FormatVersion && len(ld.recs) <= 2*len(ss.subs) {
		if err := l.openAppend(); err != nil {
			return nil, err
		}
		return ss, nil
	}
	if err := l.rewrite(); err != nil {
		return nil, err
	}
	if err := l.syncLocked(); err != nil {
		l.close(false)
		return nil, err
	}
	return ss, nil
}

// appendSnapshot appends the framed records that recreate every subscription: one state
// record and one pending record each. Caller holds mu.
func (ss *subStore) appendSnapshot(b []byte) []byte {
	var st int
	for _, id := range slices.Sorted(mapsKeys(ss.subs)) {
		r := ss.subs[id]
		b, st = beginFrame(b)
		b = endFrame(encSub(b, subCreate, &r.state), st)
		b, st = beginFrame(b)
		b = putUv(putUv(append(b, subPending), id), uint64(r.pending.Len()))
		r.pending.Ascend(func(seq uint64) bool { b = putUv(b, seq); return true })
		b = endFrame(b, st)
	}
	return b
}

func mapsKeys(m map[uint64]*sub) func(func(uint64) bool) {
	return func(yield func(uint64) bool) {
		for k := range m {
			if !yield(k) {
				return
			}
		}
	}
}

func encSub(b []byte, typ byte, s *stores.SubState) []byte {
	b = append(b, typ)
	b = putUv(b, s.ID)
	b = putStr(b, s.ClientID)
	b = putStr(b, s.QGroup)
	b = putStr(b, s.Inbox)
	b = putStr(b, s.AckInbox)
	b = putStr(b, s.DurableName)
	b = putIv(b, int64(s.MaxInFlight))
	b = putIv(b, int64(s.AckWaitSecs))
	b = putUv(b, s.LastSent)
	var fl uint64
	if s.IsDurable {
		fl |= 1
	}
	if s.IsClosed {
		fl |= 2
	}
	b = putUv(b, fl)
	return putStr(b, s.User) // last: records written before it existed end here
}

func decSub(d *dec) stores.SubState {
	s := stores.SubState{ID: d.uv(), ClientID: d.str(), QGroup: d.str(), Inbox: d.str(), AckInbox: d.str(),
		DurableName: d.str(), MaxInFlight: int32(d.iv()), AckWaitSecs: int32(d.iv()), LastSent: d.uv()}
	fl := d.uv()
	s.IsDurable, s.IsClosed = fl&1 != 0, fl&2 != 0
	s.User = d.optStr()
	return s
}

// replay applies one record of subs.log; a malformed record is ignored.
func (ss *subStore) replay(rec []byte) {
	d := &dec{b: rec}
	switch d.byte1() {
	case subCreate:
		s := decSub(d)
		if !d.bad {
			ss.subs[s.ID] = &sub{state: s}
		}
	case subUpdate:
		s := decSub(d)
		if r := ss.subs[s.ID]; r != nil && !d.bad {
			r.state = s
		}
	case subDelete:
		delete(ss.subs, d.uv())
	case subEvents:
		n := d.uv()
		for i := uint64(0); i < n && !d.bad; i++ {
			id, seq, acked := d.uv(), d.uv(), d.byte1() != 0
			if !d.bad {
				ss.apply(id, seq, acked)
			}
		}
	case subPending:
		id, n := d.uv(), d.uv()
		r := ss.subs[id]
		for i := uint64(0); i < n && !d.bad; i++ {
			if seq := d.uv(); r != nil && !d.bad {
				r.pending.Add(seq)
			}
		}
	}
}

func (ss *subStore) apply(id, seq uint64, acked bool) {
	r := ss.subs[id]
	if r == nil {
		return
	}
	if acked {
		r.pending.Remove(seq)
		return
	}
	r.pending.Add(seq)
	r.state.LastSent = max(r.state.LastSent, seq)
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
	ss.buf = encSub(ss.buf[:0], subCreate, s)
	ss.log.add(ss.buf)
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
	ss.buf = encSub(ss.buf[:0], subUpdate, s)
	ss.log.add(ss.buf)
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
	ss.buf = putUv(append(ss.buf[:0], subDelete), id)
	ss.log.add(ss.buf)
	return nil
}

// Record implements stores.SubStore: one log record per batch.
func (ss *subStore) Record(events []stores.SubEvent) error {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	if err := ss.usable(); err != nil {
		return err
	}
	if len(events) == 0 {
		return nil
	}
	b := putUv(append(ss.buf[:0], subEvents), uint64(len(events)))
	for i := range events {
		ev := &events[i]
		ss.apply(ev.SubID, ev.Seq, ev.Acked)
		b = putUv(putUv(b, ev.SubID), ev.Seq)
		if ev.Acked {
			b = append(b, 1)
		} else {
			b = append(b, 0)
		}
	}
	ss.buf = b
	ss.log.add(b)
	return nil
}

// Flush implements stores.SplitSyncer: the records written since the last Flush go to the
// OS (or, after a failure or when the log is due for compaction, the whole state goes into
// a new file that the next SyncFlushed makes the log).
func (ss *subStore) Flush() error {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	if err := ss.usable(); err != nil {
		return err
	}
	return ss.log.flush()
}

// SyncFlushed implements stores.SplitSyncer: it fsyncs what was flushed (and renames a
// rewrite over the log) without holding mu.
func (ss *subStore) SyncFlushed() error { return ss.log.syncFlushed(ss.usable) }

// Sync implements stores.SubStore: Flush, then SyncFlushed.
func (ss *subStore) Sync() error {
	if err := ss.Flush(); err != nil {
		return err
	}
	return ss.SyncFlushed()
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
	ss.log.syncMu.Lock()
	defer ss.log.syncMu.Unlock()
	ss.mu.Lock()
	defer ss.mu.Unlock()
	if ss.closed || ss.deleted {
		return nil
	}
	ss.closed = true
	return ss.log.close(true)
}

func (ss *subStore) abandon() {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	ss.closed = true
	ss.log.close(false)
}

// markDeleted makes every later call fail with ErrChannelDeleted. It does not wait for a
// SyncFlushed in progress (the caller holds the Store's lock): that one fails.
func (ss *subStore) markDeleted() {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	ss.deleted = true
	ss.log.close(false)
	ss.subs = nil
}
