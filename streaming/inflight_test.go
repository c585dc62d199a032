package streaming

import (
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/raft"
	"google.golang.org/protobuf/proto"

	"github.com/starling-io/starling/proto/stanpb"
	"github.com/starling-io/starling/raftlog"
	"github.com/starling-io/starling/stores"
)

// The rare commands in flight (inflight.go): requests behind a command that is not yet
// committed. Each hazard runs twice: standalone, where a command is applied at once and its
// reply waits for the metadata sync (held until released); and over the replicated log
// (raftlog.Node, one node) with Apply held, so that commands stay in flight as behind a
// slow Raft commit — there the engine must go on meanwhile.

// hazardEngine drives an engine through a hazard.
type hazardEngine struct {
	t       *testing.T
	s       *Server
	bus     *dataBus
	do      func(o op) // the engine has processed o when it returns
	hold    func()     // what is proposed from now on stays in flight until release
	release func()     // lets everything in flight complete, and waits until it has
	snap    func(subs bool) *snapshot
}

func hazardModes(t *testing.T, test func(t *testing.T, e *hazardEngine)) {
	t.Run("standalone", func(t *testing.T) { test(t, newStandaloneHazard(t)) })
	t.Run("replicated", func(t *testing.T) {
		if testing.Short() {
			t.Skip("an election takes a moment")
		}
		test(t, newReplicatedHazard(t))
	})
}

func newStandaloneHazard(t *testing.T) *hazardEngine {
	s, bus, st := newMetaEngine(t)
	return &hazardEngine{t: t, s: s, bus: bus, do: s.step, hold: func() {},
		release: func() { releaseMeta(s, st, nil) },
		snap: func(subs bool) *snapshot { // no engine goroutine: take it here
			ch := make(chan *snapshot, 1)
			s.processSnapshot(&op{kind: opSnapshot, snap: ch, subsToo: subs})
			return <-ch
		}}
}

// gatedSM holds Apply while its gate is shut: the proposals wait, uncommitted for the engine.
type gatedSM struct {
	raftlog.StateMachine
	mu   sync.Mutex
	gate chan struct{} // closed: Apply runs
}

func (g *gatedSM) Apply(index uint64, cmds []raftlog.Command) []any {
	g.mu.Lock()
	gate := g.gate
	g.mu.Unlock()
	<-gate
	return g.StateMachine.Apply(index, cmds)
}

func (g *gatedSM) shut() {
	g.mu.Lock()
	defer g.mu.Unlock()
	select {
	case <-g.gate:
		g.gate = make(chan struct{})
	default:
	}
}

func (g *gatedSM) open() {
	g.mu.Lock()
	defer g.mu.Unlock()
	select {
	case <-g.gate:
	default:
		close(g.gate)
	}
}

func newReplicatedHazard(t *testing.T) *hazardEngine {
	_, trans := raft.NewInmemTransport("n1")
	bus := &dataBus{}
	g := &gatedSM{gate: make(chan struct{})}
	close(g.gate)
	var node *raftlog.Node
	s := startEngine(t, bus, newMemStore(t), func(sm raftlog.StateMachine) (raftlog.Log, error) {
		g.StateMachine = sm
		n, err := raftlog.NewNode(raftlog.Config{Group: "g0", NodeID: "n1", Peers: []string{"n1"}, Dir: t.TempDir(),
			Transport: trans, HeartbeatTimeout: 100 * time.Millisecond, ElectionTimeout: 100 * time.Millisecond,
			LeaderLeaseTimeout: 100 * time.Millisecond, NoRaftLog: true}, g)
		node = n
		return n, err
	})
	t.Cleanup(func() {
		g.open()
		close(s.stop)
		<-s.done
		_ = node.Close()
	})
	waitUntil(t, "the engine leads", func() bool { return s.takeSnapshot(false).leader })
	e := &hazardEngine{t: t, s: s, bus: bus, hold: g.shut, snap: s.takeSnapshot}
	e.do = func(o op) {
		t.Helper()
		s.push(o)
		if !s.takeSnapshot(false).leader { // an empty snapshot: the engine did not answer
			t.Fatalf("the engine did not go on after op %d: it waits for a commit", o.kind)
		}
	}
	e.release = func() {
		t.Helper()
		g.open()
		waitUntil(t, "everything in flight completes", func() bool {
			sn := s.takeSnapshot(false)
			return sn.leader && sn.pending == 0
		})
	}
	return e
}

// Requests. Connection 1 and 3 are open (fakeBus), 2 is gone.

func connectReq(id, hb string, from uint64, reply string) op {
	return op{kind: opConnect, reply: reply, from: from, data: marshal(&stanpb.ConnectRequest{ClientID: id,
		HeartbeatInbox: hb, Protocol: 1, ConnID: []byte(id)})}
}

func subscribeReq(id, channel, durable, inbox string, from uint64, reply string) op {
	return op{kind: opSubscribe, reply: reply, from: from, data: marshal(&stanpb.SubscriptionRequest{ClientID: id,
		Subject: channel, Inbox: inbox, DurableName: durable, MaxInFlight: 10, AckWaitInSecs: 30,
		StartPosition: stanpb.StartPosition_First})}
}

func publishReq(id, channel, guid string, from uint64, reply string) op {
	return op{kind: opPublish, reply: reply, from: from, data: marshal(&stanpb.PubMsg{ClientID: id, ConnID: []byte(id),
		Guid: guid, Subject: channel, Data: []byte(guid)})}
}

func closeReq(id string, from uint64, reply string) op {
	return op{kind: opClose, reply: reply, from: from, data: marshal(&stanpb.CloseRequest{ClientID: id})}
}

// sent returns the subjects of everything sent to one of subjects, in order.
func (e *hazardEngine) sent(subjects ...string) []string {
	e.bus.mu.Lock()
	defer e.bus.mu.Unlock()
	var out []string
	for _, m := range e.bus.sent {
		for _, s := range subjects {
			if m.subject == s {
				out = append(out, s)
			}
		}
	}
	return out
}

// one decodes the only message sent to subject into m.
func (e *hazardEngine) one(subject string, m proto.Message) {
	e.t.Helper()
	got := e.bus.to(subject)
	if len(got) != 1 {
		e.t.Fatalf("%d messages to %s, want 1", len(got), subject)
	}
	if err := proto.Unmarshal(got[0].data, m); err != nil {
		e.t.Fatalf("%s: %v", subject, err)
	}
}

// ok checks that the only reply to subject carries no error.
func (e *hazardEngine) ok(subject string, m interface {
	proto.Message
	GetError() string
}) {
	e.t.Helper()
	e.one(subject, m)
	if m.GetError() != "" {
		e.t.Fatalf("%s: error %q", subject, m.GetError())
	}
}

func (e *hazardEngine) none(subjects ...string) {
	e.t.Helper()
	if got := e.sent(subjects...); len(got) > 0 {
		e.t.Fatalf("sent before the commit: %v", got)
	}
}

func (e *hazardEngine) order(want ...string) {
	e.t.Helper()
	if got := e.sent(want...); strings.Join(got, " ") != strings.Join(want, " ") {
		e.t.Fatalf("sent in the order %v, want %v", got, want)
	}
}

// setup connects client id on connection from and creates channel foo (one message).
func (e *hazardEngine) setup(id string, from uint64) {
	e.t.Helper()
	e.do(connectReq(id, "hb."+id, from, "r.setup."+id))
	e.do(publishReq(id, "foo", "setup", from, "r.setup.pub"))
	e.release()
	e.ok("r.setup."+id, &stanpb.ConnectResponse{})
	e.ok("r.setup.pub", &stanpb.PubAck{})
}

// stored returns the state machine's subscriptions of channel and whether it holds client id.
func (e *hazardEngine) stored(channel, id string) ([]stores.SubState, bool) {
	e.t.Helper()
	m := e.s.sm
	m.mu.Lock()
	defer m.mu.Unlock()
	_, client := m.clients[id]
	ch := m.chans[channel]
	if ch == nil {
		return nil, client
	}
	rs, err := ch.Subs.Subs()
	if err != nil {
		e.t.Fatal(err)
	}
	var out []stores.SubState
	for _, r := range rs {
		out = append(out, r.State)
	}
	return out, client
}

// A subscribe and a publish right behind a connect that is not committed: they see the
// client, their commands follow the connect in the log, and the replies (connect response,
// SubscriptionResponse, PubAck) go in that order once it is; deliveries only after the
// SubscriptionResponse.
func TestInFlightConnectDependents(t *testing.T) {
	hazardModes(t, func(t *testing.T, e *hazardEngine) {
		e.setup("setup", 1)
		e.hold()
		e.do(connectReq("c1", "hb.c1", 3, "r.conn"))
		e.do(subscribeReq("c1", "foo", "d", "in.c1", 3, "r.sub"))
		e.do(publishReq("c1", "foo", "m2", 3, "r.pub"))
		e.none("r.conn", "r.sub", "r.pub", "in.c1")
		e.release()
		e.order("r.conn", "r.sub", "r.pub")
		e.ok("r.conn", &stanpb.ConnectResponse{})
		e.ok("r.sub", &stanpb.SubscriptionResponse{})
		e.ok("r.pub", &stanpb.PubAck{})
		waitUntil(t, "both messages delivered", func() bool { return len(e.bus.to("in.c1")) == 2 })
		if got := e.sent("r.sub", "in.c1"); got[0] != "r.sub" {
			t.Fatalf("delivered before the SubscriptionResponse: %v", got)
		}
		subs, client := e.stored("foo", "c1")
		if !client || len(subs) != 1 || subs[0].ClientID != "c1" {
			t.Fatalf("stored: client %v, subscriptions %+v", client, subs)
		}
	})
}

// A second connect for a client ID whose connect is not committed finds the ID taken, as it
// would once committed: with the first client's connection open, a liveness check on its
// heartbeat inbox decides (answered: refused as a duplicate); with it gone, the check too,
// which the no-responders status settles at once: the new connection replaces the client,
// its registration behind the first.
func TestInFlightDuplicateConnect(t *testing.T) {
	hazardModes(t, func(t *testing.T, e *hazardEngine) {
		e.hold()
		e.do(connectReq("c1", "hb.c1", 1, "r.c1a"))
		e.do(connectReq("c1", "hb.c1b", 3, "r.c1b"))
		check := e.bus.to("hb.c1")
		if len(check) != 1 || !strings.HasPrefix(check[0].reply, e.s.checkPrefix+".") {
			t.Fatalf("no liveness check of the first client: %+v", check)
		}
		token := check[0].reply[strings.LastIndexByte(check[0].reply, '.')+1:]
		e.do(op{kind: opCheckReply, token: token, from: 1}) // the first client answers
		var dup stanpb.ConnectResponse
		e.one("r.c1b", &dup)
		if dup.Error != errDuplicateClient {
			t.Fatalf("second connect answered %q, want %q", dup.Error, errDuplicateClient)
		}
		e.do(connectReq("c2", "hb.c2a", 2, "r.c2a"))
		e.do(connectReq("c2", "hb.c2b", 3, "r.c2b"))
		check = e.bus.to("hb.c2a")
		if len(check) != 1 || !strings.HasPrefix(check[0].reply, e.s.checkPrefix+".") {
			t.Fatalf("no liveness check of the client whose connection is gone: %+v", check)
		}
		token = check[0].reply[strings.LastIndexByte(check[0].reply, '.')+1:]
		e.do(op{kind: opCheckTimeout, token: token}) // nobody listens there: no-responders
		e.none("r.c1a", "r.c2a", "r.c2b")
		e.release()
		e.order("r.c1a", "r.c2a", "r.c2b")
		e.ok("r.c1a", &stanpb.ConnectResponse{})
		e.ok("r.c2a", &stanpb.ConnectResponse{})
		e.ok("r.c2b", &stanpb.ConnectResponse{})
		e.s.sm.mu.Lock()
		hb := e.s.sm.clients["c2"].HbInbox
		e.s.sm.mu.Unlock()
		if hb != "hb.c2b" {
			t.Fatalf("client c2 stored with heartbeat inbox %q, want the replacement's", hb)
		}
	})
}

// A close right behind a subscribe that is not committed closes it too: the
// SubscriptionResponse, then the close response; the durable is offline, the plain
// subscription and the client gone, nothing delivered.
func TestInFlightCloseRacesSubscribe(t *testing.T) {
	hazardModes(t, func(t *testing.T, e *hazardEngine) {
		e.setup("c1", 1)
		e.hold()
		e.do(subscribeReq("c1", "foo", "d", "in.d", 1, "r.subd"))
		e.do(subscribeReq("c1", "foo", "", "in.p", 1, "r.subp"))
		e.do(closeReq("c1", 1, "r.close"))
		e.none("r.subd", "r.subp", "r.close")
		e.release()
		e.order("r.subd", "r.subp", "r.close")
		e.ok("r.subd", &stanpb.SubscriptionResponse{})
		e.ok("r.subp", &stanpb.SubscriptionResponse{})
		e.ok("r.close", &stanpb.CloseResponse{})
		if n := len(e.bus.to("in.d")) + len(e.bus.to("in.p")); n != 0 {
			t.Fatalf("%d messages delivered to closed subscriptions", n)
		}
		subs, client := e.stored("foo", "c1")
		if client || len(subs) != 1 || subs[0].DurableName != "d" || !subs[0].IsClosed {
			t.Fatalf("stored after the close: client %v, subscriptions %+v", client, subs)
		}
		if sn := e.snap(false); len(sn.clients) != 0 {
			t.Fatalf("the engine still has %d clients", len(sn.clients))
		}
	})
}

// A durable resubscribed while its close is not committed resumes it, behind the close: the
// close response, then the SubscriptionResponse with a new ack inbox, then its unacknowledged
// message again, flagged, to the new inbox.
func TestInFlightDurableResubscribe(t *testing.T) {
	hazardModes(t, func(t *testing.T, e *hazardEngine) {
		e.setup("c1", 1)
		e.do(subscribeReq("c1", "foo", "d", "in.1", 1, "r.sub1"))
		e.release()
		var first stanpb.SubscriptionResponse
		e.ok("r.sub1", &first)
		waitUntil(t, "the message delivered", func() bool { return len(e.bus.to("in.1")) == 1 })
		e.hold()
		e.do(op{kind: opSubClose, reply: "r.close", from: 1, data: marshal(&stanpb.UnsubscribeRequest{ClientID: "c1",
			Subject: "foo", Inbox: first.AckInbox})})
		e.do(subscribeReq("c1", "foo", "d", "in.2", 1, "r.sub2"))
		e.none("r.close", "r.sub2", "in.2")
		e.release()
		e.order("r.close", "r.sub2")
		e.ok("r.close", &stanpb.SubscriptionResponse{})
		var second stanpb.SubscriptionResponse
		e.ok("r.sub2", &second)
		if second.AckInbox == first.AckInbox {
			t.Fatal("the resumed durable kept its ack inbox")
		}
		waitUntil(t, "the message redelivered", func() bool { return len(e.bus.to("in.2")) == 1 })
		var m stanpb.MsgProto
		e.one("in.2", &m)
		if m.Sequence != 1 || !m.Redelivered {
			t.Fatalf("resumed durable got sequence %d redelivered %v, want 1 flagged", m.Sequence, m.Redelivered)
		}
		subs, _ := e.stored("foo", "c1")
		if len(subs) != 1 || subs[0].IsClosed || subs[0].Inbox != "in.2" {
			t.Fatalf("stored durable %+v, want it online on in.2", subs)
		}
	})
}

// A subscribe that the store refuses once applied (the channel's subscription limit) is
// undone when the refusal is known: the engine keeps only what the store holds.
func TestInFlightRefusedSubscribe(t *testing.T) {
	hazardModes(t, func(t *testing.T, e *hazardEngine) {
		if err := e.s.store.SetLimits(&stores.LimitsSet{Global: stores.DefaultLimits(),
			Channels: map[string]stores.Limits{"lim": {MaxSubs: 1}}}); err != nil {
			t.Fatal(err)
		}
		e.setup("c1", 1)
		e.do(publishReq("c1", "lim", "create", 1, "r.create"))
		e.release()
		e.hold()
		e.do(subscribeReq("c1", "lim", "", "in.a", 1, "r.a"))
		e.do(subscribeReq("c1", "lim", "", "in.b", 1, "r.b"))
		e.release()
		e.ok("r.a", &stanpb.SubscriptionResponse{})
		var refused stanpb.SubscriptionResponse
		e.one("r.b", &refused)
		if refused.Error == "" {
			t.Fatal("a subscription past the limit was accepted")
		}
		sn := e.snap(true)
		for _, ch := range sn.channels {
			if ch.Name == "lim" && (ch.SubsCount != 1 || ch.Subscriptions[0].Inbox != "in.a") {
				t.Fatalf("the engine holds %d subscriptions on lim: %+v", ch.SubsCount, ch.Subscriptions)
			}
		}
		if subs, _ := e.stored("lim", "c1"); len(subs) != 1 {
			t.Fatalf("stored %+v", subs)
		}
	})
}

// Channel creation waits for its commit (its store exists only once applied): publishes to a
// new channel in one engine batch land in order, and a subscription behind them sees both.
func TestInFlightChannelCreation(t *testing.T) {
	hazardModes(t, func(t *testing.T, e *hazardEngine) {
		e.setup("c1", 1)
		e.do(publishReq("c1", "fresh", "g1", 1, "r.p1"))
		e.do(publishReq("c1", "fresh", "g2", 1, "r.p2"))
		e.do(subscribeReq("c1", "fresh", "", "in.f", 1, "r.sub"))
		e.release()
		e.order("r.p1", "r.p2", "r.sub")
		e.ok("r.p1", &stanpb.PubAck{})
		e.ok("r.p2", &stanpb.PubAck{})
		e.ok("r.sub", &stanpb.SubscriptionResponse{})
		waitUntil(t, "both delivered", func() bool { return len(e.bus.to("in.f")) == 2 })
	})
}

// A channel whose inactivity timer fires while a publish to it is in flight is not deleted:
// replicated, the deletion would follow the publish in the log, and the message would be
// acknowledged and gone.
func TestInFlightPublishKeepsItsChannel(t *testing.T) {
	hazardModes(t, func(t *testing.T, e *hazardEngine) {
		e.setup("c1", 1)
		s := e.s
		s.runMu.Lock() // foo was idle longer than its limit
		ch := s.channels["foo"]
		ch.limits.MaxInactivity = time.Hour
		ch.active = s.clock.monoNow() - int64(2*time.Hour)
		if ch.idleTimer == nil {
			ch.idleTimer = time.AfterFunc(time.Hour, func() {})
		}
		timer := ch.idleTimer
		s.runMu.Unlock()
		t.Cleanup(func() { timer.Stop() })
		e.hold()
		e.do(publishReq("c1", "foo", "g2", 1, "r.p2"))
		e.do(op{kind: opIdle, ch: ch})
		e.release()
		e.ok("r.p2", &stanpb.PubAck{})
		s.sm.mu.Lock()
		sc := s.sm.chans["foo"]
		s.sm.mu.Unlock()
		if sc == nil {
			t.Fatal("the channel was deleted under its acknowledged publish")
		}
		if st := sc.Msgs.State(); st.Last != 2 {
			t.Fatalf("the channel holds up to %d, want 2", st.Last)
		}
	})
}

// A step-down answers the requests of its own batch: a subscribe processed just before the
// leadership op, its reply not yet attached to a commit group, is answered (its command
// committed or not) before the view goes. Before, the reply was dropped with the view.
func TestStepDownAnswersItsLastBatch(t *testing.T) {
	e := newReplicatedHazard(t)
	e.setup("c1", 1)
	s := e.s
	s.runMu.Lock() // both ops in one batch
	s.push(subscribeReq("c1", "foo", "", "in.s", 1, "r.sub"))
	s.push(op{kind: opLeadership, leader: false})
	s.runMu.Unlock()
	waitUntil(t, "the subscription's reply", func() bool { return len(e.bus.to("r.sub")) == 1 })
}
