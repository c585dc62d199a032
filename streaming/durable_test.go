package streaming

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/starling-io/starling/core"
	"github.com/starling-io/starling/proto/stanpb"
	"github.com/starling-io/starling/raftlog"
	"github.com/starling-io/starling/stores"
	"github.com/starling-io/starling/stores/memstore"
)

// metaStore wraps the memory store so that its client records and every channel's
// messages and subscriptions split their Sync, as the durable stores do; the SyncFlushed
// of the metadata (clients, subscriptions) waits on gate.
type metaStore struct {
	stores.Store
	gate   chan error
	flushN int // metadata Flushes
}

func (s *metaStore) Flush() error { s.flushN++; return nil }
func (s *metaStore) SyncFlushed() error {
	return <-s.gate
}

type metaSubs struct {
	stores.SubStore
	st *metaStore
}

func (m *metaSubs) Flush() error       { m.st.flushN++; return nil }
func (m *metaSubs) SyncFlushed() error { return <-m.st.gate }

func (s *metaStore) CreateChannelAfter(name string, id, after uint64) (*stores.Channel, error) {
	ch, err := s.Store.CreateChannelAfter(name, id, after)
	if err == nil {
		ch.Msgs = &splitMsgs{MsgStore: ch.Msgs, st: &splitStore{}}
		ch.Subs = &metaSubs{SubStore: ch.Subs, st: s}
	}
	return ch, err
}

var (
	_ stores.SplitSyncer = (*metaStore)(nil)
	_ stores.SplitSyncer = (*metaSubs)(nil)
)

// dataBus records what the engine publishes, with the payloads, and what it subscribes to.
type dataBus struct {
	fakeBus
	mu         sync.Mutex // an engine may run on its own goroutine (raft_test.go)
	sent       []sentMsg
	subscribed []string
	holds      map[string]*busHold // Publish to the subject waits until released
}

// busHold makes Publish to one subject wait until released.
type busHold struct {
	release chan struct{}
	waiting bool
}

// hold makes the next Publish to subject wait until the returned func is called.
func (b *dataBus) hold(subject string) (release func()) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.holds == nil {
		b.holds = map[string]*busHold{}
	}
	h := &busHold{release: make(chan struct{})}
	b.holds[subject] = h
	var once sync.Once
	return func() { once.Do(func() { close(h.release) }) }
}

// held reports whether a Publish is waiting on the hold of subject.
func (b *dataBus) held(subject string) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.holds[subject] != nil && b.holds[subject].waiting
}

func (b *dataBus) Subscribe(subject, queue string, h core.MsgHandler) (Subscription, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.subscribed = append(b.subscribed, subject)
	return nil, nil
}

type sentMsg struct {
	subject string
	reply   string
	data    []byte
}

func (b *dataBus) Publish(subject, reply string, hdr, data []byte) error {
	b.mu.Lock()
	if h := b.holds[subject]; h != nil && !h.waiting {
		h.waiting = true
		b.mu.Unlock()
		<-h.release
		b.mu.Lock()
	}
	defer b.mu.Unlock()
	b.sent = append(b.sent, sentMsg{subject, reply, append([]byte(nil), data...)})
	return nil
}

func (b *dataBus) to(subject string) []sentMsg {
	var out []sentMsg
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, m := range b.sent {
		if m.subject == subject {
			out = append(out, m)
		}
	}
	return out
}

// releaseMeta lets every metadata SyncFlushed of the passes in flight return err, and
// waits until the engine completed every group.
func releaseMeta(s *Server, st *metaStore, err error) {
	done, exited := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(exited)
		for {
			select {
			case st.gate <- err:
			case <-done:
				return
			}
		}
	}()
	s.waitCommits(0)
	close(done)
	// Gone before the next commit's sync waits on the gate: else, with both cases ready, it
	// could still hand that sync this call's outcome (a flake seen under load).
	<-exited
}

func newMetaEngine(t *testing.T) (*Server, *dataBus, *metaStore) {
	t.Helper()
	mem, err := memstore.New(memstore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	st := &metaStore{Store: mem, gate: make(chan error)}
	bus := &dataBus{}
	s, err := New(bus, st, raftlog.Standalone, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.recover(); err != nil {
		t.Fatal(err)
	}
	if !s.splitMeta {
		t.Fatal("the metadata does not split its Sync")
	}
	s.started = true
	t.Cleanup(func() {
		done := make(chan struct{})
		go func() { // the final commit at stop syncs too
			for {
				select {
				case st.gate <- nil:
				case <-done:
					return
				}
			}
		}()
		s.drainCommits()
		close(done)
	})
	return s, bus, st
}

// Connect and subscribe responses wait for the commit of their records; no message is
// delivered to a subscription before its response; a failed commit answers with its
// error and undoes the subscription.
func TestRepliesWaitForTheirCommit(t *testing.T) {
	s, bus, st := newMetaEngine(t)
	s.step(op{kind: opConnect, reply: "r.conn", data: marshal(&stanpb.ConnectRequest{ClientID: "c1", HeartbeatInbox: "hb", Protocol: 1, ConnID: []byte("conn")})})
	if n := len(bus.to("r.conn")); n != 0 {
		t.Fatalf("ConnectResponse sent before its record was synced")
	}
	if st.flushN == 0 {
		t.Fatal("the client record was not flushed into a commit group")
	}
	releaseMeta(s, st, nil)
	resp := &stanpb.ConnectResponse{}
	if got := bus.to("r.conn"); len(got) != 1 || proto.Unmarshal(got[0].data, resp) != nil || resp.Error != "" {
		t.Fatalf("ConnectResponse after the commit: %v %+v", got, resp)
	}

	publish(s, 1)
	releaseMeta(s, st, nil)
	s.step(op{kind: opSubscribe, reply: "r.sub", data: marshal(&stanpb.SubscriptionRequest{ClientID: "c1", Subject: "foo", Inbox: "in",
		MaxInFlight: 10, AckWaitInSecs: 30, StartPosition: stanpb.StartPosition_First})})
	if len(bus.to("r.sub")) != 0 || len(bus.to("in")) != 0 {
		t.Fatalf("subscription answered or delivered to before its record was synced: %v", bus.sent)
	}
	releaseMeta(s, st, nil)
	sub := &stanpb.SubscriptionResponse{}
	if got := bus.to("r.sub"); len(got) != 1 || proto.Unmarshal(got[0].data, sub) != nil || sub.Error != "" {
		t.Fatalf("SubscriptionResponse: %v", got)
	}
	if len(bus.to("in")) != 1 {
		t.Fatalf("message 1 not delivered after the response: %d", len(bus.to("in")))
	}
	// The response precedes the first delivery.
	for _, m := range bus.sent {
		if m.subject == "in" {
			t.Fatal("delivery before the SubscriptionResponse")
		}
		if m.subject == "r.sub" {
			break
		}
	}

	// A failed commit: the response carries the error and the subscription is gone.
	s.step(op{kind: opSubscribe, reply: "r.sub2", data: marshal(&stanpb.SubscriptionRequest{ClientID: "c1", Subject: "foo", Inbox: "in2",
		MaxInFlight: 10, AckWaitInSecs: 30, DurableName: "d"})})
	releaseMeta(s, st, errors.New("disk on fire"))
	if got := bus.to("r.sub2"); len(got) != 1 || proto.Unmarshal(got[0].data, sub) != nil || sub.Error != "disk on fire" {
		t.Fatalf("SubscriptionResponse after a failed commit: %v %q", got, sub.Error)
	}
	for sb := range s.channels["foo"].subs {
		if sb.inbox == "in2" {
			t.Fatal("the subscription whose commit failed is still online")
		}
	}
	if !s.sm.dirty() || s.metaRetryAt.IsZero() {
		t.Fatal("the subscriptions that failed to commit are not marked for the next commit")
	}
}

// failingMsgs fails Append once failNext is set, until Rollback.
type failingMsgs struct {
	stores.MsgStore
	failNext, failed bool
	rollbacks        int
}

func (m *failingMsgs) Append(b []stores.Msg) error {
	if m.failNext || m.failed {
		m.failNext, m.failed = false, true
		return errors.New("no space left on device")
	}
	return m.MsgStore.Append(b)
}

func (m *failingMsgs) Rollback() error {
	m.rollbacks++
	m.failed = false
	return nil
}

// A channel whose store failed answers the failed batch with errors, then rolls the store
// back before its next append and goes on.
func TestBrokenChannelRollsBack(t *testing.T) {
	s, bus := newEngine(t)
	s.step(op{kind: opConnect, reply: "r", data: marshal(&stanpb.ConnectRequest{ClientID: "c1", HeartbeatInbox: "hb", Protocol: 1, ConnID: []byte("conn")})})
	publish(s, 1)
	ch := s.channels["foo"]
	fm := &failingMsgs{MsgStore: ch.store.Msgs}
	ch.store.Msgs = fm
	fm.failNext = true
	before := bus.published
	publish(s, 2)
	if !ch.broken || bus.published != before+1 {
		t.Fatalf("failed append: broken %v, published %d", ch.broken, bus.published-before)
	}
	publish(s, 3)
	if fm.rollbacks != 1 || ch.broken {
		t.Fatalf("rollbacks %d, broken %v", fm.rollbacks, ch.broken)
	}
	if got := ch.store.Msgs.State().Last; got != 2 {
		t.Fatalf("last %d after the rollback, want 2 (message 2 was refused)", got)
	}
}

// Records no reply waits for (acks here) do not cost a commit pass of their own: they
// ride the next group of publishes, or, when none comes, a group of their own once they
// waited metaDelay with nothing in flight.
func TestAckRecordsRideTheNextCommit(t *testing.T) {
	s, bus, st := newMetaEngine(t)
	s.step(op{kind: opConnect, reply: "r.conn", data: marshal(&stanpb.ConnectRequest{ClientID: "c1", HeartbeatInbox: "hb", Protocol: 1, ConnID: []byte("conn")})})
	releaseMeta(s, st, nil)
	publish(s, 1)
	releaseMeta(s, st, nil)
	s.step(op{kind: opSubscribe, reply: "r.sub", data: marshal(&stanpb.SubscriptionRequest{ClientID: "c1", Subject: "foo", Inbox: "in",
		MaxInFlight: 10, AckWaitInSecs: 30, StartPosition: stanpb.StartPosition_First, DurableName: "d"})})
	releaseMeta(s, st, nil)
	if len(bus.to("in")) != 1 {
		t.Fatalf("message 1 not delivered: %v", bus.sent)
	}
	var key ackKey
	for k := range s.byAckID {
		key = k
	}
	ack := func(seq uint64) { s.step(op{kind: opAck, ack: key, seq: seq}) }
	s.commitMeta() // the delivery's sent record: no reply waits, nothing in flight
	if s.commit.groups != 0 || s.metaC == nil {
		t.Fatalf("a sent record alone made a commit group at once (groups %d)", s.commit.groups)
	}

	// A publish comes: its group carries the waiting records, no pass of their own.
	ack(1)
	flushes := st.flushN
	publish(s, 2)
	if s.commit.groups != 1 || st.flushN == flushes {
		t.Fatalf("the publish group did not carry the ack (groups %d, flushes %d→%d)", s.commit.groups, flushes, st.flushN)
	}
	releaseMeta(s, st, nil)
	if len(bus.to("in")) != 2 {
		t.Fatalf("message 2 not delivered: %d", len(bus.to("in")))
	}

	// No publish comes: the ack of message 2 waits metaDelay, then commits alone.
	ack(2)
	if s.commit.groups != 0 {
		t.Fatal("an ack alone made a commit group at once")
	}
	select {
	case <-s.metaC:
		s.metaC = nil
	case <-time.After(time.Second):
		t.Fatal("no wake-up after metaDelay")
	}
	s.commitMeta()
	if s.commit.groups != 1 {
		t.Fatalf("the ack was not committed once due (groups %d)", s.commit.groups)
	}
	releaseMeta(s, st, nil)
	if s.metaPending() {
		t.Fatal("records still pending after their own group committed")
	}
}

// parseAckKey reads a random token without scanning and still tells a legacy counter
// whose subject happens to have a dot 23 bytes from its end.
func TestParseAckKey(t *testing.T) {
	k := newAckKey()
	if got, ok := parseAckKey([]byte("_STAN.acks.abc." + k.token())); !ok || got != k {
		t.Fatalf("random token: %q %v", got, ok)
	}
	subj := []byte("_STAN.acks.0123456789x.abcdefghij") // legacy "abcdefghij"; a dot 23 bytes from the end
	if subj[len(subj)-ackTokenLen-1] != '.' {
		t.Fatal("test subject: no dot where the fast path looks")
	}
	if got, ok := parseAckKey(subj); !ok || got != legacyAckKey([]byte("abcdefghij")) {
		t.Fatalf("legacy token: %q %v", got, ok)
	}
	if _, ok := parseAckKey([]byte("_STAN.acks.")); ok {
		t.Fatal("empty token accepted")
	}
}

// countHandler counts log records by message.
type countHandler struct {
	mu sync.Mutex
	n  map[string]int
}

func (h *countHandler) Enabled(context.Context, slog.Level) bool { return true }
func (h *countHandler) Handle(_ context.Context, r slog.Record) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.n[r.Message]++
	return nil
}
func (h *countHandler) WithAttrs([]slog.Attr) slog.Handler { return h }
func (h *countHandler) WithGroup(string) slog.Handler      { return h }

// TestRefusedPublishesLogOnce: a client sending a flood of publishes that are refused (too
// large to deliver) gets an error PubAck for each, and the log one line per 10 s, with the
// count since — it cannot flood the log.
func TestRefusedPublishesLogOnce(t *testing.T) {
	h := &countHandler{n: map[string]int{}}
	store := newMemStore(t)
	bus := &dataBus{}
	s, err := New(bus, store, raftlog.Standalone, Options{Logger: slog.New(h)})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.recover(); err != nil {
		t.Fatal(err)
	}
	s.step(op{kind: opConnect, reply: "r", from: 1, data: marshal(&stanpb.ConnectRequest{ClientID: "c1", HeartbeatInbox: "hb", Protocol: 1, ConnID: []byte("x")})})
	big := marshal(&stanpb.PubMsg{ClientID: "c1", Guid: "g", Subject: "foo", Data: make([]byte, 1<<20), ConnID: []byte("x")})
	for range 50 {
		s.step(op{kind: opPublish, reply: "ack", from: 1, data: big})
	}
	if n := len(bus.to("ack")); n != 50 {
		t.Fatalf("%d PubAcks for 50 refused publishes", n)
	}
	if n := h.n["publish refused"]; n != 1 {
		t.Fatalf("%d log lines for 50 refused publishes, want 1", n)
	}
}

// A failed metadata commit is tried again metaRetryWait later on its own. Before, it was
// tried only when something else woke the engine (at worst the next heartbeat tick, 30 s).
func TestFailedMetadataIsRetriedUnasked(t *testing.T) {
	mem, err := memstore.New(memstore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	st := &metaStore{Store: mem, gate: make(chan error)}
	bus := &dataBus{}
	s, err := New(bus, st, raftlog.Standalone, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		done := make(chan struct{})
		go func() {
			for {
				select {
				case st.gate <- nil:
				case <-done:
					return
				}
			}
		}()
		_ = s.Shutdown()
		close(done)
	})
	// answer feeds err to every metadata sync until a reply to subject is sent.
	answer := func(subject string, err error) {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for len(bus.to(subject)) == 0 {
			if time.Now().After(deadline) {
				t.Fatalf("no reply to %s", subject)
			}
			select {
			case st.gate <- err:
			case <-time.After(20 * time.Millisecond):
			}
		}
	}
	s.push(op{kind: opConnect, reply: "r.conn", data: marshal(&stanpb.ConnectRequest{ClientID: "c1", HeartbeatInbox: "hb", Protocol: 1, ConnID: []byte("conn")})})
	answer("r.conn", nil)
	s.push(op{kind: opSubscribe, reply: "r.sub", data: marshal(&stanpb.SubscriptionRequest{ClientID: "c1", Subject: "foo", Inbox: "in",
		MaxInFlight: 10, AckWaitInSecs: 30, DurableName: "d"})})
	answer("r.sub", errors.New("disk on fire"))
	failed := time.Now()
	select {
	case st.gate <- nil:
	case <-time.After(5 * time.Second):
		t.Fatal("the records whose commit failed were not tried again")
	}
	if waited := time.Since(failed); waited < metaRetryWait/2 {
		t.Fatalf("tried again after %v: a full disk would spin the engine", waited)
	}
	waitUntil(t, "the retried records are committed", func() bool {
		s.runMu.Lock()
		defer s.runMu.Unlock()
		return !s.sm.dirty()
	})
}

// flushFailStore's metadata Flush fails while fail is set (a full disk at write time); its
// SyncFlushed succeeds.
type flushFailStore struct {
	stores.Store
	fail    atomic.Bool
	flushes atomic.Int64
}

func (s *flushFailStore) Flush() error {
	s.flushes.Add(1)
	if s.fail.Load() {
		return errors.New("no space left on device")
	}
	return nil
}
func (s *flushFailStore) SyncFlushed() error { return nil }

type flushFailSubs struct {
	stores.SubStore
	st *flushFailStore
}

func (m *flushFailSubs) Flush() error       { return m.st.Flush() }
func (m *flushFailSubs) SyncFlushed() error { return nil }

func (s *flushFailStore) CreateChannelAfter(name string, id, after uint64) (*stores.Channel, error) {
	ch, err := s.Store.CreateChannelAfter(name, id, after)
	if err == nil {
		ch.Msgs = &splitMsgs{MsgStore: ch.Msgs, st: &splitStore{}}
		ch.Subs = &flushFailSubs{SubStore: ch.Subs, st: s}
	}
	return ch, err
}

// A metadata Flush that fails completes its group inside commitMeta, after the timer was
// disarmed: the retry is still armed, and the records are committed once the disk has
// room again. Before, they waited for the next request or heartbeat tick.
func TestFailedMetadataFlushIsRetriedUnasked(t *testing.T) {
	mem, err := memstore.New(memstore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	st := &flushFailStore{Store: mem}
	bus := &dataBus{}
	s, err := New(bus, st, raftlog.Standalone, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.fail.Store(false); _ = s.Shutdown() })
	s.push(op{kind: opConnect, reply: "r.conn", data: marshal(&stanpb.ConnectRequest{ClientID: "c1", HeartbeatInbox: "hb", Protocol: 1, ConnID: []byte("conn")})})
	waitUntil(t, "the connect response", func() bool { return len(bus.to("r.conn")) > 0 })
	st.fail.Store(true)
	s.push(op{kind: opSubscribe, reply: "r.sub", data: marshal(&stanpb.SubscriptionRequest{ClientID: "c1", Subject: "foo", Inbox: "in",
		MaxInFlight: 10, AckWaitInSecs: 30, DurableName: "d"})})
	waitUntil(t, "the subscription's error response", func() bool { return len(bus.to("r.sub")) > 0 })
	st.fail.Store(false)
	waitUntil(t, "the failed records are committed", func() bool {
		s.runMu.Lock()
		defer s.runMu.Unlock()
		return !s.sm.dirty()
	})
}
