package streaming

import (
	"sync"
	"sync/atomic"
	"time"

	"github.com/starling-io/starling/raftlog"
	"github.com/starling-io/starling/stores"
)

// The completion stage: every publish batch and every metadata commit is a commitGroup,
// which completes (deliveries, PubAcks, the replies waiting for it) once what it holds is
// durable — the one path for every store. finish decides where it waits: stores that
// split their Sync are fsynced on the committer's goroutine (below) while the engine goes
// on; anything else was synced when it was written, and the group completes at once unless
// groups are still in flight, which it then follows, so completions keep their order.
//
// The pipelined group commit. With a store whose MsgStore splits its Sync
// (stores.SplitSyncer: the file store), the engine does not wait for the fsync of a
// publish batch: it appends and flushes the batch to the OS, hands it to the committer's
// goroutine as a commitGroup, and goes on draining its queue — appending the next batch,
// processing acks, subscribing — while the fsync runs. When the fsync returns, the
// committer hands the group back; the engine then delivers the batch and sends its
// PubAcks, in arrival order. So a PubAck still follows the fsync that covers its
// message, and no message is delivered before it is durable: deliveries stop at each
// channel's synced sequence (channel.synced). The committer covers every group queued
// while the previous fsync ran with one SyncFlushed per channel: the group commit.
//
// Memory stays bounded: past maxUncommitted messages or maxUncommittedBytes of payload in
// groups not yet completed, the engine waits for the committer before it appends more.
//
// Coalescing (coalesce, below): a publisher keeps at most its window of PubAcks in flight
// (stan.go's MaxPubAcksInflight; stan-bench's default is 512). Left alone, the pipeline
// settles at two passes sharing the window — one fsyncing, the next filling — so a pass
// covers about half of it, and each commit's fixed cost (bolt: two fdatasyncs, ~0.3 ms of
// CPU here) is shared by half as many messages as it could be. So the committer estimates
// the window as the most messages it has held at once (a pass plus what queued while it
// ran) and, once that is at least coalesceMin, starts a pass only when the queue holds
// nearly all of it, or when waiting has lasted coalescePasses pass durations since the
// previous pass ended (then the estimate is dropped: it was wrong). A lone synchronous
// publisher (a window of 1), a replicated server and an engine waiting for the committer
// never wait; nor does a store that does not ask for it (stores.CommitCoalescer: bolt
// does, the file store, whose commit is one fdatasync, does not).

// maxUncommitted, maxUncommittedBytes and maxUncommittedGroups bound what the pipeline
// holds in flight.
const (
	maxUncommitted       = 64 << 10
	maxUncommittedBytes  = 64 << 20
	maxUncommittedGroups = 4096
)

// coalesceMin is the smallest estimated window a pass waits to fill; coalescePasses bounds
// the wait, in durations of the previous pass, from its end; coalesceMaxWait bounds it in
// time.
const (
	coalesceMin     = 64
	coalescePasses  = 3
	coalesceMaxWait = 10 * time.Millisecond
)

// commitGroup is one flushed publish batch waiting for its fsync.
type commitGroup struct {
	pubs  []pendingPub // in arrival order; payloads alias their ops' copies (pubbuf.go)
	chans []commitChan // the channels it appended to
	msgs  []stores.Msg // backing array of chans[i].msgs
	spans []commitSpan // chans[i].msgs = msgs[spans[i].from:spans[i].to]
	n     int          // messages
	bytes int          // their payload bytes
	start time.Time    // when its batch was proposed (PubAck latency)

	// The proposal of the batches (publish commands, chans[i].cmds of them per channel) and
	// whether it was still unresolved when the group was made (replicated).
	cmds     []cmdPublish
	rcmds    []raftlog.Command
	fut      raftlog.Future
	inflight bool

	// Metadata (durable.go): the subscription and client stores flushed into the group,
	// and what waits for them and for the proposals it carries (inflight.go).
	syncers []commitSyncer
	after   []afterCommit
}

// commitSyncer is a metadata store flushed into a group (sp nil: synced already, err set
// or not): the SubStore of ch, or the client records when ch is nil.
type commitSyncer struct {
	ch  *stores.Channel
	sp  stores.SplitSyncer
	err error
}

// addSyncer adds a flushed metadata store, or the error of its Flush.
func (g *commitGroup) addSyncer(ch *stores.Channel, sp stores.SplitSyncer, err error) {
	if err != nil {
		sp = nil
	}
	g.syncers = append(g.syncers, commitSyncer{ch: ch, sp: sp, err: err})
}

// metaErr is the first failure among the group's metadata stores.
func (g *commitGroup) metaErr() error {
	for i := range g.syncers {
		if err := g.syncers[i].err; err != nil {
			return err
		}
	}
	return nil
}

type commitChan struct {
	ch   *channel
	sp   stores.SplitSyncer // nil: the channel failed before its fsync (err set)
	msgs []stores.Msg
	err  error
	cmds commitSpan // its publish commands: cmds[from:to]
}

type commitSpan struct{ from, to int }

// committer runs the fsyncs. queued and done are guarded by mu; the rest is owned by the
// engine (free, inflight) or by the committer goroutine (synced).
type committer struct {
	mu     sync.Mutex
	queued []*commitGroup // flushed, waiting for the fsync
	done   []*commitGroup // synced or failed, waiting for the engine
	spareQ []*commitGroup // the slices swapped with queued and done, reused
	spareD []*commitGroup
	wake   chan struct{} // cap 1: queued grew
	ready  chan struct{} // cap 1: done grew
	stop   chan struct{}
	exited chan struct{}

	// passMu runs one pass at a time: on the committer's goroutine, or on a client's
	// reader that ran the engine inline (passHere).
	passMu sync.Mutex
	// completeHere, if set, completes a synced pass of msgs messages where the pass ran
	// when it can (Server.completeInline); otherwise ready wakes the engine.
	completeHere func(msgs int) bool

	running   bool // engine: the goroutine was started (at the first enqueue)
	closed    bool // engine: close was called; groups complete on the engine's goroutine
	quietWake bool // engine: enqueue leaves the wake-up to the inline iteration (passHere)

	free     []*commitGroup // engine: recycled groups
	inflight int            // engine: messages in groups not yet completed
	bytes    int            // engine: their payload bytes
	groups   int            // engine: groups not yet completed

	syncLatency histogram // one observation per pass of fsyncs (latency.go)

	// Coalescing, guarded by mu: the messages queued, the groups queued that may not wait
	// (urgent: replies wait for them, or the replicated log does), the estimated window and
	// the previous pass's start and duration.
	queuedMsgs   int
	queuedUrgent int
	window       int
	lastBegan    time.Time
	lastDur      time.Duration
	coalescing   bool          // the goroutine waits in coalesce (for the window or its deadline)
	hurry        atomic.Bool   // the engine waits for completions (waitCommits)
	coalesceOff  bool          // replicated, or the store did not ask (New, before the engine starts)
	timer        *time.Timer   // committer goroutine: coalesce's deadline
	waitBound    time.Duration // tests: the wait's bound instead of coalescePasses passes

	synced  []syncedStore // committer goroutine: one SyncFlushed per store per pass
	workers syncWorkers   // the pass's fsyncs of several channels at once (passMu)
	now     []syncedStore // engine: the same for a group synced by syncNow
}

type syncedStore struct {
	sp  stores.SplitSyncer
	err error
}

// newCommitter returns a committer whose goroutine starts at the first enqueue: a store
// that never splits its Sync never needs it.
func newCommitter() *committer {
	return &committer{wake: make(chan struct{}, 1), ready: make(chan struct{}, 1),
		stop: make(chan struct{}), exited: make(chan struct{})}
}

func signal(ch chan struct{}) {
	select {
	case ch <- struct{}{}:
	default:
	}
}

// run is the committer goroutine: take every queued group, fsync each channel they
// touched once, hand them all back.
func (c *committer) run() {
	defer close(c.exited)
	for {
		select {
		case <-c.wake:
		case <-c.stop:
			return
		}
		if !c.coalesce() {
			return
		}
		c.passMu.Lock()
		c.pass()
		c.passMu.Unlock()
	}
}

// coalesce waits, before a pass, while the queue holds less than the estimated window and
// the deadline has not passed (see the top of this file). It reports false if the
// committer is stopping.
func (c *committer) coalesce() bool {
	for {
		c.mu.Lock()
		wait, deadline := c.shouldWait()
		d := time.Until(deadline)
		if wait && d <= 0 {
			c.window = 0 // the queue did not fill: the next pass sets the estimate anew
		}
		c.coalescing = wait && d > 0
		c.mu.Unlock()
		if !wait || d <= 0 {
			return true
		}
		if c.timer == nil {
			c.timer = time.NewTimer(d)
		} else {
			c.timer.Reset(d)
		}
		select {
		case <-c.timer.C:
		case <-c.wake: // queued grew, or the engine waits (hurry)
			c.timer.Stop()
		case <-c.stop:
			c.timer.Stop()
			return false
		}
	}
}

// urgent reports whether g may not wait for the window to fill: replies wait for it (a
// connect, a subscribe, a close: a client waits for each, not a stream of PubAcks), or it
// waits for the replicated log's commit.
func (g *commitGroup) urgent() bool { return g.inflight || len(g.after) > 0 }

// shouldWait reports whether the next pass should wait for more of the window, and until
// when at most. Caller holds mu.
func (c *committer) shouldWait() (bool, time.Time) {
	if c.coalesceOff || c.queuedMsgs == 0 || c.queuedUrgent > 0 || c.window < coalesceMin ||
		c.queuedMsgs >= c.window-c.window/8 || c.hurry.Load() {
		return false, time.Time{}
	}
	bound := min(coalescePasses*c.lastDur, coalesceMaxWait)
	if c.waitBound > 0 {
		bound = c.waitBound
	}
	return true, c.lastBegan.Add(c.lastDur + bound)
}

// passHere runs the pass an inline iteration's groups need on the caller's goroutine (a
// client's reader, after endOfBuffer), unless a pass is running or a group waits for the
// replicated log's commit: then the committer's goroutine is woken for it. A reader may
// wait for an fsync its client is waiting for anyway, but not for a round of replication:
// a publisher with many in flight (a bulk load) would then send one at a time.
func (c *committer) passHere() {
	if !c.passMu.TryLock() {
		signal(c.wake)
		return
	}
	if c.waitsOnLog() || c.waitsForWindow() {
		c.passMu.Unlock()
		signal(c.wake)
		return
	}
	c.pass()
	c.passMu.Unlock()
}

// waitsForWindow reports whether the committer would hold the queue back for the
// publishers' window (shouldWait): an async publisher's reader that found no more input
// for a moment, at the start of a window, then leaves the pass to the committer, which
// coalesces it with the rest of the window, rather than commit a fraction of it here.
func (c *committer) waitsForWindow() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	wait, _ := c.shouldWait()
	return wait
}

// waitsOnLog reports whether a queued group waits for the replicated log's commit.
func (c *committer) waitsOnLog() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, g := range c.queued {
		if g.inflight {
			return true
		}
	}
	return false
}

// pass takes every queued group, fsyncs each store they touched once and hands them all
// back: completed right here if completeHere can, else to the engine. Caller holds passMu.
func (c *committer) pass() {
	c.mu.Lock()
	gs := c.queued
	c.queued, c.spareQ = c.spareQ[:0], nil
	c.queuedMsgs, c.queuedUrgent = 0, 0
	c.mu.Unlock()
	if len(gs) == 0 {
		c.mu.Lock()
		c.spareQ = gs
		c.mu.Unlock()
		return
	}
	c.synced = c.synced[:0]
	began := time.Now()
	msgs := 0
	c.synced = c.syncChannelsAtOnce(gs, c.synced)
	for _, g := range gs {
		msgs += g.n
		if g.inflight {
			<-g.fut.Done() // replicated: the log's commit is what the group waits for
		}
		g.waitProposals()
		c.synced = syncGroup(g, c.synced)
	}
	ran := len(c.synced) > 0
	dur := time.Since(began)
	if ran {
		c.syncLatency.observeN(dur, 1)
	}
	clear(c.synced)
	c.mu.Lock()
	if ran {
		c.lastBegan, c.lastDur = began, dur
		// The window is at least what the committer held at once: this pass and what
		// queued meanwhile. A larger estimate fades by an eighth a pass.
		c.window = max(msgs+c.queuedMsgs, c.window-c.window/8)
	}
	c.done = append(c.done, gs...)
	clear(gs)
	c.spareQ = gs[:0]
	c.mu.Unlock()
	if c.completeHere == nil || !c.completeHere(msgs) {
		signal(c.ready)
	}
}

// queuedLen is the number of groups waiting for the committer's next pass.
func (c *committer) queuedLen() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.queued)
}

// maxSyncsAtOnce bounds the channels' fsyncs a pass runs at once.
const maxSyncsAtOnce = 16

// syncChannelsAtOnce runs the SyncFlushed of the channels' message stores that the groups gs
// flushed (not those of a group that waits for the replicated log), side by side when there
// are several: each channel is a file of its own, and a new channel's first commit fsyncs its
// directory too, so a burst of N new channels was 2N fsyncs in a row, where the file system's
// journal commits the fsyncs that wait together at once. done collects the outcomes, for
// syncGroup's once.
func (c *committer) syncChannelsAtOnce(gs []*commitGroup, done []syncedStore) []syncedStore {
	from := len(done)
	for _, g := range gs {
		if g.inflight {
			continue
		}
		for i := range g.chans {
			if sp := g.chans[i].sp; sp != nil && !syncedIn(done[from:], sp) {
				done = append(done, syncedStore{sp: sp})
			}
		}
	}
	if len(done)-from < 2 {
		clear(done[from:])
		return done[:from] // one: syncGroup's way
	}
	c.workers.run(done[from:])
	return done
}

func syncedIn(done []syncedStore, sp stores.SplitSyncer) bool {
	for i := range done {
		if done[i].sp == sp {
			return true
		}
	}
	return false
}

// syncWorkers run SyncFlushed calls side by side for the committer's passes (one pass at a
// time: passMu). They are started as a pass needs them and kept, so a pass allocates
// nothing; close stops them.
type syncWorkers struct {
	work   chan *syncedStore
	wg     sync.WaitGroup
	n      int // started
	closed bool
}

// run makes todo's SyncFlushed calls, noting their errors: the caller's goroutine takes the
// first, the workers the rest.
func (w *syncWorkers) run(todo []syncedStore) {
	if w.closed {
		for i := range todo {
			todo[i].err = todo[i].sp.SyncFlushed()
		}
		return
	}
	if w.work == nil {
		w.work = make(chan *syncedStore, maxSyncsAtOnce)
	}
	for ; w.n < min(len(todo)-1, maxSyncsAtOnce); w.n++ {
		go w.loop()
	}
	w.wg.Add(len(todo) - 1)
	for i := 1; i < len(todo); i++ {
		w.work <- &todo[i]
	}
	todo[0].err = todo[0].sp.SyncFlushed()
	w.wg.Wait()
}

func (w *syncWorkers) loop() {
	for st := range w.work {
		st.err = st.sp.SyncFlushed()
		w.wg.Done()
	}
}

func (w *syncWorkers) close() {
	if !w.closed && w.work != nil {
		close(w.work)
	}
	w.closed = true
}

// syncGroup runs the SyncFlushed of every store flushed into g, noting each outcome in g,
// once per store across a pass (done: the stores synced so far in it): every group of a
// pass was flushed before the pass began, so the first SyncFlushed covers them all.
func syncGroup(g *commitGroup, done []syncedStore) []syncedStore {
	once := func(sp stores.SplitSyncer) error {
		for _, s := range done {
			if s.sp == sp {
				return s.err
			}
		}
		err := sp.SyncFlushed()
		done = append(done, syncedStore{sp: sp, err: err})
		return err
	}
	for i := range g.chans {
		if cc := &g.chans[i]; cc.sp != nil {
			cc.err = once(cc.sp)
		}
	}
	for i := range g.syncers {
		if cs := &g.syncers[i]; cs.sp != nil {
			cs.err = once(cs.sp)
		}
	}
	return done
}

// needsSync reports whether g holds stores flushed but not yet synced.
func (g *commitGroup) needsSync() bool {
	for i := range g.chans {
		if g.chans[i].sp != nil {
			return true
		}
	}
	for i := range g.syncers {
		if g.syncers[i].sp != nil {
			return true
		}
	}
	return false
}

// enqueue hands a flushed group to the committer (engine).
func (c *committer) enqueue(g *commitGroup) {
	if !c.running {
		c.running = true
		go c.run()
	}
	c.inflight += g.n
	c.bytes += g.bytes
	c.groups++
	c.mu.Lock()
	c.queued = append(c.queued, g)
	c.queuedMsgs += g.n
	if g.urgent() {
		c.queuedUrgent++
	}
	// A committer waiting in coalesce for the window would only look, find the queue still
	// short of it and wait again (its deadline does not move): it is woken once the queue
	// holds enough, or g may not wait.
	quiet := c.quietWake
	if !quiet && c.coalescing {
		quiet, _ = c.shouldWait()
	}
	c.mu.Unlock()
	if !quiet {
		signal(c.wake)
	}
}

// takeDone returns the completed groups (engine); give the slice back with putDone.
func (c *committer) takeDone() []*commitGroup {
	c.mu.Lock()
	defer c.mu.Unlock()
	gs := c.done
	c.done, c.spareD = c.spareD[:0], nil
	return gs
}

func (c *committer) putDone(gs []*commitGroup) {
	clear(gs)
	c.mu.Lock()
	c.spareD = gs[:0]
	c.mu.Unlock()
}

// group returns an empty group (engine).
func (c *committer) group() *commitGroup {
	if n := len(c.free); n > 0 {
		g := c.free[n-1]
		c.free = c.free[:n-1]
		return g
	}
	return &commitGroup{}
}

// recycle takes back a group that was enqueued (engine).
func (c *committer) recycle(g *commitGroup) {
	c.inflight -= g.n
	c.bytes -= g.bytes
	c.groups--
	c.release(g)
}

// release empties g for reuse, dropping every reference to messages (engine).
func (c *committer) release(g *commitGroup) {
	for i := range g.pubs {
		if ch := g.pubs[i].chunk; ch != nil {
			ch.release() // nothing reads the request any more: its PubAck is sent
		}
	}
	clear(g.pubs)
	clear(g.chans)
	clear(g.msgs)
	clear(g.syncers)
	clear(g.after)
	g.pubs, g.chans, g.msgs, g.spans, g.n, g.bytes = g.pubs[:0], g.chans[:0], g.msgs[:0], g.spans[:0], 0, 0
	g.syncers, g.after = g.syncers[:0], g.after[:0]
	clear(g.cmds)
	clear(g.rcmds)
	g.cmds, g.rcmds, g.fut, g.inflight = g.cmds[:0], g.rcmds[:0], raftlog.Future{}, false
	c.free = append(c.free, g)
}

// close stops the committer goroutine once the engine has completed every group; later
// groups complete on the engine's goroutine.
func (c *committer) close() {
	if c.closed {
		return
	}
	c.closed = true
	close(c.stop)
	if c.running {
		<-c.exited
	}
	c.passMu.Lock()
	c.workers.close()
	c.passMu.Unlock()
}

// finish completes g once it is durable: on the committer's goroutine when it holds stores
// still to fsync (or follows groups in flight) and the engine runs; otherwise here, now
// (engine).
func (s *Server) finish(g *commitGroup) {
	c := s.commit
	if s.started && !c.closed && (c.groups > 0 || g.needsSync() || g.inflight || g.waits()) {
		c.enqueue(g)
		if c.full() {
			s.waitCommits(0)
		}
		return
	}
	c.now = syncGroup(g, c.now[:0])
	clear(c.now)
	s.completeGroup(g)
	c.release(g)
}

// readyCommits is what the engine waits on for completed groups.
func (s *Server) readyCommits() <-chan struct{} { return s.commit.ready }

// drainCommits completes every group in flight and stops the committer (engine, at stop).
func (s *Server) drainCommits() {
	s.waitCommits(0)
	s.commit.close()
	s.syncMetaAndReply() // synchronously now: the engine stops
	s.bus.Flush()
}

// completeCommits delivers the batches whose fsync returned and sends their PubAcks
// (engine).
func (s *Server) completeCommits() {
	c := s.commit
	if c.groups == 0 {
		return
	}
	gs := c.takeDone()
	for _, g := range gs {
		s.completeGroup(g)
		c.recycle(g)
	}
	c.putDone(gs)
}

func (s *Server) completeGroup(g *commitGroup) {
	if g.inflight {
		s.settle(g) // waits if it must (a group completed at stop)
		g.inflight = false
	}
	// What waits for the group was proposed before its publishes: replies go first, so that
	// every reply and PubAck leaves in the order of its proposal.
	err := g.metaErr()
	if err != nil {
		s.metaFailed(g)
	}
	for i := range g.after {
		g.after[i].run(err)
	}
	for i := range g.chans {
		cc := &g.chans[i]
		cc.msgs = g.msgs[g.spans[i].from:g.spans[i].to]
		ch := cc.ch
		if cc.err != nil {
			if cc.sp != nil { // the flush succeeded, the fsync did not
				s.log.Error("storing messages failed", "channel", ch.name, "err", cc.err)
			}
			s.markBroken(ch)
			continue
		}
		ch.synced = max(ch.synced, cc.msgs[len(cc.msgs)-1].Seq)
		if ch.deleted {
			continue
		}
		s.scratch.batchCh, s.scratch.batch = ch, cc.msgs
		s.deliverNew(ch)
		s.scratch.batchCh, s.scratch.batch = nil, nil
	}
	failed := false
	for i := range g.chans {
		failed = failed || g.chans[i].err != nil
	}
	for i := range g.pubs {
		errText := ""
		for j := 0; failed && j < len(g.chans); j++ {
			if cc := &g.chans[j]; cc.ch == g.pubs[i].ch && cc.err != nil {
				errText = cc.err.Error()
				break
			}
		}
		s.addPubAck(g.pubs[i].reply, g.pubs[i].guid, errText)
	}
	s.flushPubAcks()
	if len(g.pubs) > 0 {
		s.pubAckLatency.observeN(time.Since(g.start), len(g.pubs))
	}
}

// roomFor reports whether the pipeline holds at most half of what it may with n more ops
// of qbytes payload bytes: an iteration over them (and what arrives meanwhile) will not find
// it full and wait for the committer (engine).
func (c *committer) roomFor(n int, qbytes int64) bool {
	return c.inflight+n <= maxUncommitted/2 && int64(c.bytes)+qbytes <= maxUncommittedBytes/2 &&
		c.groups+n <= maxUncommittedGroups/2
}

// full reports whether the pipeline holds as much as it may (engine).
func (c *committer) full() bool {
	return c.inflight > maxUncommitted || c.bytes > maxUncommittedBytes || c.groups > maxUncommittedGroups
}

// waitCommits completes groups until at most max remain in flight (engine).
func (s *Server) waitCommits(max int) {
	c := s.commit
	if c.groups > max {
		c.hurry.Store(true) // no coalescing while the engine waits
		signal(c.wake)      // groups an inline iteration enqueued quietly
	}
	for c.groups > max {
		<-c.ready
		s.completeCommits()
	}
	c.hurry.Store(false)
}
