package tests

import (
	"encoding/base64"
	"fmt"
	"io"
	"math/bits"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"google.golang.org/protobuf/proto"

	"github.com/starling-io/starling/cmd/starling/app"
	"github.com/starling-io/starling/proto/stanpb"
	"github.com/starling-io/starling/streaming"
)

// hostileInboxes are delivery or heartbeat inboxes a client may not choose: not a valid
// literal subject, control bytes, or one of the server's own subjects (audit finding 2).
func hostileInboxes(ackPrefix, discover string) []string {
	return []string{
		"orders.x 1 12\r\ncancel-all!!\r\nMSG orders.y", // the audit's payload
		"orders.a b", "orders.a\tb", "orders.x\r\nPING", "orders.x\nPING", "orders.x\rPING",
		"orders.*", "orders.>", "orders.*.x", ">", "orders..x", ".orders", "orders.", "",
		"orders.\x01x", "orders.\x7fx", "orders.\x00", "orders." + strings.Repeat("a", 1100),
		"_STAN", "_STAN.sub.test-cluster", "_STAN.pub.test-cluster.inj", "_STAN.hb.x.y",
		discover, discover + ".pings", discover + ".x",
		ackPrefix, ackPrefix + ".x", ackPrefix + ".AAAAAAAAAAAAAAAAAAAAAA",
	}
}

// A SubscriptionRequest whose Inbox, or a ConnectRequest whose HeartbeatInbox, is not a
// subject the client may own is refused; nothing forged reaches a wildcard subscriber
// (nats.go on orders.>, a raw socket on >); the requester's connection stays up.
// Fails on 67c13ea: every inbox is accepted; the raw subscriber parses the forged frames
// (orders.x, orders.y of the audit's payload) and the nats.go victim's connection breaks
// on one.
func TestHostileInboxInjection(t *testing.T) {
	for _, prefix := range []string{"", "disco"} { // default and a custom discover prefix
		t.Run("discover="+prefix, func(t *testing.T) {
			hb := 100 * time.Millisecond
			s := startHostile(t, nil, func(o *streaming.Options) { o.HBInterval = hb; o.DiscoverPrefix = prefix })
			victim, broken := victimConn(t, s.url)
			forged := make(chan *nats.Msg, 1024)
			_, err := victim.ChanSubscribe("orders.>", forged) // sid 1, as the payload assumes
			must(t, err)
			must(t, victim.Flush())
			watcher := watchAll(t, s.url)

			anc := natsDial(t, s.url)
			attacker := rawRegister(t, anc, s.discover, "attacker")
			own := make(chan *nats.Msg, 16)
			_, err = anc.ChanSubscribe("_INBOX.attacker.ok", own)
			must(t, err)
			resp := attacker.subscribe(&stanpb.SubscriptionRequest{Subject: "inj", Inbox: "_INBOX.attacker.ok"})
			if resp.Error != "" {
				t.Fatalf("valid subscription: %s", resp.Error)
			}
			bad := hostileInboxes(ackPrefixOf(t, resp.AckInbox), s.discover)
			bad = append(bad, resp.AckInbox)
			for _, inbox := range bad {
				r := attacker.subscribe(&stanpb.SubscriptionRequest{Subject: "inj", Inbox: inbox, StartPosition: stanpb.StartPosition_First})
				if r.Error != "stan: invalid subscription request" {
					t.Errorf("subscription with inbox %.60q: error %q", inbox, r.Error)
				}
			}
			for i, inbox := range bad {
				r := attacker.connect(&stanpb.ConnectRequest{ClientID: fmt.Sprintf("hb%d", i), HeartbeatInbox: inbox, Protocol: 1, ConnID: []byte(fmt.Sprintf("hbconn%d", i))})
				if r.Error != "stan: invalid connection request" {
					t.Errorf("connect with heartbeat inbox %.60q: error %q", inbox, r.Error)
				}
			}
			// One publish makes the server deliver to every subscription it accepted, and
			// three heartbeat intervals heartbeat every client it registered.
			if e := attacker.publish("inj", []byte("anything")); e != "" {
				t.Fatalf("publish: %s", e)
			}
			recvN(t, own, 1, hostileWait)
			<-time.After(3 * hb) // bounded: forged heartbeats would go out meanwhile
			sentinel := natsDial(t, s.url)
			must(t, sentinel.Publish("orders.zz-sentinel", []byte("end")))
			drainUntilSentinel(t, forged, nil, broken)
			for deadline := time.Now().Add(hostileWait); !watcher.sawSubject("orders.zz-sentinel"); time.Sleep(10 * time.Millisecond) {
				if time.Now().After(deadline) {
					t.Error("the raw watcher has not seen the sentinel")
					break
				}
			}
			watcher.check(t, map[string]bool{"orders.zz-sentinel": true}, "orders.", "admin.")

			// The attacker's connection and client are still fine.
			if !anc.IsConnected() {
				t.Fatal("the refusals closed the attacker's connection")
			}
			if e := attacker.publish("inj", []byte("again")); e != "" {
				t.Fatalf("publish after the refusals: %s", e)
			}
			ids := clientIDs(t, s.mon)
			if !hasID(ids, "attacker") || len(ids) != 1 {
				t.Fatalf("registered clients %v, want only the attacker", ids)
			}
			wantLogLines(t, s.logs, len(bad), `msg="subscription refused"`, "client_id=attacker ", "inbox is not a subject")
			for i := range bad {
				wantLogLines(t, s.logs, 1, `msg="connect refused"`, fmt.Sprintf("client_id=hb%d ", i), "heartbeat inbox")
			}
		})
	}
}

// drainUntilSentinel reads ch until orders.zz-sentinel and reports anything else but the
// allowed subjects. The sentinel was published after the attack, so whatever the attack
// forged to the same subscriber arrives before it. broken carries the subscriber's
// connection errors: forged protocol can break its connection instead.
func drainUntilSentinel(t testing.TB, ch <-chan *nats.Msg, allowed map[string]bool, broken <-chan error) {
	t.Helper()
	deadline := time.After(hostileWait)
	for {
		select {
		case m := <-ch:
			if m.Subject == "orders.zz-sentinel" {
				return
			}
			if !allowed[m.Subject] {
				t.Errorf("forged message on %.60q: %.60q", m.Subject, m.Data)
			}
		case err := <-broken:
			t.Errorf("the subscriber's connection broke (forged protocol?): %v", err)
			return
		case <-deadline:
			t.Error("no sentinel")
			return
		}
	}
}

// victimConn dials a subscriber whose connection errors go to the returned channel.
func victimConn(t testing.TB, url string) (*nats.Conn, chan error) {
	t.Helper()
	broken := make(chan error, 16)
	report := func(err error) {
		select {
		case broken <- err:
		default:
		}
	}
	nc := natsDial(t, url, nats.DisconnectErrHandler(func(_ *nats.Conn, err error) { report(err) }),
		nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) { report(err) }))
	return nc, broken
}

// The route variant of the injection: streaming on server A, a victim on server B with a
// wildcard and a literal subscription. A forged RMSG would reach the literal subject on B.
// Fails on 67c13ea: B's admin.shutdown subscriber receives "HELLO".
func TestHostileInboxInjectionAcrossRoute(t *testing.T) {
	logs := &syncBuffer{}
	a := app.NewMain(io.Discard, logs)
	must(t, a.ParseFlags([]string{"-a", "127.0.0.1", "-p", "-1", "--cluster", "nats://127.0.0.1:-1", "--cluster_name", "h", "--hb_interval", "100ms"}))
	must(t, a.Start())
	t.Cleanup(func() {
		_ = a.Close()
		if t.Failed() {
			t.Logf("server A log:\n%s", tail(logs.String(), 6000))
		}
	})
	b := startServer(t, "--cluster", "nats://127.0.0.1:-1", "--cluster_name", "h", "--routes", "nats://"+a.Server().ClusterAddr().String())
	waitFor(t, 5*time.Second, func() error {
		if a.Server().NumRoutes() != 1 || b.Server().NumRoutes() != 1 {
			return fmt.Errorf("routes %d %d", a.Server().NumRoutes(), b.Server().NumRoutes())
		}
		return nil
	})
	victim, broken := victimConn(t, clientURL(b))
	admin := make(chan *nats.Msg, 64)
	orders := make(chan *nats.Msg, 1024)
	_, err := victim.ChanSubscribe("admin.shutdown", admin)
	must(t, err)
	_, err = victim.ChanSubscribe("orders.>", orders)
	must(t, err)
	must(t, victim.Flush())
	onA := natsDial(t, clientURL(a))
	waitFor(t, 5*time.Second, func() error { // B's interest has reached A
		must(t, onA.Publish("orders.probe", nil))
		select {
		case <-orders:
			return nil
		case <-time.After(50 * time.Millisecond):
			return fmt.Errorf("no interest of B on A yet")
		}
	})

	anc := natsDial(t, clientURL(a))
	attacker := rawRegister(t, anc, "_STAN.discover.test-cluster", "attacker")
	own := make(chan *nats.Msg, 16)
	_, err = anc.ChanSubscribe("_INBOX.attacker.ok", own)
	must(t, err)
	if r := attacker.subscribe(&stanpb.SubscriptionRequest{Subject: "inj", Inbox: "_INBOX.attacker.ok"}); r.Error != "" {
		t.Fatalf("valid subscription: %s", r.Error)
	}
	const payload = "orders.x 12\r\ncancel-all!!\r\nRMSG admin.shutdown 5\r\nHELLO\r\nRMSG orders.y"
	if r := attacker.subscribe(&stanpb.SubscriptionRequest{Subject: "inj", Inbox: payload}); r.Error != "stan: invalid subscription request" {
		t.Errorf("route injection inbox: error %q", r.Error)
	}
	if r := attacker.connect(&stanpb.ConnectRequest{ClientID: "hbinj", HeartbeatInbox: payload, Protocol: 1, ConnID: []byte("hbinj")}); r.Error != "stan: invalid connection request" {
		t.Errorf("route injection heartbeat inbox: error %q", r.Error)
	}
	if e := attacker.publish("inj", []byte("inj2")); e != "" {
		t.Fatalf("publish: %s", e)
	}
	recvN(t, own, 1, hostileWait)
	<-time.After(300 * time.Millisecond) // bounded: forged heartbeats would go out meanwhile
	must(t, onA.Publish("orders.zz-sentinel", nil))
	drainUntilSentinel(t, orders, map[string]bool{"orders.probe": true}, broken)
	for len(admin) > 0 {
		m := <-admin
		t.Errorf("forged message on B's literal subscription %q: %q", m.Subject, m.Data)
	}
	if !anc.IsConnected() {
		t.Fatal("the refusals closed the attacker's connection")
	}
	wantLogLines(t, logs, 1, `msg="subscription refused"`, "client_id=attacker ")
	wantLogLines(t, logs, 1, `msg="connect refused"`, "client_id=hbinj ")
}

// Ack inboxes end in 22 base64url characters, 128 random bits: no counter, no shared
// structure between subscriptions, a new one on a durable's resume.
// Fails on 67c13ea: ack inboxes end in a base-36 counter ("1", "2", ...).
func TestHostileAckInboxesUnguessable(t *testing.T) {
	s := startHostile(t, nil, nil)
	c := rawRegister(t, natsDial(t, s.url), s.discover, "c")
	var keys [][]byte
	prefix := ""
	add := func(ackInbox string) {
		t.Helper()
		p := ackPrefixOf(t, ackInbox)
		if prefix == "" {
			prefix = p
		} else if p != prefix {
			t.Fatalf("ack prefix %q, before %q", p, prefix)
		}
		tok := ackInbox[len(p)+1:]
		k, err := base64.RawURLEncoding.DecodeString(tok)
		if len(tok) != 22 || err != nil || len(k) != 16 {
			t.Fatalf("ack inbox %q: last token is not 22 base64url characters (128 bits)", ackInbox)
		}
		keys = append(keys, k)
	}
	for i := range 16 {
		r := c.subscribe(&stanpb.SubscriptionRequest{Subject: fmt.Sprintf("k%d", i%4), Inbox: fmt.Sprintf("_INBOX.c.%d", i)})
		if r.Error != "" {
			t.Fatal(r.Error)
		}
		add(r.AckInbox)
	}
	// A durable's resume gets a fresh ack inbox.
	first := c.subscribe(&stanpb.SubscriptionRequest{Subject: "kd", Inbox: "_INBOX.c.d", DurableName: "d"})
	if r := c.unsubscribe(stanSubCloseReq, &stanpb.UnsubscribeRequest{ClientID: "c", Subject: "kd", Inbox: first.AckInbox}); r.Error != "" {
		t.Fatal(r.Error)
	}
	again := c.subscribe(&stanpb.SubscriptionRequest{Subject: "kd", Inbox: "_INBOX.c.d", DurableName: "d"})
	if first.Error != "" || again.Error != "" || again.AckInbox == first.AckInbox {
		t.Fatalf("durable resume: ack inbox %q then %q (%q %q)", first.AckInbox, again.AckInbox, first.Error, again.Error)
	}
	add(first.AckInbox)
	add(again.AckInbox)
	// Random 128-bit keys differ in about 64 bits; fewer than 32 means structure.
	for i := range keys {
		for j := range i {
			d := 0
			for b := range keys[i] {
				d += bits.OnesCount8(keys[i][b] ^ keys[j][b])
			}
			if d < 32 {
				t.Fatalf("ack keys %d and %d differ in %d of 128 bits: %x %x", j, i, d, keys[j], keys[i])
			}
		}
	}
}

// A forged Ack published to the victim's real ack inbox (listed by
// /streaming/channelsz?subs=1) from another connection does not acknowledge: the message
// stays pending and is redelivered. Fails on 67c13ea: the forged ack removes it.
func TestHostileForgedAckIgnored(t *testing.T) {
	s := startHostile(t, nil, nil)
	vnc := natsDial(t, s.url)
	victim := rawRegister(t, vnc, s.discover, "victim")
	deliveries := make(chan *nats.Msg, 64)
	_, err := vnc.ChanSubscribe("_INBOX.victim.d", deliveries)
	must(t, err)
	r := victim.subscribe(&stanpb.SubscriptionRequest{Subject: "acks", Inbox: "_INBOX.victim.d", DurableName: "vd", AckWaitInSecs: 1, MaxInFlight: 10})
	if r.Error != "" {
		t.Fatal(r.Error)
	}
	if e := victim.publish("acks", []byte("unprocessed")); e != "" {
		t.Fatal(e)
	}
	if m := decodeMsgProto(t, recvN(t, deliveries, 1, hostileWait)[0]); m.Sequence != 1 || m.Redelivered {
		t.Fatalf("first delivery %v", m)
	}

	subs := channelSubs(t, s.mon, "acks")
	if len(subs) != 1 || subs[0].ClientID != "victim" || subs[0].PendingCount != 1 {
		t.Fatalf("channelsz subs %+v", subs)
	}
	ackInbox := subs[0].AckInbox
	anc := natsDial(t, s.url)
	rawRegister(t, anc, s.discover, "attacker")
	ack, _ := proto.Marshal(&stanpb.Ack{Subject: "acks", Sequence: 1})
	for range 3 {
		must(t, anc.Publish(ackInbox, ack))
	}
	must(t, anc.Flush()) // the acks are queued for the engine before the snapshot below
	if subs := channelSubs(t, s.mon, "acks"); len(subs) != 1 || subs[0].PendingCount != 1 {
		t.Fatalf("after forged acks: %+v (the forged acks counted)", subs)
	}
	m := decodeMsgProto(t, recvN(t, deliveries, 1, 3*time.Second)[0])
	if m.Sequence != 1 || !m.Redelivered {
		t.Fatalf("want seq 1 redelivered after the forged acks, got %v", m)
	}
	wantLogLines(t, s.logs, 1, `msg="ack refused"`, "client_id=victim ")
	// The victim's own ack does count.
	must(t, vnc.Publish(ackInbox, ack))
	waitFor(t, hostileWait, func() error {
		if subs := channelSubs(t, s.mon, "acks"); len(subs) != 1 || subs[0].PendingCount != 0 {
			return fmt.Errorf("after the victim's ack: %+v", subs[0])
		}
		return nil
	})
}

func decodeMsgProto(t testing.TB, m *nats.Msg) *stanpb.MsgProto {
	t.Helper()
	mp := &stanpb.MsgProto{}
	must(t, proto.Unmarshal(m.Data, mp))
	return mp
}

// Unsubscribe, subscription close and connection close naming the victim, from another
// connection, are refused with "stan: unknown clientID" and logged once each; the
// victim's durable and client stay. Fails on 67c13ea: the durable is unsubscribed.
func TestHostileForgedUnsubscribeAndCloseRefused(t *testing.T) {
	s := startHostile(t, nil, nil)
	vnc := natsDial(t, s.url)
	victim := rawRegister(t, vnc, s.discover, "victim")
	deliveries := make(chan *nats.Msg, 64)
	_, err := vnc.ChanSubscribe("_INBOX.victim.d", deliveries)
	must(t, err)
	if r := victim.subscribe(&stanpb.SubscriptionRequest{Subject: "uc", Inbox: "_INBOX.victim.d", DurableName: "vd"}); r.Error != "" {
		t.Fatal(r.Error)
	}
	subs := channelSubs(t, s.mon, "uc")
	if len(subs) != 1 {
		t.Fatalf("subs %+v", subs)
	}
	anc := natsDial(t, s.url)
	attacker := rawRegister(t, anc, s.discover, "attacker")
	for _, tc := range []struct{ subject, inbox string }{
		{stanUnsubReq, subs[0].AckInbox}, {stanSubCloseReq, subs[0].AckInbox}, {stanUnsubReq, subs[0].Inbox},
	} {
		r := attacker.unsubscribe(tc.subject, &stanpb.UnsubscribeRequest{ClientID: "victim", Subject: "uc", Inbox: tc.inbox})
		if r.Error != "stan: unknown clientID" {
			t.Errorf("forged %s of %q: error %q", tc.subject, tc.inbox, r.Error)
		}
	}
	if r := attacker.closeClient("victim"); r.Error != "stan: unknown clientID" {
		t.Errorf("forged close: error %q", r.Error)
	}
	if subs := channelSubs(t, s.mon, "uc"); len(subs) != 1 || subs[0].IsOffline || subs[0].DurableName != "vd" {
		t.Fatalf("victim's durable after the forged requests: %+v", subs)
	}
	if ids := clientIDs(t, s.mon); !hasID(ids, "victim") {
		t.Fatalf("victim gone: %v", ids)
	}
	if e := victim.publish("uc", []byte("still here")); e != "" {
		t.Fatal(e)
	}
	recvN(t, deliveries, 1, hostileWait)
	if !anc.IsConnected() || attacker.publish("other", []byte("x")) != "" {
		t.Fatal("the attacker's connection or client did not survive its refusals")
	}
	wantLogLines(t, s.logs, 3, `msg="unsubscribe refused"`, "client_id=victim ")
	wantLogLines(t, s.logs, 1, `msg="close refused"`, "client_id=victim ")
	// The victim itself still can.
	if r := victim.closeClient("victim"); r.Error != "" {
		t.Fatalf("the victim's own close: %q", r.Error)
	}
}
