package tests

import (
	"fmt"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/stan.go"
	"google.golang.org/protobuf/proto"

	"github.com/starling-io/starling/core"
	"github.com/starling-io/starling/proto/stanpb"
	"github.com/starling-io/starling/streaming"
	stanmon "github.com/starling-io/starling/streaming/monitor"
)

// A PubMsg that fits max_payload but whose worst-case MsgProto (redelivered, 10-byte
// sequence and timestamp) would not is refused with an error PubAck, logged once, and
// does not stall a MaxInflight(1) durable; a message that fits is delivered and
// redelivered. Fails on 67c13ea: the PubAck is OK and the durable stalls on it forever.
func TestHostileUndeliverablePublishRefused(t *testing.T) {
	const maxPayload = 1024
	s := startHostile(t, func(o *core.Options) { o.MaxPayload = maxPayload }, nil)
	sub := stanConnectURL(t, s.url, "s")
	got := make(chan *stan.Msg, 16)
	_, err := sub.Subscribe("big", func(m *stan.Msg) { got <- m }, stan.DurableName("pd"), stan.MaxInflight(1),
		stan.SetManualAckMode(), stan.AckWait(time.Second), stan.DeliverAllAvailable())
	must(t, err)
	p := rawRegister(t, natsDial(t, s.url), s.discover, "p") // a 1-character client ID

	// The largest data whose PubMsg fits max_payload; its worst-case delivery must not.
	pubSize := func(n int) int {
		return proto.Size(&stanpb.PubMsg{ClientID: "p", Guid: "g999999", Subject: "big", Data: make([]byte, n), ConnID: p.connID})
	}
	worst := func(n int) int {
		return proto.Size(&stanpb.MsgProto{Sequence: math.MaxUint64, Subject: "big", Data: make([]byte, n),
			Timestamp: -1, Redelivered: true, RedeliveryCount: math.MaxUint32})
	}
	poison := maxPayload
	for pubSize(poison) > maxPayload {
		poison--
	}
	if worst(poison) <= maxPayload {
		t.Fatalf("test setup: a %d-byte message would fit (%d bytes worst case)", poison, worst(poison))
	}
	if e := p.publish("big", make([]byte, poison)); e != "stan: message too large: once delivered it would exceed max_payload" {
		t.Fatalf("%d-byte PubMsg whose delivery is %d bytes: PubAck error %q", pubSize(poison), worst(poison), e)
	}
	wantLogLines(t, s.logs, 1, `msg="publish refused"`, "client_id=p ", "too large")

	// A message that fits even when redelivered flows, and is redelivered.
	fits := poison - 40
	if e := p.publish("big", []byte(strings.Repeat("f", fits))); e != "" {
		t.Fatalf("%d-byte message (worst case %d): %q", fits, worst(fits), e)
	}
	recv := func(redelivered bool) *stan.Msg {
		t.Helper()
		select {
		case m := <-got:
			if m.Redelivered != redelivered {
				t.Fatalf("seq %d redelivered=%v, want %v", m.Sequence, m.Redelivered, redelivered)
			}
			return m
		case <-time.After(3 * time.Second):
			t.Fatal("the MaxInflight(1) durable got nothing: stalled")
			return nil
		}
	}
	if m := recv(false); m.Sequence != 1 || len(m.Data) != fits {
		t.Fatalf("first delivery seq %d, %d bytes", m.Sequence, len(m.Data))
	}
	m := recv(true) // not acked: redelivered after AckWait
	if m.Sequence != 1 || len(m.Data) != fits {
		t.Fatalf("redelivery seq %d, %d bytes", m.Sequence, len(m.Data))
	}
	must(t, m.Ack())
	if e := p.publish("big", []byte("next")); e != "" {
		t.Fatal(e)
	}
	if m := recv(false); m.Sequence != 2 {
		t.Fatalf("after the ack got seq %d, want 2", m.Sequence)
	}
}

// A client ID longer than 256 bytes is refused with its own error; 256 bytes are fine.
// Fails on 67c13ea: there is no limit.
func TestHostileClientIDTooLong(t *testing.T) {
	s := startHostile(t, nil, nil)
	long := strings.Repeat("x", 300)
	if _, err := stan.Connect("test-cluster", long, stan.NatsURL(s.url)); err == nil || err.Error() != "stan: invalid clientID: longer than 256 bytes" {
		t.Fatalf("300-byte client ID: %v", err)
	}
	wantLogLines(t, s.logs, 1, `msg="connect refused"`, "client_id="+long[:64], "too long")
	stanConnectURL(t, s.url, strings.Repeat("y", 256))
}

// A client whose HeartbeatInbox is the server's own discover subject would answer its own
// heartbeats and squat its ID forever: refused. A client whose registering connection
// closed is removed once its heartbeats fail hb_fail_count times (not sooner: stan.go
// reconnects). Fails on 67c13ea: the zombie is registered.
func TestHostileZombieAndDeadClients(t *testing.T) {
	s := startHostile(t, nil, func(o *streaming.Options) { o.HBInterval = 100 * time.Millisecond; o.HBFailCount = 2 })
	x := natsDial(t, s.url)
	r := &rawClient{t: t, nc: x, discover: s.discover}
	if resp := r.connect(&stanpb.ConnectRequest{ClientID: "zombie", HeartbeatInbox: s.discover, Protocol: 1, ConnID: []byte("z")}); resp.Error != "stan: invalid connection request" {
		t.Errorf("zombie registration: error %q", resp.Error)
	}
	rawRegister(t, x, s.discover, "ordinary")
	x.Close()
	waitFor(t, 2*time.Second, func() error {
		if ids := clientIDs(t, s.mon); len(ids) != 0 {
			return fmt.Errorf("clients %v after their connection closed", ids)
		}
		return nil
	})
	wantLogLines(t, s.logs, 1, `msg="connect refused"`, "client_id=zombie ")
	wantLogLines(t, s.logs, 1, `msg="closing client after missed heartbeats"`, "client_id=ordinary ", "connection_gone=true")
}

// Heartbeat answers from another connection — to the heartbeat requests (reply
// _STAN.hb.<serverid>.<clientID>) seen on the client's heartbeat inbox — do not keep a
// client alive whose own connection does not answer. Fails on 67c13ea: they do.
func TestHostileForeignHeartbeatAnswersIgnored(t *testing.T) {
	s := startHostile(t, nil, func(o *streaming.Options) { o.HBInterval = 100 * time.Millisecond; o.HBFailCount = 2 })
	x := natsDial(t, s.url) // registers, stays connected, never answers
	r := &rawClient{t: t, nc: x, discover: s.discover}
	const hb = "_INBOX.kept.hb"
	if resp := r.connect(&stanpb.ConnectRequest{ClientID: "kept", HeartbeatInbox: hb, Protocol: 1, ConnID: []byte("kept")}); resp.Error != "" {
		t.Fatal(resp.Error)
	}
	y := natsDial(t, s.url)
	answered := make(chan string, 64)
	_, err := y.Subscribe(hb, func(m *nats.Msg) {
		_ = y.Publish(m.Reply, nil)
		select {
		case answered <- m.Reply:
		default:
		}
	})
	must(t, err)
	if reply := <-answered; !strings.HasPrefix(reply, "_STAN.hb.") || !strings.HasSuffix(reply, ".kept") {
		t.Fatalf("heartbeat reply subject %q", reply)
	}
	waitFor(t, 3*time.Second, func() error {
		if ids := clientIDs(t, s.mon); hasID(ids, "kept") {
			return fmt.Errorf("kept alive by another connection's answers")
		}
		return nil
	})
	if !x.IsConnected() {
		t.Fatal("the client's connection was closed")
	}
	wantLogLines(t, s.logs, 1, `msg="closing client after missed heartbeats"`, "client_id=kept ", "connection_gone=false")
	if logLines(s.logs, `msg="heartbeat answer refused"`, "client_id=kept ") < 1 {
		t.Error(`no "heartbeat answer refused" line for client kept`)
	}
}

// A subscription with a huge MaxInFlight on a 1,000-message channel whose inbox nobody
// subscribes to is not redelivered while nobody listens; once a subscriber appears on the
// inbox, redelivery resumes within about one AckWait.
// Fails on 67c13ea: 1,000 redeliveries per second into the void.
func TestHostileNoRedeliveryIntoDeadInbox(t *testing.T) {
	s := startHostile(t, nil, nil)
	pub := stanConnectURL(t, s.url, "pub")
	const n = 1000
	acks := make(chan error, n)
	for i := range n {
		_, err := pub.PublishAsync("dead", []byte(fmt.Sprint(i)), func(_ string, err error) { acks <- err })
		must(t, err)
	}
	for range n {
		must(t, <-acks)
	}
	c := rawRegister(t, natsDial(t, s.url), s.discover, "c")
	const inbox = "_INBOX.nobody.listens"
	if r := c.subscribe(&stanpb.SubscriptionRequest{Subject: "dead", Inbox: inbox, MaxInFlight: 1 << 30, AckWaitInSecs: 1,
		StartPosition: stanpb.StartPosition_First}); r.Error != "" {
		t.Fatal(r.Error)
	}
	outMsgs := func() uint64 {
		var z streaming.Serverz
		monGetJSON(t, s.mon, stanmon.ServerPath, &z)
		return z.OutMsgs
	}
	waitFor(t, hostileWait, func() error {
		if o := outMsgs(); o < n {
			return fmt.Errorf("out_msgs %d", o)
		}
		return nil
	})
	for end := time.Now().Add(3 * time.Second); time.Now().Before(end); time.Sleep(250 * time.Millisecond) {
		if o := outMsgs(); o > n+n/10 {
			t.Fatalf("out_msgs %d with nobody on the inbox: redelivered into the void", o)
		}
	}
	listener := natsDial(t, s.url)
	ch := make(chan *nats.Msg, 2*n)
	_, err := listener.ChanSubscribe(inbox, ch)
	must(t, err)
	must(t, listener.Flush())
	start := time.Now()
	for i, m := range recvN(t, ch, n, 3*time.Second) {
		if mp := decodeMsgProto(t, m); !mp.Redelivered || (i == 0 && mp.Sequence != 1) {
			t.Fatalf("redelivery %d: seq %d redelivered=%v", i, mp.Sequence, mp.Redelivered)
		}
	}
	t.Logf("redelivery resumed and completed %v after a subscriber appeared", time.Since(start).Round(time.Millisecond))
}

// A queue member whose inbox nobody listens on does not keep its messages: once their ack
// wait passes they go to a member that listens (flagged redelivered), as the reference
// moves a queue member's expired messages to the group. Before, the deaf member's pass was
// put off an ack wait at a time, for as long as its client answered heartbeats, and the
// group never got those messages.
func TestHostileDeafQueueMemberHandsItsMessagesOn(t *testing.T) {
	s := startHostile(t, nil, nil)
	c := rawRegister(t, natsDial(t, s.url), s.discover, "deaf")
	if r := c.subscribe(&stanpb.SubscriptionRequest{Subject: "work", QGroup: "q", Inbox: "_INBOX.deaf.member",
		AckWaitInSecs: 1, StartPosition: stanpb.StartPosition_NewOnly}); r.Error != "" {
		t.Fatal(r.Error)
	}
	pub := stanConnectURL(t, s.url, "pub")
	const n = 10
	for i := range n {
		must(t, pub.Publish("work", []byte(fmt.Sprint(i)))) // all to the only member: the deaf one
	}
	live := stanConnectURL(t, s.url, "live")
	got := make(chan *stan.Msg, 2*n)
	_, err := live.QueueSubscribe("work", "q", func(m *stan.Msg) { got <- m }, stan.AckWait(time.Second))
	must(t, err)
	seen := map[uint64]bool{}
	deadline := time.After(5 * time.Second)
	for len(seen) < n {
		select {
		case m := <-got:
			if !m.Redelivered {
				t.Fatalf("message %d reached the live member unflagged", m.Sequence)
			}
			seen[m.Sequence] = true
		case <-deadline:
			t.Fatalf("the live member got %d of the %d messages the deaf one held", len(seen), n)
		}
	}
}
