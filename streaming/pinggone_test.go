package streaming

import (
	"bytes"
	"log/slog"
	"strings"
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

// Requests other than pings from a connection that closed before the engine read them are
// refused (there is no client there to act for) with a line saying the connection is gone.
// Before, the line said "not from the client's connection", which reads as a request from
// somebody else; and a refused ping's line said "from a connection of another user" whatever
// the cause.
func TestRefusalFromAGoneConnectionSaysSo(t *testing.T) {
	bus := &goneBus{gone: map[uint64]bool{}}
	s := newEngineOn(t, bus)
	var logs bytes.Buffer
	s.log = slog.New(slog.NewTextHandler(&logs, nil))
	s.step(op{kind: opConnect, reply: "r", from: 1, data: marshal(&stanpb.ConnectRequest{ClientID: "c1", HeartbeatInbox: "hb.c1", Protocol: 1, ConnID: []byte("c1")})})
	bus.gone[3] = true
	s.step(publishReq("c1", "foo", "g1", 3, "r.pub"))
	s.step(subscribeReq("c1", "foo", "", "in.c1", 3, "r.sub"))
	s.step(closeReq("c1", 3, "r.close"))
	for _, what := range []string{"publish refused", "subscription refused", "close refused"} {
		line := ""
		for _, l := range strings.Split(logs.String(), "\n") {
			if strings.Contains(l, `msg="`+what+`"`) {
				line = l
			}
		}
		if !strings.Contains(line, `cause="its connection is gone"`) {
			t.Errorf("%s: logged %q, want the cause: its connection is gone", what, line)
		}
	}
	if c := s.clients["c1"]; c == nil || c.nats != 1 {
		t.Fatalf("client after the refusals: %+v, want it bound to connection 1", c)
	}
}

// A ping from a third live connection of the client's user, while a liveness check decides
// whether the client moved to a second one, is answered OK, as nats-streaming-server
// answers every ping naming a registered ConnID (v0.25.6 server/server.go:3459-3501,
// processClientPings).
// Before, it was answered "client has been replaced or is no longer registered", on which
// stan.go closes the client — perhaps the very client, reconnected once more — although
// the check had not decided anything. It binds nothing.
func TestPingFromAThirdConnectionDuringABindCheck(t *testing.T) {
	bus := &goneBus{gone: map[uint64]bool{}}
	s := newEngineOn(t, bus)
	s.step(op{kind: opConnect, reply: "r", from: 1, data: marshal(&stanpb.ConnectRequest{ClientID: "c1", HeartbeatInbox: "hb.c1", Protocol: 1, ConnID: []byte("x")})})
	s.step(closeReq("c1", 3, "r.close")) // from a second connection: held for a liveness check
	if len(s.checks) != 1 || len(bus.to("r.close")) != 0 {
		t.Fatalf("%d checks, %d close replies; want the close held for one check", len(s.checks), len(bus.to("r.close")))
	}
	s.step(op{kind: opPing, reply: "pong", from: 5, data: marshal(&stanpb.Ping{ConnID: []byte("x")})})
	got := bus.to("pong")
	if len(got) != 1 {
		t.Fatalf("%d answers to the ping, want 1", len(got))
	}
	resp := &stanpb.PingResponse{}
	if err := proto.Unmarshal(got[0].data, resp); err != nil || resp.Error != "" {
		t.Fatalf("the ping from a third connection was answered %q (%v)", resp.Error, err)
	}
	if c := s.clients["c1"]; c == nil || c.nats != 1 {
		t.Fatalf("client after the ping: %+v, want it still bound to connection 1", c)
	}
}

// An ack from a second live connection of the subscriber's user is held while a liveness
// check decides whether the client moved there. If it moved, the ack is applied; if the
// check keeps the client on its old connection, the ack is refused with an "ack refused"
// line naming the cause, as any other refused ack. Before, refuseHeld skipped acks: the
// refused ack left no trace at all (before 7c0d60d the hold itself logged "ack refused").
func TestHeldAckAfterALivenessCheck(t *testing.T) {
	for _, moved := range []bool{true, false} {
		bus := &dataBus{}
		s := newEngineOn(t, bus)
		var logs bytes.Buffer
		s.log = slog.New(slog.NewTextHandler(&logs, nil))
		s.step(connectReq("c1", "hb.c1", 1, "r"))
		s.step(subscribeReq("c1", "foo", "", "in.c1", 1, "r.sub"))
		s.step(publishReq("c1", "foo", "g1", 1, "r.pub"))
		var sub *subState
		for sb := range s.clients["c1"].subs {
			sub = sb
		}
		if sub == nil || !sub.pending.Has(1) {
			t.Fatalf("message 1 not pending on the subscription")
		}
		s.step(op{kind: opAck, ack: sub.ack, seq: 1, from: 3}) // connection 3 is open too: a check
		if len(s.checks) != 1 || !sub.pending.Has(1) {
			t.Fatalf("moved=%v: %d checks, pending %v; want the ack held for one check", moved, len(s.checks), sub.pending.Has(1))
		}
		var token string
		for tk := range s.checks {
			token = tk
		}
		answer := uint64(1) // the bound connection answers: the client did not move
		if moved {
			answer = 3
		}
		s.step(op{kind: opCheckReply, token: token, from: answer})
		s.step(op{kind: opCheckTimeout, token: token, seq: checkTimer})
		refused := strings.Contains(logs.String(), `msg="ack refused"`)
		if moved {
			if sub.pending.Has(1) || refused {
				t.Errorf("moved: pending %v, refusal logged %v; want the ack applied\n%s", sub.pending.Has(1), refused, logs.String())
			}
			continue
		}
		if !sub.pending.Has(1) {
			t.Errorf("not moved: the held ack was applied")
		}
		if !refused || !strings.Contains(logs.String(), `cause="not from the client's connection (its own answered the liveness check)"`) {
			t.Errorf("not moved: the refused ack was not logged with its cause:\n%s", logs.String())
		}
	}
}

// A request refused because a connect with the client's ID waits for a liveness check of
// the registered client says so; before, the line said "while a liveness check for another
// runs", as for a check of another connection of the client, which is not what runs.
func TestRefusalDuringAConnectCheckSaysSo(t *testing.T) {
	bus := &goneBus{gone: map[uint64]bool{}} // every connection open, of one user
	s := newEngineOn(t, bus)
	var logs bytes.Buffer
	s.log = slog.New(slog.NewTextHandler(&logs, nil))
	s.step(connectReq("c1", "hb.c1", 1, "r"))
	s.step(connectReq("c1", "hb.c1b", 3, "r2")) // connection 1 looks alive: a liveness check
	if len(s.checks) != 1 {
		t.Fatalf("%d checks after a second connect with the ID, want 1", len(s.checks))
	}
	s.step(publishReq("c1", "foo", "g1", 5, "r.pub")) // a third connection of the user
	want := `cause="not from the client's connection, while a connect with its client ID waits for a liveness check"`
	if !strings.Contains(logs.String(), `msg="publish refused"`) || !strings.Contains(logs.String(), want) {
		t.Fatalf("logged:\n%s\nwant the publish refused with %s", logs.String(), want)
	}
}
