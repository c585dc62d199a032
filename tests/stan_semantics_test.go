package tests

// Subscription semantics that stan.go clients observe, checked against what
// nats-streaming-server v0.25.x does (server/server.go). Found by an audit of
// subscription semantics: each test failed before its fix.

import (
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/stan.go"
	"google.golang.org/protobuf/proto"

	"github.com/starling-io/starling/proto/stanpb"
	"github.com/starling-io/starling/stores"
	"github.com/starling-io/starling/streaming"
)

// A subscriber stalled at MaxInflight whose only pending message was then removed by the
// channel's max_msgs limit: when its ack wait expires the message is found gone and
// treated as acknowledged (reference: getMsgForRedelivery -> processAck), and the
// subscriber, no longer stalled, is sent the next message at once. Before the fix it
// stayed stalled until the next publish or ack.
func TestStanStalledSubResumesWhenPendingMsgEvicted(t *testing.T) {
	limits := &stores.LimitsSet{Global: stores.DefaultLimits()}
	limits.Global.MaxMsgs = 2
	s := startStan(t, limits, nil)
	sc := stanConnect(t, s, "c1")
	col := newCollector()
	_, err := sc.Subscribe("ev", col.handler, stan.SetManualAckMode(), stan.MaxInflight(1), stan.AckWait(time.Second))
	must(t, err)
	publishN(t, sc, "ev", 1, 1)
	if got := col.seqs(t, 1, 3*time.Second); got[0] != 1 {
		t.Fatalf("got %v, want [1]", got)
	}
	publishN(t, sc, "ev", 2, 3) // removes seq 1 from the channel; the subscriber is stalled on it
	m := nextStanMsg(t, col, 4*time.Second)
	if m.Sequence != 2 || m.Redelivered {
		t.Fatalf("after the ack wait got seq %d (redelivered %v), want seq 2 first delivered", m.Sequence, m.Redelivered)
	}
}

// nextStanMsg returns the collector's next message, failing the test when none comes
// within d.
func nextStanMsg(t *testing.T, col *collector, d time.Duration) *stan.Msg {
	t.Helper()
	select {
	case m := <-col.ch:
		return m
	case <-time.After(d):
		t.Fatalf("no message within %v", d)
		return nil
	}
}

// rawStanClient registers a streaming client over a plain NATS connection that never
// answers the server's heartbeats (nobody subscribes to its heartbeat inbox).
func rawStanClient(t *testing.T, s *stanServer, clientID string) *nats.Conn {
	t.Helper()
	nc, err := nats.Connect(s.url)
	must(t, err)
	t.Cleanup(nc.Close)
	req, _ := proto.Marshal(&stanpb.ConnectRequest{ClientID: clientID, HeartbeatInbox: nats.NewInbox(),
		Protocol: 1, ConnID: []byte(nats.NewInbox()), PingInterval: 5, PingMaxOut: 88})
	m, err := nc.Request("_STAN.discover.test-cluster", req, 2*time.Second)
	must(t, err)
	resp := &stanpb.ConnectResponse{}
	must(t, proto.Unmarshal(m.Data, resp))
	if resp.Error != "" {
		t.Fatal(resp.Error)
	}
	return nc
}

// A queue group whose only member belongs to a client that missed heartbeats (still
// registered: hb_fail_count not reached) still gets new messages: the reference's
// findBestQueueSub falls back to the first member when none qualifies (spec §8.4).
// Before the fix the group was sent nothing until the client answered again.
func TestStanQueueMemberOfClientMissingHeartbeatsGetsMessages(t *testing.T) {
	s := startStan(t, nil, func(o *streaming.Options) { o.HBInterval = 100 * time.Millisecond; o.HBFailCount = 1000 })
	nc := rawStanClient(t, s, "raw")
	inbox := nats.NewInbox()
	msgs, err := nc.SubscribeSync(inbox)
	must(t, err)
	req, _ := proto.Marshal(&stanpb.SubscriptionRequest{ClientID: "raw", Subject: "qhb", QGroup: "g", Inbox: inbox,
		MaxInFlight: 100, AckWaitInSecs: 30})
	m, err := nc.Request("_STAN.sub.test-cluster", req, 2*time.Second)
	must(t, err)
	sresp := &stanpb.SubscriptionResponse{}
	must(t, proto.Unmarshal(m.Data, sresp))
	if sresp.Error != "" {
		t.Fatal(sresp.Error)
	}
	time.Sleep(500 * time.Millisecond) // a few unanswered heartbeats
	pub := stanConnect(t, s, "pub")
	publishN(t, pub, "qhb", 1, 1)
	m, err = msgs.NextMsg(2 * time.Second)
	if err != nil {
		t.Fatalf("the only member, of a client missing heartbeats, got nothing: %v", err)
	}
	got := &stanpb.MsgProto{}
	must(t, proto.Unmarshal(m.Data, got))
	if got.Sequence != 1 || got.Redelivered {
		t.Fatalf("got seq %d redelivered %v, want seq 1", got.Sequence, got.Redelivered)
	}
}

// A queue group message whose ack wait expires goes to the best member at that moment
// (spec §8.3; reference: performAckExpirationRedelivery -> sendMsgToQueueGroup), here the
// member that acks, not back to the member that let it expire; that member no longer has
// it pending (an implicit ack), so it is not redelivered there again. Before the fix it
// was redelivered to the same member every ack wait, for ever.
func TestStanQueueRedeliveryGoesToBestMember(t *testing.T) {
	s := startStan(t, nil, nil)
	sc := stanConnect(t, s, "c1")
	var mu sync.Mutex
	var lazyGot []uint64
	lazy := func(m *stan.Msg) { mu.Lock(); lazyGot = append(lazyGot, m.Sequence); mu.Unlock() } // never acks
	lazySeqs := func() []uint64 { mu.Lock(); defer mu.Unlock(); return append([]uint64(nil), lazyGot...) }
	_, err := sc.QueueSubscribe("qb", "g", lazy, stan.SetManualAckMode(), stan.AckWait(time.Second))
	must(t, err)
	col := newCollector()
	_, err = sc.QueueSubscribe("qb", "g", func(m *stan.Msg) { _ = m.Ack(); col.handler(m) }, stan.SetManualAckMode(), stan.AckWait(time.Second))
	must(t, err)
	publishN(t, sc, "qb", 1, 1) // both members have nothing pending: the first (lazy) gets it
	waitFor(t, 2*time.Second, func() error {
		if got := lazySeqs(); len(got) != 1 {
			return fmt.Errorf("lazy member got %v", got)
		}
		return nil
	})
	select {
	case m := <-col.ch:
		if m.Sequence != 1 || !m.Redelivered || m.RedeliveryCount != 1 {
			t.Fatalf("acking member got seq %d redelivered %v count %d, want seq 1 redelivered count 1", m.Sequence, m.Redelivered, m.RedeliveryCount)
		}
	case <-time.After(3500 * time.Millisecond):
		t.Fatalf("seq 1 never redelivered to the acking member; lazy member got %v", lazySeqs())
	}
	time.Sleep(1500 * time.Millisecond) // past another ack wait
	if got := lazySeqs(); len(got) != 1 {
		t.Fatalf("lazy member got %v: the message stayed pending on it after it moved", got)
	}
	col.none(t, 200*time.Millisecond)
}

// A new durable refused for max_subs is forgotten (reference: processSub undoes it with
// ss.Remove(c, sub, true), which deletes it from the durables): once there is room, the
// same durable name can be created. Before the fix the refused durable stayed registered
// as online and every later attempt got "duplicate durable registration".
func TestStanDurableRefusedForMaxSubsCanBeCreatedLater(t *testing.T) {
	limits := &stores.LimitsSet{Global: stores.DefaultLimits()}
	limits.Global.MaxSubs = 1
	s := startStan(t, limits, nil)
	sc := stanConnect(t, s, "c1")
	publishN(t, sc, "ms", 1, 1) // a non-empty channel: the new durable starts past seq 1
	plain, err := sc.Subscribe("ms", func(*stan.Msg) {})
	must(t, err)
	if _, err := sc.Subscribe("ms", func(*stan.Msg) {}, stan.DurableName("d")); err == nil || err.Error() != "too many subscriptions per channel" {
		t.Fatalf("durable over max_subs: %v, want too many subscriptions per channel", err)
	}
	must(t, plain.Unsubscribe())
	col := newCollector()
	if _, err := sc.Subscribe("ms", col.handler, stan.DurableName("d")); err != nil {
		t.Fatalf("the same durable once there is room: %v", err)
	}
	publishN(t, sc, "ms", 2, 2)
	if got := col.seqs(t, 1, 2*time.Second); got[0] != 2 {
		t.Fatalf("got %v, want [2]", got)
	}
}

// A client holding both members of a durable queue group closes with a message pending on
// each. The reference moves the first leaver's pending messages to the other member with a
// redelivery due ~100 ms later (subStore.Remove), which that member, closed right after,
// never gets: it becomes the group's shadow. A member joining later gets each message
// redelivered once: RedeliveryCount 1. Before the fix the move redelivered at once to the
// member about to close, and the joiner saw RedeliveryCount 2.
func TestStanDurableQueueConnCloseRedeliveryCount(t *testing.T) {
	s := startStan(t, nil, nil)
	sc1, err := stan.Connect("test-cluster", "c1", stan.NatsURL(s.url))
	must(t, err)
	var mu sync.Mutex
	var c1Got []*stan.Msg
	h := func(m *stan.Msg) { mu.Lock(); c1Got = append(c1Got, m); mu.Unlock() }
	opts := []stan.SubscriptionOption{stan.DurableName("d"), stan.SetManualAckMode(), stan.AckWait(30 * time.Second)}
	_, err = sc1.QueueSubscribe("dqc", "g", h, opts...)
	must(t, err)
	_, err = sc1.QueueSubscribe("dqc", "g", h, opts...)
	must(t, err)
	pub := stanConnect(t, s, "pub")
	publishN(t, pub, "dqc", 1, 2) // one to each member
	waitFor(t, 3*time.Second, func() error {
		mu.Lock()
		defer mu.Unlock()
		if len(c1Got) != 2 {
			return fmt.Errorf("closing client got %d messages, want 2", len(c1Got))
		}
		return nil
	})
	must(t, sc1.Close())
	sc2 := stanConnect(t, s, "c2")
	col := newCollector()
	_, err = sc2.QueueSubscribe("dqc", "g", col.handler, opts...)
	must(t, err)
	for range 2 {
		select {
		case m := <-col.ch:
			if !m.Redelivered || m.RedeliveryCount != 1 {
				t.Errorf("joiner: seq %d redelivered %v count %d, want count 1", m.Sequence, m.Redelivered, m.RedeliveryCount)
			}
		case <-time.After(3 * time.Second):
			t.Fatal("pending messages not redelivered to the joiner")
		}
	}
}
