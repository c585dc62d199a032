package streaming

import (
	"testing"
	"time"

	"github.com/starling-io/starling/stores"
	"github.com/starling-io/starling/stores/memstore"
)

// slowSubs is a SubStore whose Subs waits until released, like a copy of large pending sets.
type slowSubs struct {
	stores.SubStore
	entered, release chan struct{}
}

func (s *slowSubs) Subs() ([]stores.RecoveredSub, error) {
	close(s.entered)
	<-s.release
	return s.SubStore.Subs()
}

// A follower's monitoring must not hold the state machine's lock while it copies the
// subscriptions: Apply and Decode wait on that lock.
func TestMonitorViewDoesNotHoldApplyWhileCopying(t *testing.T) {
	mem, err := memstore.New(memstore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer mem.Close()
	m := newStateMachine(mem)
	ch, err := mem.CreateChannel("foo", 1)
	if err != nil {
		t.Fatal(err)
	}
	slow := &slowSubs{SubStore: ch.Subs, entered: make(chan struct{}), release: make(chan struct{})}
	m.chans["foo"] = &stores.Channel{Name: "foo", ID: 1, Msgs: ch.Msgs, Subs: slow}
	m.clients["c1"] = stores.ClientInfo{ID: "c1", HbInbox: "_INBOX.hb"}

	done := make(chan []*Channelz)
	go func() {
		chans, _ := m.monitorView(true)
		done <- chans
	}()
	<-slow.entered
	locked := make(chan struct{})
	go func() {
		m.mu.Lock() // what Apply does first
		n := len(m.chans)
		m.mu.Unlock()
		_ = n
		close(locked)
	}()
	select {
	case <-locked:
	case <-time.After(2 * time.Second):
		t.Fatal("the state machine's lock is held while monitoring copies subscriptions")
	}
	close(slow.release)
	chans := <-done
	if len(chans) != 1 || chans[0].Name != "foo" {
		t.Fatalf("channels %+v", chans)
	}
}

// slowSyncSubs is a SubStore whose Sync waits until released, like an fsync on a busy disk.
type slowSyncSubs struct {
	stores.SubStore
	entered, release chan struct{}
}

func (s *slowSyncSubs) Sync() error {
	close(s.entered)
	<-s.release
	return s.SubStore.Sync()
}

// A snapshot syncs the stores without the state machine's lock: under bulk replication on
// a busy disk those fsyncs took seconds, and monitoring, fetches and Decode waited on it.
func TestSnapshotSyncsWithoutHoldingTheLock(t *testing.T) {
	mem, err := memstore.New(memstore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer mem.Close()
	m := newStateMachine(mem)
	ch, err := mem.CreateChannel("foo", 1)
	if err != nil {
		t.Fatal(err)
	}
	slow := &slowSyncSubs{SubStore: ch.Subs, entered: make(chan struct{}), release: make(chan struct{})}
	m.chans["foo"] = &stores.Channel{Name: "foo", ID: 1, Msgs: ch.Msgs, Subs: slow}

	done := make(chan error, 1)
	go func() {
		_, err := m.Snapshot()
		done <- err
	}()
	<-slow.entered
	viewed := make(chan []*Channelz)
	go func() {
		chans, _ := m.monitorView(false)
		viewed <- chans
	}()
	select {
	case chans := <-viewed:
		if len(chans) != 1 {
			t.Fatalf("channels %+v", chans)
		}
	case <-time.After(2 * time.Second):
		t.Fatal("monitoring waits for a snapshot's sync")
	}
	close(slow.release)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}
