package tests

import (
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/stan.go"
	"google.golang.org/protobuf/proto"

	"github.com/starling-io/starling/proto/stanpb"
	"github.com/starling-io/starling/stores"
	"github.com/starling-io/starling/streaming"
)

func TestStanConnectPublishSubscribe(t *testing.T) {
	s := startStan(t, nil, nil)
	sc := stanConnect(t, s, "c1")
	publishN(t, sc, "foo", 1, 2)
	col := newCollector()
	_, err := sc.Subscribe("foo", col.handler, stan.DeliverAllAvailable())
	must(t, err)
	if got := col.seqs(t, 2, 5*time.Second); !equalSeqs(got, []uint64{1, 2}) {
		t.Fatalf("got %v", got)
	}
	// async publish with an ack handler
	acked := make(chan error, 1)
	_, err = sc.PublishAsync("foo", []byte("m3"), func(guid string, err error) { acked <- err })
	must(t, err)
	if err := <-acked; err != nil {
		t.Fatalf("async ack: %v", err)
	}
	if got := col.seqs(t, 1, 5*time.Second); got[0] != 3 {
		t.Fatalf("got %v", got)
	}
}

func TestStanConnectErrors(t *testing.T) {
	s := startStan(t, nil, nil)
	if _, err := stan.Connect("test-cluster", "bad id!", stan.NatsURL(s.url)); err == nil ||
		err.Error() != "stan: invalid clientID: only alphanumeric and `-` or `_` characters allowed" {
		t.Fatalf("bad client id: %v", err)
	}
	start := time.Now()
	if _, err := stan.Connect("wrong-cluster", "c1", stan.NatsURL(s.url)); err == nil ||
		!strings.Contains(err.Error(), "connect request timeout") || time.Since(start) > time.Second {
		t.Fatalf("wrong cluster: %v after %v", err, time.Since(start))
	}
	stanConnect(t, s, "dup")
	if _, err := stan.Connect("test-cluster", "dup", stan.NatsURL(s.url)); err == nil || err.Error() != "stan: clientID already registered" {
		t.Fatalf("live duplicate: %v", err)
	}
}

// A client whose NATS connection is gone is replaced at once by a new connect with its ID.
func TestStanDuplicateOfDeadClientReplaces(t *testing.T) {
	s := startStan(t, nil, nil)
	nc, err := nats.Connect(s.url)
	must(t, err)
	_, err = stan.Connect("test-cluster", "phoenix", stan.NatsConn(nc))
	must(t, err)
	nc.Close() // dies without a stan Close
	waitFor(t, 5*time.Second, func() error {
		sc, err := stan.Connect("test-cluster", "phoenix", stan.NatsURL(s.url))
		if err != nil {
			return err
		}
		return sc.Close()
	})
}

// A client whose NATS connection dropped and reconnected is alive, though the connection
// it registered on is gone: a connect with its ID must be refused (its heartbeat inbox
// answers from the new connection), as nats-streaming-server does. It was replaced at
// once, and the live client lost its streaming connection at its next ping.
func TestStanDuplicateOfReconnectedClientRefused(t *testing.T) {
	s := startStan(t, nil, nil)
	reconnected := make(chan struct{}, 1)
	nc, err := nats.Connect(s.url, nats.ReconnectWait(20*time.Millisecond),
		nats.ReconnectHandler(func(*nats.Conn) { reconnected <- struct{}{} }))
	must(t, err)
	defer nc.Close()
	lost := make(chan error, 1)
	sc, err := stan.Connect("test-cluster", "alive", stan.NatsConn(nc), stan.Pings(60, 10),
		stan.SetConnectionLostHandler(func(_ stan.Conn, err error) { lost <- err }))
	must(t, err)
	defer sc.Close()
	old, err := nc.GetClientID()
	must(t, err)
	must(t, nc.ForceReconnect())
	select {
	case <-reconnected:
	case <-time.After(5 * time.Second):
		t.Fatal("no reconnect")
	}
	// nats.go writes the resent SUBs (the heartbeat inbox's among them) before it calls
	// the handler, but the server may not have read them yet: without this round trip a
	// liveness check could find no subscriber and rightly replace the client.
	must(t, nc.Flush())
	waitFor(t, 5*time.Second, func() error {
		if s.core.IsConnected(old) {
			return errors.New("the old connection is still open on the server")
		}
		return nil
	})
	duplicateOfLiveRefused(t, s.url, sc, lost)
}

// duplicateOfLiveRefused checks that a connect at url with the ID "alive" of the live client
// sc is refused as the reference refuses it, and that sc stays registered and connected
// (lost: its connection-lost handler's channel; nil: not watched).
func duplicateOfLiveRefused(t *testing.T, url string, sc stan.Conn, lost <-chan error) {
	t.Helper()
	if dup, err := stan.Connect("test-cluster", "alive", stan.NatsURL(url)); err == nil {
		dup.Close()
		t.Fatal("a connect with a live client's ID was accepted")
	} else if err.Error() != "stan: clientID already registered" {
		t.Fatalf("duplicate connect: %v", err)
	}
	must(t, sc.Publish("after", []byte("x"))) // the live client is still registered
	select {
	case err := <-lost:
		t.Fatalf("the live client lost its connection: %v", err)
	default:
	}
}

// A close request is refused as the reference refuses it: undecodable → "invalid close
// request"; any client ID not registered, the empty one included → "unknown clientID".
// The empty ID got "invalid close request".
func TestStanCloseErrors(t *testing.T) {
	s := startStan(t, nil, nil)
	nc, err := nats.Connect(s.url)
	must(t, err)
	defer nc.Close()
	for _, tc := range []struct {
		name string
		req  []byte
		want string
	}{
		{"undecodable", []byte{0xff}, "stan: invalid close request"},
		{"unknown", marshalClose(t, "nobody"), "stan: unknown clientID"},
		{"empty", marshalClose(t, ""), "stan: unknown clientID"},
	} {
		m, err := nc.Request("_STAN.close.test-cluster", tc.req, 2*time.Second)
		must(t, err)
		var cr stanpb.CloseResponse
		must(t, proto.Unmarshal(m.Data, &cr))
		if cr.Error != tc.want {
			t.Errorf("%s close request: %q, want %q", tc.name, cr.Error, tc.want)
		}
	}
}

func marshalClose(t *testing.T, clientID string) []byte {
	b, err := proto.Marshal(&stanpb.CloseRequest{ClientID: clientID})
	must(t, err)
	return b
}

func TestStanPublishErrors(t *testing.T) {
	s := startStan(t, nil, nil)
	sc := stanConnect(t, s, "c1")
	// (".foo" or "foo..bar" never reach a server: stan.go publishes them on a NATS subject
	// with an empty token, which matches nothing, exactly as with the reference.)
	for _, ch := range []string{"foo.*", "foo.>", "foo.*.bar"} {
		if err := sc.Publish(ch, []byte("x")); err == nil || err.Error() != "stan: invalid publish request" {
			t.Errorf("publish to %q: %v", ch, err)
		}
	}
	must(t, sc.Publish("Case", nil))
	if err := sc.Publish("case", nil); err == nil || !strings.Contains(err.Error(), "different cases not allowed") {
		t.Fatalf("case conflict: %v", err)
	}
}

func TestStanStartPositions(t *testing.T) {
	s := startStan(t, nil, nil)
	sc := stanConnect(t, s, "c1")
	publishN(t, sc, "pos", 1, 3)
	time.Sleep(300 * time.Millisecond) // separate timestamps for the time-based starts
	mark := time.Now()
	publishN(t, sc, "pos", 4, 5)

	cases := []struct {
		name string
		opt  func() stan.SubscriptionOption // built at subscribe time: time-based starts are relative to now
		want []uint64
	}{
		{"first", stan.DeliverAllAvailable, seqRange(1, 5)},
		{"last", stan.StartWithLastReceived, seqRange(5, 5)},
		{"sequence", func() stan.SubscriptionOption { return stan.StartAtSequence(3) }, seqRange(3, 5)},
		{"sequence-too-low", func() stan.SubscriptionOption { return stan.StartAtSequence(0) }, seqRange(1, 5)},
		{"time-delta", func() stan.SubscriptionOption { return stan.StartAtTimeDelta(time.Since(mark) + 100*time.Millisecond) }, seqRange(4, 5)},
		{"time", func() stan.SubscriptionOption { return stan.StartAtTime(mark.Add(-100 * time.Millisecond)) }, seqRange(4, 5)},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			col := newCollector()
			sub, err := sc.Subscribe("pos", col.handler, tc.opt())
			must(t, err)
			defer sub.Unsubscribe()
			if got := col.seqs(t, len(tc.want), 5*time.Second); !equalSeqs(got, tc.want) {
				t.Errorf("got %v want %v", got, tc.want)
			}
			col.none(t, 50*time.Millisecond)
		})
	}
	// New only: nothing old, then only new messages.
	col := newCollector()
	_, err := sc.Subscribe("pos", col.handler)
	must(t, err)
	col.none(t, 100*time.Millisecond)
	publishN(t, sc, "pos", 6, 7)
	if got := col.seqs(t, 2, 5*time.Second); !equalSeqs(got, seqRange(6, 7)) {
		t.Fatalf("new only: got %v", got)
	}
	// A sequence past the end behaves as new-only.
	col = newCollector()
	_, err = sc.Subscribe("pos", col.handler, stan.StartAtSequence(100))
	must(t, err)
	col.none(t, 100*time.Millisecond)
}

func TestStanSubscribeErrors(t *testing.T) {
	s := startStan(t, nil, nil)
	sc := stanConnect(t, s, "c1")
	check := func(want string, subject string, opts ...stan.SubscriptionOption) {
		t.Helper()
		_, err := sc.Subscribe(subject, func(*stan.Msg) {}, opts...)
		if err == nil || err.Error() != want {
			t.Errorf("subscribe %s: got %v, want %q", subject, err, want)
		}
	}
	check("stan: invalid subject", "foo.*")
	check("stan: invalid ack wait time, should be >= 1s", "foo", stan.AckWait(500*time.Millisecond))
	check("stan: invalid MaxInflight, should be >= 1", "foo", stan.MaxInflight(0))
	_, err := sc.Subscribe("foo", func(*stan.Msg) {}, stan.DurableName("dur"))
	must(t, err)
	check("stan: duplicate durable registration", "foo", stan.DurableName("dur"))
	if _, err := sc.QueueSubscribe("foo", "q", func(*stan.Msg) {}, stan.DurableName("a:b")); err == nil ||
		err.Error() != "stan: durable name of a durable queue subscriber can't contain the character ':'" {
		t.Errorf("durable queue colon: %v", err)
	}
}

func TestStanRedeliveryAndMaxInflight(t *testing.T) {
	s := startStan(t, nil, nil)
	sc := stanConnect(t, s, "c1")
	var mu sync.Mutex
	var got []*stan.Msg
	inflight, maxSeen := 0, 0
	_, err := sc.Subscribe("rd", func(m *stan.Msg) {
		mu.Lock()
		defer mu.Unlock()
		got = append(got, m)
		if !m.Redelivered {
			inflight++
			maxSeen = max(maxSeen, inflight)
		}
	}, stan.SetManualAckMode(), stan.MaxInflight(3), stan.AckWait(time.Second), stan.DeliverAllAvailable())
	must(t, err)
	publishN(t, sc, "rd", 1, 10)
	time.Sleep(300 * time.Millisecond)
	mu.Lock()
	if len(got) != 3 || maxSeen != 3 {
		mu.Unlock()
		t.Fatalf("with max in flight 3 and no acks: got %d messages (max in flight seen %d)", len(got), maxSeen)
	}
	mu.Unlock()
	// After the ack wait the same three come back, flagged, in order.
	waitFor(t, 3*time.Second, func() error {
		mu.Lock()
		defer mu.Unlock()
		if len(got) < 6 {
			return fmt.Errorf("%d messages", len(got))
		}
		return nil
	})
	mu.Lock()
	for i, m := range got[3:6] {
		if !m.Redelivered || m.RedeliveryCount != 1 || m.Sequence != uint64(i+1) {
			t.Errorf("redelivery %d: seq %d redelivered %v count %d", i, m.Sequence, m.Redelivered, m.RedeliveryCount)
		}
	}
	// Acking them lets the rest through.
	for _, m := range got[3:6] {
		must(t, m.Ack())
	}
	mu.Unlock()
	waitFor(t, 3*time.Second, func() error {
		mu.Lock()
		defer mu.Unlock()
		seen := map[uint64]bool{}
		for _, m := range got {
			seen[m.Sequence] = true
		}
		if len(seen) < 6 {
			return fmt.Errorf("only %d distinct sequences", len(seen))
		}
		return nil
	})
}

func TestStanDurableResume(t *testing.T) {
	s := startStan(t, nil, nil)
	sc := stanConnect(t, s, "c1")
	publishN(t, sc, "dur", 1, 3)
	col := newCollector()
	sub, err := sc.Subscribe("dur", col.handler, stan.DurableName("d"), stan.DeliverAllAvailable())
	must(t, err)
	col.seqs(t, 3, 5*time.Second)
	time.Sleep(50 * time.Millisecond) // let the auto acks land
	must(t, sub.Close())
	publishN(t, sc, "dur", 4, 5)
	col2 := newCollector()
	_, err = sc.Subscribe("dur", col2.handler, stan.DurableName("d"), stan.DeliverAllAvailable())
	must(t, err)
	if got := col2.seqs(t, 2, 5*time.Second); !equalSeqs(got, seqRange(4, 5)) {
		t.Fatalf("durable resumed at %v, want [4 5]", got)
	}
	col2.none(t, 100*time.Millisecond)
	// Durable state survives the client's reconnect too.
	must(t, sc.Close())
	sc2 := stanConnect(t, s, "c1")
	publishN(t, sc2, "dur", 6, 6)
	col3 := newCollector()
	sub, err = sc2.Subscribe("dur", col3.handler, stan.DurableName("d"))
	must(t, err)
	if got := col3.seqs(t, 1, 5*time.Second); got[0] != 6 {
		t.Fatalf("after reconnect: %v", got)
	}
	// Unsubscribe forgets it: a new durable with that name starts from its start position.
	must(t, sub.Unsubscribe())
	col4 := newCollector()
	_, err = sc2.Subscribe("dur", col4.handler, stan.DurableName("d"), stan.DeliverAllAvailable())
	must(t, err)
	if got := col4.seqs(t, 6, 5*time.Second); !equalSeqs(got, seqRange(1, 6)) {
		t.Fatalf("after unsubscribe: %v", got)
	}
}

// A durable closed with a message unacknowledged within its ack wait, then resumed, gets
// the message at once and then again after every ack wait: the timer stopped at close is
// armed again. Before, the stopped timer's deadline was kept, later deadlines were taken
// as covered by it, and nothing was redelivered after the resume's first delivery.
func TestStanDurableResumedKeepsRedelivering(t *testing.T) {
	s := startStan(t, nil, nil)
	sc := stanConnect(t, s, "c1")
	var mu sync.Mutex
	var got []*stan.Msg
	h := func(m *stan.Msg) { mu.Lock(); got = append(got, m); mu.Unlock() }
	count := func() int { mu.Lock(); defer mu.Unlock(); return len(got) }
	opts := []stan.SubscriptionOption{stan.DurableName("d"), stan.SetManualAckMode(), stan.AckWait(time.Second), stan.DeliverAllAvailable()}
	sub, err := sc.Subscribe("rr", h, opts...)
	must(t, err)
	publishN(t, sc, "rr", 1, 1)
	waitFor(t, 3*time.Second, func() error {
		if n := count(); n != 1 {
			return fmt.Errorf("%d deliveries", n)
		}
		return nil
	})
	must(t, sub.Close()) // well within the ack wait
	_, err = sc.Subscribe("rr", h, opts...)
	must(t, err)
	// Delivered on resume, then once per ack wait: two more within 3 s.
	waitFor(t, 4*time.Second, func() error {
		if n := count(); n < 4 {
			return fmt.Errorf("%d deliveries", n)
		}
		return nil
	})
	mu.Lock()
	defer mu.Unlock()
	for i, m := range got {
		if m.Sequence != 1 || m.Redelivered != (i > 0) {
			t.Errorf("delivery %d: seq %d redelivered %v", i, m.Sequence, m.Redelivered)
		}
	}
}

func TestStanQueueGroups(t *testing.T) {
	s := startStan(t, nil, nil)
	sc := stanConnect(t, s, "c1")
	var counts [2]atomic.Int64
	for i := range 2 {
		_, err := sc.QueueSubscribe("q", "workers", func(*stan.Msg) { counts[i].Add(1) })
		must(t, err)
	}
	publishN(t, sc, "q", 1, 100)
	waitFor(t, 5*time.Second, func() error {
		if n := counts[0].Load() + counts[1].Load(); n != 100 {
			return fmt.Errorf("%d of 100", n)
		}
		return nil
	})
	if counts[0].Load() == 0 || counts[1].Load() == 0 {
		t.Fatalf("not spread: %d / %d", counts[0].Load(), counts[1].Load())
	}
}

// A durable queue group survives all its members closing and resumes where it was.
func TestStanDurableQueueGroupSurvives(t *testing.T) {
	s := startStan(t, nil, nil)
	sc := stanConnect(t, s, "c1")
	col := newCollector()
	m1, err := sc.QueueSubscribe("dq", "grp", col.handler, stan.DurableName("d"), stan.DeliverAllAvailable())
	must(t, err)
	m2, err := sc.QueueSubscribe("dq", "grp", col.handler, stan.DurableName("d"))
	must(t, err)
	publishN(t, sc, "dq", 1, 4)
	col.seqs(t, 4, 5*time.Second)
	time.Sleep(50 * time.Millisecond)
	must(t, m1.Close())
	must(t, m2.Close())
	publishN(t, sc, "dq", 5, 6)
	col2 := newCollector()
	_, err = sc.QueueSubscribe("dq", "grp", col2.handler, stan.DurableName("d"), stan.DeliverAllAvailable())
	must(t, err)
	if got := col2.seqs(t, 2, 5*time.Second); !equalSeqs(got, seqRange(5, 6)) {
		t.Fatalf("durable queue group resumed with %v, want [5 6]", got)
	}
}

func TestStanChannelLimitsEvictOldest(t *testing.T) {
	limits := &stores.LimitsSet{Global: stores.DefaultLimits()}
	limits.Global.MaxMsgs = 10
	s := startStan(t, limits, nil)
	sc := stanConnect(t, s, "c1")
	publishN(t, sc, "lim", 1, 25)
	col := newCollector()
	_, err := sc.Subscribe("lim", col.handler, stan.DeliverAllAvailable())
	must(t, err)
	if got := col.seqs(t, 10, 5*time.Second); !equalSeqs(got, seqRange(16, 25)) {
		t.Fatalf("got %v, want 16..25", got)
	}
}

// A client that stops answering heartbeats is removed.
func TestStanDeadClientRemoved(t *testing.T) {
	s := startStan(t, nil, func(o *streaming.Options) { o.HBInterval = 100 * time.Millisecond; o.HBFailCount = 2 })
	nc, err := nats.Connect(s.url)
	must(t, err)
	_, err = stan.Connect("test-cluster", "ghost", stan.NatsConn(nc))
	must(t, err)
	nc.Close()
	waitFor(t, 5*time.Second, func() error {
		for _, c := range s.st.Clients(false) {
			if c.ID == "ghost" {
				return errors.New("ghost still registered")
			}
		}
		return nil
	})
}

// A stan.go client cut off from the server for a few heartbeat intervals, fewer than
// hb_fail_count, keeps its streaming connection when it comes back, as with the reference
// (spec §5.1): its NATS connection being gone does not make it dead, stan.go reconnects.
// It was closed at the first missed heartbeat; once back, its publishes were refused and
// its next ping ended its streaming connection ("client has been replaced or is no longer
// registered").
func TestStanClientCutOffBrieflySurvives(t *testing.T) {
	s := startStan(t, nil, func(o *streaming.Options) { o.HBInterval = 100 * time.Millisecond; o.HBFailCount = 30 })
	p := newLinkProxy(t, s.core.Addr().String())
	reconnected := make(chan struct{}, 4)
	nc, err := nats.Connect("nats://"+p.addr(), nats.MaxReconnects(-1), nats.ReconnectWait(20*time.Millisecond),
		nats.Timeout(200*time.Millisecond), nats.ReconnectHandler(func(*nats.Conn) { reconnected <- struct{}{} }))
	must(t, err)
	defer nc.Close()
	lost := make(chan error, 1)
	sc, err := stan.Connect("test-cluster", "cutoff", stan.NatsConn(nc), stan.Pings(1, 30),
		stan.SetConnectionLostHandler(func(_ stan.Conn, err error) { lost <- err }))
	must(t, err)
	defer sc.Close()
	col := newCollector()
	_, err = sc.Subscribe("cut", col.handler)
	must(t, err)
	publishN(t, sc, "cut", 1, 1)
	col.seqs(t, 1, 5*time.Second)

	p.partition()
	time.Sleep(800 * time.Millisecond) // about 8 heartbeat ticks: fewer than 30 failures
	p.heal()
	select {
	case <-reconnected:
	case <-time.After(5 * time.Second):
		t.Fatal("no reconnect")
	}
	publishN(t, sc, "cut", 2, 2)
	if got := col.seqs(t, 1, 5*time.Second); got[0] != 2 {
		t.Fatalf("after the reconnect the subscription got %v", got)
	}
	select {
	case err := <-lost:
		t.Fatalf("the client lost its streaming connection: %v", err)
	case <-time.After(1500 * time.Millisecond): // a ping or two
	}
}

// A client that missed heartbeats and pings gets a heartbeat at once, as with
// nats-streaming-server (spec §5.2), so that it stops counting as failing (its plain
// subscriptions get no redeliveries meanwhile) without waiting for the next heartbeat tick.
func TestStanPingOfFailingClientSendsHeartbeat(t *testing.T) {
	s := startStan(t, nil, func(o *streaming.Options) { o.HBInterval = 3 * time.Second })
	nc, err := nats.Connect(s.url)
	must(t, err)
	defer nc.Close()
	hbs := make(chan *nats.Msg, 16)
	hbInbox := nats.NewInbox()
	_, err = nc.ChanSubscribe(hbInbox, hbs) // never answered
	must(t, err)
	req, _ := proto.Marshal(&stanpb.ConnectRequest{ClientID: "flaky", HeartbeatInbox: hbInbox, Protocol: 1,
		ConnID: []byte("flaky-conn"), PingInterval: 1, PingMaxOut: 10})
	m, err := nc.Request("_STAN.discover.test-cluster", req, 2*time.Second)
	must(t, err)
	var cr stanpb.ConnectResponse
	must(t, proto.Unmarshal(m.Data, &cr))
	if cr.Error != "" {
		t.Fatal(cr.Error)
	}
	recvN(t, hbs, 2, 10*time.Second) // the second tick counts the first one failed
	ping, _ := proto.Marshal(&stanpb.Ping{ConnID: []byte("flaky-conn")})
	m, err = nc.Request(cr.PingRequests, ping, 2*time.Second)
	must(t, err)
	if len(m.Data) != 0 {
		t.Fatalf("ping answered %q", m.Data)
	}
	select {
	case <-hbs:
	case <-time.After(time.Second): // the next tick is 3 s after the last
		t.Fatal("no heartbeat after the ping of a client with failed heartbeats")
	}
}

// 100,000 messages of 128 B, published async and all consumed: no loss and no duplicate
// that is not flagged as a redelivery.
func TestStanHundredThousand(t *testing.T) {
	if testing.Short() {
		t.Skip("long")
	}
	s := startStan(t, nil, nil)
	sc := stanConnect(t, s, "bulk", stan.MaxPubAcksInflight(16384))
	const n = 100000
	var mu sync.Mutex
	seen := make(map[uint64]bool, n)
	dups := 0
	done := make(chan struct{})
	_, err := sc.Subscribe("bulk", func(m *stan.Msg) {
		mu.Lock()
		defer mu.Unlock()
		if seen[m.Sequence] && !m.Redelivered {
			dups++
		}
		seen[m.Sequence] = true
		if len(seen) == n {
			close(done)
		}
	}, stan.DeliverAllAvailable(), stan.MaxInflight(8192))
	must(t, err)
	payload := make([]byte, 128)
	var ackErrs atomic.Int64
	for range n {
		if _, err := sc.PublishAsync("bulk", payload, func(_ string, err error) {
			if err != nil {
				ackErrs.Add(1)
			}
		}); err != nil {
			t.Fatal(err)
		}
	}
	select {
	case <-done:
	case <-time.After(60 * time.Second):
		mu.Lock()
		t.Fatalf("received %d of %d", len(seen), n)
	}
	if ackErrs.Load() > 0 || dups > 0 {
		t.Fatalf("%d publish errors, %d unflagged duplicates", ackErrs.Load(), dups)
	}
}

func TestStanMaxAgeExpires(t *testing.T) {
	limits := &stores.LimitsSet{Global: stores.DefaultLimits()}
	limits.Global.MaxAge = 300 * time.Millisecond
	s := startStan(t, limits, func(o *streaming.Options) { o.Limits = limits })
	sc := stanConnect(t, s, "c1")
	publishN(t, sc, "age", 1, 3)
	waitFor(t, 5*time.Second, func() error {
		for _, ch := range s.st.Channels(false) {
			if ch.Name == "age" && ch.Msgs != 0 {
				return fmt.Errorf("%d messages left", ch.Msgs)
			}
		}
		return nil
	})
	publishN(t, sc, "age", 4, 4)
	col := newCollector()
	_, err := sc.Subscribe("age", col.handler, stan.DeliverAllAvailable())
	must(t, err)
	if got := col.seqs(t, 1, 5*time.Second); got[0] != 4 {
		t.Fatalf("got %v", got)
	}
}

// A channel deleted for inactivity and created again continues its sequence.
func TestStanInactiveChannelDeletedSequenceContinues(t *testing.T) {
	limits := &stores.LimitsSet{Global: stores.DefaultLimits()}
	limits.Global.MaxInactivity = 200 * time.Millisecond
	s := startStan(t, limits, func(o *streaming.Options) { o.Limits = limits })
	sc := stanConnect(t, s, "c1")
	publishN(t, sc, "idle", 1, 3)
	waitFor(t, 5*time.Second, func() error {
		for _, ch := range s.st.Channels(false) {
			if ch.Name == "idle" {
				return errors.New("channel still there")
			}
		}
		return nil
	})
	publishN(t, sc, "idle", 4, 4)
	col := newCollector()
	_, err := sc.Subscribe("idle", col.handler, stan.DeliverAllAvailable())
	must(t, err)
	if got := col.seqs(t, 1, 5*time.Second); got[0] != 4 {
		t.Fatalf("re-created channel restarted its sequence: %v", got)
	}
}

// A queue member that leaves with unacknowledged messages: the others get them,
// flagged as redelivered.
func TestStanQueueMemberLeavesPendingReassigned(t *testing.T) {
	s := startStan(t, nil, nil)
	sc := stanConnect(t, s, "c1")
	lazy, err := sc.QueueSubscribe("qr", "g", func(*stan.Msg) {}, stan.SetManualAckMode(), stan.AckWait(30*time.Second))
	must(t, err)
	publishN(t, sc, "qr", 1, 3) // all go to the only member, unacked
	time.Sleep(100 * time.Millisecond)
	col := newCollector()
	_, err = sc.QueueSubscribe("qr", "g", col.handler)
	must(t, err)
	must(t, lazy.Close())
	got := map[uint64]bool{}
	deadline := time.After(5 * time.Second)
	for len(got) < 3 {
		select {
		case m := <-col.ch:
			if !m.Redelivered {
				t.Fatalf("seq %d not flagged as redelivered", m.Sequence)
			}
			got[m.Sequence] = true
		case <-deadline:
			t.Fatalf("got %v", got)
		}
	}
}

// When the streaming server stops answering, stan.go's connection-lost handler fires after
// pingMaxOut unanswered PINGs.
func TestStanConnectionLostHandler(t *testing.T) {
	s := startStan(t, nil, nil)
	lost := make(chan error, 1)
	_ = stanConnect(t, s, "pinger", stan.Pings(1, 2), stan.SetConnectionLostHandler(func(_ stan.Conn, err error) { lost <- err }))
	must(t, s.st.Shutdown())
	select {
	case err := <-lost:
		if err == nil {
			t.Fatal("lost with no error")
		}
	case <-time.After(10 * time.Second):
		t.Fatal("connection-lost handler did not fire")
	}
}

func TestStanStoreLimits(t *testing.T) {
	limits := &stores.LimitsSet{Global: stores.DefaultLimits(), Channels: map[string]stores.Limits{
		"small.*": {MaxMsgs: 3},
	}}
	limits.Global.MaxChannels = 3
	limits.Global.MaxSubs = 2
	s := startStan(t, limits, nil)
	sc := stanConnect(t, s, "c1")
	// Per-channel override through a wildcard entry.
	publishN(t, sc, "small.one", 1, 6)
	col := newCollector()
	_, err := sc.Subscribe("small.one", col.handler, stan.DeliverAllAvailable())
	must(t, err)
	if got := col.seqs(t, 3, 5*time.Second); !equalSeqs(got, seqRange(4, 6)) {
		t.Fatalf("small.one kept %v, want 4..6", got)
	}
	// Subscriptions per channel.
	_, err = sc.Subscribe("small.one", func(*stan.Msg) {})
	must(t, err)
	if _, err := sc.Subscribe("small.one", func(*stan.Msg) {}); err == nil || err.Error() != "too many subscriptions per channel" {
		t.Fatalf("third subscription: %v", err)
	}
	// Channels.
	must(t, sc.Publish("two", nil))
	must(t, sc.Publish("three", nil))
	if err := sc.Publish("four", nil); err == nil || err.Error() != "too many channels" {
		t.Fatalf("fourth channel: %v", err)
	}
}

func TestStanQueueGroupLastMemberUnsubscribes(t *testing.T) {
	s := startStan(t, nil, nil)
	sc := stanConnect(t, s, "c1")
	m, err := sc.QueueSubscribe("qu", "g", func(*stan.Msg) {}, stan.DurableName("d"), stan.DeliverAllAvailable())
	must(t, err)
	publishN(t, sc, "qu", 1, 3)
	time.Sleep(50 * time.Millisecond)
	must(t, m.Unsubscribe()) // the durable group is destroyed
	col := newCollector()
	_, err = sc.QueueSubscribe("qu", "g", col.handler, stan.DurableName("d"), stan.DeliverAllAvailable())
	must(t, err)
	if got := col.seqs(t, 3, 5*time.Second); !equalSeqs(got, seqRange(1, 3)) {
		t.Fatalf("a destroyed durable group came back with %v, want a fresh start 1..3", got)
	}
}

// Live subscribers with room in flight get every message even when max_msgs evicts part
// of a publish batch before delivery (stan-bench hung on this with -mm 500). (A stalled
// subscriber skips what limits removed meanwhile, as with the reference.)
func TestStanLimitsDoNotStarveLiveSubscribers(t *testing.T) {
	limits := &stores.LimitsSet{Global: stores.DefaultLimits()}
	limits.Global.MaxMsgs = 5
	s := startStan(t, limits, nil)
	sc := stanConnect(t, s, "c1")
	col := newCollector()
	const n = 2000
	_, err := sc.Subscribe("burst", col.handler, stan.MaxInflight(2*n))
	must(t, err)
	for i := range n {
		if _, err := sc.PublishAsync("burst", []byte(fmt.Sprint(i)), nil); err != nil {
			t.Fatal(err)
		}
	}
	if got := col.seqs(t, n, 20*time.Second); !equalSeqs(got, seqRange(1, n)) {
		t.Fatalf("received %d messages, not 1..%d in order", len(got), n)
	}
}
