package filestore

import (
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"

	"github.com/starling-io/starling/stores"
)

// jt drives one channel as the streaming engine does — each commit appends, flushes the
// MsgStore, records sent/ack events, flushes the SubStore, then SyncFlushed on both — and
// keeps the model of its subscriptions and messages.
type jt struct {
	t    *testing.T
	dir  string
	opts Options
	s    *Store
	ch   *stores.Channel
	fl   *faults

	mu     sync.Mutex
	syncs  []string // files fsynced (base names; a directory as "dir")
	change func(op, path string) error

	subs    map[uint64]*stores.RecoveredSub
	msgs    []stores.Msg // appended (from First on)
	next    uint64       // next sequence
	nextSub uint64
}

func newJT(t *testing.T, opts Options) *jt {
	j := &jt{t: t, dir: t.TempDir(), opts: opts, fl: newFaults(), subs: map[uint64]*stores.RecoveredSub{}, next: 1}
	j.open()
	return j
}

// open opens the store (again), with hooks that count fsyncs and inject faults.
func (j *jt) open() {
	j.t.Helper()
	o := j.opts
	o.Hooks = j.fl.hooks()
	inner := o.Hooks.BeforeSync
	o.Hooks.BeforeSync = func(path string) error {
		j.mu.Lock()
		name := filepath.Base(path)
		if fi, err := os.Stat(path); err == nil && fi.IsDir() {
			name = "dir"
		}
		j.syncs = append(j.syncs, name)
		j.mu.Unlock()
		return inner(path)
	}
	o.Hooks.Change = func(op, path string, size int64, do func() error) error {
		j.mu.Lock()
		c := j.change
		j.mu.Unlock()
		if c != nil {
			if err := c(op, path); err != nil {
				return err
			}
		}
		return do()
	}
	s, err := Open(j.dir, o)
	if err != nil {
		j.t.Fatal(err)
	}
	if d := s.Damaged(); len(d) > 0 {
		j.t.Fatal(d)
	}
	j.s = s
	rs, err := s.Recover()
	if err != nil {
		j.t.Fatal(err)
	}
	if rs == nil {
		if err := s.Init(stores.ServerInfo{ClusterID: "c"}); err != nil {
			j.t.Fatal(err)
		}
		if j.ch, err = s.CreateChannel("foo", 1); err != nil {
			j.t.Fatal(err)
		}
		return
	}
	j.ch = rs.Channels[0].Channel
}

// takeSyncs returns the files fsynced since the last call.
func (j *jt) takeSyncs() []string {
	j.mu.Lock()
	defer j.mu.Unlock()
	s := j.syncs
	j.syncs = nil
	return s
}

func (j *jt) setChange(c func(op, path string) error) {
	j.mu.Lock()
	j.change = c
	j.mu.Unlock()
}

func (j *jt) ss() *subStore { return j.ch.Subs.(*subStore) }
func (j *jt) ms() *msgStore { return j.ch.Msgs.(*msgStore) }

// createSub creates a subscription (not flushed).
func (j *jt) createSub() uint64 {
	j.t.Helper()
	j.nextSub++
	s := stores.SubState{ID: j.nextSub, ClientID: "c", Inbox: fmt.Sprint("in.", j.nextSub), MaxInFlight: 1 << 20}
	if err := j.ch.Subs.CreateSub(&s); err != nil {
		j.t.Fatal(err)
	}
	j.subs[s.ID] = &stores.RecoveredSub{State: s}
	return s.ID
}

// record records events (not flushed).
func (j *jt) record(evs ...stores.SubEvent) {
	j.t.Helper()
	if err := j.ch.Subs.Record(evs); err != nil {
		j.t.Fatal(err)
	}
	for _, ev := range evs {
		r := j.subs[ev.SubID]
		k, found := slices.BinarySearch(r.Pending, ev.Seq)
		if ev.Acked {
			if found {
				r.Pending = slices.Delete(r.Pending, k, k+1)
			}
			continue
		}
		if !found {
			r.Pending = slices.Insert(r.Pending, k, ev.Seq)
		}
		r.State.LastSent = max(r.State.LastSent, ev.Seq)
	}
}

// appendN appends n messages (not flushed).
func (j *jt) appendN(n int) error {
	batch := genMsgs(j.next, n)
	if err := j.ch.Msgs.Append(batch); err != nil {
		return err
	}
	j.msgs = append(j.msgs, batch...)
	j.next += uint64(n)
	return nil
}

// commit flushes both stores and syncs them, MsgStore first (the committer's order).
func (j *jt) commit() error {
	msp, ssp := j.ch.Msgs.(stores.SplitSyncer), j.ch.Subs.(stores.SplitSyncer)
	return errors.Join(msp.Flush(), ssp.Flush(), msp.SyncFlushed(), ssp.SyncFlushed())
}

// pass is one commit: n messages, each sent to sub and the one n before acked.
func (j *jt) pass(sub uint64, n int) {
	j.t.Helper()
	if n > 0 {
		if err := j.appendN(n); err != nil {
			j.t.Fatal(err)
		}
	}
	var evs []stores.SubEvent
	for seq := j.next - uint64(n); seq < j.next; seq++ {
		evs = append(evs, stores.SubEvent{SubID: sub, Seq: seq})
		if seq > uint64(n) {
			evs = append(evs, stores.SubEvent{SubID: sub, Seq: seq - uint64(n), Acked: true})
		}
	}
	if len(evs) > 0 {
		j.record(evs...)
	}
	if err := j.commit(); err != nil {
		j.t.Fatal(err)
	}
}

func (j *jt) wantSubs() []stores.RecoveredSub {
	var out []stores.RecoveredSub
	for _, id := range slices.Sorted(maps.Keys(j.subs)) {
		r := *j.subs[id]
		if r.Pending == nil {
			r.Pending = []uint64{}
		}
		out = append(out, r)
	}
	return out
}

// checkSubs: the channel's subscriptions are the model's.
func (j *jt) checkSubs() {
	j.t.Helper()
	got, err := j.ch.Subs.Subs()
	if err != nil {
		j.t.Fatal(err)
	}
	want := j.wantSubs()
	if len(got) != len(want) {
		j.t.Fatalf("subs %+v, want %+v", got, want)
	}
	for i := range got {
		if got[i].State != want[i].State || !slices.Equal(got[i].Pending, want[i].Pending) {
			j.t.Fatalf("sub %d: %+v, want %+v", i, got[i], want[i])
		}
	}
}

// crash abandons the store (kill -9) and opens it again.
func (j *jt) crash() {
	j.t.Helper()
	j.s.abandon()
	j.open()
	j.takeSyncs()
}

// reopen closes the store and opens it again.
func (j *jt) reopen() {
	j.t.Helper()
	if err := j.s.Close(); err != nil {
		j.t.Fatal(err)
	}
	j.open()
	j.takeSyncs()
}

// verify: Verify and Open agree the store holds no damage, and no temporary file is left.
// The store is open: Verify's checks are run without its lock.
func (j *jt) verify() {
	j.t.Helper()
	r, _, err := verify(j.dir)
	if err != nil {
		j.t.Fatal(err)
	}
	for _, p := range r.Problems {
		if !p.Repairable {
			j.t.Fatalf("Verify: %s", p)
		}
	}
	if tmps, _ := filepath.Glob(filepath.Join(j.s.chanDir(1), "*.tmp")); len(tmps) > 0 {
		j.t.Fatalf("temporary files left: %v", tmps)
	}
}

func (j *jt) tailJournal() (recs []jrec) {
	j.t.Helper()
	ms := j.ms()
	ms.mu.RLock()
	path := ms.segs[len(ms.segs)-1].path
	ms.mu.RUnlock()
	f, err := os.Open(path)
	if err != nil {
		j.t.Fatal(err)
	}
	defer f.Close()
	h, _, err := readHeader(f, magicSeg)
	if err != nil {
		j.t.Fatal(err)
	}
	fi, _ := f.Stat()
	seg := &segment{hdr: h, first: 1, f: f}
	seg.first = segFirst(path)
	if _, _, _, _, err := seg.scan(fi.Size(), &recs); err != nil {
		j.t.Fatal(err)
	}
	return recs
}

func segFirst(path string) uint64 {
	var first uint64
	fmt.Sscanf(filepath.Base(path), "%020d.seg", &first)
	return first
}

// subsLogLSN is the LSN the records of subs.log reach.
func (j *jt) subsLogLSN() uint64 {
	j.t.Helper()
	data, err := os.ReadFile(filepath.Join(j.s.chanDir(1), "subs.log"))
	if err != nil && !errors.Is(err, os.ErrNotExist) { // none yet: LSN 0, as Open reads it
		j.t.Fatal(err)
	}
	ld, err := parseLog("subs.log", magicSubs, data)
	if err != nil {
		j.t.Fatal(err)
	}
	return logLSN(ld.recs)
}

func only(t *testing.T, syncs []string, want ...string) {
	t.Helper()
	if !slices.Equal(syncs, want) {
		t.Fatalf("fsynced %v, want %v", syncs, want)
	}
}

// TestJournalOneFsync: a commit pass that syncs a channel's MsgStore and SubStore fsyncs its
// tail segment once, in either order, and never subs.log; a pass of subscription records
// alone fsyncs the tail too. A crash then finds every record.
func TestJournalOneFsync(t *testing.T) {
	j := newJT(t, Options{})
	sub := j.createSub()
	j.pass(sub, 5)
	j.takeSyncs()
	tail := segName(1) + ".seg"
	for range 3 {
		j.pass(sub, 5)
		only(t, j.takeSyncs(), tail)
	}
	// SubStore first: the MsgStore finds its flush covered.
	if err := j.appendN(3); err != nil {
		t.Fatal(err)
	}
	j.record(stores.SubEvent{SubID: sub, Seq: j.next - 1})
	msp, ssp := j.ch.Msgs.(stores.SplitSyncer), j.ch.Subs.(stores.SplitSyncer)
	if err := errors.Join(msp.Flush(), ssp.Flush(), ssp.SyncFlushed(), msp.SyncFlushed()); err != nil {
		t.Fatal(err)
	}
	only(t, j.takeSyncs(), tail)
	// Acks alone.
	j.record(stores.SubEvent{SubID: sub, Seq: j.next - 1, Acked: true})
	if err := j.ch.Subs.Sync(); err != nil {
		t.Fatal(err)
	}
	only(t, j.takeSyncs(), tail)
	// Nothing new: no fsync.
	if err := errors.Join(msp.SyncFlushed(), ssp.SyncFlushed()); err != nil {
		t.Fatal(err)
	}
	only(t, j.takeSyncs())
	lsn := j.ss().lsn
	if got := j.subsLogLSN(); got >= lsn {
		t.Fatalf("subs.log reaches LSN %d: the records went there (LSN %d)", got, lsn)
	}
	j.crash()
	j.checkSubs()
	checkMsgs(t, j.ch.Msgs, j.msgs)
	j.verify()
}

// TestJournalRecovery: recovery applies subs.log, then the journal records of the tail
// past it — across a checkpoint (subs.log rewritten while records go on), and from a
// snapshot record (the first after an open) — whether the store crashed or closed.
func TestJournalRecovery(t *testing.T) {
	for _, restart := range []string{"crash", "close"} {
		t.Run(restart, func(t *testing.T) {
			j := newJT(t, Options{CompactBytes: 2 << 10})
			subs := []uint64{j.createSub(), j.createSub()}
			checkpoints := 0
			for i := range 300 {
				before := j.ss().logDurable
				j.pass(subs[i%2], 1+i%7)
				if i%50 == 0 {
					j.createSub()
					subs[i%2] = j.nextSub
				}
				if j.ss().logDurable > before {
					checkpoints++
				}
				if i%100 == 99 {
					if restart == "crash" {
						j.crash()
					} else {
						j.reopen()
					}
					j.checkSubs()
					checkMsgs(t, j.ch.Msgs, j.msgs)
					j.verify()
					// The first journal record after an open holds the whole state, unless
					// the open rewrote subs.log (it applied journal records).
					rewritten := j.subsLogLSN() == j.ss().lsn
					j.pass(subs[0], 1)
					if rs := j.tailJournal(); !rewritten && !rs[len(rs)-1].snap {
						t.Fatal("the first journal record after an open is no snapshot")
					}
				}
			}
			if checkpoints < 3 {
				t.Fatalf("%d checkpoints", checkpoints)
			}
			if restart == "crash" && j.subsLogLSN() >= j.ss().lsn {
				t.Fatal("nothing for the journal to recover")
			}
			j.crash()
			j.checkSubs()
			j.verify()
		})
	}
}

// TestJournalCarriedAtRoll: when the tail rolls, the new tail holds the live journal
// records; a crash right after the roll recovers them from it.
func TestJournalCarriedAtRoll(t *testing.T) {
	j := newJT(t, Options{SegmentBytes: 2000})
	sub := j.createSub()
	for range 4 {
		segs := len(j.ms().segs)
		for len(j.ms().segs) == segs {
			j.pass(sub, 3)
		}
		recs := j.tailJournal()
		if len(recs) == 0 || recs[len(recs)-1].lsn != j.ss().lsn || recs[0].lsn > j.ss().logDurable+1 && !recs[0].snap {
			t.Fatalf("the new tail holds journal records %v (LSN %d, subs.log %d)", recs, j.ss().lsn, j.ss().logDurable)
		}
	}
	j.crash()
	j.checkSubs()
	checkMsgs(t, j.ch.Msgs, j.msgs)
	j.verify()
}

// TestJournalRollCrashAtEachStep: a roll that carries live journal records fails at each
// step — writing the new tail, its fsync, its rename, the directory's fsync — or not. A
// crash then, or a Rollback and more commits, loses nothing a commit made durable, and
// leaves no temporary file.
func TestJournalRollCrashAtEachStep(t *testing.T) {
	for _, step := range []string{"write", "fsync", "rename", "dirsync", "none"} {
		for _, then := range []string{"crash", "rollback"} {
			t.Run(step+"/"+then, func(t *testing.T) {
				j := newJT(t, Options{SegmentBytes: 2000})
				sub := j.createSub()
				for len(j.ms().segs) < 2 {
					j.pass(sub, 3)
				}
				for j.ms().segs[1].size-j.ms().segs[1].jbytes < 1700 { // the tail nearly full
					j.pass(sub, 2)
				}
				j.record(stores.SubEvent{SubID: sub, Seq: 1}) // a record flushed, not synced
				if err := j.ch.Subs.(stores.SplitSyncer).Flush(); err != nil {
					t.Fatal(err)
				}
				synced := slices.Clone(j.msgs)
				switch step {
				case "write":
					j.fl.diskFull(func(p string) bool { return strings.HasSuffix(p, ".seg.tmp") }, 40)
				case "fsync":
					j.fl.syncFails(func(p string) bool { return strings.HasSuffix(p, ".seg.tmp") })
				case "rename":
					j.setChange(func(op, path string) error {
						if op == ChangeRename && strings.HasSuffix(path, ".seg") {
							return syscall.EIO
						}
						return nil
					})
				case "dirsync":
					j.fl.syncFails(func(p string) bool { return p == j.s.chanDir(1) })
				}
				segs := len(j.ms().segs)
				err := j.appendN(20)
				if step == "none" {
					if err != nil || len(j.ms().segs) == segs {
						t.Fatalf("Append = %v, %d segments", err, len(j.ms().segs))
					}
				} else if err == nil {
					t.Fatal("the roll did not fail")
				}
				j.fl.clear()
				j.setChange(nil)
				if step == "none" || then == "rollback" {
					if err := j.ch.Msgs.Rollback(); err != nil {
						t.Fatal(err)
					}
					if step != "none" {
						checkMsgs(t, j.ch.Msgs, synced)
						j.msgs, j.next = synced, synced[len(synced)-1].Seq+1
					}
					j.checkSubs()
					for range 5 {
						j.pass(sub, 4)
					}
				}
				j.crash()
				j.checkSubs()
				want := j.msgs
				if then == "crash" && step != "none" {
					want = synced // what the failed roll appended was never synced
				}
				if st := j.ch.Msgs.State(); then == "crash" && st.Last > want[len(want)-1].Seq {
					// The failed Append wrote some into the tail the roll's seal synced.
					want = append(slices.Clone(synced), genMsgs(synced[len(synced)-1].Seq+1, 20)...)[:st.Last]
				}
				checkMsgs(t, j.ch.Msgs, want)
				j.verify()
			})
		}
	}
}

// TestJournalBoundAckOnly: a channel that only acknowledges (a subscriber replaying an old
// backlog: no new message) does not grow its tail without bound: once the tail holds the
// journal bound of dead records it rolls (it held messages), then is replaced in place (it
// holds none), each time holding the live records only; a crash at any point recovers them.
func TestJournalBoundAckOnly(t *testing.T) {
	const bound = 4 << 10
	j := newJT(t, Options{CompactBytes: bound})
	sub := j.createSub()
	if err := j.appendN(100); err != nil {
		t.Fatal(err)
	}
	if err := j.commit(); err != nil {
		t.Fatal(err)
	}
	var maxTail int64 // journal bytes in the tail
	var tails int     // times the tail changed file
	var last uint64
	for i := range 3000 {
		seq := uint64(1 + i%100)
		j.record(stores.SubEvent{SubID: sub, Seq: seq}, stores.SubEvent{SubID: sub, Seq: 1 + (seq+50)%100, Acked: true})
		if err := j.commit(); err != nil {
			t.Fatal(err)
		}
		ms := j.ms()
		tail := ms.segs[len(ms.segs)-1]
		maxTail = max(maxTail, tail.jbytes)
		if ino := inode(t, tail.path); ino != last {
			tails, last = tails+1, ino
		}
		if i%700 == 699 {
			j.crash()
			j.checkSubs()
			checkMsgs(t, j.ch.Msgs, j.msgs)
		}
	}
	t.Logf("tail journal at most %d bytes, %d tail files, %d segments", maxTail, tails, len(j.ms().segs))
	if maxTail > 2*bound || tails < 20 || len(j.ms().segs) != 2 {
		t.Fatalf("tail journal at most %d bytes (bound %d), %d tail files, %d segments", maxTail, bound, tails, len(j.ms().segs))
	}
	j.crash()
	j.checkSubs()
	checkMsgs(t, j.ch.Msgs, j.msgs)
	j.verify()
}

// TestJournalNoTail: a channel that never had a message keeps its subscriptions in
// subs.log, fsynced at each commit (the first creates it: a rewrite, renamed into place);
// once a message comes the journal takes over.
func TestJournalNoTail(t *testing.T) {
	j := newJT(t, Options{})
	sub := j.createSub()
	j.takeSyncs()
	if err := j.commit(); err != nil {
		t.Fatal(err)
	}
	only(t, j.takeSyncs(), "subs.log.tmp", "dir")
	for i := range 3 {
		j.record(stores.SubEvent{SubID: sub, Seq: uint64(i + 1)})
		if err := j.commit(); err != nil {
			t.Fatal(err)
		}
		only(t, j.takeSyncs(), "subs.log")
	}
	j.crash()
	j.checkSubs()
	j.pass(sub, 4)
	if err := j.ch.Subs.Sync(); err != nil { // nothing new
		t.Fatal(err)
	}
	j.takeSyncs()
	j.pass(sub, 4)
	only(t, j.takeSyncs(), segName(1)+".seg")
	j.crash()
	j.checkSubs()
	checkMsgs(t, j.ch.Msgs, j.msgs)
	j.verify()
}

// TestJournalRollback: a channel failed while its tail holds live journal records: Rollback
// first commits the subscriptions to subs.log (memory is the truth: changes not flushed
// yet go with them), then cuts the tail; a crash right after finds them, and commits go on.
// A SubStore SyncFlushed whose fsync covered messages the MsgStore had flushed but not
// synced made them durable: Rollback keeps them.
func TestJournalRollback(t *testing.T) {
	for _, fault := range []string{"journal-write", "msg-fsync", "sub-fsync"} {
		t.Run(fault, func(t *testing.T) {
			j := newJT(t, Options{BufferSize: 512})
			sub := j.createSub()
			for range 5 {
				j.pass(sub, 5)
			}
			synced := slices.Clone(j.msgs)
			msp, ssp := j.ch.Msgs.(stores.SplitSyncer), j.ch.Subs.(stores.SplitSyncer)
			switch fault {
			case "journal-write":
				if err := j.appendN(5); err != nil {
					t.Fatal(err)
				}
				if err := msp.Flush(); err != nil {
					t.Fatal(err)
				}
				j.fl.diskFull(named(".seg"), 10)
				j.record(stores.SubEvent{SubID: sub, Seq: 100})
				if err := ssp.Flush(); !errors.Is(err, syscall.ENOSPC) {
					t.Fatalf("Flush = %v", err)
				}
				if err := ssp.SyncFlushed(); !errors.Is(err, syscall.ENOSPC) {
					t.Fatalf("SyncFlushed after a failed Flush = %v", err)
				}
			case "msg-fsync":
				if err := j.appendN(5); err != nil {
					t.Fatal(err)
				}
				j.record(stores.SubEvent{SubID: sub, Seq: 100})
				j.fl.syncFails(named(".seg"))
				if err := errors.Join(msp.Flush(), ssp.Flush()); err != nil {
					t.Fatal(err)
				}
				if err := msp.SyncFlushed(); !errors.Is(err, syscall.EIO) {
					t.Fatalf("SyncFlushed = %v", err)
				}
				if err := ssp.SyncFlushed(); !errors.Is(err, syscall.EIO) {
					t.Fatalf("SubStore SyncFlushed after the channel failed = %v", err)
				}
			case "sub-fsync":
				// The SubStore's commit covers messages flushed before it: durable.
				if err := j.appendN(5); err != nil {
					t.Fatal(err)
				}
				j.record(stores.SubEvent{SubID: sub, Seq: 100})
				if err := errors.Join(msp.Flush(), ssp.Flush(), ssp.SyncFlushed()); err != nil {
					t.Fatal(err)
				}
				synced = slices.Clone(j.msgs)
				j.fl.syncFails(named(".seg"))
				if err := j.appendN(5); err != nil {
					t.Fatal(err)
				}
				if err := j.ch.Msgs.Sync(); !errors.Is(err, syscall.EIO) {
					t.Fatalf("Sync = %v", err)
				}
			}
			j.fl.clear()
			if len(j.ms().jlive) == 0 {
				t.Fatal("no live journal record to commit")
			}
			j.record(stores.SubEvent{SubID: sub, Seq: 101}) // not flushed: goes with Rollback
			if err := j.ch.Msgs.Rollback(); err != nil {
				t.Fatal(err)
			}
			if j.subsLogLSN() != j.ss().lsn || len(j.ms().jlive) != 0 {
				t.Fatalf("subs.log at LSN %d after Rollback, memory at %d", j.subsLogLSN(), j.ss().lsn)
			}
			checkMsgs(t, j.ch.Msgs, synced)
			j.msgs, j.next = synced, synced[len(synced)-1].Seq+1
			j.checkSubs()
			j.crash()
			j.checkSubs()
			checkMsgs(t, j.ch.Msgs, synced)
			for range 5 {
				j.pass(sub, 3)
			}
			j.crash()
			j.checkSubs()
			checkMsgs(t, j.ch.Msgs, j.msgs)
			j.verify()
		})
	}
}

// TestJournalResume: an empty channel that resumes at a new sequence while its tail holds
// live journal records rolls to a new tail carrying them before the old segments go.
func TestJournalResume(t *testing.T) {
	j := newJT(t, Options{})
	sub := j.createSub()
	for range 3 {
		j.pass(sub, 4)
	}
	j.ch.Msgs.SetLimits(stores.Limits{MaxAge: 1})
	if n, _ := j.ch.Msgs.Expire(1 << 62); n != 12 {
		t.Fatalf("expired %d", n)
	}
	j.ch.Msgs.SetLimits(stores.Limits{})
	j.record(stores.SubEvent{SubID: sub, Seq: 12, Acked: true})
	if err := j.ch.Subs.(stores.SplitSyncer).Flush(); err != nil {
		t.Fatal(err)
	}
	if len(j.ms().jlive) == 0 {
		t.Fatal("no live journal record")
	}
	j.msgs, j.next = nil, 20
	j.pass(sub, 3)
	if segs := segFilesIn(t, j.s.chanDir(1)); len(segs) != 1 || !strings.HasSuffix(segs[0], segName(20)+".seg") {
		t.Fatalf("segments %v", segs)
	}
	j.crash()
	j.checkSubs()
	checkMsgs(t, j.ch.Msgs, j.msgs)
	j.verify()
}

// TestJournalGap: a tail whose journal does not continue subs.log (here: subs.log put back
// to an older state) is damage: Open refuses the channel, Verify says so, Repair refuses
// unless told to quarantine; then subs.log holds what could be recovered, and the channel
// opens.
func TestJournalGap(t *testing.T) {
	j := newJT(t, Options{})
	sub := j.createSub()
	if err := j.ch.Subs.Sync(); err != nil { // into subs.log: no tail yet
		t.Fatal(err)
	}
	old, err := os.ReadFile(filepath.Join(j.s.chanDir(1), "subs.log"))
	if err != nil {
		t.Fatal(err)
	}
	j.record(stores.SubEvent{SubID: sub, Seq: 1})
	if err := j.ch.Subs.Sync(); err != nil {
		t.Fatal(err)
	}
	j.pass(sub, 3) // journal records continuing subs.log
	j.pass(sub, 3)
	// A crash, not Close: Close would write the whole state into subs.log, and its L record
	// would make the old (shorter) file a cut log first.
	j.s.abandon()
	if err := os.WriteFile(filepath.Join(j.s.chanDir(1), "subs.log"), old, 0o644); err != nil {
		t.Fatal(err)
	}
	s, err := Open(j.dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	var de *DamageError
	if d := s.Damaged(); len(d) != 1 || !errors.As(d[0], &de) || !strings.Contains(de.Reason, "does not continue") {
		t.Fatalf("Damaged() = %v", d)
	}
	s.Close()
	r, err := Verify(j.dir, Options{})
	if err != nil || len(r.Problems) != 1 || r.Problems[0].Kind != ProblemJournal || !r.Channels[0].Damaged {
		t.Fatalf("Verify: %v %+v", err, r.Problems)
	}
	if _, err := Repair(j.dir, Options{}); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("Repair = %v", err)
	}
	if r, err = Repair(j.dir, Options{Quarantine: true}); err != nil || len(r.Quarantined) != 1 {
		t.Fatalf("Repair with Quarantine: %v %+v", err, r)
	}
	j.open()
	got, _ := j.ch.Subs.Subs()
	if len(got) != 1 || got[0].State.ID != sub || len(got[0].Pending) != 0 {
		t.Fatalf("subs after the repair: %+v", got)
	}
	checkMsgs(t, j.ch.Msgs, j.msgs)
	j.s.Close()
}

// TestJournalCheckpointFails: while subs.log cannot be rewritten (its fsync fails), commits
// still succeed — the journal holds the records, carried along as the tail rolls — and the
// checkpoint is retried ever more rarely, not at every flush; once the fault is gone one
// commits, and nothing is lost.
func TestJournalCheckpointFails(t *testing.T) {
	j := newJT(t, Options{CompactBytes: 2 << 10, SegmentBytes: 4 << 10})
	sub := j.createSub()
	j.pass(sub, 5)
	var rewrites int
	j.setChange(func(op, path string) error {
		if op == ChangeCreate && strings.HasSuffix(path, "subs.log.tmp") {
			rewrites++
		}
		return nil
	})
	j.fl.syncFails(named("subs.log"))
	lsn := j.subsLogLSN()
	for i := range 2000 {
		j.pass(sub, i%2)
	}
	j.fl.clear()
	t.Logf("%d rewrites attempted, %d segments, %d live journal records", rewrites, len(segFilesIn(t, j.s.chanDir(1))), len(j.ms().jlive))
	if rewrites == 0 || rewrites > 12 {
		t.Fatalf("%d rewrites of subs.log attempted in 2000 commits", rewrites)
	}
	if got := j.subsLogLSN(); got != lsn {
		t.Fatalf("subs.log at LSN %d, was %d", got, lsn)
	}
	for j.subsLogLSN() == lsn {
		j.pass(sub, 1)
	}
	j.crash()
	j.checkSubs()
	checkMsgs(t, j.ch.Msgs, j.msgs)
	j.verify()
}

// TestJournalReplaceFails: replacing an ack-only tail by one holding only its live journal
// fails at each step (a full disk writing it, its fsync, its rename, the directory's fsync):
// the commit fails, nothing reported durable is lost — after a crash, or after Rollback and
// more commits.
func TestJournalReplaceFails(t *testing.T) {
	for _, step := range []string{"write", "fsync", "rename", "dirsync"} {
		for _, then := range []string{"crash", "rollback"} {
			t.Run(step+"/"+then, func(t *testing.T) {
				j := newJT(t, Options{CompactBytes: 2 << 10})
				sub := j.createSub()
				j.pass(sub, 10)
				replaced := 0
				j.setChange(func(op, path string) error {
					if op == ChangeRename && strings.HasSuffix(path, ".seg") {
						replaced++
					}
					return nil
				})
				ack := func(i int) {
					j.record(stores.SubEvent{SubID: sub, Seq: uint64(1 + i%10)}, stores.SubEvent{SubID: sub, Seq: uint64(1 + (i+5)%10), Acked: true})
				}
				i := 0
				for ; replaced < 2; i++ { // a roll (the tail held messages), then a replacement
					ack(i)
					if err := j.commit(); err != nil {
						t.Fatal(err)
					}
				}
				durable := j.wantSubs()
				switch step {
				case "write":
					j.fl.diskFull(func(p string) bool { return strings.HasSuffix(p, ".seg.tmp") }, 40)
				case "fsync":
					j.fl.syncFails(func(p string) bool { return strings.HasSuffix(p, ".seg.tmp") })
				case "rename":
					j.setChange(func(op, path string) error {
						if op == ChangeRename && strings.HasSuffix(path, ".seg") {
							return syscall.EIO
						}
						return nil
					})
				case "dirsync": // the one after the tail's rename (not a checkpoint's)
					var renamed bool
					j.setChange(func(op, path string) error {
						if op == ChangeRename {
							renamed = strings.HasSuffix(path, ".seg")
						}
						return nil
					})
					j.fl.syncFails(func(p string) bool { return renamed && p == j.s.chanDir(1) })
				}
				var err error
				for n := 0; err == nil; i, n = i+1, n+1 {
					if n == 10000 {
						t.Fatal("no commit failed")
					}
					ack(i)
					durable = j.wantSubs()
					err = j.commit()
				}
				j.fl.clear()
				j.setChange(nil)
				if then == "rollback" {
					if err := j.ch.Msgs.Rollback(); err != nil {
						t.Fatal(err)
					}
					j.checkSubs()
					for range 100 {
						ack(i)
						i++
						if err := j.commit(); err != nil {
							t.Fatal(err)
						}
					}
					durable = j.wantSubs()
				}
				j.crash()
				got, _ := j.ch.Subs.Subs()
				if len(got) != 1 || got[0].State != durable[0].State || !slices.Equal(got[0].Pending, durable[0].Pending) {
					t.Fatalf("subs %+v, want %+v", got, durable)
				}
				checkMsgs(t, j.ch.Msgs, j.msgs)
				j.verify()
			})
		}
	}
}
