package streaming

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/raft"
	"google.golang.org/protobuf/proto"

	"github.com/starling-io/starling/proto/stanpb"
	"github.com/starling-io/starling/raftlog"
	"github.com/starling-io/starling/stores"
)

// raftMember is one node of a three-node streaming group over raftlog.Node and raft's
// in-memory transport: its own memory store, state machine and engine.
type raftMember struct {
	id    string
	srv   *Server
	store stores.Store
	node  *raftlog.Node
	bus   *dataBus
	trans *raft.InmemTransport
	up    bool
}

func startRaftGroup(t *testing.T) []*raftMember {
	t.Helper()
	return startRaftGroupWith(t, func(string) Options { return Options{} })
}

// startRaftGroupWith starts the group with each member's options.
func startRaftGroupWith(t *testing.T, opts func(id string) Options) []*raftMember {
	t.Helper()
	return startRaftGroupOn(t, opts, func(string) stores.Store { return newMemStore(t) })
}

// startRaftGroupOn starts the group with each member's options and store.
func startRaftGroupOn(t *testing.T, opts func(id string) Options, store func(id string) stores.Store) []*raftMember {
	t.Helper()
	ids := []string{"n1", "n2", "n3"}
	trans := map[string]*raft.InmemTransport{}
	for _, id := range ids {
		_, trans[id] = raft.NewInmemTransport(raft.ServerAddress(id))
	}
	for _, a := range ids {
		for _, b := range ids {
			if a != b {
				trans[a].Connect(raft.ServerAddress(b), trans[b])
			}
		}
	}
	var ms []*raftMember
	for _, id := range ids {
		m := &raftMember{id: id, store: store(id), bus: &dataBus{}, trans: trans[id]}
		m.srv = startEngineWith(t, m.bus, m.store, opts(id), func(sm raftlog.StateMachine) (raftlog.Log, error) {
			n, err := raftlog.NewNode(raftlog.Config{Group: "g0", NodeID: id, Peers: ids, Dir: t.TempDir(),
				Transport: trans[id], HeartbeatTimeout: 500 * time.Millisecond, ElectionTimeout: 500 * time.Millisecond,
				LeaderLeaseTimeout: 250 * time.Millisecond, NoRaftLog: true}, sm)
			m.node = n
			return n, err
		})
		m.up = true
		ms = append(ms, m)
	}
	t.Cleanup(func() {
		for _, m := range ms {
			if m.up {
				m.stop()
			}
		}
	})
	return ms
}

func (m *raftMember) stop() {
	m.up = false
	close(m.srv.stop)
	<-m.srv.done
	_ = m.node.Close()
}

// leaderOf waits until one running member's engine leads.
func leaderOf(t *testing.T, ms []*raftMember) *raftMember {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		for _, m := range ms {
			if m.up && m.srv.takeSnapshot(false).leader {
				return m
			}
		}
		time.Sleep(5 * time.Millisecond)
	}
	t.Fatal("no engine leads")
	return nil
}

// converged waits until every running member's store equals the leader's.
func converged(t *testing.T, ms []*raftMember, leader *raftMember) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		want, diff := storeDigest(t, leader.store), ""
		for _, m := range ms {
			if m.up && m != leader {
				if got := storeDigest(t, m.store); got != want {
					diff = fmt.Sprintf("%s:\n%s\nleader %s:\n%s", m.id, got, leader.id, want)
				}
			}
		}
		if diff == "" {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("stores differ\n%s", diff)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestStreamingOverRaft: three streaming servers over raftlog.Node. Only the leader's engine
// serves; every request it handles reaches the other replicas' stores through the log. When
// the leader stops, another takes over with the replicated clients, subscriptions and
// cursors: a publish to it continues the channel and reaches the durable, and the two
// remaining stores stay equal.
func TestStreamingOverRaft(t *testing.T) {
	if testing.Short() {
		t.Skip("elections take a second")
	}
	ms := startRaftGroup(t)
	leader := leaderOf(t, ms)
	req := func(kind opKind, m any) op { return requestOp(kind, "r", m) }
	do := func(s *Server, o op) { s.push(o); s.takeSnapshot(false) }
	do(leader.srv, req(opConnect, &stanpb.ConnectRequest{ClientID: "c1", HeartbeatInbox: "hb.c1", Protocol: 1, ConnID: []byte("x")}))
	do(leader.srv, req(opSubscribe, &stanpb.SubscriptionRequest{ClientID: "c1", Subject: "foo", Inbox: "in.dur", MaxInFlight: 1000,
		AckWaitInSecs: 30, DurableName: "d", StartPosition: stanpb.StartPosition_First}))
	for i := range 10 {
		do(leader.srv, req(opPublish, &stanpb.PubMsg{ClientID: "c1", Guid: fmt.Sprint("g", i), Subject: "foo",
			Data: []byte(fmt.Sprint("m", i)), ConnID: []byte("x")}))
	}
	waitUntil(t, "the leader delivers the 10 messages once committed", func() bool { return len(leader.bus.to("in.dur")) == 10 })
	// A burst: the engine proposes a group per iteration without waiting for the previous
	// one, so far fewer log entries than messages, and every message delivered once, in order.
	// 1 KiB each: a group's batch is proposed in pieces, spread over several entries.
	before, _ := leader.srv.RaftStats()
	pad := strings.Repeat(".", 1024)
	for i := 10; i < 210; i++ {
		leader.srv.push(req(opPublish, &stanpb.PubMsg{ClientID: "c1", Guid: fmt.Sprint("g", i), Subject: "foo",
			Data: []byte(fmt.Sprint("m", i, pad)), ConnID: []byte("x")}))
	}
	waitUntil(t, "the leader delivers the burst", func() bool { return len(leader.bus.to("in.dur")) == 210 })
	for i, m := range leader.bus.to("in.dur") {
		var mp stanpb.MsgProto
		if err := unmarshalAny(m.data, &mp); err != nil || mp.Sequence != uint64(i+1) || mp.Redelivered {
			t.Fatalf("delivery %d: sequence %d redelivered %v (%v)", i, mp.Sequence, mp.Redelivered, err)
		}
	}
	after, _ := leader.srv.RaftStats()
	if entries := after.LastLogIndex - before.LastLogIndex; entries >= 200 {
		t.Fatalf("200 publishes took %d log entries: not batched", entries)
	} else {
		t.Logf("200 publishes in %d log entries", entries)
	}
	for _, m := range ms {
		if m != leader && m.srv.takeSnapshot(false).viewChans != 0 {
			t.Fatalf("follower %s's engine holds a view", m.id)
		}
	}
	converged(t, ms, leader)
	// A follower's monitoring shows the replicated state: the channel, its durable, the client.
	for _, m := range ms {
		if m == leader {
			continue
		}
		chans, clients := m.srv.Channels(true), m.srv.Clients(true)
		if len(chans) != 1 || chans[0].Name != "foo" || chans[0].Msgs != 210 || chans[0].LastSeq != 210 || chans[0].SubsCount != 1 ||
			len(chans[0].Subscriptions) != 1 || chans[0].Subscriptions[0].DurableName != "d" || chans[0].Subscriptions[0].ClientID != "c1" {
			t.Fatalf("follower %s's channelsz: %+v", m.id, chans)
		}
		if len(clients) != 1 || clients[0].ID != "c1" || clients[0].HBInbox != "hb.c1" || clients[0].SubsCount != 1 || len(clients[0].Subscriptions["foo"]) != 1 {
			t.Fatalf("follower %s's clientsz: %+v", m.id, clients)
		}
		if z := m.srv.Serverz(); z.Channels != 1 || z.Clients != 1 || z.TotalMsgs != 210 || z.Subscriptions != 1 {
			t.Fatalf("follower %s's serverz: %d channels, %d clients, %d msgs, %d subscriptions", m.id, z.Channels, z.Clients, z.TotalMsgs, z.Subscriptions)
		}
	}
	for _, m := range ms {
		z, want := m.srv.Serverz(), "Follower"
		if m == leader {
			want = "Leader"
		}
		if z.State != "CLUSTERED" || z.Role != want || z.NodeID != m.id {
			t.Fatalf("serverz of %s: state %q role %q node %q, want CLUSTERED %s %s", m.id, z.State, z.Role, z.NodeID, want, m.id)
		}
	}

	leader.stop()
	next := leaderOf(t, ms)
	sn := next.srv.takeSnapshot(true)
	if len(sn.clients) != 1 || len(sn.channels) != 1 || sn.channels[0].LastSeq != 210 || len(sn.channels[0].Subscriptions) != 1 {
		t.Fatalf("new leader %s took over with %d clients and channels %+v", next.id, len(sn.clients), sn.channels)
	}
	do(next.srv, req(opPublish, &stanpb.PubMsg{ClientID: "c1", Guid: "g-after", Subject: "foo", Data: []byte("after"), ConnID: []byte("x")}))
	var seqs []uint64
	waitUntil(t, "the new leader delivers the new message", func() bool {
		seqs = seqs[:0]
		for _, m := range next.bus.to("in.dur") {
			var mp stanpb.MsgProto
			if err := unmarshalAny(m.data, &mp); err == nil {
				seqs = append(seqs, mp.Sequence)
			}
		}
		return len(seqs) > 0 && seqs[len(seqs)-1] == 211
	})
	// The sent records replicate lazily: the new leader may send again what the old one
	// sent (flagged), but never skips a message, and the new one follows.
	converged(t, ms, next)
	if err := next.srv.Health(); err != nil {
		t.Fatalf("the new leader is unhealthy: %v", err)
	}
	// Two of three down: no majority, so nothing can be acknowledged, and health says why.
	next.stop()
	var last *raftMember
	for _, m := range ms {
		if m.up {
			last = m
		}
	}
	waitUntil(t, "the last node reports no leader", func() bool {
		err := last.srv.Health()
		return err != nil && strings.Contains(err.Error(), "no leader")
	})
}

// requestOp is a request as core hands it to the engine: protobuf m with reply subject
// reply, from NATS connection 1.
func requestOp(kind opKind, reply string, m any) op {
	return op{kind: kind, data: marshalAny(m), reply: reply, from: 1}
}

func marshalAny(m any) []byte { return marshal(m.(proto.Message)) }

func unmarshalAny(b []byte, m proto.Message) error { return proto.Unmarshal(b, m) }

func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out: %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestReplicaFailureStopsTheReplica: a follower whose store fails to append (a full disk)
// stops applying the log and leaves the group instead of going on without the messages;
// the other two go on and acknowledge. A leader whose store fails acknowledges nothing of
// the failed batch and steps down.
func TestReplicaFailureStopsTheReplica(t *testing.T) {
	if testing.Short() {
		t.Skip("elections take a second")
	}
	ms := startRaftGroup(t)
	leader := leaderOf(t, ms)
	req := func(kind opKind, m any) op {
		return op{kind: kind, data: marshalAny(m), reply: "r", from: 1}
	}
	do := func(s *Server, o op) { s.push(o); s.takeSnapshot(false) }
	pub := func(s *Server, i int) {
		do(s, req(opPublish, &stanpb.PubMsg{ClientID: "c1", Guid: fmt.Sprint("g", i), Subject: "foo",
			Data: []byte(fmt.Sprint("m", i)), ConnID: []byte("x")}))
	}
	do(leader.srv, req(opConnect, &stanpb.ConnectRequest{ClientID: "c1", HeartbeatInbox: "hb.c1", Protocol: 1, ConnID: []byte("x")}))
	pub(leader.srv, 1)
	// The publish completes through the log: until the leader has stored it, every store
	// is equally empty and converged would return before the follower holds it.
	waitUntil(t, "the leader stores the first message", func() bool {
		leader.srv.sm.mu.Lock()
		defer leader.srv.sm.mu.Unlock()
		ch := leader.srv.sm.chans["foo"]
		return ch != nil && ch.Msgs.State().Last == 1
	})
	converged(t, ms, leader)

	var follower *raftMember
	for _, m := range ms {
		if m != leader {
			follower = m
			break
		}
	}
	follower.srv.sm.mu.Lock()
	ch := follower.srv.sm.chans["foo"]
	fm := &failingMsgs{MsgStore: ch.Msgs, failNext: true}
	ch.Msgs = fm
	follower.srv.sm.mu.Unlock()

	pub(leader.srv, 2)
	waitUntil(t, "the failed follower stops applying", func() bool { return follower.node.Stats().Stopped != nil })
	if err := follower.srv.Health(); err == nil {
		t.Fatal("the stopped follower reports healthy")
	}
	// As nats-streaming-server names a server that failed: before, it stayed "CLUSTERED".
	if z := follower.srv.Serverz(); z.State != "FAILED" || z.Raft == nil || z.Raft.Stopped == "" {
		t.Fatalf("the stopped follower's serverz: state %q, raft %+v; want FAILED with raft.stopped", z.State, z.Raft)
	}
	acks := len(leader.bus.to("r"))
	pub(leader.srv, 3)
	waitUntil(t, "the two others acknowledge without it", func() bool { return len(leader.bus.to("r")) > acks })
	var pa stanpb.PubAck
	if err := unmarshalAny(leader.bus.to("r")[len(leader.bus.to("r"))-1].data, &pa); err != nil || pa.Error != "" {
		t.Fatalf("PubAck %+v %v", &pa, err)
	}
	if got := fm.MsgStore.State().Last; got != 1 {
		t.Fatalf("the failed follower's channel holds up to %d, want 1 (nothing applied after the failure)", got)
	}

	// The leader's own store fails: the batch is not acknowledged, and it steps down.
	leader.srv.sm.mu.Lock()
	lch := leader.srv.sm.chans["foo"]
	lch.Msgs = &failingMsgs{MsgStore: lch.Msgs, failNext: true}
	leader.srv.sm.mu.Unlock()
	acks = len(leader.bus.to("r"))
	pub(leader.srv, 4)
	waitUntil(t, "the failed leader answers", func() bool { return len(leader.bus.to("r")) > acks })
	if err := unmarshalAny(leader.bus.to("r")[len(leader.bus.to("r"))-1].data, &pa); err != nil || pa.Error == "" {
		t.Fatalf("the failed leader acknowledged a message it could not store: %+v %v", &pa, err)
	}
	waitUntil(t, "the failed leader stops leading", func() bool { return !leader.node.IsLeader() })
}

// TestFormerLeaderAnswersNothing: requests queued before the engine stepped down are not
// answered from the dropped view — a ping would be told its client is unknown, and stan.go
// closes the connection of a client the new leader serves (found by
// TestStanClusterLeaderStop: a client of the old leader, SIGSTOPped and resumed, lost its
// connection). The clients' retries reach the new leader.
func TestFormerLeaderAnswersNothing(t *testing.T) {
	if testing.Short() {
		t.Skip("elections take a second")
	}
	ms := startRaftGroup(t)
	leader := leaderOf(t, ms)
	s := leader.srv
	s.push(requestOp(opConnect, "r.connect", &stanpb.ConnectRequest{ClientID: "c1", HeartbeatInbox: "hb.c1", Protocol: 1, ConnID: []byte("x")}))
	waitUntil(t, "the connect is answered", func() bool { s.takeSnapshot(false); return len(leader.bus.to("r.connect")) == 1 })
	s.push(op{kind: opLeadership, leader: false}) // as raft's notification of a lost leadership
	s.push(requestOp(opPing, "r.ping", &stanpb.Ping{ConnID: []byte("x")}))
	s.push(requestOp(opConnect, "r.connect2", &stanpb.ConnectRequest{ClientID: "c2", HeartbeatInbox: "hb.c2", Protocol: 1, ConnID: []byte("y")}))
	s.push(requestOp(opClose, "r.close", &stanpb.CloseRequest{ClientID: "c1"}))
	s.takeSnapshot(false) // the engine has processed them
	for _, subj := range []string{"r.ping", "r.connect2", "r.close"} {
		if got := leader.bus.to(subj); len(got) != 0 {
			t.Errorf("a former leader answered %s: %d replies", subj, len(got))
		}
	}
}

// TestFormerLeaderDeliversNothing: a leader whose engine was held up (here: blocked in a
// reply; in TestStanClusterLeaderStop, SIGSTOPped) after its log committed a publish, but
// before the engine delivered it, must not deliver it once it runs again: its successor
// took over meanwhile and sent the message (flagged, it may have been sent), and the former
// leader's copy would be a second, unflagged delivery of the same sequence.
func TestFormerLeaderDeliversNothing(t *testing.T) {
	if testing.Short() {
		t.Skip("elections take a second")
	}
	ms := startRaftGroup(t)
	old := leaderOf(t, ms)
	s := old.srv
	s.push(requestOp(opConnect, "r.connect", &stanpb.ConnectRequest{ClientID: "c1", HeartbeatInbox: "hb.c1", Protocol: 1, ConnID: []byte("x")}))
	s.push(requestOp(opSubscribe, "r.sub", &stanpb.SubscriptionRequest{ClientID: "c1", Subject: "foo", Inbox: "in.dur", MaxInFlight: 1000,
		AckWaitInSecs: 30, DurableName: "d", StartPosition: stanpb.StartPosition_NewOnly}))
	waitUntil(t, "the subscription is answered", func() bool { s.takeSnapshot(false); return len(old.bus.to("r.sub")) == 1 })

	// The engine proposes the publish, then blocks answering the ping queued behind it, so
	// the log commits the publish while the engine cannot deliver it.
	hold0, hold := old.bus.hold("r.hold0"), old.bus.hold("r.hold")
	t.Cleanup(hold0)
	t.Cleanup(hold) // before the group stops (cleanups run last first): its engine must run
	ping := func(reply string) op { return requestOp(opPing, reply, &stanpb.Ping{ConnID: []byte("x")}) }
	s.push(ping("r.hold0")) // holds the engine until the publish and the ping are queued together
	waitUntil(t, "the engine is held", func() bool { return old.bus.held("r.hold0") })
	s.push(requestOp(opPublish, "r.pub", &stanpb.PubMsg{ClientID: "c1", Guid: "g1", Subject: "foo", Data: []byte("m1"), ConnID: []byte("x")}))
	s.push(ping("r.hold"))
	hold0()
	waitUntil(t, "the engine is held after proposing", func() bool { return old.bus.held("r.hold") })
	var others []*raftMember
	for _, m := range ms {
		if m != old {
			others = append(others, m)
		}
	}
	waitUntil(t, "a follower applied the publish", func() bool {
		rs, err := others[0].store.Recover()
		return err == nil && rs != nil && len(rs.Channels) == 1 && rs.Channels[0].Channel.Msgs.State().Last == 1
	})

	// The held leader is cut off; another takes over and delivers the message.
	old.trans.DisconnectAll()
	for _, m := range others {
		m.trans.Disconnect(raft.ServerAddress(old.id))
	}
	next := leaderOf(t, others)
	waitUntil(t, "the new leader delivers the message", func() bool { return len(next.bus.to("in.dur")) == 1 })
	var mp stanpb.MsgProto
	if err := unmarshalAny(next.bus.to("in.dur")[0].data, &mp); err != nil || mp.Sequence != 1 || !mp.Redelivered {
		t.Fatalf("the new leader sent sequence %d redelivered %v (%v), want 1 flagged", mp.Sequence, mp.Redelivered, err)
	}
	hold()
	s.takeSnapshot(false) // the former leader's engine ran on
	waitUntil(t, "the former leader's engine steps down", func() bool { return !s.takeSnapshot(false).leader })
	if got := old.bus.to("in.dur"); len(got) != 0 {
		t.Fatalf("the former leader delivered %d messages after its successor took over", len(got))
	}
}

// startEngine builds a Server on bus, store and the log newLog makes, recovers it and runs
// its engine, as New and Start do; the caller stops it.
func startEngine(t *testing.T, bus Bus, store stores.Store, newLog func(raftlog.StateMachine) (raftlog.Log, error)) *Server {
	t.Helper()
	return startEngineWith(t, bus, store, Options{}, newLog)
}

func startEngineWith(t *testing.T, bus Bus, store stores.Store, o Options, newLog func(raftlog.StateMachine) (raftlog.Log, error)) *Server {
	t.Helper()
	s, err := New(bus, store, newLog, o)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.recover(); err != nil {
		t.Fatal(err)
	}
	runEngine(s)
	return s
}

// runEngine starts s's engine and its leadership loop, as Start does after recovery (tests
// that build a Server by hand, with a log of their own).
func runEngine(s *Server) {
	s.started = true
	go s.run()
	go s.leadershipLoop()
}

// TestLeaderCutOffMidBurst: the leader is cut off while bursts of 1 KiB publishes, each
// group proposed as several log entries, are in flight, so a group may be committed in
// part (then none of its publishes is acknowledged). Every publish the old leader
// acknowledged is in the new leader's store, once; the channel has no hole; the replicas
// converge; and the new leader's next publish continues the channel.
func TestLeaderCutOffMidBurst(t *testing.T) {
	if testing.Short() {
		t.Skip("elections take a second")
	}
	ms := startRaftGroup(t)
	old := leaderOf(t, ms)
	req := func(kind opKind, reply string, m any) op { return requestOp(kind, reply, m) }
	old.srv.push(req(opConnect, "r", &stanpb.ConnectRequest{ClientID: "c1", HeartbeatInbox: "hb.c1", Protocol: 1, ConnID: []byte("x")}))
	pad := strings.Repeat(".", 1024)
	const n = 600
	// The first publish creates the channel; the burst follows once it is acknowledged.
	old.srv.push(req(opPublish, "acks", &stanpb.PubMsg{ClientID: "c1", Guid: "g0", Subject: "foo",
		Data: []byte("m0" + pad), ConnID: []byte("x")}))
	waitUntil(t, "the first PubAck", func() bool { return len(old.bus.to("acks")) == 1 })
	before := old.node.Stats().LastLogIndex
	for i := 1; i < n; i++ {
		old.srv.push(req(opPublish, "acks", &stanpb.PubMsg{ClientID: "c1", Guid: fmt.Sprint("g", i), Subject: "foo",
			Data: []byte(fmt.Sprintf("m%d%s", i, pad)), ConnID: []byte("x")}))
	}
	// Cut off once the burst's first entries are in the leader's log, the rest in flight.
	waitUntil(t, "the burst's first entries", func() bool { return old.node.Stats().LastLogIndex >= before+3 })
	old.trans.DisconnectAll()
	for _, m := range ms {
		m.trans.Disconnect(raft.ServerAddress(old.id))
	}
	var rest []*raftMember
	for _, m := range ms {
		if m != old {
			rest = append(rest, m)
		}
	}
	next := leaderOf(t, rest)
	old.stop() // its engine completes what it had in flight: every PubAck it will send is sent
	acked := map[string]bool{}
	for _, m := range old.bus.to("acks") {
		var pa stanpb.PubAck
		if err := unmarshalAny(m.data, &pa); err != nil {
			t.Fatal(err)
		}
		if pa.Error == "" {
			acked[pa.Guid] = true
		}
	}
	converged(t, rest, next)
	rs, err := next.store.Recover()
	if err != nil || rs == nil || len(rs.Channels) != 1 {
		t.Fatalf("recover: %v %v", rs, err)
	}
	msgs := rs.Channels[0].Channel.Msgs
	st := msgs.State()
	seen := map[string]bool{}
	var m stores.Msg
	for seq := st.First; st.Msgs > 0 && seq <= st.Last; seq++ {
		if err := msgs.Load(seq, &m); err != nil {
			t.Fatalf("sequence %d of %d..%d: %v (a hole)", seq, st.First, st.Last, err)
		}
		g := "g" + strings.TrimRight(strings.TrimPrefix(string(m.Data), "m"), ".")
		if seen[g] {
			t.Fatalf("%s stored twice", g)
		}
		seen[g] = true
	}
	for g := range acked {
		if !seen[g] {
			t.Fatalf("%s was acknowledged by the old leader and is not in the new leader's store (%d acked, %d stored)", g, len(acked), len(seen))
		}
	}
	t.Logf("%d of %d acknowledged by the old leader, %d stored", len(acked), n, len(seen))
	next.srv.push(req(opPublish, "acks2", &stanpb.PubMsg{ClientID: "c1", Guid: "after", Subject: "foo", Data: []byte("after"), ConnID: []byte("x")}))
	waitUntil(t, "the new leader acknowledges a publish", func() bool { return len(next.bus.to("acks2")) == 1 })
	var pa stanpb.PubAck
	if err := unmarshalAny(next.bus.to("acks2")[0].data, &pa); err != nil || pa.Error != "" {
		t.Fatalf("the new leader's PubAck: %+v %v", &pa, err)
	}
	converged(t, rest, next)
}

// leaseLog is a Local, so replicated in the engine's eyes, whose lease the test refuses.
type leaseLog struct {
	*raftlog.Local
	refuse atomic.Bool
}

func (l *leaseLog) Lease(ctx context.Context) (time.Time, error) {
	if l.refuse.Load() {
		return time.Time{}, errors.New("no lease (test)")
	}
	return l.Local.Lease(ctx)
}

// TestRedeliveryWaitsNoAckWaitForALease: a redelivery refused for want of a lease (a leader
// that could not confirm its leadership for a moment) is sent once the lease is back,
// within the retry delay, not one ack wait later.
func TestRedeliveryWaitsNoAckWaitForALease(t *testing.T) {
	var ll *leaseLog
	bus := &dataBus{}
	s := startEngine(t, bus, newMemStore(t), func(sm raftlog.StateMachine) (raftlog.Log, error) {
		ll = &leaseLog{Local: raftlog.NewLocal(sm)}
		return ll, nil
	})
	defer func() { close(s.stop); <-s.done }()
	s.push(requestOp(opConnect, "r", &stanpb.ConnectRequest{ClientID: "c1", HeartbeatInbox: "hb.c1", Protocol: 1, ConnID: []byte("x")}))
	s.push(requestOp(opSubscribe, "r", &stanpb.SubscriptionRequest{ClientID: "c1", Subject: "foo", Inbox: "in", MaxInFlight: 10,
		AckWaitInSecs: 2, StartPosition: stanpb.StartPosition_NewOnly}))
	s.push(requestOp(opPublish, "r", &stanpb.PubMsg{ClientID: "c1", Guid: "g1", Subject: "foo", Data: []byte("m1"), ConnID: []byte("x")}))
	waitUntil(t, "the first delivery", func() bool { return len(bus.to("in")) == 1 })
	ll.refuse.Store(true)
	time.Sleep(2500 * time.Millisecond) // past the ack wait: the redelivery is refused
	if n := len(bus.to("in")); n != 1 {
		t.Fatalf("%d deliveries without a lease, want 1", n)
	}
	ll.refuse.Store(false)
	back := time.Now()
	waitUntil(t, "the redelivery", func() bool { return len(bus.to("in")) == 2 })
	if d := time.Since(back); d > time.Second {
		t.Fatalf("redelivered %v after the lease came back: it waited for another ack wait", d)
	}
	var mp stanpb.MsgProto
	if err := unmarshalAny(bus.to("in")[1].data, &mp); err != nil || mp.Sequence != 1 || !mp.Redelivered || mp.RedeliveryCount != 1 {
		t.Fatalf("redelivery: sequence %d redelivered %v count %d (%v), want 1, flagged, count 1", mp.Sequence, mp.Redelivered, mp.RedeliveryCount, err)
	}
}

// leaseSwitchLog is a switchLog whose lease the test refuses.
type leaseSwitchLog struct {
	*switchLog
	refuse atomic.Bool
}

func (l *leaseSwitchLog) Lease(ctx context.Context) (time.Time, error) {
	if l.refuse.Load() {
		return time.Time{}, errors.New("no lease (test)")
	}
	return l.switchLog.Lease(ctx)
}

// A new leader that cannot confirm its lease while it takes over sends the messages stored
// and never sent once the lease is back, within the retry delay, as a leader does. Before,
// the takeover's deliveries were refused with no retry armed (the engine did not lead yet),
// and the message below waited for the channel's next publish or ack.
func TestTakeoverRetriesSendsRefusedForALease(t *testing.T) {
	var ll *leaseSwitchLog
	bus := &dataBus{}
	s, err := New(bus, newMemStore(t), func(sm raftlog.StateMachine) (raftlog.Log, error) {
		ll = &leaseSwitchLog{switchLog: newSwitchLog(sm)}
		return ll, nil
	}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.recover(); err != nil {
		t.Fatal(err)
	}
	// The former leader's commands: a client, its subscription, and a message it stored
	// and never sent.
	ref := chanRef{channel: "foo", chanID: 1}
	for _, cmd := range []any{
		&cmdConnect{info: stores.ClientInfo{ID: "c1", HbInbox: "hb.c1", ConnID: []byte("x"), Protocol: 1}},
		&cmdCreateChannel{name: "foo", id: 1},
		&cmdSubscribe{chanRef: ref, state: stores.SubState{ID: 1, ClientID: "c1", Inbox: "in", AckInbox: "_INBOX.old.a",
			MaxInFlight: 10, AckWaitSecs: 30}},
		&cmdPublish{chanRef: ref, msgs: []stores.Msg{{Seq: 1, Time: time.Now().UnixNano(), Data: []byte("m1")}}},
	} {
		f := ll.Local.Propose(context.Background(), raftlog.Command{Value: cmd})
		if _, err := f.Wait(); err != nil {
			t.Fatal(err)
		}
		if err, ok := f.Result().(error); ok && err != nil {
			t.Fatal(err)
		}
	}
	runEngine(s)
	defer func() { close(s.stop); <-s.done }()
	ll.refuse.Store(true)
	ll.set(true)
	waitUntil(t, "the takeover", func() bool { return s.takeSnapshot(false).leader })
	if n := len(bus.to("in")); n != 0 {
		t.Fatalf("%d deliveries without a lease", n)
	}
	ll.refuse.Store(false)
	back := time.Now()
	waitUntil(t, "the delivery", func() bool { return len(bus.to("in")) == 1 })
	if d := time.Since(back); d > time.Second {
		t.Fatalf("delivered %v after the lease came back", d)
	}
}
