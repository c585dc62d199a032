package streaming

import (
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/starling-io/starling/core"
	"github.com/starling-io/starling/proto/stanpb"
	"github.com/starling-io/starling/raftlog"
	"github.com/starling-io/starling/stores"
	"github.com/starling-io/starling/stores/filestore"
	"github.com/starling-io/starling/stores/memstore"
)

// readerBus is a Bus whose test plays a client's read goroutine: it delivers requests
// with Msg.Batched set and then calls the subscription's end, as core does at the end of
// a read buffer.
type readerBus struct {
	fakeBus
	mu       sync.Mutex
	handlers map[string]core.MsgHandler
	ends     map[string]func(func() bool)
	busy     bool     // deliver reports more input waiting (not idle)
	sent     []string // subjects published, in order
	inPlace  int      // FlushInPlace calls
	reader   uint64   // the goroutine running deliver, 0 outside it
	offRead  int      // FlushInPlace calls from any other goroutine (the engine's)
}

func newReaderBus() *readerBus {
	return &readerBus{fakeBus: fakeBus{alive: true}, handlers: map[string]core.MsgHandler{}, ends: map[string]func(func() bool){}}
}

func (b *readerBus) SubscribeBatch(subject, _ string, h core.MsgHandler, end func(func() bool)) (Subscription, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.handlers[subject], b.ends[subject] = h, end
	return nopSub{}, nil
}

func (b *readerBus) Publish(subject, _ string, _, _ []byte) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.sent = append(b.sent, subject)
	return nil
}

func (b *readerBus) FlushInPlace() {
	g := goid()
	b.mu.Lock()
	if g == b.reader {
		b.inPlace++
	} else {
		b.offRead++
	}
	b.mu.Unlock()
}

// offReaderCalls is how many FlushInPlace calls came from a goroutine other than a
// deliver's (the engine's own).
func (b *readerBus) offReaderCalls() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.offRead
}

// goid is the calling goroutine's id, from its stack trace's first line.
func goid() uint64 {
	var buf [64]byte
	s := strings.TrimPrefix(string(buf[:runtime.Stack(buf[:], false)]), "goroutine ")
	id, _ := strconv.ParseUint(s[:strings.IndexByte(s, ' ')], 10, 64)
	return id
}

func (b *readerBus) has(subject string) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return slices.Contains(b.sent, subject)
}

// inPlaceCalls is how many FlushInPlace calls a deliver's goroutine made (an inline
// iteration's).
func (b *readerBus) inPlaceCalls() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.inPlace
}

// deliver hands the requests to the handler subscribed to subject (or to its prefix's
// ".>") as one read buffer, then runs its end.
func (b *readerBus) deliver(subject string, reqs ...core.Msg) {
	b.mu.Lock()
	b.reader = goid()
	defer func() {
		b.mu.Lock()
		b.reader = 0
		b.mu.Unlock()
	}()
	h, end := b.handlers[subject], b.ends[subject]
	if h == nil {
		key := subject[:strings.LastIndexByte(subject, '.')] + ".>"
		h, end = b.handlers[key], b.ends[key]
	}
	b.mu.Unlock()
	for _, m := range reqs {
		m.Subject, m.From, m.Batched = []byte(subject), 1, true
		h(m)
	}
	end(func() bool { return !b.busy })
}

type nopSub struct{}

func (nopSub) Unsubscribe() error { return nil }

func startOn(t *testing.T, bus Bus, store stores.Store) *Server {
	t.Helper()
	s, err := New(bus, store, raftlog.Standalone, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Shutdown() })
	quiesce(t, s) // the log's first leadership report runs an iteration of the engine's own
	return s
}

// connectC1 connects client c1 through bus, as its read goroutine would ("r.conn").
func connectC1(bus *readerBus, s *Server) {
	bus.deliver(s.discover, request("r.conn", &stanpb.ConnectRequest{ClientID: "c1", HeartbeatInbox: "hb", Protocol: 1, ConnID: []byte("conn")}))
}

// subscribeFoo subscribes c1 to foo, new messages only, on inbox "in" ("r.sub").
func subscribeFoo(bus *readerBus, s *Server, maxInFlight, ackWaitSecs int32) {
	bus.deliver(s.subReq, request("r.sub", &stanpb.SubscriptionRequest{ClientID: "c1", Subject: "foo", Inbox: "in",
		MaxInFlight: maxInFlight, AckWaitInSecs: ackWaitSecs, StartPosition: stanpb.StartPosition_NewOnly}))
}

func request(reply string, m any) core.Msg {
	return core.Msg{Reply: []byte(reply), Data: marshalAny(m)}
}

// startOnMemory is startOn a readerBus and a memory store.
func startOnMemory(t *testing.T) (*readerBus, *Server) {
	t.Helper()
	store, err := memstore.New(memstore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	bus := newReaderBus()
	return bus, startOn(t, bus, store)
}

// startOnFile is startOnMemory on a file store (default options): a store that splits
// its Sync.
func startOnFile(t *testing.T) (*readerBus, *Server) {
	t.Helper()
	store, err := filestore.Open(t.TempDir(), filestore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	bus := newReaderBus()
	return bus, startOn(t, bus, store)
}

func pubReq(reply, guid string) core.Msg {
	return request(reply, &stanpb.PubMsg{ClientID: "c1", Guid: guid, Subject: "foo", Data: []byte("hi"), ConnID: []byte("conn")})
}

// An idle engine runs a client's requests on the client's read goroutine: the connect
// response and the PubAck are sent before end returns, through the in-place flush. With
// the engine busy, or more requests queued than a latency-bound exchange has, end only
// wakes the engine, whose goroutine answers them.
func TestIdleEngineRunsOnTheReadersGoroutine(t *testing.T) {
	bus, s := startOnMemory(t)

	connectC1(bus, s)
	if !bus.has("r.conn") {
		t.Fatal("the connect response was not sent on the reader's goroutine")
	}
	quiesce(t, s)
	flushes := bus.inPlaceCalls()
	bus.deliver(s.pubPrefix+".foo", pubReq("r.ack1", "g1"))
	if !bus.has("r.ack1") || bus.inPlaceCalls() == flushes {
		t.Fatal("the PubAck was not sent, in place, on the reader's goroutine")
	}

	// The engine busy (its goroutine holds runMu): end wakes it instead.
	s.runMu.Lock()
	bus.deliver(s.pubPrefix+".foo", pubReq("r.ack2", "g2"))
	if bus.has("r.ack2") {
		s.runMu.Unlock()
		t.Fatal("a PubAck was sent while the engine was busy")
	}
	s.runMu.Unlock()
	waitUntil(t, "the engine's goroutine answers the queued publish", func() bool { return bus.has("r.ack2") })

	// A run longer than syncedInlineMax is the engine goroutine's work.
	quiesce(t, s)
	flushes = bus.inPlaceCalls()
	bus.deliver(s.pubPrefix+".foo", burst("r.burst", syncedInlineMax+1)...)
	waitUntil(t, "the burst's PubAcks", func() bool { return bus.count("r.burst") == syncedInlineMax+1 })
	if got := bus.inPlaceCalls(); got != flushes {
		t.Fatalf("the burst was flushed in place %d times: it ran on the reader's goroutine", got-flushes)
	}
}

// burst is n publishes of one client, all answered to reply.
func burst(reply string, n int) []core.Msg {
	reqs := make([]core.Msg, n)
	for i := range reqs {
		reqs[i] = pubReq(reply, "b"+strconv.Itoa(i))
	}
	return reqs
}

// Where every commit group completes as it is made (the memory store, standalone), an idle
// engine runs an async publisher's whole read buffer on the reader — a run longer than
// inlineMax too: there is no fsync or log round for the engine's goroutine to overlap, and
// handing the run over cost a goroutine hand-off per read buffer. A store that splits its
// Sync leaves such a run to the engine's goroutine, which batches it beside the committer.
func TestIdleMemoryEngineRunsAReadBufferInline(t *testing.T) {
	bus, s := startOnMemory(t)
	connectC1(bus, s)
	quiesce(t, s)
	flushes := bus.inPlaceCalls()
	bus.deliver(s.pubPrefix+".foo", burst("r.burst", 64)...)
	if n := bus.count("r.burst"); n != 64 || bus.inPlaceCalls() == flushes {
		t.Fatalf("%d of 64 PubAcks sent on the reader's goroutine (in-place flushes %d → %d)", n, flushes, bus.inPlaceCalls())
	}

	fbus, fs := startOnFile(t)
	connectC1(fbus, fs)
	quiesce(t, fs)
	flushes = fbus.inPlaceCalls()
	fbus.deliver(fs.pubPrefix+".foo", burst("r.burst", inlineMax+1)...)
	waitUntil(t, "the file store's burst PubAcks", func() bool { return fbus.count("r.burst") == inlineMax+1 })
	if got := fbus.inPlaceCalls(); got != flushes {
		t.Fatalf("the file store's burst was flushed in place %d times: it ran on the reader's goroutine", got-flushes)
	}
}

// The engine's goroutine flushes its batch's output as an inline iteration does: a few
// small replies (an async publisher's PubAcks) leave in one non-blocking write each from
// there, rather than waking each client's writer (core.Conn.FlushInPlace decides what is
// small). Before, it called Flush, a wake-up of the publisher's writer for every batch.
func TestEngineGoroutineFlushesInPlace(t *testing.T) {
	bus, s := startOnMemory(t)
	connectC1(bus, s)
	quiesce(t, s)

	before := bus.offReaderCalls()
	s.runMu.Lock() // busy: the reader only queues, the engine's goroutine answers
	bus.deliver(s.pubPrefix+".foo", pubReq("r.ack", "g1"))
	s.runMu.Unlock()
	waitUntil(t, "the engine's goroutine answers the publish", func() bool { return bus.has("r.ack") })
	quiesce(t, s)
	if bus.offReaderCalls() == before {
		t.Fatal("the engine's goroutine did not flush its PubAck in place")
	}
}

// With a store that splits its Sync, an idle engine's reader also runs the fsync pass
// (outside runMu) and the completion: the PubAck and the delivery leave before end
// returns. With a pass already running, the committer's goroutine does the next one and
// completes a small pass itself, in place. The delivery's sent record then waits for the
// metadata timer an inline iteration armed: the engine's goroutine, idle all along, must be
// told to wait on it, or the record would never be committed.
func TestCommitterCompletesASmallPass(t *testing.T) {
	bus, s := startOnFile(t)

	connectC1(bus, s)
	quiesce(t, s)
	subscribeFoo(bus, s, 8, 30)
	if !bus.has("r.conn") || !bus.has("r.sub") {
		t.Fatal("the connect and subscription responses were not sent on the reader's goroutine")
	}
	quiesce(t, s)
	bus.deliver(s.pubPrefix+".foo", pubReq("r.ack1", "g1"))
	if !bus.has("r.ack1") || !bus.has("in") {
		t.Fatal("the PubAck and the delivery were not sent on the reader's goroutine")
	}
	waitUntil(t, "the delivery's sent record is committed", func() bool {
		s.runMu.Lock()
		defer s.runMu.Unlock()
		return !s.metaPending()
	})
	quiesce(t, s) // that commit's group completes on the engine's goroutine

	// A pass running: the reader leaves its group to the committer's goroutine.
	s.runMu.Lock()
	completes := s.inlineDone
	s.runMu.Unlock()
	s.commit.passMu.Lock()
	bus.deliver(s.pubPrefix+".foo", pubReq("r.ack2", "g2"))
	if bus.has("r.ack2") {
		s.commit.passMu.Unlock()
		t.Fatal("a PubAck was sent before its fsync")
	}
	s.commit.passMu.Unlock()
	waitUntil(t, "the committer's goroutine completes the publish", func() bool { return bus.has("r.ack2") })
	// Counted, not told by FlushInPlace calls off the reader: the engine's goroutine makes
	// those too.
	s.runMu.Lock()
	done := s.inlineDone - completes
	s.runMu.Unlock()
	if done == 0 {
		t.Fatal("the committer's goroutine did not complete the small pass in place")
	}
}

// A client with more input already waiting (an async publisher) is not held for the fsync
// of what its last read buffer published: its reader goes back to reading while the
// committer's goroutine syncs, so publishes in flight keep being grouped.
func TestBusyClientIsNotHeldForAnFsync(t *testing.T) {
	gate := make(chan struct{})
	var armed atomic.Bool
	store, err := filestore.Open(t.TempDir(), filestore.Options{Hooks: filestore.Hooks{
		BeforeSync: func(string) error {
			if armed.Load() {
				<-gate
			}
			return nil
		},
	}})
	if err != nil {
		t.Fatal(err)
	}
	bus := newReaderBus()
	s := startOn(t, bus, store)
	connectC1(bus, s)
	quiesce(t, s)
	bus.deliver(s.pubPrefix+".foo", pubReq("r.ack1", "g1")) // creates the channel (its own fsyncs)
	if !bus.has("r.ack1") {
		t.Fatal("no PubAck from an idle client's reader")
	}

	bus.busy = true
	armed.Store(true)
	returned := make(chan struct{})
	go func() {
		bus.deliver(s.pubPrefix+".foo", pubReq("r.ack", "g2"))
		close(returned)
	}()
	select {
	case <-returned:
	case <-time.After(5 * time.Second):
		close(gate)
		t.Fatal("the reader of a busy client waited for the fsync")
	}
	if bus.has("r.ack") {
		t.Fatal("a PubAck was sent before its fsync")
	}
	close(gate)
	waitUntil(t, "the PubAck after the committer's fsync", func() bool { return bus.has("r.ack") })
}

// quiesce waits until nothing else may hold the engine, twice in a row 5 ms apart: no
// leadership report pending, no op queued, no commit group in flight, no pass running, no
// wake-up pending for the engine's goroutine or the committer's. Any of them would make
// the next request's end find the engine busy, and the request answered later, correctly
// but not on the reader's goroutine.
func quiesce(t *testing.T, s *Server) {
	t.Helper()
	c := s.commit
	settled := func() bool {
		if !s.runMu.TryLock() {
			return false
		}
		defer s.runMu.Unlock()
		if !c.passMu.TryLock() {
			return false
		}
		defer c.passMu.Unlock()
		return len(s.rlog.Leadership()) == 0 && s.q.Len() == 0 && c.groups == 0 &&
			len(s.kick) == 0 && len(c.wake) == 0 && len(c.ready) == 0
	}
	streak := 0
	waitUntil(t, "the engine to settle", func() bool {
		if settled() {
			streak++
		} else {
			streak = 0
		}
		return streak >= 2
	})
}

// The metadata timer commits the records it was armed for whenever it fires, whatever the
// clocks say: here the deadline is moved past the timer's, as a deadline read a moment
// after the timer was set (a goroutine preempted between the two) lies past it. Before,
// the engine found the records not yet due and waited for the next unrelated wake-up
// (a stress run of TestCommitterCompletesASmallPass saw it wait over 10 s).
func TestMetadataTimerCommitsWhenItFires(t *testing.T) {
	bus, s := startOnFile(t)
	connectC1(bus, s)
	quiesce(t, s)
	subscribeFoo(bus, s, 1024, 30)
	quiesce(t, s)

	caught := 0
	for i := 0; i < 50 && caught < 3; i++ {
		bus.deliver(s.pubPrefix+".foo", pubReq("r.ack", "g"+string(rune('a'+i))))
		// The delivery's sent record waits for the timer armed by the inline iteration.
		s.runMu.Lock()
		armed := s.metaC != nil && !s.metaAt.IsZero() && !s.metaFired
		if armed {
			s.metaAt = s.metaAt.Add(time.Hour)
			caught++
		}
		s.runMu.Unlock()
		waitUntil(t, "the delivery's sent record is committed", func() bool {
			s.runMu.Lock()
			defer s.runMu.Unlock()
			return !s.metaPending()
		})
		quiesce(t, s)
	}
	if caught == 0 {
		t.Fatal("the timer was never caught armed")
	}
}

func (b *readerBus) count(subject string) int {
	b.mu.Lock()
	defer b.mu.Unlock()
	n := 0
	for _, s := range b.sent {
		if s == subject {
			n++
		}
	}
	return n
}

// A timer that fires while the engine's queue is full still gets its op through: the
// ack-wait redelivery comes once the engine drains. Before, the op was refused like a
// publish, the subscription's timer mark stayed set, and it was never redelivered to.
func TestTimerOpsPassAFullQueue(t *testing.T) {
	store, err := memstore.New(memstore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	bus := newReaderBus()
	s, err := New(bus, store, raftlog.Standalone, Options{QueueLimit: 4})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Shutdown() })
	quiesce(t, s)
	connectC1(bus, s)
	quiesce(t, s)
	subscribeFoo(bus, s, 10, 1)
	quiesce(t, s)
	bus.deliver(s.pubPrefix+".foo", pubReq("r.ack", "g1"))
	waitUntil(t, "the first delivery", func() bool { return bus.count("in") == 1 })

	s.runMu.Lock() // the engine is busy, and its queue full, when the ack wait ends
	for s.q.Push(op{kind: opRetrySends}) == nil {
	}
	time.Sleep(1300 * time.Millisecond)
	s.runMu.Unlock()
	waitUntil(t, "the redelivery", func() bool { return bus.count("in") >= 2 })
}
