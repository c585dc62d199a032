package streaming

import (
	"testing"

	"github.com/starling-io/starling/proto/stanpb"
)

// routeBus is a dataBus over a route mesh: connections 1 and 3 are two routes to server B
// (both open, as while B's duplicate route is retired), 5 a route to server C.
type routeBus struct{ dataBus }

func (b *routeBus) RoutePeer(cid uint64) (string, bool) {
	switch cid {
	case 1, 3:
		return "B", true
	case 5:
		return "C", true
	}
	return "", false
}

// ConnUser: routes carry no user.
func (b *routeBus) ConnUser(uint64) (string, bool) { return "", true }

// A remote client whose requests arrive over a second route to its server has not moved:
// it is rebound at once, with no liveness check, whose answer could come back over either
// route and then refuse it. Before, the publish over route 3 below was held for a check and
// the heartbeat answer over it was refused; a client on another server (route 5) is still
// checked.
func TestRemoteClientKeptAcrossARouteSwap(t *testing.T) {
	bus := &routeBus{}
	s := newEngineOn(t, bus)
	s.step(op{kind: opConnect, reply: "r", from: 1, data: marshal(&stanpb.ConnectRequest{ClientID: "c1", HeartbeatInbox: "hb.c1", Protocol: 1, ConnID: []byte("x")})})
	c := s.clients["c1"]
	if c == nil || c.nats != 1 {
		t.Fatalf("client not bound to route 1: %+v", c)
	}
	pub := func(from uint64) {
		s.step(op{kind: opPublish, reply: "ack", from: from, data: marshal(&stanpb.PubMsg{ClientID: "c1", Guid: "g", Subject: "foo", Data: []byte("m"), ConnID: []byte("x")})})
	}
	pub(3)
	if len(s.checks) != 0 || c.nats != 3 {
		t.Fatalf("over a second route to the same server: %d checks, bound to %d (want none, 3)", len(s.checks), c.nats)
	}
	if n := len(bus.to("ack")); n != 1 {
		t.Fatalf("%d PubAcks for the publish over the second route, want 1", n)
	}

	c.hbOut, c.hbSent = true, s.clock.monoNow()
	s.step(op{kind: opHbReply, token: "c1", from: 1}) // the answer came over the other route
	if c.hbOut {
		t.Fatal("a heartbeat answer over the other route to the client's server was refused")
	}

	pub(5)
	if len(s.checks) != 1 || c.nats != 1 {
		t.Fatalf("over a route to another server: %d checks, bound to %d (want one check, still 1)", len(s.checks), c.nats)
	}
}

// A liveness check's answer that comes back over the other route to the asking server
// counts as that server's: a client that moved from a half-open local connection (7) to
// server B, whose request came over route 1 while its answer returns over route 3, is
// moved. Before, the answer was taken for nobody's and the held publish refused.
func TestCheckAnswerOverTheOtherRouteCounts(t *testing.T) {
	bus := &routeBus{}
	s := newEngineOn(t, bus)
	s.step(op{kind: opConnect, reply: "r", from: 7, data: marshal(&stanpb.ConnectRequest{ClientID: "c1", HeartbeatInbox: "hb.c1", Protocol: 1, ConnID: []byte("x")})})
	c := s.clients["c1"]
	s.step(op{kind: opPublish, reply: "ack", from: 1, data: marshal(&stanpb.PubMsg{ClientID: "c1", Guid: "g", Subject: "foo", Data: []byte("m"), ConnID: []byte("x")})})
	if len(s.checks) != 1 {
		t.Fatalf("%d checks, want one (connection 7 looks alive)", len(s.checks))
	}
	var token string
	for tk := range s.checks {
		token = tk
	}
	s.step(op{kind: opCheckReply, token: token, from: 3}) // the answer, over the other route
	s.step(op{kind: opCheckTimeout, token: token, seq: checkTimer})
	if c.nats != 1 {
		t.Fatalf("client bound to %d after its server answered, want 1", c.nats)
	}
	if n := len(bus.to("ack")); n != 1 {
		t.Fatalf("%d PubAcks for the held publish, want 1", n)
	}
}
