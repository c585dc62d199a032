package boltstore

import (
	"fmt"
	"path/filepath"
	"slices"
	"testing"

	"github.com/starling-io/starling/stores"
)

// A long run of sent and acked events, flushed and synced in a pipeline as the engine
// does, keeps everything staged bounded: the change log, the queue and the batches are
// emptied by each pass and their memory reused, never accumulated (audit finding 12).
func TestStagingStaysBounded(t *testing.T) {
	s, err := Open(filepath.Join(t.TempDir(), "s.db"), Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ch, err := s.CreateChannel("foo", 1)
	if err != nil {
		t.Fatal(err)
	}
	ss := ch.Subs.(*subStore)
	for id := uint64(1); id <= 3; id++ {
		if err := ss.CreateSub(&stores.SubState{ID: id, ClientID: "c"}); err != nil {
			t.Fatal(err)
		}
	}
	todo, done := make(chan struct{}), make(chan error)
	go func() {
		for range todo {
			err := ss.SyncFlushed()
			if err == nil {
				err = s.SyncFlushed()
			}
			done <- err
		}
	}()
	defer close(todo)
	const rounds, perRound = 1000, 64 // per subscription: 64 sent and 64 acked each round
	events := make([]stores.SubEvent, 0, 3*2*perRound)
	next := uint64(1)
	var maxOps, maxQueued, maxFree, maxBuf int
	inflight := false
	for round := range rounds {
		events = events[:0]
		for i := range perRound {
			seq := next + uint64(i)
			for id := uint64(1); id <= 3; id++ {
				events = append(events, stores.SubEvent{SubID: id, Seq: seq})
				if seq > 1024 {
					events = append(events, stores.SubEvent{SubID: id, Seq: seq - 1024, Acked: true})
				}
			}
		}
		next += perRound
		if err := ss.Record(events); err != nil {
			t.Fatal(err)
		}
		if round%7 == 0 { // clients change now and then
			if err := s.AddClient(stores.ClientInfo{ID: fmt.Sprint("c", round%3), HbInbox: "hb"}); err != nil {
				t.Fatal(err)
			}
		}
		ss.mu.Lock()
		maxOps = max(maxOps, cap(ss.ops))
		ss.mu.Unlock()
		if err := ss.Flush(); err != nil {
			t.Fatal(err)
		}
		if err := s.Flush(); err != nil {
			t.Fatal(err)
		}
		if inflight {
			if err := <-done; err != nil {
				t.Fatal(err)
			}
		}
		todo <- struct{}{}
		inflight = true
		s.c.stageMu.Lock()
		maxQueued = max(maxQueued, len(s.c.metas))
		maxFree = max(maxFree, len(s.c.free))
		for _, b := range slices.Concat(s.c.metas, s.c.free) {
			maxBuf = max(maxBuf, cap(b.buf))
		}
		s.c.stageMu.Unlock()
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	// One round logs 3×128 ops; a batch holds one round's keys (16 B each) and a few states.
	if maxOps > 1024 || maxQueued > 2 || maxFree > 4 || maxBuf > 64<<10 {
		t.Fatalf("staging grew: ops cap %d, queued batches %d, free batches %d, batch buf %d B",
			maxOps, maxQueued, maxFree, maxBuf)
	}
	subs, err := ss.Subs()
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range subs {
		if len(r.Pending) != 1024 {
			t.Fatalf("subscription %d: %d pending, want 1024", r.State.ID, len(r.Pending))
		}
	}
	t.Logf("ops cap %d, queued batches %d, free batches %d, batch buf %d B", maxOps, maxQueued, maxFree, maxBuf)
}

// Deleting and re-creating a channel while another goroutine keeps committing never lets a
// commit write the old channel's messages or subscriptions into the new one.
func TestDeleteChannelDuringCommits(t *testing.T) {
	path := filepath.Join(t.TempDir(), "s.db")
	s, err := Open(path, Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Init(stores.ServerInfo{ClusterID: "c"}); err != nil {
		t.Fatal(err)
	}
	stop, exited := make(chan struct{}), make(chan struct{})
	go func() { // the engine's committer, flat out
		defer close(exited)
		for {
			select {
			case <-stop:
				return
			default:
			}
			if err := s.SyncFlushed(); err != nil {
				t.Error(err)
				return
			}
		}
	}()
	var last uint64
	for round := range 50 {
		ch, err := s.CreateChannel("x", uint64(round+1))
		if err != nil {
			t.Fatal(err)
		}
		if got := ch.Msgs.State(); got.Last != last {
			t.Fatalf("round %d: re-created channel State %+v, want Last %d", round, got, last)
		}
		if err := ch.Msgs.Append(msgsAt(last+1, 5, fmt.Sprint("r", round))); err != nil {
			t.Fatal(err)
		}
		last += 5
		sub := stores.SubState{ID: 1, ClientID: fmt.Sprint("r", round)}
		if err := ch.Subs.CreateSub(&sub); err != nil {
			t.Fatal(err)
		}
		if err := ch.Subs.Record([]stores.SubEvent{{SubID: 1, Seq: last}}); err != nil {
			t.Fatal(err)
		}
		for _, sp := range []stores.SplitSyncer{ch.Msgs.(stores.SplitSyncer), ch.Subs.(stores.SplitSyncer)} {
			if err := sp.Flush(); err != nil {
				t.Fatal(err)
			}
		}
		if err := s.AddClient(stores.ClientInfo{ID: fmt.Sprint("r", round)}); err != nil {
			t.Fatal(err)
		}
		if err := s.Flush(); err != nil {
			t.Fatal(err)
		}
		if round == 49 {
			break // the last incarnation stays
		}
		if err := s.DeleteChannel("x"); err != nil {
			t.Fatal(err)
		}
	}
	close(stop)
	<-exited
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s, err = Open(path, Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ch := s.channels["x"]
	if ch == nil || ch.ch.ID != 50 {
		t.Fatalf("channel x after reopen: %+v", ch)
	}
	if got := ch.msgs.State(); got.First != last-4 || got.Last != last || got.Msgs != 5 {
		t.Fatalf("State %+v, want %d..%d", got, last-4, last)
	}
	var m stores.Msg
	for seq := last - 4; seq <= last; seq++ {
		if err := ch.msgs.Load(seq, &m); err != nil || string(m.Data) != fmt.Sprintf("r49-%d", seq) {
			t.Fatalf("Load(%d) = %q, %v", seq, m.Data, err)
		}
	}
	subs, err := ch.subs.Subs()
	if err != nil || len(subs) != 1 || subs[0].State.ClientID != "r49" || !slices.Equal(subs[0].Pending, []uint64{last}) {
		t.Fatalf("Subs = %+v, %v", subs, err)
	}
}
