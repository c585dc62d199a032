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
}

func (b *fakeBus) Subscribe(string, string, core.MsgHandler) (*core.Subscription, error) {
	return nil, nil
}
func (b *fakeBus) Publish(subject, reply string, hdr, data []byte) error {
	b.published++
	return nil
}
func (b *fakeBus) Flush()                         {}
func (b *fakeBus) IsConnected(uint64) bool        { return b.alive }
func (b *fakeBus) ConnUser(uint64) (string, bool) { return "", true }
func (b *fakeBus) HasInterest(string) bool        { return true }
func (b *fakeBus) MaxPayload() int                { return 1 << 20 }

// newEngine builds a server whose engine the test drives op by op on its own goroutine.
func newEngine(t testing.TB) (*Server, *fakeBus) {
	t.Helper()
	store, err := memstore.New(memstore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	bus := &fakeBus{}
	s, err := New(bus, store, func(sm raftlog.StateMachine) raftlog.Log { return raftlog.NewLocal(sm) }, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.recover(); err != nil {
		t.Fatal(err)
	}
	return s, bus
}

// step runs one op the way the engine loop would.
func (s *Server) step(o op) {
	if o.kind == opPublish {
		s.queuePublish(&o)
	} else {
		s.flushPublishes()
		s.process(&o)
	}
	s.flushPublishes()
	s.flushSentAcks()
	s.commitMeta()
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
	f.Add(seed(conn, pub, sub, pub, ack, unsub, closeReq))
	f.Add(seed(conn, qsub, pub, pub, qsub, closeReq, conn, qsub))
	f.Add(seed(pub, sub, []byte{byte(opPing), 3, 1, 2, 3}, []byte{byte(opConnect), 2, 0xff, 0xff}))
	f.Fuzz(func(t *testing.T, data []byte) {
		s, _ := newEngine(t)
		for len(data) >= 2 {
			kind := opKind(data[0] % byte(opRedeliver))
			n := int(data[1])
			data = data[2:]
			if n > len(data) {
				n = len(data)
			}
			o := op{kind: kind, data: append([]byte(nil), data[:n]...), reply: "r", from: 1}
			data = data[n:]
			if kind == opAck {
				for id := range s.byAckID {
					o.ack = id
					break
				}
				if _, seq, err := decodeAck(o.data); err == nil {
					o.seq = seq
				}
			}
			if kind == opRedeliver {
				continue
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
	})
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
