package tests

import (
	"fmt"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/stan.go"

	"github.com/starling-io/starling/cmd/starling/app"
	"github.com/starling-io/starling/proto/stanpb"
)

// startAuthStan runs the whole server (app.Main, streaming on) with two users, alice and
// bob, each allowed to publish and subscribe _STAN.> and _INBOX.>, and the monitoring
// port; it returns the server, its monitoring base URL and its captured log.
func startAuthStan(t *testing.T, hbInterval string, flags ...string) (*app.Main, string, *syncBuffer) {
	t.Helper()
	perms := `permissions: {publish: {allow: ["_STAN.>", "_INBOX.>"]}, subscribe: {allow: ["_STAN.>", "_INBOX.>"]}}`
	conf := writeConfig(t, t.TempDir(), fmt.Sprintf(`
authorization {
  users = [
    {user: alice, password: %q, %s}
    {user: bob, password: bobpw, %s}
  ]
}`, bcryptHash(t, "alicepw"), perms, perms))
	logs := &syncBuffer{}
	m := app.NewMain(io.Discard, logs)
	must(t, m.ParseFlags(append([]string{"-a", "127.0.0.1", "-p", "-1", "-m", "-1", "-c", conf, "--hb_interval", hbInterval}, flags...)))
	must(t, m.Start())
	t.Cleanup(func() {
		_ = m.Close()
		if t.Failed() {
			t.Logf("server log:\n%s", tail(logs.String(), 8000))
		}
	})
	return m, "http://" + m.MonitorAddr(), logs
}

var (
	asAlice = nats.UserInfo("alice", "alicepw")
	asBob   = nats.UserInfo("bob", "bobpw")
)

// Bob can never close, unsubscribe, ping-rebind, replace or resume alice's client or
// durable — while alice is connected, and after her NATS connection is gone until
// heartbeats expire her client. After that, bob may register the client ID "alice", but
// her durable name gives him a new durable of his own, not her position.
// Fails on 67c13ea: bob's unsubscribe, close, connect as alice and subscription to her
// durable are all accepted.
func TestHostileAuthOtherUserCannotActForClient(t *testing.T) {
	m, mon, logs := startAuthStan(t, "1s", "--hb_fail_count", "2")
	url := clientURL(m)
	bnc := natsDial(t, url, asBob)
	pubs := make(chan *nats.Msg, 16)
	_, err := bnc.ChanSubscribe(stanPubPrefix+".>", pubs) // bob may watch _STAN.>
	must(t, err)
	must(t, bnc.Flush())

	anc := natsDial(t, url, asAlice)
	alice, err := stan.Connect("test-cluster", "alice", stan.NatsConn(anc))
	must(t, err)
	got := newCollector()
	_, err = alice.Subscribe("a.ch", got.handler, stan.DurableName("ad"), stan.DeliverAllAvailable())
	must(t, err)
	publishN(t, alice, "a.ch", 1, 3)
	connID := learnConnID(t, pubs)
	got.seqs(t, 3, hostileWait)
	subs := channelSubs(t, mon, "a.ch")
	if len(subs) != 1 {
		t.Fatalf("subs %+v", subs)
	}
	ackInbox := subs[0].AckInbox

	bob := rawRegister(t, bnc, "_STAN.discover.test-cluster", "bob")
	attempts := func(phase string) {
		t.Helper()
		for _, subj := range []string{stanUnsubReq, stanSubCloseReq} {
			if r := bob.unsubscribe(subj, &stanpb.UnsubscribeRequest{ClientID: "alice", Subject: "a.ch", Inbox: ackInbox}); r.Error != "stan: unknown clientID" {
				t.Errorf("%s: bob's %s of alice's durable: error %q", phase, subj, r.Error)
			}
		}
		if r := bob.closeClient("alice"); r.Error != "stan: unknown clientID" {
			t.Errorf("%s: bob's close of alice: error %q", phase, r.Error)
		}
		if r := bob.ping(connID); r.Error != "client has been replaced or is no longer registered" {
			t.Errorf("%s: bob's ping with alice's ConnID: error %q", phase, r.Error)
		}
		if r := bob.connect(&stanpb.ConnectRequest{ClientID: "alice", HeartbeatInbox: "_INBOX.bob.hb2", Protocol: 1, ConnID: []byte("bob-as-alice")}); r.Error != "stan: clientID already registered" {
			t.Errorf("%s: bob's connect as alice: error %q", phase, r.Error)
		}
		if r := bob.subscribe(&stanpb.SubscriptionRequest{ClientID: "alice", Subject: "a.ch", DurableName: "ad", Inbox: "_INBOX.bob.steal",
			StartPosition: stanpb.StartPosition_First}); r.Error != "stan: unknown clientID" {
			t.Errorf("%s: bob's subscription to alice's durable: error %q", phase, r.Error)
		}
		if !bnc.IsConnected() {
			t.Fatalf("%s: the refusals closed bob's connection", phase)
		}
	}
	attempts("alice connected")
	// Alice's binding is unchanged: she publishes and receives.
	publishN(t, alice, "a.ch", 4, 4)
	got.seqs(t, 1, hostileWait)

	aid, err := anc.GetClientID()
	must(t, err)
	anc.Close() // alice's NATS connection dies without a streaming Close
	waitFor(t, hostileWait, func() error {
		if m.Server().IsConnected(aid) {
			return fmt.Errorf("alice's connection still open")
		}
		return nil
	})
	attempts("alice's connection gone")
	if !hasID(clientIDs(t, mon), "alice") {
		t.Fatal("alice's client expired before the attempts were checked (raise hb_interval)")
	}
	for _, msg := range []string{"unsubscribe refused", "close refused", "ping refused", "connect refused", "subscription refused"} {
		n := 2
		if msg == "unsubscribe refused" {
			n = 4
		}
		wantLogLines(t, logs, n, `msg="`+msg+`"`, "client_id=alice ")
	}

	// Heartbeats expire alice's client; her durable stays, offline.
	waitFor(t, 10*time.Second, func() error {
		if hasID(clientIDs(t, mon), "alice") {
			return fmt.Errorf("alice still registered")
		}
		return nil
	})
	// Bob may now take the client ID "alice", but not her durable.
	bobAsAlice := rawRegister(t, bnc, "_STAN.discover.test-cluster", "alice")
	stolen := make(chan *nats.Msg, 16)
	_, err = bnc.ChanSubscribe("_INBOX.bob.ad", stolen)
	must(t, err)
	if r := bobAsAlice.subscribe(&stanpb.SubscriptionRequest{Subject: "a.ch", DurableName: "ad", Inbox: "_INBOX.bob.ad",
		StartPosition: stanpb.StartPosition_First}); r.Error != "" {
		t.Fatalf("bob's own durable ad as client alice: %q", r.Error)
	}
	for i, msg := range recvN(t, stolen, 4, hostileWait) {
		if mp := decodeMsgProto(t, msg); mp.Sequence != uint64(i+1) || mp.Redelivered {
			t.Fatalf("bob's durable got seq %d (redelivered %v) as message %d: not a new durable from the first", mp.Sequence, mp.Redelivered, i+1)
		}
	}
	online, offline := 0, 0
	for _, sub := range channelSubs(t, mon, "a.ch") {
		if sub.ClientID != "alice" || sub.DurableName != "ad" {
			t.Fatalf("unexpected subscription %+v", sub)
		}
		if sub.IsOffline {
			offline++
			if sub.LastSent != 4 {
				t.Fatalf("alice's durable moved: %+v", sub)
			}
		} else {
			online++
		}
	}
	if online != 1 || offline != 1 {
		t.Fatalf("want alice's durable offline and bob's online: %d online, %d offline", online, offline)
	}
}

// The legitimate case: alice's stan.go client whose NATS connection drops and reconnects
// (the server-side connection is closed, nats.go reconnects) keeps publishing and
// receiving, with no streaming connection loss. Passes on 67c13ea as well (nothing was
// bound to a connection then): it guards the binding against refusing a real reconnect.
func TestHostileAuthReconnectKeepsClient(t *testing.T) {
	m, mon, _ := startAuthStan(t, "1s")
	reconnected := make(chan struct{}, 4)
	anc := natsDial(t, clientURL(m), asAlice, nats.MaxReconnects(-1), nats.ReconnectWait(20*time.Millisecond),
		nats.ReconnectHandler(func(*nats.Conn) { reconnected <- struct{}{} }))
	alice, err := stan.Connect("test-cluster", "alice", stan.NatsConn(anc),
		stan.SetConnectionLostHandler(func(_ stan.Conn, err error) { t.Errorf("alice lost her streaming connection: %v", err) }))
	must(t, err)
	t.Cleanup(func() { _ = alice.Close() })
	got := newCollector()
	_, err = alice.Subscribe("r.ch", got.handler, stan.DurableName("rd"), stan.DeliverAllAvailable())
	must(t, err)
	publishN(t, alice, "r.ch", 1, 3)
	if seqs := got.seqs(t, 3, hostileWait); !equalSeqs(seqs, seqRange(1, 3)) {
		t.Fatalf("before: %v", seqs)
	}
	next := 4
	for round := range 2 {
		old, err := anc.GetClientID()
		must(t, err)
		must(t, anc.ForceReconnect())
		select {
		case <-reconnected:
		case <-time.After(5 * time.Second):
			t.Fatalf("round %d: no reconnect", round)
		}
		// The server has seen the old connection close. (A request from the new one that
		// comes first is refused while a liveness check runs: the bug the half-open test
		// below shows; it made this test fail in about 1 of 8 rounds under load.)
		waitFor(t, hostileWait, func() error {
			if m.Server().IsConnected(old) {
				return fmt.Errorf("round %d: the old connection is still open on the server", round)
			}
			return nil
		})
		publishN(t, alice, "r.ch", next, next+2)
		if seqs := got.seqs(t, 3, hostileWait); !equalSeqs(seqs, seqRange(uint64(next), uint64(next+2))) {
			t.Fatalf("round %d: got %v", round, seqs)
		}
		next += 3
	}
	if ids := clientIDs(t, mon); len(ids) != 1 || ids[0] != "alice" {
		t.Fatalf("clients %v", ids)
	}
}

// The half-open variant: alice's path to the server goes silent without the server
// noticing (a partition); nats.go detects it by its pings and reconnects over a new
// connection while the server still holds the old one open. The client must go on: its
// publishes from the new connection are accepted (the liveness check on its heartbeat
// inbox is answered from there) and it keeps receiving.
// Passes on 67c13ea (nothing was bound to a connection then).
func TestHostileAuthHalfOpenReconnect(t *testing.T) {
	m, _, _ := startAuthStan(t, "1s")
	p := startProxy(t, m.Server().Addr().String())
	reconnected := make(chan struct{}, 4)
	anc := natsDial(t, p.url(), asAlice, nats.MaxReconnects(-1), nats.ReconnectWait(20*time.Millisecond),
		nats.PingInterval(100*time.Millisecond), nats.MaxPingsOutstanding(2), nats.DontRandomize(),
		nats.ReconnectHandler(func(*nats.Conn) { reconnected <- struct{}{} }))
	alice, err := stan.Connect("test-cluster", "alice", stan.NatsConn(anc),
		stan.SetConnectionLostHandler(func(_ stan.Conn, err error) { t.Errorf("alice lost her streaming connection: %v", err) }))
	must(t, err)
	t.Cleanup(func() { _ = alice.Close() })
	got := newCollector()
	_, err = alice.Subscribe("h.ch", got.handler, stan.DurableName("hd"), stan.DeliverAllAvailable())
	must(t, err)
	publishN(t, alice, "h.ch", 1, 3)
	got.seqs(t, 3, hostileWait)

	old, err := anc.GetClientID()
	must(t, err)
	p.blackhole()
	select {
	case <-reconnected:
	case <-time.After(5 * time.Second):
		t.Fatal("no reconnect")
	}
	if !m.Server().IsConnected(old) {
		t.Fatal("setup: the server closed the silent connection; the test needs it half-open")
	}
	for i := 4; i <= 6; i++ {
		if err := alice.Publish("h.ch", []byte(fmt.Sprint(i))); err != nil {
			t.Errorf("publish %d after the reconnect: %v", i, err)
		}
	}
	if seqs := got.seqs(t, 3, hostileWait); !equalSeqs(seqs, seqRange(4, 6)) {
		t.Fatalf("received %v after the reconnect, want 4..6", seqs)
	}
}

// tcpProxy forwards connections to a server. blackhole silences the current ones without
// closing them: both sides look connected, nothing goes through (the server's side stays
// open even after the client gives up on its side).
type tcpProxy struct {
	l      net.Listener
	target string
	mu     sync.Mutex
	dead   []*atomic.Bool
}

func startProxy(t *testing.T, target string) *tcpProxy {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	must(t, err)
	p := &tcpProxy{l: l, target: target}
	var conns []net.Conn
	var mu sync.Mutex
	t.Cleanup(func() {
		_ = l.Close()
		mu.Lock()
		for _, c := range conns {
			_ = c.Close()
		}
		mu.Unlock()
	})
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			s, err := net.Dial("tcp", target)
			if err != nil {
				_ = c.Close()
				continue
			}
			mu.Lock()
			conns = append(conns, c, s)
			mu.Unlock()
			dead := new(atomic.Bool)
			p.mu.Lock()
			p.dead = append(p.dead, dead)
			p.mu.Unlock()
			pipe := func(dst, src net.Conn) {
				buf := make([]byte, 32<<10)
				for {
					n, err := src.Read(buf)
					if err != nil {
						if !dead.Load() {
							_ = dst.Close()
						}
						return
					}
					if !dead.Load() {
						if _, err := dst.Write(buf[:n]); err != nil {
							return
						}
					}
				}
			}
			go pipe(s, c)
			go pipe(c, s)
		}
	}()
	return p
}

func (p *tcpProxy) url() string { return "nats://" + p.l.Addr().String() }

func (p *tcpProxy) blackhole() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, d := range p.dead {
		d.Store(true)
	}
}

// A connect probes the old client's heartbeat inbox even when its connection is gone (a
// stan.go client may have reconnected). Bob, who read alice's heartbeat inbox on the
// monitoring page, answers the probe: that must not keep alice's own reconnect out.
func TestHostileAuthOtherUserCannotVouchForDeadClient(t *testing.T) {
	m, mon, _ := startAuthStan(t, "1m")
	url := clientURL(m)
	anc := natsDial(t, url, asAlice)
	_, err := stan.Connect("test-cluster", "alice", stan.NatsConn(anc))
	must(t, err)
	var hbInbox string
	for _, c := range clientz(t, mon) {
		if c.ID == "alice" {
			hbInbox = c.HBInbox
		}
	}
	bnc := natsDial(t, url, asBob)
	_, err = bnc.Subscribe(hbInbox, func(m *nats.Msg) { _ = m.Respond(nil) })
	must(t, err)
	must(t, bnc.Flush())
	aid, err := anc.GetClientID()
	must(t, err)
	anc.Close() // alice's process dies without a streaming Close
	waitFor(t, hostileWait, func() error {
		if m.Server().IsConnected(aid) {
			return fmt.Errorf("alice's connection still open")
		}
		return nil
	})
	alice, err := stan.Connect("test-cluster", "alice", stan.NatsConn(natsDial(t, url, asAlice)))
	if err != nil {
		t.Fatalf("alice's reconnect, bob answering her old heartbeat inbox: %v", err)
	}
	_ = alice.Close()
}
