package streaming

import (
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/starling-io/starling/proto/stanpb"
	"github.com/starling-io/starling/raftlog"
	"github.com/starling-io/starling/stores"
	"github.com/starling-io/starling/stores/boltstore"
	"github.com/starling-io/starling/stores/filestore"
	"github.com/starling-io/starling/stores/memstore"
)

// splitStore wraps the memory store so that its channels split their Sync
// (stores.SplitSyncer), as the file store's do; SyncFlushed waits on gate when set.
type splitStore struct {
	stores.Store
	gate    chan error    // each SyncFlushed takes one value and returns it
	entered chan struct{} // if set, each SyncFlushed signals it (without blocking) first
}

type splitMsgs struct {
	stores.MsgStore
	st *splitStore
}

func (m *splitMsgs) Flush() error { return nil }
func (m *splitMsgs) SyncFlushed() error {
	if m.st.gate == nil {
		return nil
	}
	select {
	case m.st.entered <- struct{}{}:
	default:
	}
	return <-m.st.gate
}

func (s *splitStore) CreateChannelAfter(name string, id, after uint64) (*stores.Channel, error) {
	ch, err := s.Store.CreateChannelAfter(name, id, after)
	if err == nil {
		ch.Msgs = &splitMsgs{MsgStore: ch.Msgs, st: s}
	}
	return ch, err
}

// recBus records what the engine publishes, by subject.
type recBus struct {
	fakeBus
	subjects []string
}

func (b *recBus) Publish(subject, reply string, hdr, data []byte) error {
	b.subjects = append(b.subjects, subject)
	return nil
}

func (b *recBus) count(prefix string) int {
	n := 0
	for _, s := range b.subjects {
		if strings.HasPrefix(s, prefix) {
			n++
		}
	}
	return n
}

var _ Bus = (*recBus)(nil)

// newPipelinedEngine is newEngine over a store whose channels split their Sync, with the
// pipelined commit on (as after Start). Connected client c1 and a subscriber on foo
// (inbox "in") are set up.
func newPipelinedEngine(t testing.TB, gate chan error) (*Server, *recBus, ackKey) {
	t.Helper()
	mem, err := memstore.New(memstore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	bus := &recBus{}
	s, err := New(bus, &splitStore{Store: mem, gate: gate}, raftlog.Standalone, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.recover(); err != nil {
		t.Fatal(err)
	}
	s.started = true
	t.Cleanup(func() {
		if gate != nil {
			close(gate)
		}
		s.drainCommits()
	})
	s.step(op{kind: opConnect, reply: "r", data: marshal(&stanpb.ConnectRequest{ClientID: "c1", HeartbeatInbox: "hb", Protocol: 1, ConnID: []byte("conn")})})
	s.step(op{kind: opPublish, reply: "ack.0", data: marshal(&stanpb.PubMsg{ClientID: "c1", Guid: "g0", Subject: "foo", Data: []byte("x"), ConnID: []byte("conn")})})
	if gate != nil {
		gate <- nil
	}
	s.waitCommits(0)
	s.step(op{kind: opSubscribe, reply: "r", data: marshal(&stanpb.SubscriptionRequest{ClientID: "c1", Subject: "foo", Inbox: "in",
		MaxInFlight: 1 << 20, AckWaitInSecs: 30, StartPosition: stanpb.StartPosition_First})})
	var ackID ackKey
	for id := range s.byAckID {
		ackID = id
	}
	if bus.count("ack.") != 1 || bus.count("in") != 1 {
		t.Fatalf("setup: published %q", bus.subjects)
	}
	return s, bus, ackID
}

func publish(s *Server, i int) { publishData(s, i, []byte("x")) }

// publishData is publish with a payload of the caller's.
func publishData(s *Server, i int, data []byte) {
	s.step(op{kind: opPublish, reply: fmt.Sprintf("ack.%d", i),
		data: marshal(&stanpb.PubMsg{ClientID: "c1", Guid: fmt.Sprint("g", i), Subject: "foo", Data: data, ConnID: []byte("conn")})})
}

// While a batch's fsync runs, the engine goes on (appends the next batch, processes
// requests) but neither acknowledges nor delivers it; when the fsync returns, the batch
// is delivered and its PubAcks sent in order. A failed fsync answers with errors and
// delivers nothing.
func TestPipelinedCommit(t *testing.T) {
	gate := make(chan error)
	s, bus, _ := newPipelinedEngine(t, gate)
	publish(s, 1)
	publish(s, 2) // a second batch while the first one's fsync is held
	if got := s.channels["foo"].store.Msgs.State().Last; got != 3 {
		t.Fatalf("appended up to %d, want 3", got)
	}
	if bus.count("ack.") != 1 || bus.count("in") != 1 {
		t.Fatalf("before the fsync: published %q", bus.subjects)
	}
	// Let the fsyncs through: one pass may cover both batches, or the second one (flushed
	// after the first one's SyncFlushed began) may need its own.
	stop, stopped := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(stopped)
		for {
			select {
			case gate <- nil:
			case <-stop:
				return
			}
		}
	}()
	s.waitCommits(0)
	close(stop)
	<-stopped
	if got := bus.subjects[len(bus.subjects)-4:]; fmt.Sprint(got) != "[in ack.1 in ack.2]" {
		t.Fatalf("after the fsync: %q", got)
	}
	if ch := s.channels["foo"]; ch.synced != 3 {
		t.Fatalf("synced %d", ch.synced)
	}

	publish(s, 3)
	gate <- errors.New("disk on fire")
	s.waitCommits(0)
	if got := bus.subjects[len(bus.subjects)-1]; got != "ack.3" || bus.count("in") != 3 {
		t.Fatalf("after a failed fsync: %q", bus.subjects)
	}
	if ch := s.channels["foo"]; ch.synced != 3 {
		t.Fatalf("synced %d after a failed fsync", ch.synced)
	}
}

// The pipelined path allocates nothing per message in steady state.
func BenchmarkPublishDeliverPipelined(b *testing.B) {
	s, bus, ackID := newPipelinedEngine(b, nil)
	pub := marshal(&stanpb.PubMsg{ClientID: "c1", Guid: "0123456789012345678901", Subject: "foo", Data: make([]byte, 16), ConnID: []byte("conn")})
	bus.subjects = make([]string, 0, 1024)
	reply := []byte("_STAN.acks.x")
	b.SetBytes(16)
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		o := s.pubBufs.publishOp(reply, pub, 0) // the handler's copy
		s.queuePublish(&o)
		s.flushPublishes()
		s.waitCommits(0)
		a := op{kind: opAck, ack: ackID, seq: uint64(i + 2)}
		s.processAck(&a)
		if i%64 == 63 {
			s.flushSentAcks()
		}
		if len(bus.subjects) > 512 {
			bus.subjects = bus.subjects[:0]
		}
	}
}

// TestLatencyHistograms: every PubAck is counted once in the PubAck latency histogram (with
// the time its group waited for its fsync), and each pass of fsyncs once in the store sync
// histogram; the buckets are cumulative.
func TestLatencyHistograms(t *testing.T) {
	gate := make(chan error)
	s, bus, _ := newPipelinedEngine(t, gate) // one publish acknowledged during setup
	entered := make(chan struct{}, 64)
	s.store.(*splitStore).entered = entered
	for i := 2; i <= 6; i++ {
		publish(s, i)
	}
	done, exited := make(chan struct{}), make(chan struct{})
	go func() { // however the committer splits the groups into passes
		defer close(exited)
		for {
			select {
			case <-entered:
				time.Sleep(3 * time.Millisecond) // every fsync takes a while
				gate <- nil
			case <-done:
				return
			}
		}
	}()
	s.waitCommits(0)
	close(done)
	<-exited
	if n := bus.count("ack."); n != 6 {
		t.Fatalf("%d PubAcks, want 6", n)
	}
	l := s.Latencies()
	if l.PubAck.Count != 6 || l.PubAck.Sum < 5*0.003 {
		t.Fatalf("PubAck histogram: count %d sum %.4fs, want 6 PubAcks, 5 of them ≥ 3 ms", l.PubAck.Count, l.PubAck.Sum)
	}
	if l.StoreSync.Count < 2 || l.StoreSync.Sum < 0.003 {
		t.Fatalf("store sync histogram: count %d sum %.4fs, want the setup's pass and one ≥ 3 ms", l.StoreSync.Count, l.StoreSync.Sum)
	}
	for _, h := range []Histogram{l.PubAck, l.StoreSync} {
		for i := 1; i < len(h.Cumulative); i++ {
			if h.Cumulative[i] < h.Cumulative[i-1] || h.Cumulative[i] > h.Count {
				t.Fatalf("buckets not cumulative: %v of %d", h.Cumulative, h.Count)
			}
		}
	}
}

// TestPassSyncsChannelsSideBySide: a pass fsyncs the channels its groups touched side by
// side, not one after the other (each is a file of its own; a new channel's first commit
// fsyncs its directory too). Before, the second SyncFlushed began only once the first
// returned: one of four entered.
func TestPassSyncsChannelsSideBySide(t *testing.T) {
	mem, err := memstore.New(memstore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	st := &splitStore{Store: mem, gate: make(chan error), entered: make(chan struct{}, 8)}
	bus := &recBus{}
	s, err := New(bus, st, raftlog.Standalone, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.recover(); err != nil {
		t.Fatal(err)
	}
	s.started = true
	t.Cleanup(func() {
		close(st.gate)
		s.drainCommits()
	})
	s.step(op{kind: opConnect, reply: "r", data: marshal(&stanpb.ConnectRequest{ClientID: "c1", HeartbeatInbox: "hb", Protocol: 1, ConnID: []byte("conn")})})
	var batch []op
	for i := range 4 {
		batch = append(batch, op{kind: opPublish, reply: fmt.Sprint("ack.", i), data: marshal(&stanpb.PubMsg{ClientID: "c1",
			Guid: fmt.Sprint("g", i), Subject: fmt.Sprint("c", i), Data: []byte("x"), ConnID: []byte("conn")})})
	}
	s.runMu.Lock()
	s.iterate(batch)
	s.runMu.Unlock()
	deadline := time.After(5 * time.Second)
	for n := 0; n < 4; n++ {
		select {
		case <-st.entered:
		case <-deadline:
			t.Fatalf("%d of the 4 channels' SyncFlushed running at once", n)
		}
	}
	for range 4 {
		st.gate <- nil
	}
	s.waitCommits(0)
	if n := bus.count("ack."); n != 4 {
		t.Fatalf("%d PubAcks, want 4", n)
	}
}

// publishGroup publishes n messages (GUIDs from first on) as one batch: one commit group.
func publishGroup(s *Server, first, n int) {
	for i := first; i < first+n; i++ {
		o := op{kind: opPublish, reply: fmt.Sprintf("ack.%d", i),
			data: marshal(&stanpb.PubMsg{ClientID: "c1", Guid: fmt.Sprint("g", i), Subject: "foo", Data: []byte("x"), ConnID: []byte("conn")})}
		s.queuePublish(&o)
	}
	s.flushPublishes()
}

// coalesceAsBolt turns coalescing on, as over the bolt store (stores.CommitCoalescer), with
// a wait bounded at an hour rather than by pass durations. The committer goroutine runs
// already: under mu, which it reads them under.
func coalesceAsBolt(c *committer) {
	c.mu.Lock()
	c.coalesceOff, c.waitBound = false, time.Hour
	c.mu.Unlock()
}

// passCount is the number of passes that ran fsyncs.
func passCount(c *committer) int { return int(c.syncLatency.snapshot().Count) }

// passesRun waits until the committer has run n passes of fsyncs (a wait, not a timed
// assertion: the test fails only if it never happens).
func passesRun(t *testing.T, c *committer, n int) {
	t.Helper()
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(time.Millisecond) {
		got := passCount(c)
		if got >= n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d passes, want %d", got, n)
		}
	}
}

// A publisher with a window of acks in flight (stan.go's MaxPubAcksInflight) left the
// pipeline at two passes sharing the window, each covering about half of it. Once the
// committer has seen the window (a pass of 100 plus 100 queued while it ran), the next pass
// waits until the queue holds nearly all of it, and then covers it in one commit; an engine
// that waits for its commits (waitCommits) is never kept waiting.
func TestPassCoalescesWindow(t *testing.T) {
	gate := make(chan error)
	s, bus, _ := newPipelinedEngine(t, gate)
	entered := make(chan struct{}, 64)
	s.store.(*splitStore).entered = entered
	c := s.commit
	coalesceAsBolt(c)  // no deadline: only the window or the engine start a pass
	passesRun(t, c, 1) // the setup's publish

	publishGroup(s, 1, 100)
	<-entered // pass 2 holds the first 100 ...
	publishGroup(s, 101, 100)
	gate <- nil // ... while 100 more queued: a window of 200
	passesRun(t, c, 2)
	select {
	case <-entered:
		t.Fatal("a pass began with 100 of a window of 200 queued")
	case <-time.After(50 * time.Millisecond):
	}
	publishGroup(s, 201, 80) // 180 queued: nearly the window
	select {
	case <-entered:
	case <-time.After(30 * time.Second):
		t.Fatal("no pass began with 180 of a window of 200 queued")
	}
	gate <- nil
	s.waitCommits(0)
	if n := passCount(c); n != 3 || bus.count("ack.") != 281 {
		t.Fatalf("%d passes, %d PubAcks; want 3 passes (the last covering 180), 281 PubAcks", n, bus.count("ack."))
	}

	// Ten queued of a window of about 180: the engine waiting for its commits starts the pass.
	publishGroup(s, 281, 10)
	done := make(chan struct{})
	go func() {
		defer close(done)
		s.waitCommits(0)
	}()
	select {
	case <-entered:
	case <-time.After(30 * time.Second):
		t.Fatal("the engine waited for a pass that waited for more of the window")
	}
	gate <- nil
	<-done
	if n := passCount(c); n != 4 || bus.count("ack.") != 291 {
		t.Fatalf("%d passes, %d PubAcks; want 4, 291", n, bus.count("ack."))
	}
}

// A lone synchronous publisher (one PubAck in flight) never waits: each publish has a pass
// of its own at once, however long the coalescing bound.
func TestLonePublishNotCoalesced(t *testing.T) {
	gate := make(chan error)
	s, bus, _ := newPipelinedEngine(t, gate)
	entered := make(chan struct{}, 64)
	s.store.(*splitStore).entered = entered
	coalesceAsBolt(s.commit)
	for i := 1; i <= 3; i++ {
		publish(s, i)
		select {
		case <-entered:
		case <-time.After(30 * time.Second):
			t.Fatalf("publish %d: no pass began", i)
		}
		gate <- nil
		passesRun(t, s.commit, i+1)
		s.completeCommits()
		if bus.count("ack.") != i+1 {
			t.Fatalf("publish %d: %d PubAcks", i, bus.count("ack."))
		}
	}
}

// Only a store whose commits are costly asks for coalescing (stores.CommitCoalescer): the
// bolt store does, the file and memory stores do not (a file store commit is one fdatasync
// of an append: halving their number saved no CPU, measured).
func TestCoalescingOnlyWhereAsked(t *testing.T) {
	bolt, err := boltstore.Open(filepath.Join(t.TempDir(), "s.db"), boltstore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer bolt.Close()
	file, err := filestore.Open(t.TempDir(), filestore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer file.Close()
	mem, err := memstore.New(memstore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name  string
		store stores.Store
		off   bool
	}{{"bolt", bolt, false}, {"file", file, true}, {"memory", mem, true}} {
		s, err := New(&recBus{}, tc.store, raftlog.Standalone, Options{})
		if err != nil {
			t.Fatal(err)
		}
		if s.commit.coalesceOff != tc.off {
			t.Errorf("%s store: coalesceOff %v, want %v", tc.name, s.commit.coalesceOff, tc.off)
		}
	}
}

// A group that replies wait for (a connect, a subscribe, a close) is not held back for the
// publishers' window: a client waits for each such reply, while coalescing is for a stream
// of PubAcks. Before, only a queue with no message at all went at once, and a subscribe
// queued beside a few publishes waited with them (up to coalesceMaxWait).
func TestCoalescingDoesNotHoldReplies(t *testing.T) {
	c := newCommitter()
	c.running = true // no goroutine: shouldWait is looked at directly
	c.window, c.lastBegan, c.lastDur = 200, time.Now(), time.Second
	c.enqueue(&commitGroup{n: 100})
	if wait, _ := c.shouldWait(); !wait {
		t.Fatal("100 publishes of a window of 200 did not wait")
	}
	c.enqueue(&commitGroup{after: []afterCommit{{}}})
	if wait, _ := c.shouldWait(); wait {
		t.Fatal("a group that a reply waits for waited for the window")
	}
	c.pass() // empties the queue (no store to sync)
	c.window, c.lastBegan, c.lastDur = 200, time.Now(), time.Second
	c.enqueue(&commitGroup{n: 100})
	c.enqueue(&commitGroup{n: 1, after: []afterCommit{{}}})
	if wait, _ := c.shouldWait(); wait {
		t.Fatal("publishes queued with a reply's group waited for the window")
	}
}

// While the committer waits in coalesce for the window, a group that leaves the queue short
// of it does not wake the committer (it would only look and wait again: a goroutine
// hand-off, often a thread's wake-up, per read buffer of an async publisher); the group
// that fills the queue does, and so does one a reply waits for.
func TestCoalescingWakesOnlyWhenReady(t *testing.T) {
	c := newCommitter()
	c.running = true // no goroutine: its wake-ups stay in c.wake
	c.window, c.lastBegan, c.lastDur = 200, time.Now(), time.Second
	c.coalescing = true
	for i := 0; i < 10; i++ {
		c.enqueue(&commitGroup{n: 10})
	}
	if len(c.wake) != 0 {
		t.Fatal("100 publishes of a window of 200 woke the coalescing committer")
	}
	c.enqueue(&commitGroup{n: 80}) // 180: nearly the window
	if len(c.wake) != 1 {
		t.Fatal("180 publishes of a window of 200 did not wake the coalescing committer")
	}
	<-c.wake
	c.pass()
	c.window, c.lastBegan, c.lastDur = 200, time.Now(), time.Second
	c.coalescing = true
	c.enqueue(&commitGroup{n: 1, after: []afterCommit{{}}})
	if len(c.wake) != 1 {
		t.Fatal("a group a reply waits for did not wake the coalescing committer")
	}
	<-c.wake
	c.pass()
	c.coalescing = false // between passes (in run, not coalesce): every group wakes it
	c.enqueue(&commitGroup{n: 10})
	if len(c.wake) != 1 {
		t.Fatal("a group did not wake the committer waiting for work")
	}
}

// A reader that finds no more input at the start of a window (passHere) leaves the pass to
// the committer while it would wait for the publishers' window: before, it ran the pass at
// once, a commit of a fraction of the window (stan-bench 1 KiB, 0 subs: 574 fdatasyncs for
// 120,000 messages, ~13 % more than the ~500 of whole windows). With no window to wait for
// (a lone synchronous publisher), it still runs the pass itself.
func TestPassHereLeavesAWindowToTheCommitter(t *testing.T) {
	c := newCommitter()
	c.running = true // no goroutine: its wake-ups stay in c.wake
	c.window, c.lastBegan, c.lastDur = 200, time.Now(), time.Second
	c.queued, c.queuedMsgs = append(c.queued, &commitGroup{n: 20}), 20
	c.passHere()
	if c.queuedLen() != 1 || len(c.wake) != 1 {
		t.Fatalf("20 of a window of 200: %d groups still queued (want 1), %d wake-ups (want 1)", c.queuedLen(), len(c.wake))
	}
	<-c.wake
	c.window = 0 // no window: the pass runs here
	c.passHere()
	if c.queuedLen() != 0 || len(c.wake) != 0 {
		t.Fatalf("no window: %d groups still queued (want 0), %d wake-ups (want 0)", c.queuedLen(), len(c.wake))
	}
}
