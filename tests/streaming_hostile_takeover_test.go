package tests

import (
	"fmt"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/stan.go"
	"google.golang.org/protobuf/proto"

	"github.com/starling-io/starling/proto/stanpb"
)

// stanVictim connects a stan.go client over its own NATS connection and fails the test if
// the client ever loses its streaming connection.
func stanVictim(t *testing.T, url, id string) (stan.Conn, *nats.Conn) {
	t.Helper()
	vnc := natsDial(t, url)
	sc, err := stan.Connect("test-cluster", id, stan.NatsConn(vnc),
		stan.SetConnectionLostHandler(func(_ stan.Conn, err error) { t.Errorf("victim %s lost its connection: %v", id, err) }))
	if err != nil {
		t.Fatalf("stan connect %s: %v", id, err)
	}
	t.Cleanup(func() { _ = sc.Close() })
	return sc, vnc
}

// learnConnID returns the ConnID of the next PubMsg seen on pubs (an observer of
// _STAN.pub.>), as an attacker watching the traffic learns it.
func learnConnID(t *testing.T, pubs <-chan *nats.Msg) []byte {
	t.Helper()
	pm := &stanpb.PubMsg{}
	must(t, proto.Unmarshal(recvN(t, pubs, 1, hostileWait)[0].Data, pm))
	if len(pm.ConnID) == 0 {
		t.Fatal("no ConnID in the victim's PubMsg")
	}
	return pm.ConnID
}

// A Ping carrying the victim's ConnID from another connection does not move the victim's
// client to that connection: once that connection is gone, a connect with the victim's
// client ID is still refused (the victim answers the liveness check), and so are its
// durable and its close. The victim keeps publishing and its pings stay OK.
// Fails on 67c13ea: the ping rebinds the client, the connect replaces the victim.
func TestHostilePingDoesNotRebind(t *testing.T) {
	s := startHostile(t, nil, nil)
	spy := natsDial(t, s.url)
	pubs := make(chan *nats.Msg, 16)
	_, err := spy.ChanSubscribe(stanPubPrefix+".>", pubs)
	must(t, err)
	must(t, spy.Flush())

	victim, vnc := stanVictim(t, s.url, "victim2")
	got := newCollector()
	sub, err := victim.Subscribe("tk", got.handler, stan.DurableName("v2d"), stan.DeliverAllAvailable())
	must(t, err)
	must(t, victim.Publish("tk", []byte("1")))
	connID := learnConnID(t, pubs)
	got.seqs(t, 1, hostileWait)

	x := natsDial(t, s.url)
	pingX := &stanpb.PingResponse{}
	stanReq(t, x, s.discover+".pings", &stanpb.Ping{ConnID: connID}, pingX)
	must(t, victim.Publish("tk", []byte("2")))
	got.seqs(t, 1, hostileWait)
	xid, err := x.GetClientID()
	must(t, err)
	x.Close()
	waitFor(t, hostileWait, func() error {
		if s.core.IsConnected(xid) {
			return fmt.Errorf("connection %d still open", xid)
		}
		return nil
	})

	y := natsDial(t, s.url)
	thief := &rawClient{t: t, nc: y, id: "victim2", connID: []byte("stolen"), hbInbox: "_INBOX.thief.hb", discover: s.discover}
	if r := thief.connect(&stanpb.ConnectRequest{ClientID: "victim2", HeartbeatInbox: thief.hbInbox, Protocol: 1, ConnID: thief.connID}); r.Error != "stan: clientID already registered" {
		t.Errorf("connect with the victim's client ID: error %q", r.Error)
	}
	must(t, sub.Close()) // the durable goes offline, its position kept
	if r := thief.subscribe(&stanpb.SubscriptionRequest{Subject: "tk", DurableName: "v2d", Inbox: "_INBOX.thief.d", StartPosition: stanpb.StartPosition_First}); r.Error != "stan: unknown clientID" {
		t.Errorf("the victim's durable from another connection: error %q", r.Error)
	}
	if r := thief.closeClient("victim2"); r.Error != "stan: unknown clientID" {
		t.Errorf("close of the victim from another connection: error %q", r.Error)
	}
	if !y.IsConnected() {
		t.Fatal("the refusals closed the attacker's connection")
	}

	// The victim is untouched: it publishes, resumes its durable where it left it, pings.
	must(t, victim.Publish("tk", []byte("3")))
	_, err = victim.Subscribe("tk", got.handler, stan.DurableName("v2d"), stan.DeliverAllAvailable())
	must(t, err)
	if seqs := got.seqs(t, 1, hostileWait); seqs[0] != 3 {
		t.Fatalf("the victim's durable resumed at %v, want 3", seqs)
	}
	own := &stanpb.PingResponse{}
	stanReq(t, vnc, s.discover+".pings", &stanpb.Ping{ConnID: connID}, own)
	if own.Error != "" {
		t.Fatalf("the victim's own ping: %q", own.Error)
	}
	wantLogLines(t, s.logs, 1, `msg="connect refused"`, "client_id=victim2 ")
	wantLogLines(t, s.logs, 1, `msg="subscription refused"`, "client_id=victim2 ")
	wantLogLines(t, s.logs, 1, `msg="close refused"`, "client_id=victim2 ")
}

// Without users every connection belongs to the same (empty) user, so a request naming a
// live client from another connection starts a liveness check on the client's heartbeat
// inbox — which /streaming/clientsz lists and anyone may subscribe to. An attacker that
// answers the check from its own connection must not get the client: the victim answers
// too, from the connection it is bound to.
// Fails on 67c13ea too (a close from any connection was accepted).
func TestHostileLivenessCheckAnswerDoesNotRebind(t *testing.T) {
	s := startHostile(t, nil, nil)
	victim, _ := stanVictim(t, s.url, "victim3")
	var hbInbox string
	for _, c := range clientz(t, s.mon) {
		if c.ID == "victim3" {
			hbInbox = c.HBInbox
		}
	}
	if hbInbox == "" {
		t.Fatal("victim3 not listed")
	}
	x := natsDial(t, s.url)
	closeReq, _ := proto.Marshal(&stanpb.CloseRequest{ClientID: "victim3"})
	answers := make(chan *nats.Msg, 256)
	_, err := x.ChanSubscribe("_INBOX.x.close", answers)
	must(t, err)
	// Answer every liveness check sent to the victim's heartbeat inbox from the attacker's
	// connection, and ask to close the victim again each time a close is refused: each
	// close starts a check (500 ms) that the attacker answers — and the victim too.
	const attempts = 5
	_, err = x.Subscribe(hbInbox, func(m *nats.Msg) {
		if m.Reply != "" {
			_ = m.Respond(nil)
		}
	})
	must(t, err)
	must(t, x.Flush())
	for refused := 0; refused < attempts; refused++ {
		must(t, x.PublishRequest(stanCloseReq, "_INBOX.x.close", closeReq))
		select {
		case m := <-answers:
			r := &stanpb.CloseResponse{}
			must(t, proto.Unmarshal(m.Data, r))
			if r.Error == "" {
				t.Fatalf("after %d refusals the attacker, answering the liveness checks, closed the live victim", refused)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("close %d not answered in 5s", refused+1)
		}
	}
	must(t, victim.Publish("tk3", []byte("alive")))
}

// Client "a-foo-b" with durable "c" and client "a" with durable "b-foo-c", both on channel
// foo, are two durables: the second starts where it asked (the first message), and the
// first keeps its own position and pending messages.
// Fails on 67c13ea: both map to key "a-foo-b-foo-c"; client a gets a-foo-b's pending [3 4 5].
func TestHostileDurableKeysDoNotCollide(t *testing.T) {
	s := startHostile(t, nil, nil)
	first := stanConnectURL(t, s.url, "a-foo-b")
	got := newCollector()
	sub, err := first.Subscribe("foo", func(m *stan.Msg) {
		if m.Sequence <= 2 {
			_ = m.Ack()
		}
		got.handler(m)
	}, stan.DurableName("c"), stan.DeliverAllAvailable(), stan.SetManualAckMode())
	must(t, err)
	publishN(t, first, "foo", 1, 5)
	got.seqs(t, 5, hostileWait)
	waitFor(t, hostileWait, func() error { // acks of 1 and 2 processed
		if subs := channelSubs(t, s.mon, "foo"); len(subs) != 1 || subs[0].PendingCount != 3 {
			return fmt.Errorf("subs %+v", subs)
		}
		return nil
	})
	must(t, sub.Close()) // offline, pending 3..5

	second := stanConnectURL(t, s.url, "a")
	other := newCollector()
	_, err = second.Subscribe("foo", other.handler, stan.DurableName("b-foo-c"), stan.DeliverAllAvailable())
	must(t, err)
	if seqs := other.seqs(t, 5, hostileWait); !equalSeqs(seqs, seqRange(1, 5)) {
		t.Fatalf("client a's durable b-foo-c got %v, want a fresh durable from 1", seqs)
	}
	if subs := channelSubs(t, s.mon, "foo"); len(subs) != 2 {
		t.Fatalf("want two durables on foo, got %+v", subs)
	}
	// The first durable resumes with its own pending messages.
	_, err = first.Subscribe("foo", got.handler, stan.DurableName("c"), stan.DeliverAllAvailable(), stan.SetManualAckMode())
	must(t, err)
	if seqs := got.seqs(t, 3, hostileWait); !equalSeqs(seqs, seqRange(3, 5)) {
		t.Fatalf("a-foo-b's durable c resumed with %v, want its pending 3..5", seqs)
	}
}

// stanConnectURL connects a stan.go client to url, closed at the end of the test.
func stanConnectURL(t *testing.T, url, id string, opts ...stan.Option) stan.Conn {
	t.Helper()
	sc, err := stan.Connect("test-cluster", id, append([]stan.Option{stan.NatsURL(url)}, opts...)...)
	if err != nil {
		t.Fatalf("stan connect %s: %v", id, err)
	}
	t.Cleanup(func() { _ = sc.Close() })
	return sc
}
