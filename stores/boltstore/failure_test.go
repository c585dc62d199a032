package boltstore

import (
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"

	bolt "go.etcd.io/bbolt"

	"github.com/starling-io/starling/stores"
)

var errInjected = errors.New("injected: no space left on device")

// faults fails group commits on demand through Hooks.FailCommit: before the commit writes
// anything, or after it wrote everything (bbolt then rolls back what it wrote in memory).
type faults struct {
	mode   atomic.Int32 // 0 none, 1 before writes, 2 after writes
	during func()       // if set, run inside the next failing commit (a writer going on)
	failed atomic.Int32 // commits failed so far
}

const (
	failNone = iota
	failBefore
	failAfter
)

func (f *faults) hook(written bool) error {
	m := f.mode.Load()
	if m == failNone || written != (m == failAfter) {
		return nil
	}
	if fn := f.during; fn != nil {
		f.during = nil
		fn()
	}
	f.failed.Add(1)
	return errInjected
}

func openFaulty(t *testing.T, path string, f *faults) *Store {
	t.Helper()
	s, err := Open(path, Options{NoSync: true, Hooks: Hooks{FailCommit: f.hook}})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// msgsAt returns messages first..first+n-1 whose payload names tag, so that a message
// appended again under a sequence after a Rollback is told from the one that failed.
func msgsAt(first uint64, n int, tag string) []stores.Msg {
	b := make([]stores.Msg, n)
	for i := range b {
		seq := first + uint64(i)
		b[i] = stores.Msg{Seq: seq, Time: int64(seq), Data: fmt.Appendf(nil, "%s-%d", tag, seq)}
	}
	return b
}

// checkMsgs requires ms to hold exactly 1..last, message seq carrying tagOf(seq).
func checkMsgs(t *testing.T, ms stores.MsgStore, last uint64, tagOf func(seq uint64) string) {
	t.Helper()
	if got := ms.State(); got.First != 1 || got.Last != last || got.Msgs != last {
		t.Fatalf("State = %+v, want 1..%d", got, last)
	}
	var m stores.Msg
	for seq := uint64(1); seq <= last; seq++ {
		want := fmt.Sprintf("%s-%d", tagOf(seq), seq)
		if err := ms.Load(seq, &m); err != nil || string(m.Data) != want {
			t.Fatalf("Load(%d) = %q, %v; want %q", seq, m.Data, err, want)
		}
	}
}

// A failed message commit fails the channel: every later Append, Flush, Sync and
// SyncFlushed returns the error, so nothing appended after it can be reported durable, and
// nothing of it is written later. Rollback returns the channel to what is committed;
// appends continue from there and a reopen — after Close or after a crash — finds exactly
// the committed messages.
func TestFailedMsgCommit(t *testing.T) {
	for _, mode := range []int32{failBefore, failAfter} {
		for _, end := range []string{"close", "crash"} {
			t.Run(fmt.Sprintf("mode=%d/%s", mode, end), func(t *testing.T) {
				testFailedMsgCommit(t, mode, end == "crash")
			})
		}
	}
}

func testFailedMsgCommit(t *testing.T, mode int32, crashAtEnd bool) {
	path := filepath.Join(t.TempDir(), "s.db")
	f := &faults{}
	s := openFaulty(t, path, f)
	defer func() { s.Close() }()
	if err := s.Init(stores.ServerInfo{ClusterID: "c"}); err != nil {
		t.Fatal(err)
	}
	chA, err := s.CreateChannel("a", 1)
	if err != nil {
		t.Fatal(err)
	}
	chB, err := s.CreateChannel("b", 2)
	if err != nil {
		t.Fatal(err)
	}
	a, b := chA.Msgs, chB.Msgs
	for _, ms := range []stores.MsgStore{a, b} {
		if err := ms.Append(msgsAt(1, 10, "ok")); err != nil {
			t.Fatal(err)
		}
		if err := ms.Sync(); err != nil {
			t.Fatal(err)
		}
	}

	// Both channels flushed into one commit, which fails while the writer appends and
	// flushes more to a.
	for _, ms := range []stores.MsgStore{a, b} {
		if err := ms.Append(msgsAt(11, 5, "lost")); err != nil {
			t.Fatal(err)
		}
		if err := ms.(stores.SplitSyncer).Flush(); err != nil {
			t.Fatal(err)
		}
	}
	f.mode.Store(mode)
	f.during = func() {
		if err := a.Append(msgsAt(16, 5, "lost")); err != nil {
			t.Error(err)
		}
		if err := a.(stores.SplitSyncer).Flush(); err != nil {
			t.Error(err)
		}
	}
	if err := a.(stores.SplitSyncer).SyncFlushed(); !errors.Is(err, errInjected) {
		t.Fatalf("SyncFlushed of a failing commit = %v", err)
	}
	f.mode.Store(failNone)
	if f.failed.Load() != 1 {
		t.Fatalf("%d commits failed, want 1", f.failed.Load())
	}
	for name, ms := range map[string]stores.MsgStore{"a": a, "b": b} {
		sp := ms.(stores.SplitSyncer)
		for what, err := range map[string]error{
			"Append":      ms.Append(msgsAt(ms.State().Last+1, 1, "lost")),
			"Flush":       sp.Flush(),
			"SyncFlushed": sp.SyncFlushed(),
			"Sync":        ms.Sync(),
		} {
			if !errors.Is(err, errInjected) {
				t.Fatalf("%s: %s after the failure = %v", name, what, err)
			}
		}
	}
	if got := a.State(); got.Last != 20 { // what was appended stays visible until Rollback
		t.Fatalf("a before Rollback: %+v", got)
	}

	for _, ms := range []stores.MsgStore{a, b} {
		if err := ms.Rollback(); err != nil {
			t.Fatal(err)
		}
		checkMsgs(t, ms, 10, func(uint64) string { return "ok" })
		if err := ms.Rollback(); err != nil { // healthy now: nothing to do
			t.Fatal(err)
		}
		if err := ms.Append(msgsAt(11, 10, "again")); err != nil {
			t.Fatal(err)
		}
		if err := ms.Sync(); err != nil {
			t.Fatal(err)
		}
	}
	if err := a.Append(msgsAt(21, 5, "unsynced")); err != nil { // lost by a crash
		t.Fatal(err)
	}

	if crashAtEnd {
		s.crash()
	} else if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = openFaulty(t, path, f)
	rs, err := s.Recover()
	if err != nil {
		t.Fatal(err)
	}
	if rs.Clean == crashAtEnd {
		t.Fatalf("Clean = %v after %s", rs.Clean, map[bool]string{true: "a crash", false: "Close"}[crashAtEnd])
	}
	tag := func(seq uint64) string {
		switch {
		case seq <= 10:
			return "ok"
		case seq <= 20:
			return "again"
		}
		return "unsynced"
	}
	lastA := uint64(25)
	if crashAtEnd {
		lastA = 20
	}
	checkMsgs(t, s.channels["a"].msgs, lastA, tag)
	checkMsgs(t, s.channels["b"].msgs, 20, tag)
}

// Close with a channel still failed reports the failure, writes everything else, and
// leaves the store not Clean.
func TestCloseWithFailedChannel(t *testing.T) {
	path := filepath.Join(t.TempDir(), "s.db")
	f := &faults{}
	s := openFaulty(t, path, f)
	if err := s.Init(stores.ServerInfo{ClusterID: "c"}); err != nil {
		t.Fatal(err)
	}
	ch, err := s.CreateChannel("a", 1)
	if err != nil {
		t.Fatal(err)
	}
	if err := ch.Msgs.Append(msgsAt(1, 3, "ok")); err != nil {
		t.Fatal(err)
	}
	if err := ch.Msgs.Sync(); err != nil {
		t.Fatal(err)
	}
	if err := ch.Msgs.Append(msgsAt(4, 3, "lost")); err != nil {
		t.Fatal(err)
	}
	f.mode.Store(failAfter)
	if err := ch.Msgs.Sync(); !errors.Is(err, errInjected) {
		t.Fatalf("Sync = %v", err)
	}
	f.mode.Store(failNone)
	if err := s.AddClient(stores.ClientInfo{ID: "c1", HbInbox: "hb"}); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); !errors.Is(err, errInjected) {
		t.Fatalf("Close = %v, want the channel's failure", err)
	}
	s = openFaulty(t, path, f)
	defer s.Close()
	rs, err := s.Recover()
	if err != nil {
		t.Fatal(err)
	}
	if rs.Clean || len(rs.Clients) != 1 {
		t.Fatalf("after Close with a failed channel: Clean %v, clients %+v", rs.Clean, rs.Clients)
	}
	checkMsgs(t, s.channels["a"].msgs, 3, func(uint64) string { return "ok" })
}

// A MsgStore or SubStore closed on its own after its last commit failed does not leave
// the Store's Close quietly Clean: the subscriptions the failure lost (still in memory) are
// written by it, and a channel still failed makes it fail as an open one does.
func TestCloseAfterFailedStoreClose(t *testing.T) {
	for _, which := range []string{"subs", "msgs"} {
		t.Run(which, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "s.db")
			f := &faults{}
			s := openFaulty(t, path, f)
			if err := s.Init(stores.ServerInfo{ClusterID: "c"}); err != nil {
				t.Fatal(err)
			}
			ch, err := s.CreateChannel("a", 1)
			if err != nil {
				t.Fatal(err)
			}
			if err := ch.Subs.CreateSub(&stores.SubState{ID: 1, Inbox: "in"}); err != nil {
				t.Fatal(err)
			}
			if err := ch.Msgs.Append(msgsAt(1, 3, "lost")); err != nil {
				t.Fatal(err)
			}
			f.mode.Store(failBefore)
			closeIt := ch.Subs.Close
			if which == "msgs" {
				closeIt = ch.Msgs.Close
			}
			if err := closeIt(); !errors.Is(err, errInjected) {
				t.Fatalf("Close = %v", err)
			}
			f.mode.Store(failNone)
			err = s.Close()
			if which == "msgs" && !errors.Is(err, errInjected) {
				t.Fatalf("Store.Close = %v, want the channel's failure", err)
			}
			if which == "subs" && err != nil {
				t.Fatal(err)
			}
			s = openFaulty(t, path, f)
			defer s.Close()
			rs, err := s.Recover()
			if err != nil {
				t.Fatal(err)
			}
			subs, err := s.channels["a"].subs.Subs()
			if err != nil {
				t.Fatal(err)
			}
			switch {
			case which == "subs" && len(subs) != 1:
				t.Fatalf("subscription lost: Clean %v, subs %+v", rs.Clean, subs)
			case which == "msgs" && rs.Clean:
				t.Fatalf("Clean after a channel closed failed; state %+v", s.channels["a"].msgs.State())
			}
		})
	}
}

// metaChange makes a round of subscription and client changes, different for each round.
func metaChange(t *testing.T, s *Store, ss stores.SubStore, round int) {
	t.Helper()
	id := uint64(round%4 + 1)
	sub := stores.SubState{ID: id, ClientID: fmt.Sprint("c", round), Inbox: fmt.Sprint("_INBOX.", round), User: "u"}
	switch err := ss.CreateSub(&sub); {
	case errors.Is(err, stores.ErrExists):
		if round%3 == 0 {
			if err := ss.DeleteSub(id); err != nil {
				t.Fatal(err)
			}
		} else if err := ss.UpdateSub(&sub); err != nil {
			t.Fatal(err)
		}
	case err != nil:
		t.Fatal(err)
	}
	var evs []stores.SubEvent
	for sid := uint64(1); sid <= 4; sid++ {
		for k := range 5 {
			seq := uint64(round*5 + k + 10)
			evs = append(evs, stores.SubEvent{SubID: sid, Seq: seq}, stores.SubEvent{SubID: sid, Seq: seq - 3, Acked: k%2 == 0})
		}
	}
	if err := ss.Record(evs); err != nil {
		t.Fatal(err)
	}
	if err := s.AddClient(stores.ClientInfo{ID: fmt.Sprint("c", round%5), HbInbox: fmt.Sprint("hb", round), User: "u"}); err != nil {
		t.Fatal(err)
	}
	if round%4 == 3 {
		if err := s.DeleteClient(fmt.Sprint("c", (round+2)%5)); err != nil && !errors.Is(err, stores.ErrNotFound) {
			t.Fatal(err)
		}
	}
}

func metaState(t *testing.T, s *Store, ss stores.SubStore) ([]stores.RecoveredSub, []stores.ClientInfo) {
	t.Helper()
	subs, err := ss.Subs()
	if err != nil {
		t.Fatal(err)
	}
	rs, err := s.Recover()
	if err != nil {
		t.Fatal(err)
	}
	return subs, rs.Clients
}

func sameMeta(as, bs []stores.RecoveredSub, ac, bc []stores.ClientInfo) bool {
	return slices.EqualFunc(as, bs, func(a, b stores.RecoveredSub) bool {
		return a.State == b.State && slices.Equal(a.Pending, b.Pending)
	}) && slices.EqualFunc(ac, bc, func(a, b stores.ClientInfo) bool {
		return a.ID == b.ID && a.HbInbox == b.HbInbox && a.User == b.User
	})
}

// A failed subscription or client commit is not sticky: the SyncFlushed that covered the
// lost changes — and every later one for them — returns the error until the store flushes
// again; that Flush stages the whole state from memory, and after its SyncFlushed a crash
// recovers exactly what memory holds, including changes flushed while the failing commit
// ran (which built on the lost ones and were dropped with them).
func TestFailedMetaCommit(t *testing.T) {
	for _, mode := range []int32{failBefore, failAfter} {
		t.Run(fmt.Sprintf("mode=%d", mode), func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "s.db")
			f := &faults{}
			s := openFaulty(t, path, f)
			if err := s.Init(stores.ServerInfo{ClusterID: "c"}); err != nil {
				t.Fatal(err)
			}
			ch, err := s.CreateChannel("foo", 1)
			if err != nil {
				t.Fatal(err)
			}
			ss := ch.Subs
			subSp, cliSp := ss.(stores.SplitSyncer), stores.SplitSyncer(s)
			flush := func() {
				t.Helper()
				if err := subSp.Flush(); err != nil {
					t.Fatal(err)
				}
				if err := cliSp.Flush(); err != nil {
					t.Fatal(err)
				}
			}
			round := 0
			for ; round < 5; round++ {
				metaChange(t, s, ss, round)
			}
			flush()
			if err := subSp.SyncFlushed(); err != nil {
				t.Fatal(err)
			}
			if err := cliSp.SyncFlushed(); err != nil {
				t.Fatal(err)
			}

			for ; round < 10; round++ {
				metaChange(t, s, ss, round)
			}
			flush()
			f.mode.Store(mode)
			f.during = func() { // the writer goes on while the commit fails
				metaChange(t, s, ss, 100)
				flush()
			}
			if err := subSp.SyncFlushed(); !errors.Is(err, errInjected) {
				t.Fatalf("subs SyncFlushed of a failing commit = %v", err)
			}
			f.mode.Store(failNone)
			// The clients were in the same commit; the changes flushed during it were
			// dropped. Without a new Flush nothing writes them: the error stays.
			for range 2 {
				if err := cliSp.SyncFlushed(); !errors.Is(err, errInjected) {
					t.Fatalf("clients SyncFlushed after the failure = %v", err)
				}
				if err := subSp.SyncFlushed(); !errors.Is(err, errInjected) {
					t.Fatalf("subs SyncFlushed after the failure = %v", err)
				}
			}
			metaChange(t, s, ss, 101)
			flush()
			wantSubs, wantClients := metaState(t, s, ss)
			metaChange(t, s, ss, 102) // not flushed: lost by the crash
			if err := subSp.SyncFlushed(); err != nil {
				t.Fatal(err)
			}
			if err := cliSp.SyncFlushed(); err != nil {
				t.Fatal(err)
			}
			if f.failed.Load() != 1 {
				t.Fatalf("%d commits failed, want 1", f.failed.Load())
			}
			s.crash()

			s = openFaulty(t, path, f)
			defer s.Close()
			gotSubs, gotClients := metaState(t, s, s.channels["foo"].subs)
			if !sameMeta(gotSubs, wantSubs, gotClients, wantClients) {
				t.Fatalf("after the crash:\n subs %+v\n clients %+v\nwant\n subs %+v\n clients %+v",
					gotSubs, gotClients, wantSubs, wantClients)
			}
		})
	}
}

// A subscription or client that protobuf could not encode is refused up front, instead of
// failing every later Flush of its store.
func TestNotUTF8Refused(t *testing.T) {
	s, err := Open(filepath.Join(t.TempDir(), "s.db"), Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ch, err := s.CreateChannel("foo", 1)
	if err != nil {
		t.Fatal(err)
	}
	bad := "dur\xff"
	if err := ch.Subs.CreateSub(&stores.SubState{ID: 1, DurableName: bad}); !errors.Is(err, ErrNotUTF8) {
		t.Fatalf("CreateSub = %v", err)
	}
	if err := ch.Subs.CreateSub(&stores.SubState{ID: 1, DurableName: "dur"}); err != nil {
		t.Fatal(err)
	}
	if err := ch.Subs.UpdateSub(&stores.SubState{ID: 1, Inbox: bad}); !errors.Is(err, ErrNotUTF8) {
		t.Fatalf("UpdateSub = %v", err)
	}
	if err := s.AddClient(stores.ClientInfo{ID: "c", User: bad}); !errors.Is(err, ErrNotUTF8) {
		t.Fatalf("AddClient = %v", err)
	}
	if err := ch.Subs.Sync(); err != nil {
		t.Fatal(err)
	}
	if err := s.Sync(); err != nil {
		t.Fatal(err)
	}
}

// Open's own transaction (it creates the buckets and removes the clean mark) failing — a
// full disk, an I/O error — is that failure, not a corrupt file: reported as ErrCorrupt, it
// sent operators to their backups for a disk that only needed space. The file is intact:
// the next Open succeeds.
func TestOpenWriteFailureIsNotCorrupt(t *testing.T) {
	s, path, ch := openFoo(t, Options{NoSync: true}, 1)
	appendSync(t, ch.Msgs, 1, 3)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	_, err := Open(path, Options{NoSync: true, Hooks: Hooks{FailOpen: func() error { return syscall.ENOSPC }}})
	if err == nil || errors.Is(err, ErrCorrupt) || !errors.Is(err, syscall.ENOSPC) || !strings.Contains(err.Error(), path) {
		t.Fatalf("Open with a failing write = %v, want ENOSPC naming the file, not ErrCorrupt", err)
	}
	s = mustOpen(t, path, Options{NoSync: true})
	defer s.Close()
	checkRange(t, s.channels["foo"].msgs, 1, 3)
}

// What bbolt itself refuses inside Open's transaction — the clean mark's key holding a
// bucket — is damage, not a failed write: only an errno (a full disk, an I/O error) is
// reported as the write failure (344c5e6 reported every error of it so).
func TestOpenTransactionRefusalIsCorrupt(t *testing.T) {
	s, path, ch := openFoo(t, Options{NoSync: true}, 1)
	appendSync(t, ch.Msgs, 1, 3)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	db, err := bolt.Open(path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	err = db.Update(func(tx *bolt.Tx) error {
		meta := tx.Bucket([]byte(bktMeta))
		if err := meta.Delete([]byte(keyClean)); err != nil {
			return err
		}
		_, err := meta.CreateBucket([]byte(keyClean))
		return err
	})
	if cerr := db.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Open(path, Options{NoSync: true}); !errors.Is(err, ErrCorrupt) || errors.Is(err, errOpenWrite) {
		t.Fatalf("Open of a clean mark that is a bucket = %v, want ErrCorrupt", err)
	}
}
