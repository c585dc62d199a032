package streaming

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/raft"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

	"github.com/starling-io/starling/core"
	"github.com/starling-io/starling/proto/raftpb"
	"github.com/starling-io/starling/proto/stanpb"
	"github.com/starling-io/starling/raftlog"
	"github.com/starling-io/starling/stores"
	"github.com/starling-io/starling/stores/memstore"
)

// recordingLog is a Local that also encodes every command proposed to it, as a replicated
// log would, and keeps the encodings with whether Apply refused each: what a follower
// would apply.
type recordingLog struct {
	*raftlog.Local
	t       testing.TB
	entries []recorded
	batches int
}

type recorded struct {
	data    []byte
	refused bool
	batch   int // the proposal it was part of, counted from 1
}

func (l *recordingLog) Propose(ctx context.Context, c raftlog.Command) raftlog.Future {
	data, err := encodeCommand(c.Value)
	if err != nil {
		l.t.Fatalf("a command the engine proposed cannot be encoded: %v", err)
	}
	f := l.Local.Propose(ctx, c)
	_, isErr := f.Result().(error)
	l.batches++
	l.entries = append(l.entries, recorded{data: data, refused: isErr && f.Result() != nil, batch: l.batches})
	return f
}

func (l *recordingLog) ProposeBatch(ctx context.Context, cs []raftlog.Command) raftlog.Future {
	var data [][]byte
	for _, c := range cs {
		d, err := encodeCommand(c.Value)
		if err != nil {
			l.t.Fatalf("a command the engine proposed cannot be encoded: %v", err)
		}
		data = append(data, d)
	}
	f := l.Local.ProposeBatch(ctx, cs)
	l.batches++
	for i, d := range data {
		r := f.ResultAt(i)
		_, isErr := r.(error)
		l.entries = append(l.entries, recorded{data: d, refused: isErr && r != nil, batch: l.batches})
	}
	return f
}

// newRecordedEngine is newEngine over a recordingLog.
func newRecordedEngine(t testing.TB) (*Server, *recordingLog) {
	t.Helper()
	store, err := memstore.New(memstore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	var rec *recordingLog
	s, err := New(&fakeBus{}, store, func(sm raftlog.StateMachine) (raftlog.Log, error) {
		rec = &recordingLog{Local: raftlog.NewLocal(sm), t: t}
		return rec, nil
	}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.recover(); err != nil {
		t.Fatal(err)
	}
	return s, rec
}

// checkReplica applies what leader proposed, decoded from its encoding, to a fresh replica:
// every command must be refused or accepted alike, and the replica's store must end equal to
// the leader's.
func checkReplica(t *testing.T, leader *Server, rec *recordingLog) {
	t.Helper()
	// A follower is the state machine alone: no engine, no bus, no timers.
	store := newMemStore(t)
	if err := store.Init(stores.ServerInfo{ClusterID: "replica"}); err != nil {
		t.Fatal(err)
	}
	replica := newStateMachine(store)
	for i, e := range rec.entries {
		cmd, err := replica.Decode(e.data)
		if err != nil {
			t.Fatalf("entry %d: %v", i, err)
		}
		res := replica.Apply(uint64(i+1), []raftlog.Command{cmd})
		_, isErr := res[0].(error)
		if refused := isErr && res[0] != nil; refused != e.refused {
			t.Fatalf("entry %d (%T): refused %v on the replica, %v on the leader (%v)", i, cmd.Value, refused, e.refused, res[0])
		}
	}
	if l, r := storeDigest(t, leader.store), storeDigest(t, store); l != r {
		t.Fatalf("replica differs from the leader\nleader:\n%s\nreplica:\n%s", l, r)
	}
}

// storeDigest renders a store's whole content (but the server identity) as text.
func storeDigest(t *testing.T, st stores.Store) string {
	t.Helper()
	rs, err := st.Recover()
	if err != nil || rs == nil {
		t.Fatalf("recover: %v %v", rs, err)
	}
	var b strings.Builder
	clients := append([]stores.ClientInfo(nil), rs.Clients...)
	sort.Slice(clients, func(i, j int) bool { return clients[i].ID < clients[j].ID })
	for _, c := range clients {
		fmt.Fprintf(&b, "client %+v\n", c)
	}
	for _, rc := range rs.Channels {
		ms := rc.Channel.Msgs.State()
		fmt.Fprintf(&b, "channel %q id=%d state=%+v\n", rc.Channel.Name, rc.Channel.ID, ms)
		var m stores.Msg
		for seq := ms.First; ms.Msgs > 0 && seq <= ms.Last; seq++ {
			if err := rc.Channel.Msgs.Load(seq, &m); err != nil {
				fmt.Fprintf(&b, "  %d: %v\n", seq, err)
				continue
			}
			fmt.Fprintf(&b, "  %d t=%d reply=%q data=%q\n", m.Seq, m.Time, m.Reply, m.Data)
		}
		subs := append([]stores.RecoveredSub(nil), rc.Subs...)
		sort.Slice(subs, func(i, j int) bool { return subs[i].State.ID < subs[j].State.ID })
		for _, s := range subs {
			fmt.Fprintf(&b, "  sub %+v pending=%v\n", s.State, s.Pending)
		}
	}
	return b.String()
}

// TestCommandsRoundTrip: every command kind survives its encoding, and the test covers
// every op kind of raftpb.
func TestCommandsRoundTrip(t *testing.T) {
	ref := chanRef{channel: "orders", chanID: 7}
	st := stores.SubState{ID: 3, ClientID: "c1", QGroup: "d:q", Inbox: "_INBOX.x", AckInbox: "_INBOX.ack.y",
		DurableName: "d", MaxInFlight: 10, AckWaitSecs: 30, LastSent: 41, IsDurable: true, IsClosed: true, User: "alice"}
	cmds := []any{
		&cmdConnect{info: stores.ClientInfo{ID: "c1", HbInbox: "_INBOX.hb", ConnID: []byte("conn"), Protocol: 1,
			PingInterval: 5, PingMaxOut: 3, User: "alice"}},
		&cmdDisconnect{clientID: "c1"},
		&cmdCreateChannel{name: "orders"},
		&cmdPublish{chanRef: ref, msgs: []stores.Msg{{Seq: 5, Time: 1_700_000_000_000_000_000, Reply: "r", Data: []byte("a")},
			{Seq: 6, Time: 1_700_000_000_000_000_001, Data: []byte{}}}},
		&cmdSubscribe{chanRef: ref, state: st},
		&cmdUpdateSub{chanRef: ref, state: st},
		&cmdDeleteSub{chanRef: ref, id: 3},
		&cmdSentAck{chanRef: ref, events: []stores.SubEvent{{SubID: 3, Seq: 5}, {SubID: 3, Seq: 5, Acked: true}, {SubID: 4, Seq: 6}}},
		&cmdExpire{chanRef: ref, now: 1_700_000_000_000_000_000, last: 41},
		&cmdDeleteChannel{ref},
		&cmdSetLimits{limits: &stores.LimitsSet{Global: stores.DefaultLimits(),
			Channels: map[string]stores.Limits{"orders.>": {MaxMsgs: 10, MaxAge: time.Hour, MaxInactivity: -1}, "x": {MaxBytes: 5}}}},
	}
	oneof := (&raftpb.Op{}).ProtoReflect().Descriptor().Oneofs().ByName("op").Fields().Len()
	if oneof != len(cmds) {
		t.Fatalf("test covers %d commands, raftpb.Op has %d kinds", len(cmds), oneof)
	}
	s, _ := newEngine(t)
	for _, c := range cmds {
		data, err := encodeCommand(c)
		if err != nil {
			t.Fatal(err)
		}
		back, err := s.sm.Decode(data)
		if err != nil {
			t.Fatalf("%T: %v", c, err)
		}
		if p, ok := back.Value.(*cmdPublish); ok && p.msgs[1].Data == nil {
			p.msgs[1].Data = []byte{} // proto3 does not tell empty bytes from none
		}
		if !reflect.DeepEqual(back.Value, c) {
			t.Errorf("round trip of %T\n got %+v\nwant %+v", c, back.Value, c)
		}
	}
}

// TestDecodeRefusesWhatItDoesNotKnow: an op of a newer version stops the log unless it is
// ignorable; a malformed one stops it.
func TestDecodeRefusesWhatItDoesNotKnow(t *testing.T) {
	s, _ := newEngine(t)
	future := protowire.AppendTag(nil, 14, protowire.BytesType)
	future = protowire.AppendBytes(future, nil)
	ignorable := protowire.AppendVarint(protowire.AppendTag(append([]byte(nil), future...), 15, protowire.VarintType), 1)
	uneven, _ := proto.Marshal(&raftpb.Op{Op: &raftpb.Op_SentAndAck{SentAndAck: &raftpb.SentAndAck{
		Channel: "c", SubIDs: []uint64{1, 2}, Seqs: []uint64{1}, Acked: []bool{false, false}}}})
	noState, _ := proto.Marshal(&raftpb.Op{Op: &raftpb.Op_Subscribe{Subscribe: &raftpb.Subscribe{Channel: "c"}}})
	for _, tc := range []struct {
		name string
		data []byte
		want error
	}{
		{"newer op", future, raftlog.ErrUnknownOp},
		{"newer ignorable op", ignorable, raftlog.ErrIgnorableOp},
		{"garbage", []byte{0xff, 0xff, 0xff}, raftlog.ErrUnknownOp},
		{"uneven sent/ack lists", uneven, raftlog.ErrUnknownOp},
		{"subscribe without state", noState, raftlog.ErrUnknownOp},
	} {
		if _, err := s.sm.Decode(tc.data); !errors.Is(err, tc.want) {
			t.Errorf("%s: err = %v, want %v", tc.name, err, tc.want)
		}
	}
}

// TestApplyRefusesDiscontinuousRuns: every replica refuses a publish batch that leaves a
// gap after the channel's last sequence or repeats a stored sequence with other content,
// or names a channel it does not have, and stores nothing of it. (A repeat of the stored
// messages is a replay: TestReplayIsIdempotent.)
func TestApplyRefusesDiscontinuousRuns(t *testing.T) {
	m := newStateMachine(newMemStore(t))
	apply := func(c any) any { return m.Apply(1, []raftlog.Command{{Value: c}})[0] }
	ch, ok := apply(&cmdCreateChannel{name: "foo"}).(*stores.Channel)
	if !ok {
		t.Fatal("channel not created")
	}
	msg := func(seq uint64) stores.Msg { return stores.Msg{Seq: seq, Time: int64(seq), Data: []byte("x")} }
	ref := chanRef{channel: ch.Name, chanID: ch.ID}
	if err := apply(&cmdPublish{chanRef: ref, msgs: []stores.Msg{msg(1), msg(2)}}); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		cmd  any
		want error
	}{
		{"gap", &cmdPublish{chanRef: ref, msgs: []stores.Msg{msg(4)}}, errDiscontinuous},
		{"conflicting repeat", &cmdPublish{chanRef: ref, msgs: []stores.Msg{{Seq: 2, Time: 2, Data: []byte("other")}}}, errDiscontinuous},
		{"other incarnation", &cmdPublish{chanRef: chanRef{"foo", ref.chanID + 1}, msgs: []stores.Msg{msg(3)}}, errNoChannel},
		{"unknown channel", &cmdSentAck{chanRef: chanRef{"bar", 1}}, errNoChannel},
	} {
		if err, _ := apply(tc.cmd).(error); !errors.Is(err, tc.want) {
			t.Errorf("%s: %v, want %v", tc.name, err, tc.want)
		}
	}
	if st := ch.Msgs.State(); st.Last != 2 || st.Msgs != 2 {
		t.Fatalf("refused batches changed the store: %+v", st)
	}
}

// TestReplicaMatchesLeader drives the engine through clients, plain, durable and queue
// subscriptions, publishes, acks, a durable close and resume, an unsubscribe and a client
// close; a replica applying the encoded commands ends with the same store. FuzzRequests
// checks the same on every input it makes.
func TestReplicaMatchesLeader(t *testing.T) {
	s, rec := newRecordedEngine(t)
	runScenario(t, s, rec)
	checkReplica(t, s, rec)
}

// runScenario drives s through clients, plain, durable and queue subscriptions,
// publishes, acks, a durable close and resume, an unsubscribe and a client close.
func runScenario(t *testing.T, s *Server, rec *recordingLog) {
	t.Helper()
	req := func(kind opKind, m proto.Message) op { return op{kind: kind, data: marshal(m), reply: "r", from: 1} }
	pub := func(ch string, i int) op {
		return req(opPublish, &stanpb.PubMsg{ClientID: "c1", Guid: fmt.Sprint("g", i), Subject: ch, Data: []byte(fmt.Sprint("m", i))})
	}
	ackAll := func() {
		for key, sub := range s.byAckID {
			for _, seq := range sortedPending(sub) {
				s.step(op{kind: opAck, ack: key, seq: seq, from: 1})
			}
		}
	}
	s.step(req(opConnect, &stanpb.ConnectRequest{ClientID: "c1", HeartbeatInbox: "hb.c1", Protocol: 1, ConnID: []byte("x")}))
	s.step(req(opConnect, &stanpb.ConnectRequest{ClientID: "c2", HeartbeatInbox: "hb.c2", Protocol: 1, ConnID: []byte("y")}))
	for i := range 5 {
		s.step(pub("foo", i))
	}
	s.step(req(opSubscribe, &stanpb.SubscriptionRequest{ClientID: "c1", Subject: "foo", Inbox: "in.plain", MaxInFlight: 3,
		AckWaitInSecs: 30, StartPosition: stanpb.StartPosition_First}))
	s.step(req(opSubscribe, &stanpb.SubscriptionRequest{ClientID: "c1", Subject: "foo", Inbox: "in.dur", MaxInFlight: 100,
		AckWaitInSecs: 30, DurableName: "d", StartPosition: stanpb.StartPosition_SequenceStart, StartSequence: 2}))
	for _, in := range []string{"in.q1", "in.q2"} {
		s.step(req(opSubscribe, &stanpb.SubscriptionRequest{ClientID: "c1", Subject: "bar", Inbox: in, MaxInFlight: 10,
			AckWaitInSecs: 30, QGroup: "q", DurableName: "dq"}))
	}
	for i := 5; i < 15; i++ {
		s.step(pub("foo", i))
		s.step(pub("bar", i))
	}
	ackAll()
	s.step(req(opSubClose, &stanpb.UnsubscribeRequest{ClientID: "c1", Subject: "foo", Inbox: "in.dur"}))
	s.step(req(opUnsubscribe, &stanpb.UnsubscribeRequest{ClientID: "c1", Subject: "bar", Inbox: "in.q2"}))
	for i := 15; i < 20; i++ {
		s.step(pub("foo", i))
	}
	s.step(req(opSubscribe, &stanpb.SubscriptionRequest{ClientID: "c1", Subject: "foo", Inbox: "in.dur2", MaxInFlight: 100,
		AckWaitInSecs: 30, DurableName: "d"}))
	ackAll()
	s.step(req(opClose, &stanpb.CloseRequest{ClientID: "c2"}))
	if len(rec.entries) < 20 {
		t.Fatalf("only %d commands proposed: the scenario did not run", len(rec.entries))
	}
}

// TestSentAcksRideThePublishEntry: replicated, the records of an engine batch's acks (and
// deliveries) go into the entry of the next publish group rather than an entry of their own
// after every batch, which doubled the log's entries under a subscriber's load.
func TestSentAcksRideThePublishEntry(t *testing.T) {
	s, rec := newRecordedEngine(t)
	req := func(kind opKind, m proto.Message) op { return op{kind: kind, data: marshal(m), reply: "r", from: 1} }
	pub := func(i int) op {
		return req(opPublish, &stanpb.PubMsg{ClientID: "c1", Guid: fmt.Sprint("g", i), Subject: "foo", Data: []byte(fmt.Sprint("m", i))})
	}
	s.step(req(opConnect, &stanpb.ConnectRequest{ClientID: "c1", HeartbeatInbox: "hb.c1", Protocol: 1, ConnID: []byte("x")}))
	s.step(req(opSubscribe, &stanpb.SubscriptionRequest{ClientID: "c1", Subject: "foo", Inbox: "in", MaxInFlight: 10,
		AckWaitInSecs: 30, StartPosition: stanpb.StartPosition_NewOnly}))
	s.step(pub(0))
	// One engine batch: the ack of message 1, then a publish. Nothing proposes the ack's
	// record before the publishes go.
	for key := range s.byAckID {
		s.process(&op{kind: opAck, ack: key, seq: 1, from: 1})
	}
	first := len(rec.entries)
	o := pub(1)
	s.queuePublish(&o)
	s.flushPublishes()
	var kinds []string
	for _, e := range rec.entries[first:] {
		c, err := s.sm.Decode(e.data)
		if err != nil {
			t.Fatal(err)
		}
		kinds = append(kinds, fmt.Sprintf("%d:%T", e.batch, c.Value))
		if sa, ok := c.Value.(*cmdSentAck); ok && (len(sa.events) != 1 || !sa.events[0].Acked || sa.events[0].Seq != 1) {
			t.Fatalf("the records proposed: %+v, want the ack of 1", sa.events)
		}
	}
	b := rec.entries[first].batch
	if want := []string{fmt.Sprintf("%d:*streaming.cmdPublish", b), fmt.Sprintf("%d:*streaming.cmdSentAck", b)}; !slices.Equal(kinds, want) {
		t.Fatalf("proposed %v, want the publish and the ack's record in one proposal %v", kinds, want)
	}
	s.endBatch()
	checkReplica(t, s, rec)
}

// switchLog is a Local whose leadership (and term) the test sets.
type switchLog struct {
	*raftlog.Local
	leadership chan bool
	leader     bool
	term       atomic.Uint64
}

func (l *switchLog) Term() uint64 { return l.term.Load() }

func (l *switchLog) IsLeader() bool          { return l.leader }
func (l *switchLog) Leadership() <-chan bool { return l.leadership }
func (l *switchLog) set(leader bool)         { l.leader = leader; l.leadership <- leader }
func newSwitchLog(sm raftlog.StateMachine) *switchLog {
	return &switchLog{Local: raftlog.NewLocal(sm), leadership: make(chan bool, 1)}
}

// TestLeadershipReachesTheEngine: the engine starts in the role the log reports, learns of
// every change as an op between batches, and heartbeats clients only while it leads.
func TestLeadershipReachesTheEngine(t *testing.T) {
	store, err := memstore.New(memstore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	var sl *switchLog
	bus := &hbBus{}
	s, err := New(bus, store, func(sm raftlog.StateMachine) (raftlog.Log, error) {
		sl = newSwitchLog(sm)
		return sl, nil
	}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.recover(); err != nil {
		t.Fatal(err)
	}
	if s.leader {
		t.Fatal("engine leads before its log says so")
	}
	runEngine(s)
	defer func() { close(s.stop); <-s.done }()
	waitRole := func(leader bool, changes int) {
		t.Helper()
		deadline := time.Now().Add(5 * time.Second)
		for {
			sn := s.takeSnapshot(false)
			if sn.leader == leader && sn.changes == changes {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("engine role %v after %d changes, want %v after %d", sn.leader, sn.changes, leader, changes)
			}
			time.Sleep(time.Millisecond)
		}
	}
	heartbeats := func() int {
		n := bus.count()
		s.push(op{kind: opHbTick})
		s.takeSnapshot(false) // the tick came before it in the queue
		return bus.count() - n
	}
	if n := heartbeats(); n != 0 {
		t.Fatalf("a follower sent %d heartbeats", n)
	}
	sl.set(true)
	waitRole(true, 1)
	// Connected to the leader: a follower answers no request (TestFormerLeaderAnswersNothing).
	s.push(op{kind: opConnect, reply: "r", from: 1, data: marshal(&stanpb.ConnectRequest{ClientID: "c1", HeartbeatInbox: "hb", Protocol: 1, ConnID: []byte("x")})})
	for deadline := time.Now().Add(5 * time.Second); len(s.takeSnapshot(false).clients) != 1; time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the leader did not register the client")
		}
	}
	if n := heartbeats(); n != 1 {
		t.Fatalf("the leader sent %d heartbeats to its one client, want 1", n)
	}
	sl.set(false)
	waitRole(false, 2)
	if n := heartbeats(); n != 0 {
		t.Fatalf("a former leader sent %d heartbeats", n)
	}
}

// hbBus counts heartbeats (publishes to "hb"), safely for a test reading while the engine runs.
type hbBus struct {
	fakeBus
	mu  sync.Mutex
	hbs int
}

func (b *hbBus) Publish(subject, reply string, hdr, data []byte) error {
	if subject == "hb" {
		b.mu.Lock()
		b.hbs++
		b.mu.Unlock()
	}
	return nil
}

func (b *hbBus) count() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.hbs
}

func newMemStore(t testing.TB) stores.Store {
	t.Helper()
	st, err := memstore.New(memstore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	return st
}

// A leadership lost and regained between two reads of the log's channel reaches the
// engine as one "true" while it still leads: the term tells it, and it takes over again,
// so that its view holds what the other leader committed meanwhile. Before, it kept the
// old term's view (cursors, clients, subscriptions).
func TestLeadershipRegainedUnseenTakesOverAgain(t *testing.T) {
	store, err := memstore.New(memstore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	var sl *switchLog
	s, err := New(&hbBus{}, store, func(sm raftlog.StateMachine) (raftlog.Log, error) {
		sl = newSwitchLog(sm)
		return sl, nil
	}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.recover(); err != nil {
		t.Fatal(err)
	}
	runEngine(s)
	defer func() { close(s.stop); <-s.done }()
	sl.term.Store(2)
	sl.set(true)
	waitUntil(t, "the engine leads", func() bool { return s.takeSnapshot(false).leader })
	// Another leader's term: a client connected through it, applied here.
	f := sl.Local.Propose(context.Background(), raftlog.Command{Value: &cmdConnect{info: stores.ClientInfo{ID: "other", HbInbox: "hb.other", ConnID: []byte("x"), Protocol: 1}}})
	if _, err := f.Wait(); err != nil {
		t.Fatal(err)
	}
	if n := len(s.takeSnapshot(false).clients); n != 0 {
		t.Fatalf("the view holds %d clients before the new term", n)
	}
	sl.term.Store(4)
	sl.set(true)
	waitUntil(t, "the engine takes over again", func() bool { return len(s.takeSnapshot(false).clients) == 1 })
}

// failFirstSubscribe is a dataBus whose first Subscribe fails, as a takeover's can.
type failFirstSubscribe struct {
	*dataBus
	failed atomic.Bool
}

func (b *failFirstSubscribe) Subscribe(subject, queue string, h core.MsgHandler) (Subscription, error) {
	if b.failed.CompareAndSwap(false, true) {
		return nil, errors.New("no route to the protocol subjects")
	}
	return b.dataBus.Subscribe(subject, queue, h)
}

// A takeover that fails is tried again while the log goes on leading: the log reports
// only changes, and before, the engine stayed a follower of a group it led, serving
// nothing, until raft's leadership happened to change.
func TestFailedTakeOverIsRetried(t *testing.T) {
	_, trans := raft.NewInmemTransport("n1")
	var node *raftlog.Node
	s := startEngine(t, &failFirstSubscribe{dataBus: &dataBus{}}, newMemStore(t), func(sm raftlog.StateMachine) (raftlog.Log, error) {
		n, err := raftlog.NewNode(raftlog.Config{Group: "g0", NodeID: "n1", Peers: []string{"n1"}, Dir: t.TempDir(),
			Transport: trans, HeartbeatTimeout: 100 * time.Millisecond, ElectionTimeout: 100 * time.Millisecond,
			LeaderLeaseTimeout: 100 * time.Millisecond, NoRaftLog: true}, sm)
		node = n
		return n, err
	})
	t.Cleanup(func() {
		close(s.stop)
		<-s.done
		_ = node.Close()
	})
	waitUntil(t, "the engine leads after a failed takeover", func() bool { return s.takeSnapshot(false).leader })
}
