package streaming

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/starling-io/starling/core"
	"github.com/starling-io/starling/core/ipq"
	"github.com/starling-io/starling/proto/stanpb"
	"github.com/starling-io/starling/raftlog"
	"github.com/starling-io/starling/stores"
)

// Bus is what streaming needs from core; *core.Conn satisfies it.
type Bus interface {
	Subscribe(subject, queue string, h core.MsgHandler) (Subscription, error)
	Publish(subject, reply string, hdr, data []byte) error
	Flush()
	// IsConnected reports whether the NATS connection cid is still open.
	IsConnected(cid uint64) bool
	// ConnUser returns the authenticated user of connection cid ("" without auth), and
	// false when cid is no open connection.
	ConnUser(cid uint64) (string, bool)
	// HasInterest reports whether anything subscribes to subject now.
	HasInterest(subject string) bool
	// MaxPayload is the largest message Publish accepts now.
	MaxPayload() int
	// Backlogged reports whether what is published to subject now would queue behind a
	// backlog its destination has not read yet (core.Conn.Backlogged).
	Backlogged(subject string) bool
}

// Subscription is a Bus subscription.
type Subscription interface{ Unsubscribe() error }

// InProcess is the Bus of a streaming layer inside the core server: its in-process
// connection, the fast path (no socket, no copy of what it publishes).
func InProcess(c *core.Conn) Bus { return inProcess{c} }

// inProcess adapts core.Conn, whose Subscribe returns its own subscription type.
type inProcess struct{ *core.Conn }

func (b inProcess) Subscribe(subject, queue string, h core.MsgHandler) (Subscription, error) {
	sub, err := b.Conn.Subscribe(subject, queue, h)
	if err != nil {
		return nil, err
	}
	return sub, nil
}

// PublishRun implements runBus.
func (b inProcess) PublishRun(subject string, data []byte, ends []int) error {
	return b.Conn.PublishRun(subject, data, ends)
}

// SubscribeBatch implements batchBus.
func (b inProcess) SubscribeBatch(subject, queue string, h core.MsgHandler, end func(idle func() bool)) (Subscription, error) {
	sub, err := b.Conn.SubscribeBatch(subject, queue, h, end)
	if err != nil {
		return nil, err
	}
	return sub, nil
}

// batchBus is a Bus whose publishers can tell the end of a run of deliveries
// (core.Conn.SubscribeBatch): the protocol handlers then wake the engine once per run, or
// run it on the publisher's goroutine (endOfBuffer).
type batchBus interface {
	SubscribeBatch(subject, queue string, h core.MsgHandler, end func(idle func() bool)) (Subscription, error)
	// FlushInPlace is Flush on a publisher's read goroutine (core.Conn.FlushInPlace).
	FlushInPlace()
}

// runBus is a Bus that takes a run of messages to one subject in one call
// (core.Conn.PublishRun): message i is data[ends[i-1]:ends[i]], and a message over max
// payload refuses the whole run (ErrMaxPayload) having delivered none of it.
type runBus interface {
	PublishRun(subject string, data []byte, ends []int) error
}

// Server is the streaming layer. Create it with New, then Start it.
type Server struct {
	opts       Options
	log        *slog.Logger
	bus        Bus
	store      stores.Store
	sm         *stateMachine // the replicated state (fsm.go); the rest of Server is the engine
	rlog       raftlog.Log
	replicated bool // the log replicates: commands travel encoded (replicate.go)

	recovered *stores.RecoveredState // what New recovered, for Start's restore
	id        string                 // streaming server id (a NUID, not the NATS server id)
	start     time.Time

	// Subjects (spec §2).
	discover, pings, pubPrefix, subReq, unsubReq, subCloseReq, closeReq string
	ackPrefix, hbPrefix, checkPrefix                                    string

	q *ipq.Queue[op] // everything the engine does arrives here

	// runMu is held by whoever runs the engine: its goroutine, or a client's read goroutine
	// in endOfBuffer. All engine state below is owned by the holder.
	runMu       sync.Mutex
	engineUp    bool             // run has started: endOfBuffer may run the engine
	stopped     bool             // run has stopped: nobody runs the engine any more
	metaSeen    <-chan time.Time // the metadata timer channel run waits on now
	kick        chan struct{}    // endOfBuffer armed the metadata timer: run looks again
	inlineBatch []op             // endOfBuffer's batch
	batchBus    batchBus         // bus, when it can run the engine on its publishers' goroutines
	runBus      runBus           // bus, when it takes runs of messages to one subject (sendRun)

	pubBufs pubChunks      // the copies of queued publishes (pubbuf.go)
	subs    []Subscription // the protocol subscriptions, while leading (guarded by mu)
	// fetchSub answers other nodes' fetch requests (fetch.go), replicated only (guarded by mu)
	fetchSub   Subscription
	fetchTimes fetchTimes // zero: the defaults
	stop       chan struct{}
	done       chan struct{}

	// Engine-owned state (one goroutine; see DESIGN.md).
	clients    map[string]*client
	byConnID   map[string]*client
	channels   map[string]*channel
	lowerNames map[string]string // lower-case name → name, to refuse case conflicts
	// ahead is the rest of the iteration's batch, after the op being handled: a creation
	// creates the channels those ops will ask for with it (create.go). createFailed is why a
	// creation this iteration made failed, by name, for the ops that needed it.
	ahead        []op
	createFailed map[string]string
	byAck        map[string]*subState // by ack inbox (unsubscribe requests name it)
	byAckID      map[ackKey]*subState // by the ack inbox's last token (acks)

	otherAckPrefixes map[string]struct{} // subjects of restored ack inboxes another server handed out (recover.go)
	checks           map[string]*dupCheck
	scratch          scratch
	commit           *committer    // the completion stage (commit.go)
	failLog          rateLog       // delivery failures (delivery.go)
	ackLog           rateLog       // refused acks
	hbLog            rateLog       // refused heartbeat answers
	pubLog           rateLog       // refused publishes (a client may send many)
	healLog          rateLog       // channel stores still failing (durable.go: every broken channel, every second)
	viewLog          rateLog       // expiry passes skipped: a channel's view behind its store (limits.go)
	sentFailLog      rateLog       // sent/ack records not recorded (delivery.go)
	sentLostLog      rateLog       // the same, for a leadership lost
	acksInFlight     []ackProposal // sent/ack proposals not resolved when made (delivery.go)

	// Metadata waiting for its commit (durable.go).
	waiting     []afterCommit // replies (and undos) waiting for the commit of what they confirm
	splitMeta   bool          // the store's client and subscription records split their Sync
	metaRetryAt time.Time     // after a failed metadata commit: when to try again unasked
	metaTimer   *time.Timer   // wakes the engine when records waited metaDelay (metaDue)
	metaC       <-chan time.Time
	metaAt      time.Time
	metaFired   bool // the engine woke on metaC since the timer was last armed (armMeta)

	pubAckLatency histogram    // latency.go
	refusedPubs   atomic.Int64 // publishes refused because q was full
	lastOverload  atomic.Int64 // engineClock.mono of the last "queue full" line
	maxPayload    int          // core's max_payload, read at each engine batch
	leader        bool         // engine: this replica leads (opLeadership)
	leaseUntil    time.Time    // engine: no other replica can lead before then (delivery.go)
	leaseAsked    bool         // engine: leaseUntil was asked for in this iteration
	retryTimer    *time.Timer  // engine: armed while sends refused for want of a lease wait
	held          []*subState  // engine: subscriptions whose deliveries wait for their destination (heldBack)
	heldTimer     *time.Timer  // engine: armed while held is not empty
	resumes       []*subState  // engine: subscriptions an ack unstalled, resumed after the run of acks (flushResumes)
	inlineDone    int          // passes the committer's goroutine completed itself (completeInline; under runMu; tests)
	leaderChanges atomic.Int64 // how many times the engine's role changed (engine writes)
	snapsQueued   atomic.Int32 // monitoring snapshot ops queued, not yet processed (monitor.go)
	snapWait      atomic.Int64 // bounds a monitoring snapshot's wait for the engine, ns (0: snapshotWait)
	leaderTerm    uint64       // the log's term when the engine last took over (termer)
	hbTickAt      time.Time    // engine: when a heartbeat tick was last handled (processHbTick)
	clock         engineClock  // engine: its deadline and wall times (clock.go)

	takeOverFails int                             // engine: takeovers failed in a row in failTerm (takeOverFailed)
	failTerm      uint64                          // engine: the term of those failures
	takeOverErr   atomic.Pointer[takeOverFailure] // the failing takeover, for monitoring (failingTakeOver)
	giveUps       sync.WaitGroup                  // giveUpLeadership hand-offs running: Shutdown waits for them
	giveUpCtx     context.Context                 // their context: ended by Shutdown
	endGiveUps    context.CancelFunc

	mu      sync.Mutex // guards stats read by monitoring
	stats   Stats
	closed  bool
	started bool // the engine runs (Shutdown waits for it only then)
}

// Stats are counters for /streaming/serverz.
type Stats struct {
	InMsgs, InBytes, OutMsgs, OutBytes uint64
}

// transferTimeout bounds how long a leader that shuts down tries to hand leadership over.
const transferTimeout = 2 * time.Second

// LogFactory creates the replication log over the server as its state machine:
// raftlog.Standalone, or a replicated log, whose creation can fail (its directory, its peers).
type LogFactory func(raftlog.StateMachine) (raftlog.Log, error)

// New builds the streaming layer over bus and store, with the log newLog creates.
func New(bus Bus, store stores.Store, newLog LogFactory, opts Options) (*Server, error) {
	o := opts.withDefaults()
	if !validChannel(o.ClusterID) || !validClientID(o.ClusterID) {
		return nil, fmt.Errorf("streaming: invalid cluster ID %q", o.ClusterID)
	}
	s := &Server{
		opts: o, log: o.Logger, bus: bus, store: store, id: nuid(), start: time.Now(),
		clients: map[string]*client{}, byConnID: map[string]*client{}, channels: map[string]*channel{},
		lowerNames: map[string]string{}, createFailed: map[string]string{}, byAck: map[string]*subState{}, byAckID: map[ackKey]*subState{}, checks: map[string]*dupCheck{},
		otherAckPrefixes: map[string]struct{}{},
		stop:             make(chan struct{}), done: make(chan struct{}),
	}
	s.giveUpCtx, s.endGiveUps = context.WithCancel(context.Background())
	s.clock.base = s.start.Add(-time.Duration(s.start.UnixNano())) // mono starts at the wall time
	c := o.ClusterID
	s.discover = o.DiscoverPrefix + "." + c
	s.pings = s.discover + ".pings"
	s.pubPrefix = "_STAN.pub." + c
	s.subReq = "_STAN.sub." + c
	s.unsubReq = "_STAN.unsub." + c
	s.subCloseReq = "_STAN.subclose." + c
	s.closeReq = "_STAN.close." + c
	s.setID(s.id)
	_, s.splitMeta = store.(stores.SplitSyncer)
	s.maxPayload = bus.MaxPayload()
	s.q = ipq.New[op]("streaming", o.QueueLimit)
	s.kick = make(chan struct{}, 1)
	s.batchBus, _ = s.bus.(batchBus)
	s.runBus, _ = s.bus.(runBus)
	s.commit = newCommitter()
	s.commit.completeHere = s.completeInline
	// The configured limits go to the store before the log starts: a replicated log may
	// install the replicated ones (replimits.go) as soon as it exists.
	if err := o.Limits.Validate(); err != nil {
		return nil, fmt.Errorf("streaming: limits: %w", err)
	}
	if err := store.SetLimits(o.Limits); err != nil {
		return nil, fmt.Errorf("streaming: limits: %w", err)
	}
	s.sm = newStateMachine(store)
	if o.Context != nil {
		s.sm.stopFetching()
		s.sm.fetching, s.sm.stopFetching = context.WithCancel(o.Context)
	}
	s.sm.onLimits = s.limitsApplied
	// The state machine holds what the store recovered before the log starts: a replicated
	// log restores its snapshot onto it and replays what follows, idempotently (fsm.go).
	st, err := s.sm.recover()
	if err != nil {
		return nil, fmt.Errorf("streaming: recover: %w", err)
	}
	if st == nil {
		// A new store is initialised before the log starts: a snapshot restore may create
		// channels in it, which the next start must recover (a store never initialised
		// recovers nothing: the restore then found its channels "already existing").
		if err := store.Init(stores.ServerInfo{ClusterID: o.ClusterID, Discovery: s.discover,
			Publish: s.pubPrefix, Subscribe: s.subReq, Unsubscribe: s.unsubReq, Close: s.closeReq, SubClose: s.subCloseReq,
			NodeID: s.id}); err != nil {
			return nil, fmt.Errorf("streaming: init store: %w", err)
		}
	}
	s.recovered = st
	s.sm.fetch = s.fetch
	s.sm.setReplicated(true) // a replicated log may apply as soon as it exists
	s.sm.restoringAtStart(true)
	rlog, err := newLog(s.sm)
	s.sm.restoringAtStart(false)
	if err != nil {
		return nil, fmt.Errorf("streaming: replication log: %w", err)
	}
	s.rlog = rlog
	_, standalone := rlog.(*raftlog.Local)
	s.replicated = !standalone
	// Replicated, groups wait for the log's commit: no added wait. Standalone, only a store
	// whose commits are costly asks for it.
	cc, ok := store.(stores.CommitCoalescer)
	s.commit.coalesceOff = s.replicated || !ok || !cc.CoalesceCommits()
	s.sm.setReplicated(s.replicated)
	s.leader = rlog.IsLeader() // later changes arrive as opLeadership
	return s, nil
}

// setID sets the server id and the private subjects derived from it. The id is persisted,
// so ack inboxes handed out before a restart keep working after it.
func (s *Server) setID(id string) {
	s.id = id
	s.ackPrefix = "_INBOX." + id
	s.hbPrefix = "_STAN.hb." + id
	s.checkPrefix = "_STAN.check." + id
}

// nuid returns a random 22-character token.
func nuid() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return base64.RawURLEncoding.EncodeToString(b[:])
}

// Start recovers state from the store, subscribes to the protocol subjects and starts the
// engine.
func (s *Server) Start() error {
	if !s.replicated {
		if err := s.ensureAlone(); err != nil {
			return err
		}
	}
	if err := s.recover(); err != nil {
		return err
	}
	if s.leader {
		if err := s.serve(true); err != nil {
			return err
		}
		s.deliverAll() // the engine does not run yet
		s.flushStats()
		s.bus.Flush()
	}
	if s.replicated {
		if err := s.serveFetch(); err != nil {
			return err
		}
	}
	s.started = true
	s.maxPayload = s.bus.MaxPayload()
	s.runMu.Lock()
	s.engineUp = true
	s.runMu.Unlock()
	go s.run()
	go s.heartbeatLoop()
	go s.leadershipLoop()
	s.log.Info("streaming server ready", "cluster_id", s.opts.ClusterID, "store", s.store.Name(), "server_id", s.id)
	return nil
}

// probeTimeout bounds the wait for another streaming server's answer at startup.
const probeTimeout = 250 * time.Millisecond

// ensureAlone refuses to start a standalone server when another streaming server answers on
// its discover subject, as nats-streaming-server does: both would answer every request
// (two PubAcks, two deliveries, two stores going apart). The probe is a connect with the
// cluster ID as client ID, closed again on the other server. Nobody subscribed (known at
// once in process; a no-responders status from an external server) means alone.
func (s *Server) ensureAlone() error {
	if !s.bus.HasInterest(s.discover) {
		return nil
	}
	type answer struct {
		data []byte
		none bool
	}
	answers := make(chan answer, 1)
	inbox := "_INBOX." + nuid()
	sub, err := s.bus.Subscribe(inbox, "", func(m core.Msg) {
		a := answer{data: append([]byte(nil), m.Data...), none: len(m.Header) > 0 && len(m.Data) == 0}
		select {
		case answers <- a:
		default:
		}
	})
	if err != nil {
		return fmt.Errorf("streaming: looking for another server: %w", err)
	}
	defer func() {
		if sub != nil {
			_ = sub.Unsubscribe()
		}
	}()
	req, _ := proto.Marshal(&stanpb.ConnectRequest{ClientID: s.opts.ClusterID, HeartbeatInbox: "_INBOX." + nuid()})
	if err := s.bus.Publish(s.discover, inbox, nil, req); err != nil {
		return fmt.Errorf("streaming: looking for another server: %w", err)
	}
	s.bus.Flush()
	var a answer
	select {
	case a = <-answers:
	case <-time.After(probeTimeout):
		return nil
	}
	if a.none {
		return nil
	}
	cr := &stanpb.ConnectResponse{}
	if err := proto.Unmarshal(a.data, cr); err != nil {
		return fmt.Errorf("streaming: something other than a streaming server answers on %s: %w", s.discover, err)
	}
	if cr.CloseRequests != "" {
		b, _ := proto.Marshal(&stanpb.CloseRequest{ClientID: s.opts.ClusterID})
		_ = s.bus.Publish(cr.CloseRequests, "", nil, b)
		s.bus.Flush()
	}
	return fmt.Errorf("streaming: discovered another streaming server with cluster ID %q", s.opts.ClusterID)
}

// recover loads clients, channels and subscriptions from the store (durable stores).
func (s *Server) recover() error {
	st := s.recovered
	s.recovered = nil
	if st == nil {
		return nil // a new store, initialised in New
	}
	if st.Info.ClusterID != "" && st.Info.ClusterID != s.opts.ClusterID {
		return fmt.Errorf("streaming: cluster ID %q does not match recovered value of %q", s.opts.ClusterID, st.Info.ClusterID)
	}
	if st.Info.NodeID != "" {
		s.setID(st.Info.NodeID)
	}
	if !s.leader {
		return nil // a follower's engine holds no view: it builds one when it leads (takeOver)
	}
	return s.restore(st)
}

// HandOver makes a replicated node that is going (at Shutdown, and as lame duck mode
// begins, while core still routes requests here) stop standing for election, and a leader
// hand its leadership to another node: the others serve within a transfer rather than an
// election timeout, and none of them elects this node again before it goes. A no-op
// standalone, or once shut down.
func (s *Server) HandOver() {
	s.mu.Lock()
	closed := s.closed
	s.mu.Unlock()
	if closed || !s.replicated {
		return
	}
	if l, ok := s.rlog.(leaver); ok {
		l.Leave()
	}
	if !s.rlog.IsLeader() {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), transferTimeout)
	defer cancel()
	if err := s.rlog.TransferLeadership(ctx); err != nil {
		s.log.Warn("leadership not handed over: the others elect a leader after their timeout", "err", err)
	}
}

// leaver is a log whose node can stop standing for election (raftlog.Node.Leave).
type leaver interface{ Leave() }

// Shutdown stops the engine and closes the store. A replicated leader first hands its
// leadership over (HandOver).
func (s *Server) Shutdown() error {
	s.endGiveUps() // a hand-off of a failing takeover stops: HandOver's is the one now
	s.HandOver()
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	s.sm.stopFetching() // a restore in progress fails now: the log's Close waits for it
	subs := s.subs
	if s.fetchSub != nil {
		subs = append(subs, s.fetchSub)
		s.fetchSub = nil
	}
	s.subs = nil
	s.mu.Unlock()
	for _, sub := range subs {
		if sub != nil {
			_ = sub.Unsubscribe()
		}
	}
	close(s.stop)
	if s.started {
		<-s.done
	}
	// Only the engine starts hand-offs (takeOverFailed): none starts after it stopped.
	s.giveUps.Wait()
	return errors.Join(s.rlog.Close(), s.store.Close())
}

// ClusterID returns the cluster ID clients connect with.
func (s *Server) ClusterID() string { return s.opts.ClusterID }
