package streaming

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/raft"
	"google.golang.org/protobuf/proto"

	"github.com/starling-io/starling/core"
	"github.com/starling-io/starling/proto/raftpb"
	"github.com/starling-io/starling/raftlog"
	"github.com/starling-io/starling/stores"
	"github.com/starling-io/starling/stores/boltstore"
)

// deletedSince tells, from the channel IDs, an incarnation this node deleted: it holds the
// name under a higher ID (the answer is that incarnation's first sequence, or its last plus
// one when it holds none), or none and gave out the ID (the remembered last plus one). An
// ID it has not given out yet, or the incarnation it holds, is not gone.
func TestDeletedSince(t *testing.T) {
	m, _ := newReplica(t)
	gone := func(id uint64) uint64 {
		m.mu.Lock()
		defer m.mu.Unlock()
		return m.deletedSince("x", id, m.chans["x"])
	}
	applyCmds(t, m, &cmdCreateChannel{name: "x", id: 1})
	applyCmds(t, m, &cmdPublish{chanRef: chanRef{"x", 1}, msgs: msgRun(1, 5)})
	if g := gone(1); g != 0 {
		t.Fatalf("x#1 held: gone %d", g)
	}
	applyCmds(t, m, &cmdDeleteChannel{chanRef{"x", 1}})
	if g := gone(1); g != 6 {
		t.Fatalf("x#1 deleted at 5: gone %d, want 6", g)
	}
	if g := gone(2); g != 0 {
		t.Fatalf("x#2 not created yet: gone %d", g)
	}
	applyCmds(t, m, &cmdCreateChannel{name: "x", id: 2})
	if g := gone(1); g != 6 {
		t.Fatalf("x#2 created empty after 5: x#1 gone %d, want 6", g)
	}
	applyCmds(t, m, &cmdPublish{chanRef: chanRef{"x", 2}, msgs: msgRun(6, 3)})
	if g, h := gone(1), gone(2); g != 6 || h != 0 {
		t.Fatalf("x#2 holds 6..8: x#1 gone %d (want 6), x#2 gone %d (want 0)", g, h)
	}
	applyCmds(t, m, &cmdDeleteChannel{chanRef{"x", 2}})
	if g, h, k := gone(1), gone(2), gone(3); g != 9 || h != 9 || k != 0 {
		t.Fatalf("x#2 deleted at 8: gone %d, %d, %d; want 9, 9, 0", g, h, k)
	}
}

// meshBus delivers what is published to the handlers subscribed to the subject (exactly, or
// by a trailing "*"), each on its own goroutine, as messages crossing routes arrive.
type meshBus struct {
	fakeBus
	mu      sync.Mutex
	subs    map[string][]core.MsgHandler
	reqs    atomic.Int64 // fetch requests published
	answers atomic.Int64 // fetch replies published
}

type meshSub struct{}

func (meshSub) Unsubscribe() error { return nil }

func (b *meshBus) Subscribe(subject, _ string, h core.MsgHandler) (Subscription, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.subs == nil {
		b.subs = map[string][]core.MsgHandler{}
	}
	b.subs[subject] = append(b.subs[subject], h)
	return meshSub{}, nil
}

func (b *meshBus) Publish(subject, reply string, _, data []byte) error {
	if strings.HasSuffix(subject, ".fetch") {
		b.reqs.Add(1)
	}
	if strings.Contains(subject, ".fetched.") {
		b.answers.Add(1)
	}
	b.mu.Lock()
	var hs []core.MsgHandler
	for s, h := range b.subs {
		if s == subject || strings.HasSuffix(s, ".*") && strings.HasPrefix(subject, s[:len(s)-1]) && !strings.Contains(subject[len(s)-1:], ".") {
			hs = append(hs, h...)
		}
	}
	b.mu.Unlock()
	for _, h := range hs {
		m := core.Msg{Subject: []byte(subject), Reply: []byte(reply), Data: append([]byte(nil), data...)}
		go h(m)
	}
	return nil
}

// fetchPeer answers fetch requests on bus with answer's reply (nil: none).
func fetchPeer(t *testing.T, bus *meshBus, answer func(req *raftpb.FetchRequest) *raftpb.FetchReply) {
	t.Helper()
	_, _ = bus.Subscribe("_STARLING.raft.c.fetch", "", func(m core.Msg) {
		var req raftpb.FetchRequest
		if err := proto.Unmarshal(m.Data, &req); err != nil {
			t.Error(err)
			return
		}
		if rep := answer(&req); rep != nil {
			b, _ := proto.Marshal(rep)
			_ = bus.Publish(string(m.Reply), "", nil, b)
		}
	})
}

// batchOf answers with up to n messages from req.From.
func batchOf(n uint64) func(req *raftpb.FetchRequest) *raftpb.FetchReply {
	return func(req *raftpb.FetchRequest) *raftpb.FetchReply {
		rep := &raftpb.FetchReply{First: req.From}
		for seq := req.From; seq <= min(req.To, req.From+n-1); seq++ {
			rep.Msgs = append(rep.Msgs, &raftpb.MsgProto{Sequence: seq, Data: []byte(fmt.Sprint(seq))})
		}
		return rep
	}
}

func fetchServer(bus Bus, log *slog.Logger) *Server {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Server{opts: Options{ClusterID: "c"}, bus: bus, log: log}
}

// fetchAll fetches 1..to and checks what arrived.
func fetchAll(ctx context.Context, s *Server, to uint64) error {
	next := uint64(1)
	return s.fetch(ctx, "ch", 1, 1, to, func(first uint64, msgs []stores.Msg) error {
		if first != next {
			return fmt.Errorf("batch at %d, want %d", first, next)
		}
		next += uint64(len(msgs))
		return nil
	})
}

// TestFetchIgnoresAnswersToEarlierRequests: both other nodes answer every request; the
// slower one's answer arrives after the next request went out. It is dropped, and no request
// is sent for it. Before, such a stale answer made the fetcher ask again at once: about twice
// the requests (and the bulky reads and replies they cost) for the same messages.
func TestFetchIgnoresAnswersToEarlierRequests(t *testing.T) {
	bus := &meshBus{}
	for range 2 {
		fetchPeer(t, bus, func(req *raftpb.FetchRequest) *raftpb.FetchReply {
			time.Sleep(time.Millisecond) // a read
			return batchOf(10)(req)
		})
	}
	err := fetchServer(bus, nil).fetch(context.Background(), "ch", 1, 1, 40, func(uint64, []stores.Msg) error {
		time.Sleep(10 * time.Millisecond) // a disk: both nodes are done answering by the next request
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if n := bus.reqs.Load(); n > 22 {
		t.Fatalf("%d requests for 20 batches", n)
	}
}

// TestFetchBacksOffOnEmptyAnswers: the only node that answers replies with nothing (its reads
// fail). The fetcher asks again at a measured pace and gives up after fetchTimeout without
// progress. Before, it asked again as soon as each empty answer came: thousands of requests
// a second until the channel's deadline (a minute).
func TestFetchBacksOffOnEmptyAnswers(t *testing.T) {
	bus := &meshBus{}
	fetchPeer(t, bus, func(req *raftpb.FetchRequest) *raftpb.FetchReply { return &raftpb.FetchReply{First: req.From} })
	ctx, cancel := context.WithTimeout(context.Background(), 1500*time.Millisecond)
	defer cancel()
	if err := fetchAll(ctx, fetchServer(bus, nil), 10); !errors.Is(err, errFetch) {
		t.Fatalf("fetch: %v, want errFetch", err)
	}
	if n := bus.reqs.Load(); n > 5 {
		t.Fatalf("%d requests in 1.5s to a node that answers nothing", n)
	}
}

// TestFetchAsksAgainWhenUnanswered: the other node that holds the messages, busy with another
// answer, drops a request (serveFetch answers one at a time). The fetcher asks again before fetchTimeout. Before, it
// waited for fetchTimeout and failed the whole restore (raft retried it later, from scratch).
func TestFetchAsksAgainWhenUnanswered(t *testing.T) {
	bus := &meshBus{}
	var dropped atomic.Bool
	fetchPeer(t, bus, func(req *raftpb.FetchRequest) *raftpb.FetchReply {
		if req.From == 11 && !dropped.Swap(true) { // busy then
			return nil
		}
		return batchOf(10)(req)
	})
	start := time.Now()
	if err := fetchAll(context.Background(), fetchServer(bus, nil), 30); err != nil {
		t.Fatalf("fetch after %v: %v", time.Since(start), err)
	}
	if took := time.Since(start); took >= fetchTimeout {
		t.Fatalf("took %v", took)
	}
}

// TestFetchFailureIsNotLoggedAsDone: a fetch that fails logs a warning with its error, not the
// line telling the operator the messages were fetched. Before, that line came also after a
// failure ("msgs=0 took=5s").
func TestFetchFailureIsNotLoggedAsDone(t *testing.T) {
	var out bytes.Buffer
	log := slog.New(slog.NewTextHandler(&out, nil))
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	if err := fetchAll(ctx, fetchServer(&meshBus{}, log), 10); !errors.Is(err, errFetch) {
		t.Fatalf("fetch: %v, want errFetch", err)
	}
	if strings.Contains(out.String(), "fetched the messages") {
		t.Errorf("a failed fetch logged as done: %s", out.String())
	}
	if !strings.Contains(out.String(), "level=WARN") {
		t.Errorf("a failed fetch not logged as a warning: %s", out.String())
	}
}

// restoringLog is a follower's log whose goroutine is in Restore: Close waits for it to
// return, as raft's Shutdown waits for its FSM goroutine.
type restoringLog struct {
	*raftlog.Local
	restored chan struct{} // closed once Restore returned
}

func (l *restoringLog) IsLeader() bool { return false }
func (l *restoringLog) Close() error {
	<-l.restored
	return l.Local.Close()
}

// TestShutdownCancelsARestore: a node shut down (SIGTERM) while it restores a snapshot, its
// fetch of the missing messages slow, stops promptly: the restore fails (raft installs the
// snapshot again at the next start). Before, Shutdown waited for the fetch, up to a minute
// per channel.
func TestShutdownCancelsARestore(t *testing.T) {
	leader, _ := newReplica(t)
	applyCmds(t, leader, &cmdCreateChannel{name: "a", id: 1}, &cmdPublish{chanRef: chanRef{"a", 1}, msgs: msgRun(1, 3)})
	snap := persist(t, leader)

	var rl *restoringLog
	s, err := New(&fakeBus{}, newMemStore(t), func(sm raftlog.StateMachine) (raftlog.Log, error) {
		rl = &restoringLog{Local: raftlog.NewLocal(sm), restored: make(chan struct{})}
		return rl, nil
	}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.recover(); err != nil {
		t.Fatal(err)
	}
	runEngine(s)
	fetching := make(chan struct{})
	s.sm.fetch = func(ctx context.Context, _ string, _, _, _ uint64, _ func(uint64, []stores.Msg) error) error {
		close(fetching)
		<-ctx.Done() // no node answers, or slowly
		return ctx.Err()
	}
	restoreErr := make(chan error, 1)
	go func() {
		err := s.sm.Restore(bytes.NewReader(snap))
		close(rl.restored)
		restoreErr <- err
	}()
	<-fetching
	start := time.Now()
	done := make(chan error, 1)
	go func() { done <- s.Shutdown() }()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("shutdown: %v", err)
		}
	case <-time.After(3 * time.Second):
		t.Errorf("shutdown still waiting for the restore after %v", time.Since(start))
		<-done
	}
	if err := <-restoreErr; err == nil {
		t.Errorf("the restore cancelled by the shutdown succeeded")
	}
}

// TestMonitoringDuringARestore: a follower restoring a snapshot, its fetch of the missing
// messages under way, still answers monitoring (and other nodes' fetches): with what it holds
// so far. Before, the restore held the state machine's lock through its fetches (up to a
// minute per channel): /streaming/serverz and channelsz waited 5 s and then showed no channel
// and no message, and the engine stayed blocked until the restore ended.
func TestMonitoringDuringARestore(t *testing.T) {
	leader, _ := newReplica(t)
	applyCmds(t, leader, &cmdCreateChannel{name: "a", id: 1}, &cmdPublish{chanRef: chanRef{"a", 1}, msgs: msgRun(1, 4)})
	snap := persist(t, leader)
	follower, _ := newReplica(t)
	fetching, release := make(chan struct{}), make(chan struct{})
	follower.fetch = func(_ context.Context, _ string, _, from, _ uint64, got func(uint64, []stores.Msg) error) error {
		if err := got(from, msgRun(from, 2)); err != nil {
			return err
		}
		close(fetching)
		<-release // the rest comes slowly
		return got(from+2, msgRun(from+2, 2))
	}
	restored := make(chan error, 1)
	go func() { restored <- follower.Restore(bytes.NewReader(snap)) }()
	<-fetching
	viewed := make(chan []*Channelz, 1)
	go func() {
		chans, _ := follower.monitorView(false)
		viewed <- chans
	}()
	select {
	case chans := <-viewed:
		if len(chans) != 1 || chans[0].Msgs != 2 {
			t.Errorf("monitoring during the restore: %+v, want channel a with its 2 messages fetched so far", chans)
		}
	case <-time.After(time.Second):
		t.Errorf("monitoring waits for the restore")
	}
	close(release)
	if err := <-restored; err != nil {
		t.Fatal(err)
	}
	if chans, _ := follower.monitorView(false); len(chans) != 1 || chans[0].Msgs != 4 {
		t.Errorf("after the restore: %+v", chans)
	}
}

// TestFetchAsksTheNodeThatAnswered: once a node answered, the next requests name it, and only
// it reads and sends the messages; another is asked only when it brings nothing. Before, every
// node holding the messages answered every request, all but one answer dropped: the reads and
// the route traffic of a catch-up doubled.
func TestFetchAsksTheNodeThatAnswered(t *testing.T) {
	bus := &meshBus{}
	for _, id := range []string{"p1", "p2"} {
		m, _ := newReplica(t)
		msgs := msgRun(1, 40)
		for i := range msgs {
			msgs[i].Data = make([]byte, 100<<10) // five a reply
		}
		applyCmds(t, m, &cmdCreateChannel{name: "ch", id: 1}, &cmdPublish{chanRef: chanRef{"ch", 1}, msgs: msgs})
		peer := fetchServer(bus, nil)
		peer.sm, peer.id = m, id
		if err := peer.serveFetch(); err != nil {
			t.Fatal(err)
		}
	}
	err := fetchServer(bus, nil).fetch(context.Background(), "ch", 1, 1, 40, func(uint64, []stores.Msg) error {
		time.Sleep(10 * time.Millisecond) // a disk: both nodes are done answering by the next request
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if reqs, answers := bus.reqs.Load(), bus.answers.Load(); answers > reqs+1 {
		t.Fatalf("%d answers to %d requests", answers, reqs)
	}
}

func (l *restoringLog) Stats() raftlog.Stats { return raftlog.Stats{Role: raft.Follower} }

// TestServerzSaysCatchingUp: /streaming/serverz of a node fetching the messages of a snapshot
// it restores says so ("catching_up"), until the restore ends: what it shows meanwhile is
// what arrived so far. Before, nothing told an operator that the counts were partial.
func TestServerzSaysCatchingUp(t *testing.T) {
	leader, _ := newReplica(t)
	applyCmds(t, leader, &cmdCreateChannel{name: "a", id: 1}, &cmdPublish{chanRef: chanRef{"a", 1}, msgs: msgRun(1, 3)})
	snap := persist(t, leader)
	var rl *restoringLog
	s := startEngine(t, &fakeBus{}, newMemStore(t), func(sm raftlog.StateMachine) (raftlog.Log, error) {
		rl = &restoringLog{Local: raftlog.NewLocal(sm), restored: make(chan struct{})}
		return rl, nil
	})
	fetching, release := make(chan struct{}), make(chan struct{})
	s.sm.fetch = func(_ context.Context, _ string, _, from, to uint64, got func(uint64, []stores.Msg) error) error {
		close(fetching)
		<-release
		return got(from, msgRun(from, to-from+1))
	}
	restored := make(chan error, 1)
	go func() {
		restored <- s.sm.Restore(bytes.NewReader(snap))
		close(rl.restored)
	}()
	<-fetching
	catchingUp := func() bool {
		b, err := json.Marshal(s.Serverz())
		if err != nil {
			t.Fatal(err)
		}
		return strings.Contains(string(b), `"catching_up":true`)
	}
	if !catchingUp() {
		t.Errorf("serverz during the restore does not say the node is catching up")
	}
	close(release)
	if err := <-restored; err != nil {
		t.Fatal(err)
	}
	if catchingUp() {
		t.Errorf("serverz after the restore says the node is catching up")
	}
	if err := s.Shutdown(); err != nil {
		t.Fatal(err)
	}
}

// TestRestoreAtStartOnANewStore: a node whose store is new (wiped) while its raft directory
// holds a snapshot restores it as it starts; that restore fails part way (no node answers its
// fetches, or a stop was asked for), having created channels. The next start restores it.
// Before, the store was initialised only in Start, after the log's restore: a store never
// initialised recovers nothing, so the next restore found the channels it had created
// "already existing", failed at once, every time: the node never started again.
func TestRestoreAtStartOnANewStore(t *testing.T) {
	leader, _ := newReplica(t)
	applyCmds(t, leader, &cmdCreateChannel{name: "a", id: 1}, &cmdPublish{chanRef: chanRef{"a", 1}, msgs: msgRun(1, 3)})
	snap := persist(t, leader)
	path := filepath.Join(t.TempDir(), "store.db")
	start := func(fetch fetcher) error {
		store, err := boltstore.Open(path, boltstore.Options{})
		if err != nil {
			t.Fatal(err)
		}
		defer store.Close()
		_, err = New(&fakeBus{}, store, func(sm raftlog.StateMachine) (raftlog.Log, error) {
			sm.(*stateMachine).fetch = fetch
			if err := sm.Restore(bytes.NewReader(snap)); err != nil { // as raft does at start
				return nil, err
			}
			return raftlog.NewLocal(sm), nil
		}, Options{})
		return err
	}
	if err := start(func(context.Context, string, uint64, uint64, uint64, func(uint64, []stores.Msg) error) error {
		return errFetch
	}); !errors.Is(err, errFetch) {
		t.Fatalf("first start: %v, want errFetch", err)
	}
	if err := start(func(_ context.Context, _ string, _, from, to uint64, got func(uint64, []stores.Msg) error) error {
		return got(from, msgRun(from, to-from+1))
	}); err != nil {
		t.Fatalf("next start: %v", err)
	}
}

// TestStartRestoreFetchesOnceForAllSnapshots: a node starts on three snapshots — B (ch
// 1..30), C (1..25), A (1..10) — holding 1..10, and raft tries them newest first. B's fetch
// fails (no node answers, or none sends message 11); C names message 11 too and fails at once
// with that error, without a fetch of its own; A, which the store holds, restores. Before,
// C fetched again: with the real fetch, one more timeout (5 s) per snapshot kept.
func TestStartRestoreFetchesOnceForAllSnapshots(t *testing.T) {
	leader, _ := newReplica(t)
	applyCmds(t, leader, &cmdCreateChannel{name: "ch", id: 1}, &cmdPublish{chanRef: chanRef{"ch", 1}, msgs: msgRun(1, 10)})
	snapA := persist(t, leader)
	applyCmds(t, leader, &cmdPublish{chanRef: chanRef{"ch", 1}, msgs: msgRun(11, 15)})
	snapC := persist(t, leader)
	applyCmds(t, leader, &cmdPublish{chanRef: chanRef{"ch", 1}, msgs: msgRun(26, 5)})
	snapB := persist(t, leader)
	for _, failure := range []error{fmt.Errorf("%w: %w of \"ch\" from 11", errFetch, errNoAnswer),
		fmt.Errorf("%w: no node sent \"ch\" from 11", errFetch)} {
		t.Run(failure.Error(), func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "store.db")
			store, err := boltstore.Open(path, boltstore.Options{})
			if err != nil {
				t.Fatal(err)
			}
			defer store.Close()
			if err := store.Init(stores.ServerInfo{ClusterID: "test-cluster"}); err != nil {
				t.Fatal(err)
			}
			applyCmds(t, newStateMachine(store), &cmdCreateChannel{name: "ch", id: 1},
				&cmdPublish{chanRef: chanRef{"ch", 1}, msgs: msgRun(1, 10)})
			var fetches []string
			_, err = New(&fakeBus{}, store, func(sm raftlog.StateMachine) (raftlog.Log, error) {
				sm.(*stateMachine).fetch = func(_ context.Context, ch string, _, from, to uint64, _ func(uint64, []stores.Msg) error) error {
					fetches = append(fetches, fmt.Sprintf("%s %d..%d", ch, from, to))
					return failure
				}
				for _, snap := range [][]byte{snapB, snapC, snapA} { // as raft does at start
					if err := sm.Restore(bytes.NewReader(snap)); err == nil {
						return raftlog.NewLocal(sm), nil
					}
				}
				return nil, errors.New("no snapshot restored")
			}, Options{})
			if err != nil {
				t.Fatal(err)
			}
			if len(fetches) != 1 {
				t.Fatalf("fetches %q, want only B's (ch 11..30)", fetches)
			}
		})
	}
}

// smallBus is a node's bus with a max_payload of its own, which its Publish enforces as
// core.Conn's does; PublishOverMaxPayload passes a message between servers of the mesh past
// it (core.Conn.PublishOverMaxPayload).
type smallBus struct {
	*meshBus
	max int
}

func (b smallBus) MaxPayload() int { return b.max }

func (b smallBus) Publish(subject, reply string, hdr, data []byte) error {
	if len(hdr)+len(data) > b.max {
		return core.ErrMaxPayload
	}
	return b.meshBus.Publish(subject, reply, hdr, data)
}

func (b smallBus) PublishOverMaxPayload(subject, reply string, data []byte) error {
	return b.meshBus.Publish(subject, reply, nil, data)
}

// TestFetchOfAMessageOverTheAnswerersMaxPayload: the node that holds the messages has a
// max_payload (64 KiB) below one of them (100 KiB, which a leader with a larger one
// accepted). The reply carries it whole all the same. Before, every answer failed (maximum
// payload exceeded) and the node asking never caught up.
func TestFetchOfAMessageOverTheAnswerersMaxPayload(t *testing.T) {
	mesh := &meshBus{}
	m, _ := newReplica(t)
	msgs := msgRun(1, 3)
	msgs[1].Data = make([]byte, 100<<10)
	applyCmds(t, m, &cmdCreateChannel{name: "ch", id: 1}, &cmdPublish{chanRef: chanRef{"ch", 1}, msgs: msgs})
	peer := fetchServer(smallBus{mesh, 64 << 10}, nil)
	peer.sm, peer.id = m, "p1"
	if err := peer.serveFetch(); err != nil {
		t.Fatal(err)
	}
	var got []uint64
	err := fetchServer(mesh, nil).fetch(context.Background(), "ch", 1, 1, 3, func(first uint64, msgs []stores.Msg) error {
		for _, msg := range msgs {
			got = append(got, msg.Seq)
		}
		return nil
	})
	if err != nil || fmt.Sprint(got) != "[1 2 3]" {
		t.Fatalf("fetched %v: %v", got, err)
	}
}

// TestRestoreFetchHasNoOverallDeadline: a channel whose messages keep coming, slowly (a large
// channel over a slow link), is restored whole however long that takes; one whose messages
// stop coming fails fetchTimeout after the last one. Times are scaled by 1/25 (fetchTimeout
// 200 ms). Before, a whole channel's fetch was cut off after a minute (2.4 s scaled) while
// still progressing: at start the node exited, in a running follower the restore failed.
func TestRestoreFetchHasNoOverallDeadline(t *testing.T) {
	const timeout, oldDeadline = 200 * time.Millisecond, 12 * 200 * time.Millisecond
	const n = 300 // 10 ms a message: 3 s for the channel
	leader, _ := newReplica(t)
	applyCmds(t, leader, &cmdCreateChannel{name: "a", id: 1}, &cmdPublish{chanRef: chanRef{"a", 1}, msgs: msgRun(1, n)})
	snap := persist(t, leader)

	// restore restores snap on a new follower whose only peer sends one message every 10 ms
	// up to last, then nothing. It returns how long the restore took, how long after the
	// last answer it ended, the follower and the restore's error.
	restore := func(last uint64) (took, afterLast time.Duration, follower *stateMachine, err error) {
		bus := &meshBus{}
		var answered atomic.Int64 // unix nanoseconds of the last answer
		fetchPeer(t, bus, func(req *raftpb.FetchRequest) *raftpb.FetchReply {
			if req.From > last {
				return nil // stopped
			}
			time.Sleep(10 * time.Millisecond) // the link
			answered.Store(time.Now().UnixNano())
			return batchOf(1)(req)
		})
		follower, _ = newReplica(t)
		s := fetchServer(bus, nil)
		setFetchTimes(s, timeout, timeout/5)
		follower.fetch = s.fetch
		start := time.Now()
		done := make(chan error, 1)
		go func() { done <- follower.Restore(bytes.NewReader(snap)) }()
		select {
		case err = <-done:
		case <-time.After(8 * time.Second):
			follower.stopFetching()
			t.Fatalf("restore still running after 8 s (last %d): %v", last, <-done)
		}
		return time.Since(start), time.Since(time.Unix(0, answered.Load())), follower, err
	}

	took, _, follower, err := restore(n)
	if err != nil {
		t.Fatalf("a fetch progressing all along failed after %v: %v", took, err)
	}
	if took <= oldDeadline {
		t.Fatalf("took %v: not past the old deadline %v, the test shows nothing", took, oldDeadline)
	}
	if chans, _ := follower.monitorView(false); len(chans) != 1 || chans[0].Msgs != n {
		t.Fatalf("after the restore: %+v, want channel a with %d messages", chans, n)
	}

	took, afterLast, _, err := restore(50)
	if !errors.Is(err, errFetch) {
		t.Fatalf("a fetch that stopped progressing: %v after %v, want errFetch", err, took)
	}
	if afterLast < timeout || afterLast > timeout+time.Second {
		t.Fatalf("a fetch that stopped progressing failed %v after the last message, want about %v", afterLast, timeout)
	}
}

// TestFetchTakesLateAnswers: the only node that holds the messages answers each request
// after twice the retry interval (a 512 KiB reply over a slow link, a slow read), so every
// answer comes after the next request went out. Three fetches run at once, of two channels
// and of two incarnations of one (each its own restore): each gets its channel whole, in
// order, nothing twice, and nothing of the others. Times are scaled down (retry 25 ms).
// Before, an answer to an earlier request was dropped: each fetch asked again every retry
// and failed after the no-progress timeout with nothing ("no node sent").
func TestFetchTakesLateAnswers(t *testing.T) {
	const retry, n = 25 * time.Millisecond, 45
	bus := &meshBus{}
	fetchPeer(t, bus, func(req *raftpb.FetchRequest) *raftpb.FetchReply {
		time.Sleep(2 * retry)
		rep := &raftpb.FetchReply{First: req.From, Node: "p1"}
		for seq := req.From; seq <= min(req.To, req.From+9); seq++ {
			rep.Msgs = append(rep.Msgs, &raftpb.MsgProto{Sequence: seq, Data: fmt.Appendf(nil, "%s#%d:%d", req.Channel, req.ChannelID, seq)})
		}
		return rep
	})
	type fetchOf struct {
		channel string
		id      uint64
	}
	fetches := []fetchOf{{"a", 1}, {"a", 2}, {"b", 1}}
	errs := make(chan error, len(fetches))
	for _, f := range fetches {
		go func() {
			s := fetchServer(bus, nil)
			setFetchTimes(s, 20*retry, retry)
			next := uint64(1)
			err := s.fetch(context.Background(), f.channel, f.id, 1, n, func(first uint64, msgs []stores.Msg) error {
				if first != next {
					return fmt.Errorf("batch at %d, want %d", first, next)
				}
				for i, msg := range msgs {
					if want := fmt.Sprintf("%s#%d:%d", f.channel, f.id, first+uint64(i)); msg.Seq != first+uint64(i) || string(msg.Data) != want {
						return fmt.Errorf("message %d %q, want %q", msg.Seq, msg.Data, want)
					}
				}
				next += uint64(len(msgs))
				return nil
			})
			if err == nil && next != n+1 {
				err = fmt.Errorf("fetched up to %d, want %d", next-1, n)
			}
			if err != nil {
				err = fmt.Errorf("%s#%d: %w", f.channel, f.id, err)
			}
			errs <- err
		}()
	}
	for range fetches {
		if err := <-errs; err != nil {
			t.Error(err)
		}
	}
}

// TestFetchTakesWhatALateAnswerAdds: a fast node sends 1..3 and then nothing; a slow one
// answers every request after twice the retry interval, 10 messages a reply. Its answers
// overlap what arrived: only the messages past it are taken, in order, none twice.
func TestFetchTakesWhatALateAnswerAdds(t *testing.T) {
	const retry, n = 25 * time.Millisecond, 30
	bus := &meshBus{}
	fetchPeer(t, bus, func(req *raftpb.FetchRequest) *raftpb.FetchReply {
		if req.From != 1 {
			return nil
		}
		return batchOf(3)(req)
	})
	fetchPeer(t, bus, func(req *raftpb.FetchRequest) *raftpb.FetchReply {
		time.Sleep(2 * retry)
		return batchOf(10)(req)
	})
	s := fetchServer(bus, nil)
	setFetchTimes(s, 20*retry, retry)
	var got []uint64
	err := s.fetch(context.Background(), "ch", 1, 1, n, func(first uint64, msgs []stores.Msg) error {
		for i, msg := range msgs {
			if msg.Seq != first+uint64(i) || string(msg.Data) != fmt.Sprint(msg.Seq) {
				return fmt.Errorf("batch at %d: message %d %q", first, msg.Seq, msg.Data)
			}
			got = append(got, msg.Seq)
		}
		return nil
	})
	want := make([]uint64, n)
	for i := range want {
		want[i] = uint64(i + 1)
	}
	if err != nil || fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("fetched %v: %v", got, err)
	}
}
