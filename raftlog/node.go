package raftlog

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"
	raftboltdb "github.com/hashicorp/raft-boltdb/v2"
	"go.etcd.io/bbolt"
	bolterrors "go.etcd.io/bbolt/errors"

	"github.com/starling-io/starling/raftlog/seglog"
)

var _ Log = (*Node)(nil)

// Node is the replicated Log: a member of one raft group (hashicorp/raft, with raft-boltdb
// as its log and stable store). A proposal on the leader becomes one raft entry (several
// contiguous ones past Config.MaxEntryBytes); once a majority has it, every replica decodes
// and applies it with the StateMachine, and the leader's Future resolves with Apply's
// results. See DESIGN.md for the entry and snapshot formats and for how commands are
// numbered.
type Node struct {
	cfg       Config
	log       *slog.Logger
	raft      *raft.Raft
	store     *raftboltdb.BoltStore // the stable store (and the log, LogStoreBolt)
	logCloser io.Closer             // the segment log, nil for bolt's
	fsm       *fsm
	reaper    *reaper
	leader    *leadershipChan
	contacts  *contacts             // the peers' last acceptances of this node's term (lease.go); nil: not noted
	transfer  transferGuard         // leadership transfers that may elect their target: no lease
	leaving   leaving               // Leave: the node no longer stands for election (leave.go)
	snapErr   atomic.Pointer[error] // the latest snapshot's failure; nil once one succeeds
	resolved  chan struct{}         // closed: the Done channel of futures resolved when made

	notify    chan bool     // raft's leadership changes, read by watch
	haltCh    chan struct{} // closed once the node stopped (halt, logFailed)
	haltOnce  sync.Once
	stopErr   atomic.Pointer[error] // why it stopped (the first cause), nil while it runs
	watchStop chan struct{}
	watchDone chan struct{}
	shutOnce  sync.Once // raft shuts down once, from Close or after a halt

	// mu gates proposals against Close and a halt: a proposal holds it shared from its checks
	// until raft has the entry and the reaper its future, so that once Close or the halt
	// holds it exclusively no proposal is half made and the sweep finds every one in flight.
	// It is held across raft.ApplyLog, which waits only for room in raft's buffer.
	mu     sync.RWMutex
	closed bool // Close was called
	halted bool // raft was shut down because the node stopped (halt, logFailed)

	// applyMu orders proposals into raft: a proposal of several entries enqueues them all
	// before another proposal enqueues anything.
	applyMu sync.Mutex

	isClosed  atomic.Bool // closed, read without mu
	closeOnce sync.Once
	closeErr  error
}

// Stats is a Node's state for monitoring.
type Stats struct {
	Group, NodeID string
	Role          raft.RaftState // Leader, Follower, Candidate or Shutdown
	LeaderID      string         // "" when no leader is known
	LeaderAddr    string
	Term          uint64
	LastLogIndex  uint64   // raft indexes: the last entry in the log (or snapshot)...
	CommitIndex   uint64   // ...the last known committed...
	AppliedIndex  uint64   // ...and the last handed to the state machine
	CommandIndex  uint64   // the last command applied (commands, not entries: DESIGN.md)
	Stopped       error    // why the node stopped applying (ErrStopped), nil while it applies
	Voters        []string // the group's voters in the latest configuration, sorted
	// SnapshotErr is why the latest snapshot failed, nil once one succeeds: meanwhile raft
	// compacts nothing and its log grows.
	SnapshotErr error
	// LastContact is, off the leader, how long ago the node last heard from a leader (an
	// append or a heartbeat): past the heartbeat timeout it starts an election. 0 on the
	// leader; -1 when it never heard from one.
	LastContact time.Duration
}

// NewNode opens (or creates) the group's raft state under cfg.Dir/cfg.Group, bootstraps
// cfg.Peers if there is none yet, restores the latest snapshot into sm, and starts raft.
// The log then replays into sm as raft learns what is committed, so sm must start empty.
func NewNode(cfg Config, sm StateMachine) (_ *Node, err error) {
	defer func() {
		if err != nil {
			if c, ok := cfg.Transport.(raft.WithClose); ok {
				_ = c.Close()
			}
		}
	}()
	c, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	if sm == nil {
		return nil, errors.New("raftlog: NewNode: nil StateMachine")
	}
	dir := filepath.Join(c.Dir, c.Group)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("raftlog: %w", err)
	}
	logger := c.Logger.With("raft_group", c.Group, "node", c.NodeID)
	level := hclogLevel(c.RaftLogLevel)
	if c.NoRaftLog {
		level = hclog.Off
	}
	hl := newHCLogger(logger, "raft", level)

	st, err := openStores(&c, dir, logger, hl)
	if err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			st.close()
		}
	}()
	n := newNode(c, logger, st, sm)
	rc := c.raftConfig(hl, n.notify)
	if err = n.bootstrapIfNew(rc, st, dir); err != nil {
		return nil, err
	}
	if c.BeforeStart != nil {
		if err = c.BeforeStart(); err != nil {
			return nil, err
		}
	}
	if err = n.startRaft(rc, st, dir); err != nil {
		return nil, err
	}
	go n.watch()
	go n.reaper.run()
	return n, nil
}

// raftStores are the stores NewNode opened for raft.
type raftStores struct {
	bolt      *raftboltdb.BoltStore // the stable store (and the log, LogStoreBolt)
	logCloser io.Closer             // the segment log, nil for bolt's
	guarded   *failStop             // the log store, halting the node when it fails
	logs      *logCache             // the cache over guarded: the log raft uses
	snaps     raft.SnapshotStore
	checked   *checkedSnapshot // the newest snapshot that opened, held open for raft's restore; nil: none
}

// close closes the log, then bolt.
func (st *raftStores) close() {
	if st.checked != nil {
		_ = st.checked.rc.Close()
	}
	if st.logCloser != nil {
		_ = st.logCloser.Close()
	}
	_ = st.bolt.Close()
}

// openStores opens the group's stores in dir — raft.db, the log, the snapshots — and
// refuses a log or snapshots that fail their checks.
func openStores(c *Config, dir string, logger *slog.Logger, hl *hcLogger) (_ *raftStores, err error) {
	store, err := openBolt(filepath.Join(dir, "raft.db"), dir, c.NoSync)
	if err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			_ = store.Close()
		}
	}()
	logStore, logCloser, logPath, err := openLog(c, dir, store, logger)
	if err != nil {
		return nil, err
	}
	defer func() {
		if err != nil && logCloser != nil {
			_ = logCloser.Close()
		}
	}()
	// The segment log checked every record's checksum as it opened; bolt checks nothing in
	// its values.
	if _, segments := logStore.(*seglog.Store); !segments {
		if err = checkEntries(logPath, logStore); err != nil {
			return nil, err
		}
	}
	guarded := &failStop{LogStore: logStore}
	logs := newLogCache(guarded, c.LogCacheSize, c.LogCacheBytes)
	fileSnaps, err := raft.NewFileSnapshotStoreWithLogger(dir, c.SnapshotRetain, hl.Named("snapshots"))
	if err != nil {
		return nil, fmt.Errorf("raftlog: snapshot store in %s: %w", dir, err)
	}
	var snaps raft.SnapshotStore = fileSnaps
	if c.snapshotOpened != nil {
		snaps = &openHook{SnapshotStore: snaps, opened: c.snapshotOpened}
	}
	if err = checkLogReach(logPath, logStore, snaps); err != nil {
		return nil, err
	}
	checked, err := checkSnapshots(dir, snaps)
	if err != nil {
		return nil, err
	}
	return &raftStores{bolt: store, logCloser: logCloser, guarded: guarded, logs: logs, snaps: snaps, checked: checked}, nil
}

// openBolt checks and opens raft.db (dbPath) in dir.
func openBolt(dbPath, dir string, noSync bool) (*raftboltdb.BoltStore, error) {
	if err := checkLogFile(dbPath); err != nil {
		return nil, err
	}
	store, err := raftboltdb.New(raftboltdb.Options{
		Path: dbPath,
		// The freelist is not synced: bolt writes all of it at every commit otherwise, and
		// after raft compacts its log it lists hundreds of thousands of pages (a follower
		// wrote 14 KB per 1 KiB message). bolt rebuilds it at Open by walking the file, a
		// walk that faults beyond anyone's recover on a damaged page: checkLogFile walks
		// the file first, with every bound checked, and refuses it.
		BoltOptions: &bbolt.Options{Timeout: time.Second, FreelistType: bbolt.FreelistMapType, NoFreelistSync: true},
		NoSync:      noSync,
	})
	if err != nil {
		if errors.Is(err, bolterrors.ErrTimeout) {
			err = fmt.Errorf("%w (is another node using %s?)", err, dir)
		}
		return nil, fmt.Errorf("raftlog: opening %s: %w", dbPath, err)
	}
	return store, nil
}

// newNode makes the Node over st, before raft starts.
func newNode(c Config, logger *slog.Logger, st *raftStores, sm StateMachine) *Node {
	n := &Node{
		cfg: c, log: logger, store: st.bolt, logCloser: st.logCloser, leader: newLeadershipChan(),
		resolved: make(chan struct{}), notify: make(chan bool, 16), haltCh: make(chan struct{}),
		watchStop: make(chan struct{}), watchDone: make(chan struct{}),
	}
	close(n.resolved)
	n.transfer.init(c.ElectionTimeout)
	n.leaving.init(c)
	st.guarded.fail = n.logFailed
	// The log cache empties itself on any DeleteRange; 1..0 deletes nothing (failStop).
	logs := st.logs
	n.fsm = &fsm{sm: sm, halt: n.halt, restored: func() { _ = logs.DeleteRange(1, 0) }, snapshotted: n.snapshotted}
	n.reaper = newReaper(n.raftErr)
	return n
}

// bootstrapIfNew bootstraps Config.Peers in a directory that holds no raft state yet (no
// term, no log, no snapshot); an existing one keeps its recorded configuration.
func (n *Node) bootstrapIfNew(rc *raft.Config, st *raftStores, dir string) error {
	existing, err := raft.HasExistingState(st.logs, st.bolt, st.snaps)
	if err != nil {
		return fmt.Errorf("raftlog: reading the raft state in %s: %w", dir, err)
	}
	if !existing {
		if err := raft.BootstrapCluster(rc, st.logs, st.bolt, st.snaps, n.cfg.Transport, n.cfg.bootstrap()); err != nil {
			return fmt.Errorf("raftlog: bootstrapping %v: %w", n.cfg.Peers, err)
		}
		n.log.Info("raftlog: bootstrapped a new raft group", "peers", n.cfg.Peers)
	}
	return nil
}

// startRaft starts raft over st, through a transport that notes the peers' contacts for
// the lease (lease.go) where it can, and that keeps raft's heartbeat fast path from
// changing the node's term or state (heartbeat.go).
func (n *Node) startRaft(rc *raft.Config, st *raftStores, dir string) error {
	trans := n.cfg.Transport
	var guard *beatGuard // the heartbeat fast path's guard (heartbeat.go), when contacts is not
	if n.contacts = newContacts(trans, n.cfg.NodeID, &n.transfer, &n.leaving); n.contacts != nil {
		trans = n.contacts
	} else {
		guard = &beatGuard{Transport: trans}
		trans = guard
	}
	snaps := &snapStore{SnapshotStore: st.snaps, failed: n.snapshotted, checked: st.checked}
	st.checked = nil // snaps closes it
	var err error
	n.raft, err = raft.NewRaft(rc, n.fsm, st.logs, st.bolt, snaps, trans)
	snaps.dropChecked() // raft restored it, or a newer snapshot, or failed
	if err != nil {
		// Name the directory: raft's own errors do not ("failed to load any existing
		// snapshots" when every snapshot fails its CRC), and the operator must find it.
		return fmt.Errorf("raftlog: starting raft in %s: %w", dir, err)
	}
	if n.contacts != nil {
		n.contacts.raft.Store(n.raft)
	} else {
		guard.raft.Store(n.raft)
	}
	return nil
}

// Propose proposes c.Data (Value is not replicated) as one raft entry. See ProposeBatch.
func (n *Node) Propose(ctx context.Context, c Command) Future {
	one := [1]Command{c}
	return n.propose(ctx, one[:])
}

// ProposeBatch proposes cs as one raft entry (or, past MaxEntryBytes, as several contiguous
// entries, split between commands), applied contiguously and in order. It
// returns once raft has the entry (several can be in flight); the Future resolves once the
// entry is applied on this node, with Apply's results. Refusals, with index 0: a
// *NotLeaderError (ErrNotLeader) at once on a follower; ErrClosed after Close; an
// ErrStopped error after the node stopped applying; ErrTimeout if ctx's deadline passed
// before raft took the entry; ErrLeadershipLost if this node stopped leading first (the
// entry may still be applied: its outcome is unknown); ctx.Err() if ctx ends first (likewise
// unknown once raft has the entry).
func (n *Node) ProposeBatch(ctx context.Context, cs []Command) Future {
	if len(cs) == 0 {
		return resolvedFuture(n.resolved, outcome{})
	}
	return n.propose(ctx, cs)
}

func (n *Node) propose(ctx context.Context, cs []Command) Future {
	timeout, err := enqueueTimeout(ctx)
	if err != nil {
		return resolvedFuture(n.resolved, refused(err))
	}
	// Encoded before taking mu: Close need not wait for the copy.
	var data []byte
	parts := n.split(cs)
	if parts == nil {
		data = encodeEntry(cs)
	}
	n.mu.RLock()
	if err := n.refusal(); err != nil {
		n.mu.RUnlock()
		return resolvedFuture(n.resolved, refused(err))
	}
	p := newProposal()
	if ctx.Done() != nil {
		p.stopCtx = context.AfterFunc(ctx, func() { p.finish(refused(ctx.Err())) })
	}
	// One proposal's entries are contiguous in the log: nothing is enqueued between them.
	n.applyMu.Lock()
	if parts == nil {
		p.f = n.raft.ApplyLog(raft.Log{Data: data}, timeout)
	} else {
		for i := range parts {
			// Every part waits for raft without a limit (ctx still ends the wait for the
			// outcome): a first part refused on a timeout while the rest went in would
			// leave the log a proposal's later commands, or a command's fragments,
			// without their start.
			parts[i].f = n.raft.ApplyLog(raft.Log{Data: parts[i].data}, 0)
			parts[i].data = nil
		}
		p.parts = parts
	}
	n.applyMu.Unlock()
	n.reaper.push(p)
	n.mu.RUnlock()
	return p.future()
}

// split encodes cs as several entries when it does not fit one of MaxEntryBytes; nil when
// it does. A command too large for an entry of its own goes in fragments.
func (n *Node) split(cs []Command) []entryPart {
	limit := n.cfg.MaxEntryBytes
	ends := entryEnds(cs, limit)
	if ends == nil {
		if len(cs) != 1 || !oversized(cs[0], limit) {
			return nil
		}
		ends = []int{1}
	}
	parts := make([]entryPart, 0, len(ends))
	start := 0
	for _, end := range ends {
		if end-start == 1 && oversized(cs[start], limit) {
			parts = appendFragments(parts, cs[start].Data, limit)
		} else {
			parts = append(parts, entryPart{data: encodeEntry(cs[start:end]), n: end - start})
		}
		start = end
	}
	return parts
}

// enqueueTimeout is how long raft may take to accept an entry: until ctx's deadline, or
// without limit (0).
func enqueueTimeout(ctx context.Context) (time.Duration, error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	d, ok := ctx.Deadline()
	if !ok {
		return 0, nil
	}
	t := time.Until(d)
	if t <= 0 {
		return 0, context.DeadlineExceeded
	}
	return t, nil
}

// refusal says why a proposal or barrier must not be made now, or nil. n.mu is held.
func (n *Node) refusal() error {
	switch {
	case n.closed:
		return ErrClosed
	case n.halted:
		return n.stopped()
	}
	if err := n.stopped(); err != nil {
		return err
	}
	if n.raft.State() != raft.Leader {
		return n.notLeader()
	}
	return nil
}

// notLeader is the refusal of a follower, naming the leader if it is known.
func (n *Node) notLeader() error {
	addr, id := n.raft.LeaderWithID()
	e := &NotLeaderError{LeaderID: string(id), LeaderAddr: string(addr)}
	if e.LeaderAddr == "" && id != "" && n.cfg.Resolve != nil {
		if a, err := n.cfg.Resolve.ServerAddr(id); err == nil {
			e.LeaderAddr = string(a)
		}
	}
	return e
}

// stopped is the ErrStopped error once the fsm stopped applying, or nil.
func (n *Node) stopped() error {
	if p := n.stopErr.Load(); p != nil {
		return *p
	}
	return nil
}

// raftErr maps raft's errors to this package's.
func (n *Node) raftErr(err error) error {
	switch {
	case errors.Is(err, raft.ErrNotLeader), errors.Is(err, raft.ErrLeadershipTransferInProgress):
		return n.notLeader()
	case errors.Is(err, raft.ErrLeadershipLost):
		return ErrLeadershipLost
	case errors.Is(err, raft.ErrRaftShutdown):
		if s := n.stopped(); s != nil {
			return s
		}
		return ErrClosed
	case errors.Is(err, raft.ErrEnqueueTimeout):
		return ErrTimeout
	}
	return fmt.Errorf("raftlog: %w", err)
}

// IsLeader reports whether this node leads the group now (and neither closed nor stopped).
func (n *Node) IsLeader() bool {
	return !n.isClosed.Load() && n.stopped() == nil && n.raft.State() == raft.Leader
}

// Term is raft's current term: a leader whose term moved lost its leadership meanwhile,
// even if Leadership's newest value (true) hides it.
func (n *Node) Term() uint64 { return n.raft.CurrentTerm() }

// Leadership reports raft's leadership changes, in order, newest unread value only; false
// once the node closes or stops applying.
func (n *Node) Leadership() <-chan bool { return n.leader.C() }

// Barrier returns once every entry committed before it has been applied on this node —
// what a new leader waits for before it serves from its state. It fails with a
// *NotLeaderError on a follower, ErrClosed, an ErrStopped error, ErrLeadershipLost or
// ctx.Err().
func (n *Node) Barrier(ctx context.Context) error {
	timeout, err := enqueueTimeout(ctx)
	if err != nil {
		return err
	}
	n.mu.RLock()
	if err := n.refusal(); err != nil {
		n.mu.RUnlock()
		return err
	}
	p := newProposal()
	p.barrier = true
	p.f = n.raft.Barrier(timeout)
	n.reaper.push(p)
	n.mu.RUnlock()
	select {
	case <-p.done:
		return p.outcome.err()
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Snapshot makes raft take a snapshot now and compact its log (keeping TrailingLogs
// entries), as it does by itself every SnapshotThreshold entries. It returns once the
// snapshot is on disk; raft.ErrNothingNewToSnapshot (wrapped) when nothing was applied since
// the last one.
func (n *Node) Snapshot() error {
	if n.isClosed.Load() {
		return ErrClosed
	}
	if err := n.stopped(); err != nil {
		return err
	}
	if err := n.raft.Snapshot().Error(); err != nil {
		if errors.Is(err, raft.ErrRaftShutdown) {
			return n.raftErr(err)
		}
		return fmt.Errorf("raftlog: snapshot: %w", err)
	}
	return nil
}

// snapshotted records how a snapshot ended: raft retries a failed one only at its next
// interval and logs it only when its own log lines are on, while the log grows.
func (n *Node) snapshotted(err error) {
	if err == nil {
		if n.snapErr.Swap(nil) != nil {
			n.log.Info("raftlog: snapshot succeeded after failures")
		}
		return
	}
	n.snapErr.Store(&err)
	n.log.Error("raftlog: snapshot failed: the raft log is not compacted until one succeeds", "err", err)
}

// snapStore reports the snapshots that fail before the state machine's Persist, and gives
// raft's restore at its start the snapshot checkSnapshots opened and checked.
type snapStore struct {
	raft.SnapshotStore
	failed func(error)

	mu      sync.Mutex
	checked *checkedSnapshot // until raft opens it or NewRaft returns
}

// Open opens snapshot id, already open and checked if it is the one checkSnapshots opened.
func (s *snapStore) Open(id string) (*raft.SnapshotMeta, io.ReadCloser, error) {
	if c := s.take(id); c != nil {
		return c.meta, c.rc, nil
	}
	return s.SnapshotStore.Open(id)
}

// dropChecked closes the checked snapshot if raft did not open it.
func (s *snapStore) dropChecked() {
	if c := s.take(""); c != nil {
		_ = c.rc.Close()
	}
}

// take hands the checked snapshot over once: if it is snapshot id, or whichever with "".
func (s *snapStore) take(id string) *checkedSnapshot {
	s.mu.Lock()
	defer s.mu.Unlock()
	c := s.checked
	if c == nil || id != "" && c.id != id {
		return nil
	}
	s.checked = nil
	return c
}

func (s *snapStore) Create(version raft.SnapshotVersion, index, term uint64, configuration raft.Configuration,
	configurationIndex uint64, trans raft.Transport) (raft.SnapshotSink, error) {
	sink, err := s.SnapshotStore.Create(version, index, term, configuration, configurationIndex, trans)
	if err != nil {
		s.failed(fmt.Errorf("raftlog: creating a snapshot: %w", err))
	}
	return sink, err
}

// Stats returns the node's raft state.
func (n *Node) Stats() Stats {
	addr, id := n.raft.LeaderWithID()
	st := Stats{
		Group: n.cfg.Group, NodeID: n.cfg.NodeID,
		Role: n.raft.State(), LeaderID: string(id), LeaderAddr: string(addr),
		Term: n.raft.CurrentTerm(), LastLogIndex: n.raft.LastIndex(),
		CommitIndex: n.raft.CommitIndex(), AppliedIndex: n.raft.AppliedIndex(),
		CommandIndex: n.fsm.published.Load(), Stopped: n.stopped(), Voters: n.voters(),
	}
	if p := n.snapErr.Load(); p != nil {
		st.SnapshotErr = *p
	}
	n.mu.RLock()
	down := n.halted || n.closed
	n.mu.RUnlock()
	if down {
		// raft may report a role after its Shutdown: a leader that steps down on a failed
		// write can set Follower after Shutdown set Shutdown (seen in
		// TestNodeLeavesOnALogWriteFailure). A halted or closed node is nothing any more.
		st.Role = raft.Shutdown
	}
	if st.Role != raft.Leader {
		st.LastContact = -1
		if at := n.raft.LastContact(); !at.IsZero() {
			st.LastContact = time.Since(at)
		}
	}
	return st
}

// voters are the voters of the latest configuration raft knows (empty once shut down).
func (n *Node) voters() []string {
	f := n.raft.GetConfiguration()
	if f.Error() != nil {
		return nil
	}
	var ids []string
	for _, s := range f.Configuration().Servers {
		if s.Suffrage == raft.Voter {
			ids = append(ids, string(s.ID))
		}
	}
	slices.Sort(ids)
	return ids
}

// halt is the fsm's call when it stops applying. It runs on raft's FSM goroutine, so it only
// records why and wakes watch, which shuts raft down: this replica must neither lead nor
// vote with a state that no longer follows the log.
func (n *Node) halt(err error) {
	n.stop(err, "raftlog: STOPPED APPLYING the replicated log: this node cannot apply an entry the others can "+
		"(an op this version does not know, a corrupt entry, or a local failure such as a full disk); "+
		"it leaves the group until it is restarted once the cause is fixed, and then replays the log")
}

// stop records the first cause of a halt (err wraps ErrStopped), logs it with msg, and
// wakes watch. It never blocks.
func (n *Node) stop(err error, msg string) {
	if !n.stopErr.CompareAndSwap(nil, &err) {
		return
	}
	n.log.Error(msg, "err", err)
	n.haltOnce.Do(func() { close(n.haltCh) })
}

// watch follows raft's leadership changes, carries out a halt and nudges elections (nudge.go).
func (n *Node) watch() {
	defer close(n.watchDone)
	halt := n.haltCh
	var tick <-chan time.Time
	g := newNudger(n.cfg)
	var nudgeT *time.Timer
	if nudgeable(n.cfg) {
		nudgeT = time.NewTimer(g.poll())
		defer nudgeT.Stop()
		tick = nudgeT.C
	}
	for {
		select {
		case <-tick:
			nudgeT.Reset(n.nudgeTick(g))
		case v := <-n.notify:
			if v && (n.stopped() != nil || n.isClosed.Load()) {
				continue
			}
			n.leader.set(v)
			n.log.Info("raftlog: leadership changed", "leader", v, "term", n.raft.CurrentTerm())
		case <-halt:
			halt = nil
			n.shutdownRaft()
			n.mu.Lock()
			n.halted = true
			n.mu.Unlock()
			n.reaper.sweep(n.stopped())
			n.leader.set(false)
		case <-n.watchStop:
			return
		}
	}
}

// shutdownRaft stops raft (and closes the transport) once, waiting for its goroutines.
func (n *Node) shutdownRaft() {
	n.shutOnce.Do(func() {
		if n.contacts != nil {
			close(n.contacts.stop) // RPCs waiting for a peer give up: raft waits for them
		}
		if err := n.raft.Shutdown().Error(); err != nil {
			n.log.Warn("raftlog: raft shutdown", "err", err)
		}
	})
}

// Close leaves the group: it waits briefly for the proposals in flight to resolve, shuts
// raft and its transport down, resolves what is still in flight with ErrClosed, reports
// leadership false and closes the stores. Later proposals and barriers fail with ErrClosed.
// The state machine is the caller's. Safe to call more than once.
func (n *Node) Close() error {
	n.closeOnce.Do(func() {
		n.mu.Lock()
		n.closed = true
		n.isClosed.Store(true)
		n.mu.Unlock()
		n.reaper.drain(2 * n.cfg.ElectionTimeout)
		n.shutdownRaft()
		n.reaper.sweep(ErrClosed)
		close(n.watchStop)
		<-n.watchDone
		n.leader.set(false)
		if n.logCloser != nil {
			if err := n.logCloser.Close(); err != nil {
				n.closeErr = fmt.Errorf("raftlog: closing the raft log: %w", err)
			}
		}
		if err := n.store.Close(); err != nil {
			n.closeErr = fmt.Errorf("raftlog: closing the raft store: %w", err)
		}
	})
	return n.closeErr
}
