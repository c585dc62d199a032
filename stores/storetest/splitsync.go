package storetest

import (
	"sync"
	"testing"

	"github.com/starling-io/starling/stores"
)

// testSplitSync (stores implementing stores.SplitSyncer): SyncFlushed runs on other
// goroutines while the writer keeps appending and flushing (crossing segment boundaries
// where a store has them); after a simulated crash, every message flushed before a
// SyncFlushed that returned nil is recovered, in a gapless prefix.
func (s *suite) testSplitSync(t *testing.T) {
	if !s.caps.Durable || s.caps.Crash == nil {
		t.Skip("store has no crash hook")
	}
	dir := t.TempDir()
	st := s.open(t, dir)
	if err := st.Init(stores.ServerInfo{ClusterID: "c"}); err != nil {
		t.Fatal(err)
	}
	ch := create(t, st, "foo", 1)
	sp, ok := ch.Msgs.(stores.SplitSyncer)
	if !ok {
		st.Close()
		t.Skip("store does not split its Sync")
	}
	const n, batch = 2000, 20
	all := genBatch(1, n)
	var mu sync.Mutex
	durable := uint64(0) // the highest sequence a returned SyncFlushed covers
	var wg sync.WaitGroup
	for i := 0; i < n; i += batch {
		appendOK(t, ch.Msgs, all[i:i+batch])
		if err := sp.Flush(); err != nil {
			t.Fatal(err)
		}
		last := all[i+batch-1].Seq
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := sp.SyncFlushed(); err != nil {
				t.Error(err)
				return
			}
			mu.Lock()
			durable = max(durable, last)
			mu.Unlock()
		}()
		if i == n/2 {
			wg.Wait() // at least half is known durable
		}
	}
	wg.Wait()
	mu.Lock()
	want := durable
	mu.Unlock()
	s.caps.Crash(st)

	st = s.open(t, dir)
	t.Cleanup(func() { st.Close() })
	ms := recovered(t, st, "foo").Channel.Msgs
	cs := ms.State()
	if cs.First != 1 || cs.Last < want || cs.Msgs != cs.Last {
		t.Fatalf("State after crash = %+v: want 1..%d or more, no gap", cs, want)
	}
	for i := range all[:cs.Last] {
		checkLoad(t, ms, &all[i])
	}
}
