// Package raftlogtest runs raft groups of raftlog.Nodes in one process, over raft's
// in-memory transport, with a deterministic state machine (SM) and partitions — for tests
// only (it imports testing).
package raftlogtest

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/raft"
	"github.com/starling-io/starling/raftlog"
)

// Options configures a Cluster.
type Options struct {
	Nodes  int                            // default 3
	Config func(i int, c *raftlog.Config) // adjusts member i's config before each start
	NewOps func(i int) bool               // whether member i's SM knows the newer ops
	Logger *slog.Logger                   // default: discarded
	// Transport, if set, gives the transport member m's node uses, around its in-memory one.
	Transport func(m *Member, t *raft.InmemTransport) raft.Transport
}

// Member is one node of a Cluster. Node is nil while the member is stopped; SM is the state
// machine of its latest start.
type Member struct {
	I    int
	ID   string
	Dir  string
	Node *raftlog.Node
	SM   *SM

	trans *raft.InmemTransport
}

// Cluster is a raft group of in-process nodes. Its methods fail the test on error; they may
// be called from the test goroutine only.
type Cluster struct {
	t       testing.TB
	opts    Options
	Members []*Member

	mu        sync.Mutex
	isolated  map[string]bool
	ambiguous int // proposals Propose retried after ErrLeadershipLost
}

// Timing for tests: short enough for fast elections, long enough not to flap on a loaded
// two-core machine under the race detector.
const (
	HeartbeatTimeout = 200 * time.Millisecond
	ElectionTimeout  = 200 * time.Millisecond
	LeaseTimeout     = 100 * time.Millisecond
	CommitTimeout    = 5 * time.Millisecond
	// RPCTimeout bounds an in-memory RPC to a node that does not answer (one whose raft shut
	// down after it stopped applying); a stopped member is disconnected instead, which fails
	// at once like a refused connection.
	RPCTimeout = 200 * time.Millisecond
)

// Start starts opts.Nodes members, each in its own directory under t.TempDir(), and closes
// them when the test ends.
func Start(t testing.TB, opts Options) *Cluster {
	t.Helper()
	if opts.Nodes == 0 {
		opts.Nodes = 3
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	c := &Cluster{t: t, opts: opts, isolated: map[string]bool{}}
	dir := t.TempDir()
	for i := range opts.Nodes {
		id := "n" + strconv.Itoa(i+1)
		c.Members = append(c.Members, &Member{I: i, ID: id, Dir: filepath.Join(dir, id)})
	}
	t.Cleanup(func() {
		for _, m := range c.Members {
			if m.Node != nil {
				_ = m.Node.Close()
				m.Node = nil
			}
		}
	})
	for _, m := range c.Members {
		c.Start(m)
	}
	return c
}

// Config returns the config member m starts with.
func (c *Cluster) Config(m *Member) raftlog.Config {
	peers := make([]string, len(c.Members))
	for i, p := range c.Members {
		peers[i] = p.ID
	}
	cfg := raftlog.Config{
		Group: "g0", NodeID: m.ID, Peers: peers, Dir: m.Dir,
		HeartbeatTimeout: HeartbeatTimeout, ElectionTimeout: ElectionTimeout,
		LeaderLeaseTimeout: LeaseTimeout, CommitTimeout: CommitTimeout,
		SnapshotInterval: time.Hour, // snapshots when a test asks, or past the threshold
		NoSync:           true,      // the page cache survives a Node restart in-process
		Logger:           c.opts.Logger.With("member", m.ID),
	}
	if c.opts.Config != nil {
		c.opts.Config(m.I, &cfg)
	}
	return cfg
}

// Start starts stopped member m on its directory with a fresh SM, on a new in-memory
// transport whose address is its ID, connected to every member it is not isolated from.
func (c *Cluster) Start(m *Member) {
	c.t.Helper()
	if m.Node != nil {
		c.t.Fatalf("raftlogtest: %s is running", m.ID)
	}
	_, trans := raft.NewInmemTransportWithTimeout(raft.ServerAddress(m.ID), RPCTimeout)
	m.trans = trans
	m.SM = &SM{}
	m.SM.SetNewOps(c.opts.NewOps != nil && c.opts.NewOps(m.I))
	cfg := c.Config(m)
	cfg.Transport = trans
	if c.opts.Transport != nil {
		cfg.Transport = c.opts.Transport(m, trans)
	}
	c.connect()
	n, err := raftlog.NewNode(cfg, m.SM)
	if err != nil {
		c.t.Fatalf("raftlogtest: starting %s: %v", m.ID, err)
	}
	m.Node = n
}

// Stop closes member m's node.
func (c *Cluster) Stop(m *Member) {
	c.t.Helper()
	if m.Node == nil {
		c.t.Fatalf("raftlogtest: %s is not running", m.ID)
	}
	if err := m.Node.Close(); err != nil {
		c.t.Errorf("raftlogtest: closing %s: %v", m.ID, err)
	}
	m.Node = nil
	m.trans = nil // closed by the Node
	c.connect()
}

// Restart stops and starts member m: its state machine is rebuilt from its directory.
func (c *Cluster) Restart(m *Member) {
	c.t.Helper()
	c.Stop(m)
	c.Start(m)
}

// Wipe deletes stopped member m's raft state, as a replacement machine would have none.
func (c *Cluster) Wipe(m *Member) {
	c.t.Helper()
	if m.Node != nil {
		c.t.Fatalf("raftlogtest: wiping running %s", m.ID)
	}
	if err := os.RemoveAll(m.Dir); err != nil {
		c.t.Fatal(err)
	}
}

// Isolate cuts member m off from every other member, both ways, until Heal.
func (c *Cluster) Isolate(m *Member) {
	c.mu.Lock()
	c.isolated[m.ID] = true
	c.mu.Unlock()
	c.connect()
}

// Heal reconnects every member.
func (c *Cluster) Heal() {
	c.mu.Lock()
	clear(c.isolated)
	c.mu.Unlock()
	c.connect()
}

// connect makes the in-memory routes match the running members and the isolated set.
func (c *Cluster) connect() {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, a := range c.Members {
		for _, b := range c.Members {
			if a == b || a.trans == nil {
				continue
			}
			if b.trans == nil || c.isolated[a.ID] || c.isolated[b.ID] {
				a.trans.Disconnect(raft.ServerAddress(b.ID))
			} else {
				a.trans.Connect(raft.ServerAddress(b.ID), b.trans)
			}
		}
	}
}

// Running returns the members whose node runs.
func (c *Cluster) Running() []*Member {
	var ms []*Member
	for _, m := range c.Members {
		if m.Node != nil {
			ms = append(ms, m)
		}
	}
	return ms
}

// Leader waits until exactly one of ms (default: every running member) is the leader and
// returns it.
func (c *Cluster) Leader(timeout time.Duration, ms ...*Member) *Member {
	c.t.Helper()
	if len(ms) == 0 {
		ms = c.Running()
	}
	var leader *Member
	Eventually(c.t, timeout, "a single leader", func() bool {
		leader = nil
		for _, m := range ms {
			if m.Node != nil && m.Node.IsLeader() {
				if leader != nil {
					return false
				}
				leader = m
			}
		}
		return leader != nil
	})
	return leader
}

// Others returns the members other than m.
func (c *Cluster) Others(m *Member) []*Member {
	var ms []*Member
	for _, o := range c.Members {
		if o != m {
			ms = append(ms, o)
		}
	}
	return ms
}

// WaitConverged waits until ms (default: every running member) have each applied the same
// commands, at least up to index atLeast, and hold equal state, and returns their command
// index.
func (c *Cluster) WaitConverged(timeout time.Duration, atLeast uint64, ms ...*Member) uint64 {
	c.t.Helper()
	if len(ms) == 0 {
		ms = c.Running()
	}
	var index uint64
	Eventually(c.t, timeout, fmt.Sprintf("replicas converged at command %d or later", atLeast), func() bool {
		index = ms[0].Node.Stats().CommandIndex
		h0, _ := ms[0].SM.Hash()
		if index < atLeast {
			return false
		}
		for _, m := range ms[1:] {
			h, _ := m.SM.Hash()
			if m.Node.Stats().CommandIndex != index || h != h0 {
				return false
			}
		}
		return true
	})
	for _, m := range ms {
		if err := m.SM.Problem(); err != nil {
			c.t.Errorf("raftlogtest: %s: %v", m.ID, err)
		}
	}
	return index
}

// Propose proposes cmds as one batch on the current leader and returns the batch's first
// index. It retries while there is no leader or the leader changes: after ErrNotLeader
// (nothing applied), and after ErrLeadershipLost, whose proposal may have been applied too —
// Ambiguous counts those, for tests that check exact indexes. A command Apply rejects is
// applied: that is not an error here.
func (c *Cluster) Propose(timeout time.Duration, cmds ...raftlog.Command) uint64 {
	c.t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		m := c.Leader(time.Until(deadline))
		ctx, cancel := context.WithDeadline(context.Background(), deadline)
		idx, err := m.Node.ProposeBatch(ctx, cmds).Wait()
		cancel()
		if idx != 0 {
			return idx
		}
		lost := errors.Is(err, raftlog.ErrLeadershipLost)
		if !lost && !errors.Is(err, raftlog.ErrNotLeader) || time.Now().After(deadline) {
			c.t.Fatalf("raftlogtest: proposing on %s: %v", m.ID, err)
		}
		if lost {
			c.mu.Lock()
			c.ambiguous++
			c.mu.Unlock()
		}
	}
}

// Ambiguous returns how many proposals Propose retried after ErrLeadershipLost: each may have
// been applied twice.
func (c *Cluster) Ambiguous() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.ambiguous
}

// Eventually polls cond every few milliseconds until it holds, failing the test with what
// after timeout.
func Eventually(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("raftlogtest: timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// String names the member in test output.
func (m *Member) String() string { return fmt.Sprintf("%s (member %d)", m.ID, m.I) }
