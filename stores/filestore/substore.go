package filestore

import (
	"cmp"
	"encoding/binary"
	"fmt"
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
	// Version 3: the LSN of the flush whose records follow (the first record of a batch), or
	// that a rewrite's snapshot is the state of.
	subLSN = 'N'
)

// subStore is one channel's subscriptions: in memory (the truth), in subs.log (the
// checkpoint), and in the journal records its flushes write into the channel's tail segment
// (journal.go).
//
// Every flush that writes records gets the next LSN. A flush writes them as one journal
// record into the tail when the channel has a tail that can take it — then a SyncFlushed
// fsyncs the tail (once for the whole channel: see msgStore.syncPoint), never subs.log —
// and otherwise (no message yet, a failed channel, an older tail, Close) into subs.log, as a
// batch whose first record is its LSN, which SyncFlushed commits. subs.log is rewritten from
// memory (a checkpoint: its snapshot starts with its LSN) once the live journal has grown,
// committed by the next SyncFlushed; then the records up to it are dead and the tail sheds
// them. Recovery applies subs.log, then the tail's journal records past its LSN.
//
// Each journal record either holds the whole state (a snapshot) or continues what recovery
// finds on disk: the previous journal record of the same tail, or a subs.log that holds the
// LSN before it durably. Each subs.log batch continues what the file holds; when it does
// not, the log is rewritten instead. So recovery never finds a gap: a journal record that
// continues nothing is damage.
type subStore struct {
	mu sync.Mutex // guards everything below; taken before the msgStore's

	log     *recLog
	ms      *msgStore // the channel's messages: its tail carries the journal (nil: none)
	maxSubs int
	subs    map[uint64]*sub
	buf     []byte
	nbuf    []byte // the LSN record of a batch
	scratch []byte // one record of a snapshot body

	lsn        uint64 // the LSN of the last flush that wrote records
	logLSN     uint64 // the LSN the log file (f) reaches
	logDurable uint64 // the LSN a commit of the log made durable (0 since open: unknown)
	bodyOff    int    // where the records of the pending batch start in log.pend (past its LSN)
	snapNext   bool   // the next journal record holds the whole state
	// A checkpoint is due once the live journal reaches ckptBytes or ckptRecs records: half
	// the journal bound and at least the size of the last checkpoint (so that rewriting
	// costs at most about what was journaled since), maxLiveRecords. Until a checkpoint is
	// committed the next one waits for twice as much: one that keeps failing is retried
	// ever more rarely, not at every flush.
	ckptBytes int64
	ckptRecs  int
	// flushErr: the last flush failed; SyncFlushed reports it until a flush succeeds (which
	// writes the whole state: a snapshot journal record or a rewrite).
	flushErr error
	// jfp: the last journal flush SyncFlushed has not made durable (seg nil: none).
	jfp flushPoint
	// Flushes that wrote the log, and how many of them a successful commit covered: a
	// SyncFlushed must commit the log only for those (a journal flush after them holds the
	// whole state, or continues a log that holds them durably).
	logWrites, logCommitted uint64

	closed, deleted bool
	fenced          error // as msgStore.fenced
	closedAt        int64 // the bytes of subs.log a clean Close fsynced (0: nothing proven)
}

type sub struct {
	state   stores.SubState
	pending seqset.Set
}

// openSubStore recovers the subscriptions of subs.log at path, then the journal records of
// the tail of ms (read by its open) that continue it. clean is how many bytes of subs.log
// the last clean Close fsynced (meta.log's L record; 0 if unknown): a log whose intact
// records end before that lost records, and is damage, not a torn tail.
func openSubStore(path string, maxSubs int, opts *Options, ms *msgStore, clean int64) (*subStore, error) {
	l, ld, err := openRecLog(path, magicSubs, opts, cleanProof{size: clean})
	if err != nil {
		return nil, err
	}
	ss := &subStore{log: l, ms: ms, maxSubs: maxSubs, subs: make(map[uint64]*sub)}
	l.mu, l.snapshot = &ss.mu, ss.appendSnapshot
	for _, r := range ld.recs {
		ss.replay(r)
	}
	applied := false
	if ms != nil {
		tail := ""
		if n := len(ms.segs); n > 0 {
			tail = ms.segs[n-1].path
		}
		applied, err = ss.applyJournal(ms.recovered, tail)
		ms.recovered = nil
		if err != nil {
			return nil, err
		}
	}
	if !applied && ld.size == 0 {
		// No subs.log (CreateChannel does not create one), or an empty one: it reads as the
		// empty state at LSN 0 whatever a crash leaves of it, so it stands for that state
		// durably. It is created by the first flush that writes the log — as a rewrite: a
		// new file, fsynced, renamed into place, the directory fsynced — and until then
		// nothing is written or fsynced for it (Close included: an L record only for a log
		// that exists).
		ss.logLSN, ss.logDurable = ss.lsn, ss.lsn
		return ss, nil
	}
	// Rewriting costs a file, two fsyncs and a rename per channel: only when the log has
	// something to drop (records beyond the compact form: its LSN, one or two per
	// subscription; or a torn tail), lacks journal records, or is of an older version.
	if !applied && ld.intact() && ld.hdr.version == FormatVersion && len(ld.recs) <= 2*len(ss.subs)+1 {
		if err := l.openAppend(); err != nil {
			return nil, err
		}
		// Whether the log is durable is not known (a kill -9 leaves unsynced writes): the
		// first journal record holds the whole state.
		ss.logLSN, ss.snapNext = ss.lsn, true
		if clean > 0 {
			// The last clean Close fsynced clean bytes of it (its L record), and nothing
			// was written since: still proven, so that this run's Close need not fsync a
			// log it left unchanged to state it again.
			l.carryProof(clean)
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
	ss.logLSN, ss.logDurable = ss.lsn, ss.lsn
	if ms != nil {
		ms.jdurable = ss.lsn
	}
	return ss, nil
}

// applyJournal applies the journal records recs of the tail at path that continue the state
// replayed from subs.log (at LSN ss.lsn): those at or before it are skipped, a snapshot
// replaces the state, any other must continue it — else the channel is damaged. It reports
// whether any record applied.
func (ss *subStore) applyJournal(recs []jrec, path string) (bool, error) {
	applied := false
	for i := range recs {
		r := &recs[i]
		if r.lsn <= ss.lsn {
			continue
		}
		if !r.snap && r.lsn != ss.lsn+1 {
			return applied, &DamageError{File: path, Offset: r.off, Reason: fmt.Sprintf(
				"journal record of LSN %d does not continue the subscriptions (LSN %d)", r.lsn, ss.lsn)}
		}
		if r.snap {
			ss.subs = make(map[uint64]*sub)
		}
		if !eachRecord(r.body, ss.replay) {
			return applied, &DamageError{File: path, Offset: r.off, Reason: fmt.Sprintf("journal record of LSN %d is malformed", r.lsn)}
		}
		ss.lsn, applied = r.lsn, true
	}
	return applied, nil
}

// eachRecord calls fn with each record of a body of [uvarint len][record]; false if the body
// is malformed.
func eachRecord(b []byte, fn func([]byte)) bool {
	for len(b) > 0 {
		n, k := binary.Uvarint(b)
		if k <= 0 || n > uint64(len(b)-k) {
			return false
		}
		fn(b[k : k+int(n) : k+int(n)])
		b = b[k+int(n):]
	}
	return true
}

// appendSnapshot appends the framed records that recreate every subscription: the LSN whose
// state they are, then one state record and one pending record each. Caller holds mu.
func (ss *subStore) appendSnapshot(b []byte) []byte {
	var st int
	b, st = beginFrame(b)
	b = endFrame(putUv(append(b, subLSN), ss.lsn), st)
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

// appendJournalSnapshot appends the body of a snapshot journal record: one state record
// and one pending record per subscription, each [uvarint len][record]. Caller holds mu.
func (ss *subStore) appendJournalSnapshot(b []byte) []byte {
	for _, id := range slices.Sorted(mapsKeys(ss.subs)) {
		r := ss.subs[id]
		ss.scratch = encSub(ss.scratch[:0], subCreate, &r.state)
		b = append(putUv(b, uint64(len(ss.scratch))), ss.scratch...)
		p := putUv(putUv(append(ss.scratch[:0], subPending), id), uint64(r.pending.Len()))
		r.pending.Ascend(func(seq uint64) bool { p = putUv(p, seq); return true })
		ss.scratch = p
		b = append(putUv(b, uint64(len(p))), p...)
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

// replay applies one record of subs.log or of a journal record; a malformed record is
// ignored.
func (ss *subStore) replay(rec []byte) {
	d := &dec{b: rec}
	switch d.byte1() {
	case subLSN:
		if n := d.uv(); !d.bad {
			ss.lsn = max(ss.lsn, n)
		}
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
	case ss.fenced != nil:
		return ss.fenced
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
	ss.add(ss.buf)
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
	ss.add(ss.buf)
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
	ss.add(ss.buf)
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
	ss.add(b)
	return nil
}

// add buffers one record for the next flush: the records of one flush form one batch, which
// starts with its LSN (in subs.log; a journal record has it in its header).
func (ss *subStore) add(rec []byte) {
	l := ss.log
	if len(l.pend) == 0 && !l.overflow {
		ss.nbuf = putUv(append(ss.nbuf[:0], subLSN), ss.lsn+1)
		l.add(ss.nbuf)
		ss.bodyOff = len(l.pend)
	}
	l.add(rec)
}

// Flush implements stores.SplitSyncer: the records written since the last Flush (the whole
// state after a failure) go to the OS as one journal record in the channel's tail when it
// can take it, else into subs.log (or, when it must be rewritten, the whole state goes into
// a new file that the next SyncFlushed makes the log).
func (ss *subStore) Flush() error {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	if err := ss.usable(); err != nil {
		return err
	}
	return ss.flush(false)
}

// flush is Flush; toLog writes subs.log whatever the channel has (Close). Caller holds mu.
func (ss *subStore) flush(toLog bool) error {
	l := ss.log
	if l.closed {
		return stores.ErrClosed
	}
	dirty := len(l.pend) > 0 || l.overflow
	if dirty && !toLog && ss.ms != nil {
		k := ss.lsn + 1
		var body []byte
		if !l.overflow {
			body = l.pend[ss.bodyOff:]
		}
		r, ok, err := ss.ms.appendJournal(k, body, l.overflow || ss.snapNext, ss.logDurable, ss.appendJournalSnapshot)
		if ok {
			ss.lsn = k
			l.pend, l.overflow = l.pend[:0], false
			if err != nil {
				// Whatever the tail got of it is cut by Rollback, or recovered whole: the next
				// journal record holds the whole state, the next log write rewrites.
				ss.snapNext, ss.flushErr = true, err
				return err
			}
			ss.snapNext, ss.jfp, ss.flushErr = false, r.fp, nil
			// This record holds the whole state, or continues a run that holds the log's
			// writes durably: those need no commit any more.
			ss.logCommitted = ss.logWrites
			if ss.ckptRecs == 0 {
				ss.ckptBytes, ss.ckptRecs = l.opts.journalBytes()/2, maxLiveRecords
			}
			// Not while a rewrite waits for its commit (unless that failed).
			if (r.liveBytes >= ss.ckptBytes || r.live >= ss.ckptRecs) && !l.renaming && (!l.onTmp || l.broken != nil) {
				ss.ckptBytes, ss.ckptRecs = 2*r.liveBytes, 2*r.live
				ss.checkpoint()
			}
			return nil
		}
	}
	behind := toLog && ss.logLSN != ss.lsn // the journal holds records the log lacks
	if !dirty && !behind && (l.broken == nil && !l.compactDue() || !toLog && ss.ms != nil && ss.ms.journalOK()) {
		return nil // (a broken log is rewritten by a checkpoint, or once the journal cannot be used)
	}
	if dirty {
		ss.lsn++
		behind = ss.logLSN != ss.lsn-1
	}
	if behind { // a batch would not continue the log: rewrite it
		l.pend, l.overflow = l.pend[:0], true
	}
	err := l.flush()
	if err != nil {
		ss.snapNext, ss.flushErr = true, err
		return err
	}
	ss.logLSN, ss.flushErr = ss.lsn, nil
	ss.logWrites++
	// The log holds everything now: its commit, which the next SyncFlushed must make, covers
	// every journal record too.
	ss.jfp = flushPoint{}
	return nil
}

// checkpoint rewrites subs.log from memory — the state of the flush just journaled — into a
// new file that the next SyncFlushed commits; then the journal records up to it are dead.
// A failure is tried again when the next checkpoint is due. Caller holds mu.
func (ss *subStore) checkpoint() {
	l := ss.log
	if l.rewrite() != nil {
		return
	}
	ss.logLSN = ss.lsn
}

// SyncFlushed implements stores.SplitSyncer: it makes every flush before it durable —
// fsyncing the channel's tail for journal records (unless a commit of the channel covered
// them already), subs.log for its writes — without holding mu. A checkpoint waiting to be
// committed is committed too; its failure matters only if a flush wrote the log.
func (ss *subStore) SyncFlushed() error {
	l := ss.log
	l.syncMu.Lock()
	defer l.syncMu.Unlock()
	ss.mu.Lock()
	if err := ss.usable(); err != nil {
		ss.mu.Unlock()
		return err
	}
	fp, writes, ferr := ss.jfp, ss.logWrites, ss.flushErr
	needLog := ss.logCommitted < writes
	j, ok, lerr := l.takeJob()
	jobLSN := ss.logLSN
	ss.mu.Unlock()
	var jerr, cerr error
	if fp.seg != nil {
		jerr = ss.ms.syncPoint(fp)
	}
	renamed := false
	if ok {
		renamed, cerr = l.commit(j)
	}
	ss.mu.Lock()
	defer ss.mu.Unlock()
	durable := false
	if ok {
		l.finish(j, renamed, cerr)
		if cerr == nil {
			ss.logCommitted = max(ss.logCommitted, writes)
			if jobLSN > ss.logDurable {
				ss.logDurable, durable = jobLSN, true
				ss.ckptBytes, ss.ckptRecs = max(l.opts.journalBytes()/2, j.size), maxLiveRecords
			}
		}
	} else if lerr == nil {
		ss.logCommitted = max(ss.logCommitted, writes) // nothing written since the last commit
	}
	if jerr == nil && ss.jfp == fp {
		ss.jfp = flushPoint{}
	}
	if err := ss.usable(); err != nil {
		return err
	}
	if durable && ss.ms != nil {
		ss.ms.journalDurable(ss.logDurable)
	}
	switch {
	case ferr != nil:
		return ferr
	case jerr != nil:
		return jerr
	case needLog && lerr != nil:
		return lerr
	case needLog && cerr != nil:
		return cerr
	}
	return nil
}

// rolledBack is called by the channel's Rollback before it cuts the tail. If the tail holds
// live journal records (live), the whole state — memory is the truth; changes not flushed
// yet go with it, as if flushed — is committed to subs.log first, so that nothing the cut
// takes is needed. Either way no journal flush is due for a SyncFlushed any more.
func (ss *subStore) rolledBack(live bool) error {
	l := ss.log
	l.syncMu.Lock()
	defer l.syncMu.Unlock()
	ss.mu.Lock()
	defer ss.mu.Unlock()
	if ss.usable() != nil || l.closed {
		return nil
	}
	if live {
		if len(l.pend) > 0 || l.overflow {
			ss.lsn++
		}
		l.pend, l.overflow = l.pend[:0], false
		if err := l.rewrite(); err != nil {
			return err
		}
		ss.logLSN = ss.lsn
		ss.logWrites++
		if err := l.syncLocked(); err != nil {
			return err
		}
		ss.logDurable, ss.logCommitted = ss.lsn, ss.logWrites
		if ss.ms != nil {
			ss.ms.journalDurable(ss.lsn)
		}
	}
	ss.jfp = flushPoint{}
	return nil
}

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
	// The whole state goes to subs.log, so that the next open has no journal to apply.
	err := ss.flush(true)
	if cerr := ss.log.close(true); err == nil {
		err = cerr
	}
	if err == nil {
		ss.closedAt = ss.log.proof // the Store states it in meta.log (an L record)
	}
	return err
}

// closedSize returns how many bytes of subs.log a clean Close fsynced (0: nothing proven).
func (ss *subStore) closedSize() int64 {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	return ss.closedAt
}

func (ss *subStore) abandon() {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	ss.closed = true
	ss.log.close(false)
}

// setFence sets or (nil) clears subStore.fenced (msgStore.fenced).
func (ss *subStore) setFence(err error) {
	ss.mu.Lock()
	ss.fenced = err
	ss.mu.Unlock()
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
