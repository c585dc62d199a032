package storetest

import (
	"errors"
	"slices"
	"testing"

	"github.com/starling-io/starling/stores"
)

func channelNames(t testing.TB, st stores.Store) []string {
	t.Helper()
	rs, err := st.Recover()
	if err != nil || rs == nil {
		t.Fatalf("Recover = %v, %v", rs, err)
	}
	var names []string
	for _, rc := range rs.Channels {
		names = append(names, rc.Channel.Name)
	}
	return names
}

func (s *suite) testChannels(t *testing.T) {
	st, dir := s.fresh(t)
	if names := channelNames(t, st); len(names) != 0 {
		t.Fatalf("fresh store has channels %v", names)
	}
	foo := create(t, st, "foo", 1)
	bar := create(t, st, "bar", 2)
	rs, _ := st.Recover()
	if len(rs.Channels) != 2 || rs.Channels[0].Channel != bar || rs.Channels[1].Channel != foo {
		t.Fatalf("Recover must list the store's own channels by name: %+v", rs.Channels)
	}
	if _, err := st.CreateChannel("foo", 3); !errors.Is(err, stores.ErrExists) {
		t.Fatalf("duplicate CreateChannel = %v", err)
	}

	setLimits(t, st, &stores.LimitsSet{Global: stores.Limits{MaxChannels: 3}})
	create(t, st, "baz", 3)
	_, err := st.CreateChannel("qux", 4)
	if !errors.Is(err, stores.ErrTooManyChannels) || err.Error() != "too many channels" {
		t.Fatalf("CreateChannel beyond MaxChannels = %v", err)
	}
	if err := st.DeleteChannel("nope"); !errors.Is(err, stores.ErrNotFound) {
		t.Fatalf("DeleteChannel(unknown) = %v", err)
	}
	appendOK(t, bar.Msgs, genBatch(1, 3))
	if err := bar.Subs.CreateSub(&stores.SubState{ID: 1}); err != nil {
		t.Fatal(err)
	}
	if err := st.DeleteChannel("bar"); err != nil {
		t.Fatalf("DeleteChannel: %v", err)
	}
	create(t, st, "qux", 4)
	if names := channelNames(t, st); !slices.Equal(names, []string{"baz", "foo", "qux"}) {
		t.Fatalf("channels = %v", names)
	}

	// The deleted channel's stores refuse to work.
	var m stores.Msg
	for _, err := range []error{
		bar.Msgs.Append(genBatch(4, 1)), bar.Msgs.Load(1, &m), bar.Msgs.Sync(),
		bar.Subs.CreateSub(&stores.SubState{ID: 2}), bar.Subs.Record([]stores.SubEvent{{SubID: 1, Seq: 1}}),
	} {
		if !errors.Is(err, stores.ErrChannelDeleted) {
			t.Fatalf("deleted channel's store: %v, want ErrChannelDeleted", err)
		}
	}
	if _, err := bar.Subs.Subs(); !errors.Is(err, stores.ErrChannelDeleted) {
		t.Fatalf("deleted channel's Subs: %v", err)
	}

	appendOK(t, foo.Msgs, genBatch(1, 4))
	if err := foo.Msgs.Sync(); err != nil {
		t.Fatal(err)
	}
	if !s.caps.Durable {
		return
	}
	st = s.reopen(t, st, dir, nil)
	rs, err = st.Recover()
	if err != nil {
		t.Fatal(err)
	}
	var got []stores.Channel
	for _, rc := range rs.Channels {
		got = append(got, stores.Channel{Name: rc.Channel.Name, ID: rc.Channel.ID})
	}
	want := []stores.Channel{{Name: "baz", ID: 3}, {Name: "foo", ID: 1}, {Name: "qux", ID: 4}}
	if !slices.Equal(got, want) {
		t.Fatalf("recovered channels %v, want %v", got, want)
	}
	checkState(t, rs.Channels[1].Channel.Msgs, stateOf("foo", 4, genBatch(1, 4)))
	if rs2, _ := st.Recover(); rs2.Channels[1].Channel != rs.Channels[1].Channel {
		t.Fatal("Recover returned a different *Channel for the same channel")
	}
}

func (s *suite) testChannelRecreate(t *testing.T) {
	st, dir := s.fresh(t)
	ms := create(t, st, "foo", 1).Msgs
	appendOK(t, ms, genBatch(1, 5))
	if err := st.DeleteChannel("foo"); err != nil {
		t.Fatal(err)
	}
	ms = create(t, st, "foo", 2).Msgs
	checkState(t, ms, stores.ChannelState{First: 6, Last: 5})
	if err := ms.Append(genBatch(1, 1)); !errors.Is(err, stores.ErrBadSequence) {
		t.Fatalf("recreated channel accepted seq 1: %v", err)
	}
	appendOK(t, ms, genBatch(6, 2))
	checkState(t, ms, stateOf("foo", 7, genBatch(6, 2)))
	if err := st.DeleteChannel("foo"); err != nil {
		t.Fatal(err)
	}
	// A channel that never had a message starts at 1.
	checkState(t, create(t, st, "bar", 3).Msgs, stores.ChannelState{First: 1, Last: 0})
	if !s.caps.Durable {
		return
	}
	st = s.reopen(t, st, dir, nil)
	checkState(t, create(t, st, "foo", 4).Msgs, stores.ChannelState{First: 8, Last: 7})
}

// testChannelAfter: CreateChannelAfter starts a channel after the larger of its argument
// and the store's own memory of the name; Recover reports that memory (Deleted).
func (s *suite) testChannelAfter(t *testing.T) {
	st, dir := s.fresh(t)
	ms := create(t, st, "foo", 1).Msgs
	appendOK(t, ms, genBatch(1, 5))
	if err := st.DeleteChannel("foo"); err != nil {
		t.Fatal(err)
	}
	rs, err := st.Recover()
	if err != nil || rs == nil {
		t.Fatalf("Recover = %v, %v", rs, err)
	}
	if len(rs.Deleted) != 1 || rs.Deleted["foo"] != 5 {
		t.Fatalf("Deleted = %v, want foo: 5", rs.Deleted)
	}
	after := func(name string, id, n uint64) stores.MsgStore {
		t.Helper()
		ch, err := st.CreateChannelAfter(name, id, n)
		if err != nil {
			t.Fatalf("CreateChannelAfter(%s, %d): %v", name, n, err)
		}
		return ch.Msgs
	}
	checkState(t, after("foo", 2, 3), stores.ChannelState{First: 6, Last: 5}) // the store's is larger
	checkState(t, after("bar", 3, 9), stores.ChannelState{First: 10, Last: 9})
	if _, err := st.CreateChannelAfter("bar", 4, 1); !errors.Is(err, stores.ErrExists) {
		t.Fatalf("CreateChannelAfter of an existing channel = %v", err)
	}
	ch, err := st.CreateChannelAfter("baz", 5, 20)
	if err != nil {
		t.Fatal(err)
	}
	if err := ch.Msgs.Append(genBatch(1, 1)); !errors.Is(err, stores.ErrBadSequence) {
		t.Fatalf("a channel created after 20 accepted seq 1: %v", err)
	}
	appendOK(t, ch.Msgs, genBatch(21, 2))
	if err := st.Sync(); err != nil {
		t.Fatal(err)
	}
	if !s.caps.Durable {
		return
	}
	st = s.reopen(t, st, dir, nil)
	rs, err = st.Recover()
	if err != nil || rs == nil {
		t.Fatalf("Recover after reopening = %v, %v", rs, err)
	}
	if len(rs.Deleted) != 0 {
		t.Fatalf("Deleted after the channels were created again = %v", rs.Deleted)
	}
	for _, rc := range rs.Channels {
		if rc.Channel.Name == "bar" {
			checkState(t, rc.Channel.Msgs, stores.ChannelState{First: 10, Last: 9})
		}
		if rc.Channel.Name == "baz" {
			checkState(t, rc.Channel.Msgs, stateOf("baz", 22, genBatch(21, 2)))
		}
	}
}

func (s *suite) testClients(t *testing.T) {
	st, dir := s.fresh(t)
	conn := []byte("conn-a")
	a := stores.ClientInfo{ID: "a", HbInbox: "_INBOX.a", ConnID: conn, Protocol: 1, PingInterval: 5, PingMaxOut: 3, User: "alice"}
	b := stores.ClientInfo{ID: "b", HbInbox: "_INBOX.b", ConnID: []byte("conn-b")}
	c := stores.ClientInfo{ID: "c", HbInbox: "_INBOX.c"}
	for _, ci := range []stores.ClientInfo{c, a, b} {
		if err := st.AddClient(ci); err != nil {
			t.Fatalf("AddClient(%s): %v", ci.ID, err)
		}
	}
	conn[0] = 'X' // AddClient copies ConnID
	a.ConnID = []byte("conn-a")
	b2 := stores.ClientInfo{ID: "b", HbInbox: "_INBOX.b2", ConnID: []byte("conn-b2"), Protocol: 1}
	if err := st.AddClient(b2); err != nil { // replaces
		t.Fatal(err)
	}
	if err := st.DeleteClient("c"); err != nil {
		t.Fatal(err)
	}
	if err := st.DeleteClient("c"); !errors.Is(err, stores.ErrNotFound) {
		t.Fatalf("DeleteClient(unknown) = %v", err)
	}
	want := []stores.ClientInfo{a, b2}
	check := func(st stores.Store) {
		t.Helper()
		rs, err := st.Recover()
		if err != nil || rs == nil {
			t.Fatalf("Recover = %v, %v", rs, err)
		}
		eq := len(rs.Clients) == len(want)
		for i := 0; eq && i < len(want); i++ {
			g, w := rs.Clients[i], want[i]
			eq = g.ID == w.ID && g.HbInbox == w.HbInbox && string(g.ConnID) == string(w.ConnID) &&
				g.Protocol == w.Protocol && g.PingInterval == w.PingInterval && g.PingMaxOut == w.PingMaxOut && g.User == w.User
		}
		if !eq {
			t.Fatalf("clients = %+v, want %+v", rs.Clients, want)
		}
	}
	check(st)
	if err := st.Sync(); err != nil {
		t.Fatal(err)
	}
	if !s.caps.Durable {
		return
	}
	st = s.reopen(t, st, dir, nil)
	check(st)
}

func (s *suite) testServerInfo(t *testing.T) {
	dir := t.TempDir()
	st := s.open(t, dir)
	t.Cleanup(func() { st.Close() })
	if st.Name() == "" {
		t.Fatal("empty Name")
	}
	if rs, err := st.Recover(); rs != nil || err != nil {
		t.Fatalf("fresh Recover = %+v, %v; want nil, nil", rs, err)
	}
	info := stores.ServerInfo{ClusterID: "c", Discovery: "_STAN.discover.c", Publish: "_STAN.pub.x",
		Subscribe: "_STAN.sub.x", Unsubscribe: "_STAN.unsub.x", Close: "_STAN.close.x",
		SubClose: "_STAN.subclose.x", NodeID: "a"}
	for _, in := range []stores.ServerInfo{{ClusterID: "old"}, info} {
		if err := st.Init(in); err != nil {
			t.Fatal(err)
		}
	}
	check := func() {
		t.Helper()
		rs, err := st.Recover()
		if err != nil || rs == nil || rs.Info != info || len(rs.Channels) != 0 || len(rs.Clients) != 0 {
			t.Fatalf("Recover = %+v, %v", rs, err)
		}
	}
	check()
	if !s.caps.Durable {
		return
	}
	st = s.reopen(t, st, dir, nil)
	check()
}

func (s *suite) testSubs(t *testing.T) {
	st, dir := s.fresh(t)
	ss := create(t, st, "foo", 1).Subs
	checkSubs(t, ss, nil)
	s1 := stores.SubState{ID: 1, ClientID: "c1", Inbox: "_INBOX.1", AckInbox: "_INBOX.a1", MaxInFlight: 10, AckWaitSecs: 30}
	s2 := stores.SubState{ID: 2, ClientID: "c2", Inbox: "_INBOX.2", AckInbox: "_INBOX.a2", DurableName: "dur",
		IsDurable: true, MaxInFlight: 1, AckWaitSecs: 1, LastSent: 7, User: "bob"}
	s3 := stores.SubState{ID: 3, ClientID: "c3", QGroup: "dur:q", DurableName: "dur", IsDurable: true, User: "carol"}
	for _, sub := range []stores.SubState{s2, s1, s3} {
		if err := ss.CreateSub(&sub); err != nil {
			t.Fatalf("CreateSub(%d): %v", sub.ID, err)
		}
	}
	dup := s1
	if err := ss.CreateSub(&dup); !errors.Is(err, stores.ErrExists) {
		t.Fatalf("duplicate CreateSub = %v", err)
	}
	dup.Inbox = "changed" // CreateSub copied
	ev := func(id, seq uint64, acked bool) stores.SubEvent {
		return stores.SubEvent{SubID: id, Seq: seq, Acked: acked}
	}
	err := ss.Record([]stores.SubEvent{
		ev(1, 1, false), ev(1, 2, false), ev(1, 3, false), ev(2, 8, false), ev(1, 2, true),
		ev(1, 4, false), ev(1, 5, false), ev(1, 4, true), ev(1, 99, true), ev(77, 1, false),
		ev(2, 8, true), ev(1, 2, false), // redelivered after ack: pending again, LastSent stays 5
	})
	if err != nil {
		t.Fatalf("Record: %v", err)
	}
	s1.LastSent, s2.LastSent = 5, 8
	want := []stores.RecoveredSub{{State: s1, Pending: []uint64{1, 2, 3, 5}}, {State: s2}, {State: s3}}
	checkSubs(t, ss, want)

	// Update replaces the state and keeps pending; a durable going offline.
	s1.IsClosed, s1.Inbox, s1.LastSent = true, "_INBOX.new", 6
	if err := ss.UpdateSub(&s1); err != nil {
		t.Fatal(err)
	}
	if err := ss.UpdateSub(&stores.SubState{ID: 9}); !errors.Is(err, stores.ErrNotFound) {
		t.Fatalf("UpdateSub(unknown) = %v", err)
	}
	if err := ss.DeleteSub(2); err != nil {
		t.Fatal(err)
	}
	if err := ss.DeleteSub(2); !errors.Is(err, stores.ErrNotFound) {
		t.Fatalf("DeleteSub(unknown) = %v", err)
	}
	if err := ss.Record([]stores.SubEvent{ev(2, 9, false), ev(3, 4, false), ev(3, 2, false)}); err != nil {
		t.Fatal(err)
	}
	s3.LastSent = 4
	want = []stores.RecoveredSub{{State: s1, Pending: []uint64{1, 2, 3, 5}}, {State: s3, Pending: []uint64{2, 4}}}
	checkSubs(t, ss, want)
	if got := recovered(t, st, "foo").Subs; len(got) != 2 || got[1].State != s3 {
		t.Fatalf("Recover subs = %+v", got)
	}
	if err := ss.Sync(); err != nil {
		t.Fatal(err)
	}
	if !s.caps.Durable {
		return
	}
	st = s.reopen(t, st, dir, nil)
	rc := recovered(t, st, "foo")
	checkSubs(t, rc.Channel.Subs, want)
	if len(rc.Subs) != 2 || !slices.Equal(rc.Subs[1].Pending, []uint64{2, 4}) {
		t.Fatalf("RecoveredChannel.Subs = %+v", rc.Subs)
	}
	if err := rc.Channel.Subs.Record([]stores.SubEvent{ev(3, 2, true)}); err != nil {
		t.Fatal(err)
	}
	want[1].Pending = []uint64{4}
	checkSubs(t, rc.Channel.Subs, want)
}

func (s *suite) testSubLimits(t *testing.T) {
	st, _ := s.fresh(t)
	setLimits(t, st, &stores.LimitsSet{Global: stores.Limits{MaxSubs: 2},
		Channels: map[string]stores.Limits{"big": {MaxSubs: -1}}})
	ss := create(t, st, "foo", 1).Subs
	big := create(t, st, "big", 2).Subs
	for id := uint64(1); id <= 2; id++ {
		if err := ss.CreateSub(&stores.SubState{ID: id, IsDurable: true, IsClosed: true}); err != nil {
			t.Fatal(err)
		}
	}
	err := ss.CreateSub(&stores.SubState{ID: 3})
	if !errors.Is(err, stores.ErrTooManySubs) || err.Error() != "too many subscriptions per channel" {
		t.Fatalf("CreateSub beyond MaxSubs = %v", err)
	}
	for id := uint64(1); id <= 5; id++ {
		if err := big.CreateSub(&stores.SubState{ID: id}); err != nil {
			t.Fatalf("unlimited channel: %v", err)
		}
	}
	if err := ss.DeleteSub(1); err != nil {
		t.Fatal(err)
	}
	if err := ss.CreateSub(&stores.SubState{ID: 3}); err != nil {
		t.Fatal(err)
	}
	setLimits(t, st, &stores.LimitsSet{Global: stores.Limits{MaxSubs: 3}})
	if err := ss.CreateSub(&stores.SubState{ID: 4}); err != nil {
		t.Fatalf("after raising MaxSubs: %v", err)
	}
}

func (s *suite) testClosed(t *testing.T) {
	st, _ := s.fresh(t)
	ch := create(t, st, "foo", 1)
	other := create(t, st, "bar", 2)
	appendOK(t, ch.Msgs, genBatch(1, 2))
	if err := other.Msgs.Close(); err != nil {
		t.Fatal(err)
	}
	if err := other.Msgs.Close(); err != nil {
		t.Fatalf("second MsgStore.Close: %v", err)
	}
	if err := other.Msgs.Append(genBatch(1, 1)); !errors.Is(err, stores.ErrClosed) {
		t.Fatalf("Append after MsgStore.Close = %v", err)
	}
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	if err := st.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	var m stores.Msg
	_, cerr := st.CreateChannel("x", 3)
	_, rerr := st.Recover()
	_, serr := ch.Subs.Subs()
	for i, err := range []error{
		cerr, rerr, st.AddClient(stores.ClientInfo{ID: "a"}), st.DeleteChannel("foo"), st.Sync(),
		st.SetLimits(&stores.LimitsSet{}), ch.Msgs.Append(genBatch(3, 1)), ch.Msgs.Load(1, &m),
		ch.Msgs.Sync(), ch.Subs.CreateSub(&stores.SubState{ID: 1}), ch.Subs.Sync(), serr,
	} {
		if !errors.Is(err, stores.ErrClosed) {
			t.Fatalf("call %d after Close = %v, want ErrClosed", i, err)
		}
	}
}

// testCrash: everything synced before a simulated kill -9 is recovered; what was appended
// after the last Sync may or may not be, but a channel always recovers a gapless prefix.
func (s *suite) testCrash(t *testing.T) {
	if !s.caps.Durable || s.caps.Crash == nil {
		t.Skip("store has no crash hook")
	}
	dir := t.TempDir()
	st := s.open(t, dir)
	if err := st.Init(stores.ServerInfo{ClusterID: "c"}); err != nil {
		t.Fatal(err)
	}
	ch := create(t, st, "foo", 1)
	all := genBatch(1, 150)
	for i := 0; i < 100; i += 10 {
		appendOK(t, ch.Msgs, all[i:i+10])
		if err := ch.Msgs.Sync(); err != nil {
			t.Fatal(err)
		}
	}
	sub := stores.SubState{ID: 1, ClientID: "c1", IsDurable: true}
	if err := ch.Subs.CreateSub(&sub); err != nil {
		t.Fatal(err)
	}
	if err := ch.Subs.Record([]stores.SubEvent{{SubID: 1, Seq: 1}, {SubID: 1, Seq: 2}, {SubID: 1, Seq: 1, Acked: true}}); err != nil {
		t.Fatal(err)
	}
	if err := st.AddClient(stores.ClientInfo{ID: "c1", HbInbox: "hb"}); err != nil {
		t.Fatal(err)
	}
	for _, err := range []error{ch.Subs.Sync(), st.Sync()} {
		if err != nil {
			t.Fatal(err)
		}
	}
	for i := 100; i < 150; i += 5 { // not synced
		appendOK(t, ch.Msgs, all[i:i+5])
	}
	s.caps.Crash(st)

	st = s.open(t, dir)
	t.Cleanup(func() { st.Close() })
	rc := recovered(t, st, "foo")
	cs := rc.Channel.Msgs.State()
	if cs.First != 1 || cs.Last < 100 || cs.Last > 150 || cs.Msgs != cs.Last {
		t.Fatalf("State after crash = %+v: want 1..[100,150] with no gap", cs)
	}
	for i := range all[:cs.Last] {
		checkLoad(t, rc.Channel.Msgs, &all[i])
	}
	sub.LastSent = 2
	checkSubs(t, rc.Channel.Subs, []stores.RecoveredSub{{State: sub, Pending: []uint64{2}}})
	if rs, _ := st.Recover(); len(rs.Clients) != 1 || rs.Clients[0].ID != "c1" {
		t.Fatalf("clients after crash = %+v", rs.Clients)
	}
	appendOK(t, rc.Channel.Msgs, genBatch(cs.Last+1, 1))
}
