package streaming

import (
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/starling-io/starling/core"
	"github.com/starling-io/starling/proto/stanpb"
	"github.com/starling-io/starling/raftlog"
	"github.com/starling-io/starling/stores/memstore"
)

// fakeBus records what the engine publishes; unit tests drive the engine directly.
type fakeBus struct {
	published int
	alive     bool
	backlog   map[string]bool // subjects reported Backlogged
}

func (b *fakeBus) Subscribe(string, string, core.MsgHandler) (Subscription, error) {
	return nil, nil
}
func (b *fakeBus) Publish(subject, reply string, hdr, data []byte) error {
	b.published++
	return nil
}
func (b *fakeBus) Flush() {}

// IsConnected: odd connections are open, even ones gone (unless alive); connection 4
// belongs to another user. Requests from several connections exercise the binding of
// clients to their connection and user: 1 and 3 are both open, of the same user.
func (b *fakeBus) IsConnected(cid uint64) bool { return b.alive || cid%2 == 1 }
func (b *fakeBus) ConnUser(cid uint64) (string, bool) {
	if cid >= 4 {
		return "mallory", true
	}
	return "", true
}
func (b *fakeBus) HasInterest(string) bool { return true }
func (b *fakeBus) MaxPayload() int         { return 1 << 20 }
func (b *fakeBus) Backlogged(subject string) bool {
	return b.backlog[subject]
}

// newEngine builds a server whose engine the test drives op by op on its own goroutine.
func newEngine(t testing.TB) (*Server, *fakeBus) {
	bus := &fakeBus{}
	return newEngineOn(t, bus), bus
}

// newEngineOn is newEngine over bus.
func newEngineOn(t testing.TB, bus Bus) *Server {
	t.Helper()
	store, err := memstore.New(memstore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	s, err := New(bus, store, raftlog.Standalone, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.recover(); err != nil {
		t.Fatal(err)
	}
	return s
}

// step runs one op the way the engine loop would.
func (s *Server) step(o op) {
	if o.kind == opPublish {
		s.queuePublish(&o)
	} else {
		s.flushPublishes()
		s.process(&o)
	}
	s.endBatch()
}

func marshal(m proto.Message) []byte {
	b, _ := proto.Marshal(m)
	return b
}

// FuzzRequests feeds random sequences of (possibly malformed) protocol requests to the
// engine: nothing may panic, and the state must stay consistent.
func FuzzRequests(f *testing.F) {
	seed := func(ops ...[]byte) []byte {
		var b []byte
		for _, o := range ops {
			b = append(b, o...)
		}
		return b
	}
	enc := func(kind opKind, m proto.Message) []byte {
		p := marshal(m)
		return append([]byte{byte(kind), byte(len(p))}, p...)
	}
	conn := enc(opConnect, &stanpb.ConnectRequest{ClientID: "c1", HeartbeatInbox: "hb", Protocol: 1, ConnID: []byte("x")})
	pub := enc(opPublish, &stanpb.PubMsg{ClientID: "c1", Guid: "g", Subject: "foo", Data: []byte("hi")})
	sub := enc(opSubscribe, &stanpb.SubscriptionRequest{ClientID: "c1", Subject: "foo", Inbox: "in", MaxInFlight: 2, AckWaitInSecs: 1, StartPosition: stanpb.StartPosition_First})
	qsub := enc(opSubscribe, &stanpb.SubscriptionRequest{ClientID: "c1", Subject: "foo", QGroup: "q", DurableName: "d", Inbox: "in2", MaxInFlight: 1, AckWaitInSecs: 1})
	ack := enc(opAck, &stanpb.Ack{Subject: "foo", Sequence: 1})
	unsub := enc(opSubClose, &stanpb.UnsubscribeRequest{ClientID: "c1", Subject: "foo", Inbox: "in"})
	closeReq := enc(opClose, &stanpb.CloseRequest{ClientID: "c1"})
	// The op byte: kind in the low 5 bits; 0x20: an ack key (or check token) taken from the
	// payload instead of a real one; the top 2 bits: the connection (1..4) it comes from.
	from := func(b []byte, conn byte) []byte { return append([]byte{b[0] | (conn-1)<<6}, b[1:]...) }
	randomKey := func(b []byte) []byte { return append([]byte{b[0] | 0x20}, b[1:]...) }
	hostileSub := func(inbox string) []byte {
		return enc(opSubscribe, &stanpb.SubscriptionRequest{ClientID: "c1", Subject: "foo", Inbox: inbox, MaxInFlight: 2, AckWaitInSecs: 1})
	}
	hostileConn := func(id, hb string) []byte {
		return enc(opConnect, &stanpb.ConnectRequest{ClientID: id, HeartbeatInbox: hb, Protocol: 1, ConnID: []byte(id)})
	}
	f.Add(seed(conn, pub, sub, pub, ack, unsub, closeReq))
	f.Add(seed(conn, qsub, pub, pub, qsub, closeReq, conn, qsub))
	f.Add(seed(pub, sub, []byte{byte(opPing), 3, 1, 2, 3}, []byte{byte(opConnect), 2, 0xff, 0xff}))
	f.Add(seed(conn, hostileSub("orders.x 1 12\r\ncancel-all!!\r\nMSG orders.y"), hostileSub("_STAN.sub.test-cluster"),
		hostileSub("a b"), hostileSub("orders.*"), hostileConn("c2", "_STAN.discover.test-cluster"), hostileConn("c3", "hb\r\nPING"), pub))
	f.Add(seed(conn, sub, pub, from(ack, 2), from(ack, 3), randomKey(ack), from(unsub, 3), from(closeReq, 4),
		from(enc(opPing, &stanpb.Ping{ConnID: []byte("x")}), 2), from(conn, 3), from(sub, 2), from(closeReq, 2), from(conn, 3)))
	f.Add(seed(conn, qsub, pub, from(qsub, 3), from(pub, 3), from([]byte{byte(opHbReply), 2, 'c', '1'}, 4), []byte{byte(opHbTick), 0},
		[]byte{byte(opHbTick), 0}, from(closeReq, 3), closeReq, from(conn, 2)))
	f.Add(seed(conn, sub, from(conn, 3), []byte{byte(opCheckReply), 0}, from(closeReq, 3), from([]byte{byte(opCheckReply), 0}, 3),
		from(closeReq, 3), from(conn, 2), from(sub, 3)))
	f.Fuzz(func(t *testing.T, data []byte) {
		s, rec := newRecordedEngine(t)
		for len(data) >= 2 {
			kind := opKind((data[0] & 0x1f) % byte(opRedeliver))
			keyFromData, conn := data[0]&0x20 != 0, uint64(1+data[0]>>6)
			n := int(data[1])
			data = data[2:]
			if n > len(data) {
				n = len(data)
			}
			o := op{kind: kind, data: append([]byte(nil), data[:n]...), reply: "r", from: conn}
			data = data[n:]
			switch kind {
			case opAck:
				if keyFromData {
					copy(o.ack[:], o.data)
				} else {
					for id := range s.byAckID {
						o.ack = id
						break
					}
				}
				if _, seq, err := decodeAck(o.data); err == nil {
					o.seq = seq
				}
			case opHbReply:
				o.token = string(o.data) // a client ID
			case opCheckReply: // the answer to a liveness check in flight, or (0x20) to the payload's token
				o.token = string(o.data)
				if !keyFromData {
					for tok := range s.checks {
						o.token = tok
						break
					}
				}
			}
			s.step(o)
		}
		for _, ch := range s.channels {
			st := ch.store.Msgs.State()
			for sub := range ch.subs {
				if sub.position() > st.Last {
					t.Fatalf("subscription position %d past the channel's last %d", sub.position(), st.Last)
				}
			}
		}
		for inbox, sub := range s.byAck {
			if sub.ackInbox != inbox || s.byAckID[sub.ack] != sub {
				t.Fatal("ack indexes out of sync")
			}
		}
		if len(s.byAck) != len(s.byAckID) {
			t.Fatal("ack indexes differ in size")
		}
		checkInboxesAndOwners(t, s)
		checkReplica(t, s, rec) // a follower applying the encoded commands ends equal
	})
}

// checkInboxesAndOwners: no inbox the engine would publish to is one a client may not
// choose (audit finding 2), and every online subscription belongs to the registered client
// it names, of the same user (finding 5). (67c13ea has neither validInbox nor users: this
// file does not compile there.)
func checkInboxesAndOwners(t *testing.T, s *Server) {
	t.Helper()
	for id, c := range s.clients {
		if !s.validInbox(c.hbInbox) {
			t.Fatalf("client %q registered with heartbeat inbox %q", id, c.hbInbox)
		}
		for sub := range c.subs {
			if sub.owner != c || sub.clientID != id {
				t.Fatalf("client %q lists a subscription of %q", id, sub.clientID)
			}
		}
	}
	check := func(sub *subState) {
		if !s.validInbox(sub.inbox) {
			t.Fatalf("subscription of %q on %q with inbox %q", sub.clientID, sub.ch.name, sub.inbox)
		}
		if sub.offline {
			return
		}
		if c := s.clients[sub.clientID]; c == nil || sub.owner != c || c.user != sub.user {
			t.Fatalf("online subscription of %q on %q: its owner is not the registered client of that ID and user", sub.clientID, sub.ch.name)
		}
		if _, ok := sub.owner.subs[sub]; !ok {
			t.Fatalf("subscription of %q on %q missing from its client", sub.clientID, sub.ch.name)
		}
	}
	for _, ch := range s.channels {
		for sub := range ch.subs {
			check(sub)
		}
		for _, d := range ch.durables {
			check(d)
		}
		for _, g := range ch.queues {
			for _, m := range g.members {
				check(m)
			}
			if g.shadow != nil {
				check(g.shadow)
			}
		}
	}
}

func TestShutdownWithoutStart(t *testing.T) {
	s, _ := newEngine(t)
	done := make(chan error, 1)
	go func() { done <- s.Shutdown() }()
	select {
	case <-done:
	case <-time.After(2 * time.Second):
		t.Fatal("Shutdown of a server that never started blocks")
	}
}
