package streaming

import (
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/starling-io/starling/proto/stanpb"
)

// goneBus is a dataBus whose connections in gone are closed: core no longer knows them
// (IsConnected and ConnUser both say so), as for a route whose server stopped.
type goneBus struct {
	dataBus
	gone map[uint64]bool
}

func (b *goneBus) IsConnected(cid uint64) bool        { return !b.gone[cid] }
func (b *goneBus) ConnUser(cid uint64) (string, bool) { return "", !b.gone[cid] }

// A ping whose connection closed before the engine got to it — it came over the route
// from a server that stopped right after forwarding it, and the client reconnected
// elsewhere — is not answered: nobody is there to ask for it, as for a connect
// (processConnect). Before, bind found no user for the gone connection and the engine
// answered "client has been replaced or is no longer registered", which reached the
// client on its new connection, and stan.go closed it (seen in
// TestStanClusterCorruptTornLog when the leader stopped and its successor had not yet
// bound the client). The client's next ping, from its live connection, binds it and is
// answered.
func TestPingFromAGoneConnectionIsNotAnswered(t *testing.T) {
	bus := &goneBus{gone: map[uint64]bool{}}
	s := newEngineOn(t, bus)
	s.step(op{kind: opConnect, reply: "r", from: 1, data: marshal(&stanpb.ConnectRequest{ClientID: "c1", HeartbeatInbox: "hb.c1", Protocol: 1, ConnID: []byte("x")})})
	c := s.clients["c1"]
	if c == nil || c.nats != 1 {
		t.Fatalf("client not bound to connection 1: %+v", c)
	}
	ping := func(from uint64) {
		s.step(op{kind: opPing, reply: "pong", from: from, data: marshal(&stanpb.Ping{ConnID: []byte("x")})})
	}
	bus.gone[1] = true // the client's server stopped
	bus.gone[3] = true // and so did the one its ping came through, before the engine read it
	ping(3)
	if got := bus.to("pong"); len(got) != 0 {
		resp := &stanpb.PingResponse{}
		_ = proto.Unmarshal(got[0].data, resp)
		t.Fatalf("a ping from a gone connection was answered %q", resp.Error)
	}
	ping(5) // the client's next ping, from its new connection
	got := bus.to("pong")
	if len(got) != 1 {
		t.Fatalf("%d answers to the ping from the live connection, want 1", len(got))
	}
	resp := &stanpb.PingResponse{}
	if err := proto.Unmarshal(got[0].data, resp); err != nil || resp.Error != "" {
		t.Fatalf("the ping from the live connection was answered %q (%v)", resp.Error, err)
	}
	if c.nats != 5 {
		t.Fatalf("client bound to %d, want 5", c.nats)
	}
}
