package streaming

import (
	"errors"
	"fmt"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/starling-io/starling/proto/stanpb"
	"github.com/starling-io/starling/raftlog"
	"github.com/starling-io/starling/stores"
)

// createCountStore counts how the engine creates channels: CreateChannels calls (with their
// sizes) and single CreateChannelAfter calls. A name in refuse fails with its error.
type createCountStore struct {
	stores.Store
	mu      sync.Mutex
	batches []int
	singles int
	refuse  map[string]error
}

func (s *createCountStore) CreateChannelAfter(name string, id, after uint64) (*stores.Channel, error) {
	s.mu.Lock()
	s.singles++
	s.mu.Unlock()
	if err := s.refuse[name]; err != nil {
		return nil, err
	}
	return s.Store.CreateChannelAfter(name, id, after)
}

func (s *createCountStore) CreateChannels(cs []stores.NewChannel) ([]*stores.Channel, []error) {
	s.mu.Lock()
	s.batches = append(s.batches, len(cs))
	s.mu.Unlock()
	out, errs := make([]*stores.Channel, len(cs)), make([]error, len(cs))
	for i, c := range cs {
		if errs[i] = s.refuse[c.Name]; errs[i] == nil {
			out[i], errs[i] = s.Store.CreateChannelAfter(c.Name, c.ID, c.After)
		}
	}
	return out, errs
}

func pubOp(channel, guid string) op {
	return op{kind: opPublish, reply: "ack." + guid, data: marshal(&stanpb.PubMsg{ClientID: "c1", Guid: guid,
		Subject: channel, Data: []byte(guid), ConnID: []byte("conn")})}
}

// TestCreationsOfAnIterationAreOneCommit: the channels the ops of one engine iteration ask
// for are created by one proposal, applied with one CreateChannels of the store. A creation
// that fails refuses exactly the requests that needed it, with its error; a name in a case
// clash with a channel of the same batch is refused as with an existing one. Before, each
// new channel was one proposal and one CreateChannelAfter (23 here).
func TestCreationsOfAnIterationAreOneCommit(t *testing.T) {
	st := &createCountStore{Store: newMemStore(t), refuse: map[string]error{"bad": errors.New("disk on fire")}}
	bus := &dataBus{}
	s, err := New(bus, st, raftlog.Standalone, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.recover(); err != nil {
		t.Fatal(err)
	}
	s.started = true
	t.Cleanup(s.drainCommits)
	s.step(op{kind: opConnect, reply: "r", data: marshal(&stanpb.ConnectRequest{ClientID: "c1", HeartbeatInbox: "hb", Protocol: 1, ConnID: []byte("conn")})})
	publishTo(s, "old", 1)
	st.batches, st.singles = nil, 0

	var batch []op
	for i := range 20 {
		batch = append(batch, pubOp(fmt.Sprint("n", i), fmt.Sprint("g", i)))
	}
	batch = append(batch,
		pubOp("n0", "again"), pubOp("old", "old"), pubOp("Foo", "Foo"), pubOp("bad", "bad1"),
		op{kind: opSubscribe, reply: "sub", data: marshal(&stanpb.SubscriptionRequest{ClientID: "c1", Subject: "s1",
			Inbox: "in", MaxInFlight: 10, AckWaitInSecs: 30})},
		pubOp("foo", "foo"), pubOp("bad", "bad2"), pubOp("s1", "s1"))
	s.runMu.Lock()
	s.iterate(batch)
	s.runMu.Unlock()
	s.waitCommits(0)

	if !reflect.DeepEqual(st.batches, []int{23}) || st.singles != 0 {
		t.Fatalf("CreateChannels calls %v and %d single creations, want one of 23 (n0-n19, Foo, bad, s1) and none", st.batches, st.singles)
	}
	ackErr := func(guid string) string {
		t.Helper()
		got := bus.to("ack." + guid)
		if len(got) != 1 {
			t.Fatalf("%d PubAcks for %s", len(got), guid)
		}
		var a stanpb.PubAck
		if err := proto.Unmarshal(got[0].data, &a); err != nil || a.Guid != guid {
			t.Fatalf("PubAck for %s: %v %v", guid, a.Guid, err)
		}
		return a.Error
	}
	for _, g := range []string{"g0", "g7", "g19", "again", "old", "Foo", "s1"} {
		if e := ackErr(g); e != "" {
			t.Fatalf("PubAck for %s: %q", g, e)
		}
	}
	for _, g := range []string{"bad1", "bad2"} {
		if e := ackErr(g); e != "disk on fire" {
			t.Fatalf("PubAck for %s: %q, want the creation's error", g, e)
		}
	}
	if e := ackErr("foo"); !strings.Contains(e, `channel "Foo" alreay exists`) {
		t.Fatalf("PubAck for foo: %q, want the case clash", e)
	}
	var resp stanpb.SubscriptionResponse
	if got := bus.to("sub"); len(got) != 1 || proto.Unmarshal(got[0].data, &resp) != nil || resp.Error != "" {
		t.Fatalf("subscription response: %v %q", got, resp.Error)
	}
	for name, last := range map[string]uint64{"n0": 2, "n19": 1, "old": 2, "Foo": 1, "s1": 1} {
		if ch := s.channels[name]; ch == nil || ch.store.Msgs.State().Last != last {
			t.Fatalf("channel %s: %v", name, ch)
		}
	}
	if s.channels["bad"] != nil || s.channels["foo"] != nil {
		t.Fatal("a refused channel exists")
	}
	// The failure is the iteration's: the next one tries again.
	delete(st.refuse, "bad")
	s.runMu.Lock()
	s.iterate([]op{pubOp("bad", "bad3")})
	s.runMu.Unlock()
	s.waitCommits(0)
	if e := ackErr("bad3"); e != "" || s.channels["bad"] == nil {
		t.Fatalf("bad in the next iteration: %q", e)
	}
}

// TestCreationRunAppliesAsOneByOne: a run of creation commands applied together (one
// CreateChannels) gives each command the result, and the store the state, that applying
// them one at a time gives — a name twice, one deleted before, IDs left for Apply to choose
// (an older proposer), a replayed creation the store kept, MaxChannels.
func TestCreationRunAppliesAsOneByOne(t *testing.T) {
	cmds := func() []raftlog.Command {
		var cs []raftlog.Command
		for _, c := range []cmdCreateChannel{{"a", 2}, {"b", 3}, {"a", 4}, {"old", 5}, {"c", 0}, {"d", 0}, {"e", 9}, {"f", 10}} {
			cs = append(cs, raftlog.Command{Value: &c})
		}
		return cs
	}
	run := func(together bool) ([]string, map[string]uint64) {
		st := newMemStore(t)
		l := stores.DefaultLimits()
		l.MaxChannels = 6
		if err := st.SetLimits(&stores.LimitsSet{Global: l}); err != nil {
			t.Fatal(err)
		}
		m := newStateMachine(st)
		if err := st.Init(stores.ServerInfo{ClusterID: "c"}); err != nil {
			t.Fatal(err)
		}
		m.Apply(1, []raftlog.Command{{Value: &cmdCreateChannel{"old", 1}}})
		ch := m.chans["old"]
		if err := ch.Msgs.Append([]stores.Msg{{Seq: 1, Time: 1}}); err != nil {
			t.Fatal(err)
		}
		m.Apply(2, []raftlog.Command{{Value: &cmdDeleteChannel{chanRef{"old", 1}}}, {Value: &cmdCreateChannel{"b", 3}}})
		var rs []any
		if together {
			rs = m.Apply(3, cmds())
		} else {
			for i, c := range cmds() {
				rs = append(rs, m.Apply(uint64(3+i), []raftlog.Command{c})...)
			}
		}
		var out []string
		for _, r := range rs {
			switch v := r.(type) {
			case *stores.Channel:
				out = append(out, fmt.Sprintf("%s/%d/%d", v.Name, v.ID, v.Msgs.State().First))
			case error:
				out = append(out, v.Error())
			default:
				out = append(out, fmt.Sprint(v))
			}
		}
		ids := map[string]uint64{}
		for n, c := range m.chans {
			ids[n] = c.ID
		}
		ids["next"] = m.nextChanID
		return out, ids
	}
	one, oneIDs := run(false)
	all, allIDs := run(true)
	if !reflect.DeepEqual(one, all) || !reflect.DeepEqual(oneIDs, allIDs) {
		t.Fatalf("one by one: %v %v\ntogether:   %v %v", one, oneIDs, all, allIDs)
	}
	t.Log(all, allIDs)
}

// deleteCountStore counts DeleteChannels calls (with their sizes) and single deletions.
type deleteCountStore struct {
	stores.Store
	batches []int
	singles int
	refuse  error // every deletion fails with it
}

func (s *deleteCountStore) DeleteChannel(name string) error {
	s.singles++
	return s.Store.DeleteChannel(name)
}

func (s *deleteCountStore) DeleteChannels(names []string) []error {
	s.batches = append(s.batches, len(names))
	errs := make([]error, len(names))
	for i, n := range names {
		if errs[i] = s.refuse; errs[i] == nil {
			errs[i] = s.Store.DeleteChannel(n)
		}
	}
	return errs
}

// TestIdleDeletionsOfAnIterationAreOneCommit: idle channels whose timers fired together
// (their ops back to back in one batch) are deleted by one proposal, applied with one
// DeleteChannels; one made active meanwhile is kept. Before: one proposal and one
// DeleteChannel each (10 here).
func TestIdleDeletionsOfAnIterationAreOneCommit(t *testing.T) {
	limits := &stores.LimitsSet{Global: stores.DefaultLimits()}
	limits.Global.MaxInactivity = 50 * time.Millisecond
	mem := newMemStore(t)
	if err := mem.SetLimits(limits); err != nil {
		t.Fatal(err)
	}
	st := &deleteCountStore{Store: mem}
	s, err := New(&fakeBus{}, st, raftlog.Standalone, Options{Limits: limits})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.recover(); err != nil {
		t.Fatal(err)
	}
	s.step(op{kind: opConnect, reply: "r", data: marshal(&stanpb.ConnectRequest{ClientID: "c1", HeartbeatInbox: "hb", Protocol: 1, ConnID: []byte("conn")})})
	for i := range 11 {
		publishTo(s, fmt.Sprint("idle", i), i)
	}
	time.Sleep(200 * time.Millisecond) // every timer fired: 11 idle ops queued
	var batch []op
	deadline := time.Now().Add(5 * time.Second)
	for len(batch) < 11 && time.Now().Before(deadline) {
		select {
		case <-s.q.Ready():
			batch = s.q.Pop(batch)
		case <-time.After(100 * time.Millisecond):
		}
	}
	if len(batch) != 11 {
		t.Fatalf("%d ops queued, want the 11 idle ones", len(batch))
	}
	var keep *channel
	for _, o := range batch {
		if o.kind != opIdle {
			t.Fatalf("op %d queued", o.kind)
		}
		if o.ch.name == "idle5" {
			keep = o.ch
		}
	}
	keep.active = s.clock.monoNow() // as a publish would
	s.runMu.Lock()
	s.iterate(batch)
	s.runMu.Unlock()
	if !reflect.DeepEqual(st.batches, []int{10}) || st.singles != 0 {
		t.Fatalf("DeleteChannels calls %v and %d single deletions, want one of 10", st.batches, st.singles)
	}
	if len(s.channels) != 1 || s.channels["idle5"] == nil {
		t.Fatalf("channels left: %d", len(s.channels))
	}
	keep.idleTimer.Stop()
}

// TestDeletionRunAppliesAsOneByOne: a run of deletions applied together (one DeleteChannels)
// gives each command the result, and the state machine the state, that one at a time gives.
func TestDeletionRunAppliesAsOneByOne(t *testing.T) {
	run := func(together bool) ([]string, map[string]uint64) {
		st := newMemStore(t)
		m := newStateMachine(st)
		if err := st.Init(stores.ServerInfo{ClusterID: "c"}); err != nil {
			t.Fatal(err)
		}
		for i, n := range []string{"a", "b", "c"} {
			m.Apply(uint64(i+1), []raftlog.Command{{Value: &cmdCreateChannel{n, uint64(i + 1)}}})
		}
		if err := m.chans["a"].Msgs.Append([]stores.Msg{{Seq: 1, Time: 1}, {Seq: 2, Time: 1}}); err != nil {
			t.Fatal(err)
		}
		var cmds []raftlog.Command
		for _, r := range []chanRef{{"a", 1}, {"x", 9}, {"b", 7}, {"a", 1}, {"c", 3}} {
			cmds = append(cmds, raftlog.Command{Value: &cmdDeleteChannel{r}})
		}
		var rs []any
		if together {
			rs = m.Apply(4, cmds)
		} else {
			for i, c := range cmds {
				rs = append(rs, m.Apply(uint64(4+i), []raftlog.Command{c})...)
			}
		}
		out := make([]string, len(rs))
		for i, r := range rs {
			out[i] = fmt.Sprint(r)
		}
		state := map[string]uint64{}
		for n, c := range m.chans {
			state["chan "+n] = c.ID
		}
		for n, l := range m.deleted {
			state["deleted "+n] = l
		}
		return out, state
	}
	one, oneState := run(false)
	all, allState := run(true)
	if !reflect.DeepEqual(one, all) || !reflect.DeepEqual(oneState, allState) {
		t.Fatalf("one by one: %v %v\ntogether:   %v %v", one, oneState, all, allState)
	}
	t.Log(all, allState)
}

// The look-ahead of a creation stops at an op it cannot see through (here a connect, which
// makes a later publish's client known): channels are created in the order of their
// requests, so MaxChannels refuses the same request as one creation at a time would.
// Before, the look-ahead skipped the new client's publish and created the channel of the
// request after it: with one slot left for two, the earlier request ("y") was refused and
// the later one ("z") got the slot.
func TestCreationLookAheadKeepsRequestOrder(t *testing.T) {
	st := newMemStore(t)
	l := stores.DefaultLimits()
	l.MaxChannels = 3
	bus := &dataBus{}
	s, err := New(bus, st, raftlog.Standalone, Options{Limits: &stores.LimitsSet{Global: l}})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.recover(); err != nil {
		t.Fatal(err)
	}
	s.started = true
	t.Cleanup(s.drainCommits)
	connect := func(id, conn string) op {
		return op{kind: opConnect, reply: "r." + id, data: marshal(&stanpb.ConnectRequest{ClientID: id, HeartbeatInbox: "hb." + id,
			Protocol: 1, ConnID: []byte(conn)})}
	}
	pub := func(client, conn, channel, guid string) op {
		return op{kind: opPublish, reply: "ack." + guid, data: marshal(&stanpb.PubMsg{ClientID: client, Guid: guid,
			Subject: channel, Data: []byte(guid), ConnID: []byte(conn)})}
	}
	s.step(connect("c1", "conn"))
	publishTo(s, "old", 1)
	if s.channels["old"] == nil {
		t.Fatal("channel old not created")
	}
	s.runMu.Lock()
	s.iterate([]op{pub("c1", "conn", "x", "gx"), connect("c2", "conn2"), pub("c2", "conn2", "y", "gy"), pub("c1", "conn", "z", "gz")})
	s.runMu.Unlock()
	s.waitCommits(0)
	for guid, refused := range map[string]bool{"gx": false, "gy": false, "gz": true} {
		got := bus.to("ack." + guid)
		var a stanpb.PubAck
		if len(got) != 1 || proto.Unmarshal(got[0].data, &a) != nil {
			t.Fatalf("PubAck for %s: %v", guid, got)
		}
		if (a.Error != "") != refused {
			t.Errorf("PubAck for %s: error %q, want refused %v", guid, a.Error, refused)
		}
	}
	if s.channels["z"] != nil {
		t.Error("channel z was created for a request after the limit")
	}
}

// A run of idle deletions that fails re-arms each channel for a retry after limitRetryWait;
// the channels' own idle ops later in the same batch do not propose them again at once.
// Before, the three ops made DeleteChannels calls of 3, 2 and 1 channels in one iteration.
func TestFailedIdleRunWaitsBeforeRetrying(t *testing.T) {
	limits := &stores.LimitsSet{Global: stores.DefaultLimits()}
	limits.Global.MaxInactivity = 50 * time.Millisecond
	st := &deleteCountStore{Store: newMemStore(t), refuse: errors.New("disk on fire")}
	s, err := New(&fakeBus{}, st, raftlog.Standalone, Options{Limits: limits})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.recover(); err != nil {
		t.Fatal(err)
	}
	s.step(op{kind: opConnect, reply: "r", data: marshal(&stanpb.ConnectRequest{ClientID: "c1", HeartbeatInbox: "hb", Protocol: 1, ConnID: []byte("conn")})})
	var batch []op
	for i := range 3 {
		publishTo(s, fmt.Sprint("idle", i), i)
		ch := s.channels[fmt.Sprint("idle", i)]
		ch.idleTimer.Stop()
		ch.active = s.clock.monoNow() - int64(time.Second)
		batch = append(batch, op{kind: opIdle, ch: ch})
	}
	s.runMu.Lock()
	s.iterate(batch)
	s.runMu.Unlock()
	if !reflect.DeepEqual(st.batches, []int{3}) {
		t.Fatalf("DeleteChannels calls %v, want one of 3", st.batches)
	}
	if len(s.channels) != 3 {
		t.Fatalf("%d channels left, want the 3 whose deletion failed", len(s.channels))
	}
	for _, ch := range s.channels {
		ch.idleTimer.Stop()
	}
}
