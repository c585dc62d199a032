package storetest

import (
	"fmt"
	"maps"
	"math/rand/v2"
	"slices"
	"sync"
	"testing"

	"github.com/starling-io/starling/stores"
)

// metaSnap is the subscription and client state of a store at one Flush.
type metaSnap struct {
	subs    []stores.RecoveredSub
	clients []string // "id/hbinbox/user", sorted
}

func (a metaSnap) equal(b metaSnap) bool {
	if len(a.subs) != len(b.subs) || !slices.Equal(a.clients, b.clients) {
		return false
	}
	for i := range a.subs {
		if a.subs[i].State != b.subs[i].State || !slices.Equal(a.subs[i].Pending, b.subs[i].Pending) {
			return false
		}
	}
	return true
}

func clientKeys(cs []stores.ClientInfo) []string {
	out := make([]string, 0, len(cs))
	for _, c := range cs {
		out = append(out, c.ID+"/"+c.HbInbox+"/"+c.User)
	}
	slices.Sort(out)
	return out
}

// testMetaSplitSync (durable stores whose SubStore and client records implement
// stores.SplitSyncer): the writer changes subscriptions and clients and flushes, while
// SyncFlushed runs on another goroutine; after a simulated crash the store holds exactly
// the state of one Flush — the last one covered by a SyncFlushed that returned nil, or a
// later one. Subscription and client records ride the same group commit as messages, so
// this is what a connect or subscribe response may rely on. With msgs, the channel also
// gets messages as the engine commits them (append, Flush of the MsgStore before the
// SubStore's, SyncFlushed of the MsgStore first), crossing segments where a store has them;
// the crash keeps every message a returned SyncFlushed covered, in a gapless prefix.
func (s *suite) testMetaSplitSync(t *testing.T, msgs bool) {
	if !s.caps.Durable || s.caps.Crash == nil {
		t.Skip("store has no crash hook")
	}
	dir := t.TempDir()
	st := s.open(t, dir)
	if err := st.Init(stores.ServerInfo{ClusterID: "c"}); err != nil {
		t.Fatal(err)
	}
	ch := create(t, st, "foo", 1)
	subSp, ok1 := ch.Subs.(stores.SplitSyncer)
	cliSp, ok2 := st.(stores.SplitSyncer)
	msgSp, ok3 := ch.Msgs.(stores.SplitSyncer)
	if !ok1 || !ok2 || (msgs && !ok3) {
		st.Close()
		t.Skip("store does not split the Sync of its subscriptions and clients")
	}
	r := rand.New(rand.NewPCG(7, 7))
	subs := map[uint64]*modelSub{}
	clients := map[string]stores.ClientInfo{}
	snapshot := func() metaSnap {
		var snap metaSnap
		for _, id := range slices.Sorted(maps.Keys(subs)) {
			ms := subs[id]
			snap.subs = append(snap.subs, stores.RecoveredSub{State: ms.state, Pending: slices.Sorted(maps.Keys(ms.pending))})
		}
		snap.clients = clientKeys(slices.Collect(maps.Values(clients)))
		return snap
	}
	snaps := []metaSnap{snapshot()}
	var (
		mu         sync.Mutex
		durable    int    // index in snaps of the last Flush a returned SyncFlushed covers
		durableMsg uint64 // the last message a returned SyncFlushed of the MsgStore covers
		wg         sync.WaitGroup
		syncMu     sync.Mutex // one SyncFlushed at a time, as the contract says
	)
	all := genBatch(1, 3000)
	appended := 0
	nextID := uint64(0)
	for round := range 300 {
		if msgs && r.IntN(3) > 0 {
			n := 1 + r.IntN(20)
			appendOK(t, ch.Msgs, all[appended:appended+n])
			appended += n
			if err := msgSp.Flush(); err != nil {
				t.Fatal(err)
			}
		}
		lastMsg := uint64(appended)
		for range 1 + r.IntN(8) {
			switch p := r.IntN(10); {
			case p < 2 || len(subs) == 0:
				nextID++
				sub := stores.SubState{ID: nextID, ClientID: fmt.Sprint("c", r.IntN(4)), Inbox: fmt.Sprint("_INBOX.", nextID),
					AckInbox: fmt.Sprint("_INBOX.ack.", nextID), MaxInFlight: 10, AckWaitSecs: 1, User: fmt.Sprint("u", r.IntN(2))}
				if err := ch.Subs.CreateSub(&sub); err != nil {
					t.Fatal(err)
				}
				subs[sub.ID] = &modelSub{state: sub, pending: map[uint64]bool{}}
			case p < 3:
				id := slices.Sorted(maps.Keys(subs))[r.IntN(len(subs))]
				if err := ch.Subs.DeleteSub(id); err != nil {
					t.Fatal(err)
				}
				delete(subs, id)
			case p < 4:
				id := slices.Sorted(maps.Keys(subs))[r.IntN(len(subs))]
				sub := subs[id].state
				sub.IsClosed, sub.Inbox = !sub.IsClosed, fmt.Sprint("_INBOX.r", round)
				if err := ch.Subs.UpdateSub(&sub); err != nil {
					t.Fatal(err)
				}
				subs[id].state = sub
			case p < 5:
				c := stores.ClientInfo{ID: fmt.Sprint("c", r.IntN(6)), HbInbox: fmt.Sprint("_INBOX.hb", round), User: "u"}
				if _, ok := clients[c.ID]; ok && r.IntN(2) == 0 {
					if err := st.DeleteClient(c.ID); err != nil {
						t.Fatal(err)
					}
					delete(clients, c.ID)
					continue
				}
				if err := st.AddClient(c); err != nil {
					t.Fatal(err)
				}
				clients[c.ID] = c
			default:
				ids := slices.Sorted(maps.Keys(subs))
				events := make([]stores.SubEvent, 1+r.IntN(30))
				for i := range events {
					ev := stores.SubEvent{SubID: ids[r.IntN(len(ids))], Seq: 1 + uint64(r.IntN(200)), Acked: r.IntN(3) == 0}
					events[i] = ev
					ms := subs[ev.SubID]
					if ev.Acked {
						delete(ms.pending, ev.Seq)
					} else {
						ms.pending[ev.Seq] = true
						ms.state.LastSent = max(ms.state.LastSent, ev.Seq)
					}
				}
				if err := ch.Subs.Record(events); err != nil {
					t.Fatal(err)
				}
			}
		}
		if err := subSp.Flush(); err != nil {
			t.Fatal(err)
		}
		if err := cliSp.Flush(); err != nil {
			t.Fatal(err)
		}
		snaps = append(snaps, snapshot())
		k := len(snaps) - 1
		wg.Add(1)
		go func() {
			defer wg.Done()
			syncMu.Lock()
			defer syncMu.Unlock()
			if msgs {
				if err := msgSp.SyncFlushed(); err != nil {
					t.Error(err)
					return
				}
				mu.Lock()
				durableMsg = max(durableMsg, lastMsg)
				mu.Unlock()
			}
			if err := subSp.SyncFlushed(); err != nil {
				t.Error(err)
				return
			}
			if err := cliSp.SyncFlushed(); err != nil {
				t.Error(err)
				return
			}
			mu.Lock()
			durable = max(durable, k)
			mu.Unlock()
		}()
		if round%50 == 49 {
			wg.Wait()
		}
	}
	wg.Wait()
	mu.Lock()
	want, wantMsg := durable, durableMsg
	mu.Unlock()
	s.caps.Crash(st)

	st = s.open(t, dir)
	t.Cleanup(func() { st.Close() })
	rc := recovered(t, st, "foo")
	if cs := rc.Channel.Msgs.State(); cs.Last < wantMsg || cs.Last > uint64(appended) || cs.Msgs != cs.Last {
		t.Fatalf("messages after the crash: %+v, want 1..%d or more (appended %d)", cs, wantMsg, appended)
	}
	for i := range all[:rc.Channel.Msgs.State().Last] {
		checkLoad(t, rc.Channel.Msgs, &all[i])
	}
	got, err := rc.Channel.Subs.Subs()
	if err != nil {
		t.Fatal(err)
	}
	rs, err := st.Recover()
	if err != nil {
		t.Fatal(err)
	}
	if rs.Clean {
		t.Fatal("Recover after a crash reports Clean")
	}
	snap := metaSnap{subs: got, clients: clientKeys(rs.Clients)}
	for k := want; k < len(snaps); k++ {
		if snap.equal(snaps[k]) {
			return
		}
	}
	t.Fatalf("state after the crash is no Flush's from %d on (of %d):\n subs %+v\n clients %v\nlast durable:\n subs %+v\n clients %v",
		want, len(snaps), snap.subs, snap.clients, snaps[want].subs, snaps[want].clients)
}

// testClean: Recover reports Clean after Close, not after a crash, and again after the
// next Close.
func (s *suite) testClean(t *testing.T) {
	if !s.caps.Durable {
		t.Skip("not durable")
	}
	st, dir := s.fresh(t)
	create(t, st, "foo", 1)
	st = s.reopen(t, st, dir, nil)
	if rs, err := st.Recover(); err != nil || !rs.Clean {
		t.Fatalf("Recover after Close: Clean=%v, %v", rs != nil && rs.Clean, err)
	}
	if s.caps.Crash == nil {
		return
	}
	if err := st.AddClient(stores.ClientInfo{ID: "a", HbInbox: "hb"}); err != nil {
		t.Fatal(err)
	}
	s.caps.Crash(st)
	st = s.open(t, dir)
	if rs, err := st.Recover(); err != nil || rs.Clean {
		t.Fatalf("Recover after a crash: Clean=%v, %v", rs != nil && rs.Clean, err)
	}
	st = s.reopen(t, st, dir, nil)
	if rs, err := st.Recover(); err != nil || !rs.Clean {
		t.Fatalf("Recover after crash, open, Close: Clean=%v, %v", rs != nil && rs.Clean, err)
	}
}

// testRollbackHealthy: Rollback on a healthy channel changes nothing.
func (s *suite) testRollbackHealthy(t *testing.T) {
	st, _ := s.fresh(t)
	ch := create(t, st, "foo", 1)
	all := genBatch(1, 20)
	appendOK(t, ch.Msgs, all[:10])
	if err := ch.Msgs.Sync(); err != nil {
		t.Fatal(err)
	}
	appendOK(t, ch.Msgs, all[10:])
	if err := ch.Msgs.Rollback(); err != nil {
		t.Fatalf("Rollback on a healthy channel: %v", err)
	}
	checkState(t, ch.Msgs, stateOf("foo", 20, all))
	for i := range all {
		checkLoad(t, ch.Msgs, &all[i])
	}
	appendOK(t, ch.Msgs, genBatch(21, 1))
}
