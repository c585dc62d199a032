package streaming

import (
	"maps"
	"testing"
	"time"

	"github.com/starling-io/starling/stores"
	"github.com/starling-io/starling/stores/memstore"
)

// gatedSubs is a SubStore whose Subs (gate "subs": a copy of large pending sets) or Sync
// (gate "sync": an fsync on a busy disk) waits until released.
type gatedSubs struct {
	stores.SubStore
	gate             string
	entered, release chan struct{}
}

func (s *gatedSubs) wait(op string) {
	if op == s.gate {
		close(s.entered)
		<-s.release
	}
}

func (s *gatedSubs) Subs() ([]stores.RecoveredSub, error) {
	s.wait("subs")
	return s.SubStore.Subs()
}

func (s *gatedSubs) Sync() error {
	s.wait("sync")
	return s.SubStore.Sync()
}

// gatedStateMachine is a state machine on a memory store whose channel foo has gatedSubs.
func gatedStateMachine(t *testing.T, gate string) (*stateMachine, *gatedSubs) {
	t.Helper()
	mem, err := memstore.New(memstore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { mem.Close() })
	m := newStateMachine(mem)
	ch, err := mem.CreateChannel("foo", 1)
	if err != nil {
		t.Fatal(err)
	}
	g := &gatedSubs{SubStore: ch.Subs, gate: gate, entered: make(chan struct{}), release: make(chan struct{})}
	m.chans["foo"] = &stores.Channel{Name: "foo", ID: 1, Msgs: ch.Msgs, Subs: g}
	return m, g
}

// A follower's monitoring must not hold the state machine's lock while it copies the
// subscriptions: Apply and Decode wait on that lock.
func TestMonitorViewDoesNotHoldApplyWhileCopying(t *testing.T) {
	m, slow := gatedStateMachine(t, "subs")
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

// A snapshot syncs the stores without the state machine's lock: under bulk replication on
// a busy disk those fsyncs took seconds, and monitoring, fetches and Decode waited on it.
func TestSnapshotSyncsWithoutHoldingTheLock(t *testing.T) {
	m, slow := gatedStateMachine(t, "sync")

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

// A follower shows a queue member's last_sent as the leader does and as it would itself if
// it led (recover.go): the group's, the highest any of its members was sent.
func TestMonitorViewQueueMembersShowTheGroupsLastSent(t *testing.T) {
	mem, err := memstore.New(memstore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { mem.Close() })
	m := newStateMachine(mem)
	ch, err := mem.CreateChannel("foo", 1)
	if err != nil {
		t.Fatal(err)
	}
	m.chans["foo"] = ch
	for _, st := range []stores.SubState{
		{ID: 1, ClientID: "c1", QGroup: "g", Inbox: "in.1", MaxInFlight: 10, LastSent: 3},
		{ID: 2, ClientID: "c2", QGroup: "g", Inbox: "in.2", MaxInFlight: 10, LastSent: 4},
		{ID: 3, ClientID: "c3", QGroup: "g", Inbox: "in.3", MaxInFlight: 10, LastSent: 1, User: "other"}, // another user's group
		{ID: 4, ClientID: "c1", Inbox: "in.4", MaxInFlight: 10, LastSent: 2},
	} {
		if err := ch.Subs.CreateSub(&st); err != nil {
			t.Fatal(err)
		}
	}
	chans, _ := m.monitorView(true)
	got := map[string]uint64{}
	for _, z := range chans[0].Subscriptions {
		got[z.Inbox] = z.LastSent
	}
	if want := map[string]uint64{"in.1": 4, "in.2": 4, "in.3": 1, "in.4": 2}; !maps.Equal(got, want) {
		t.Fatalf("last_sent by inbox %v, want %v", got, want)
	}
}
