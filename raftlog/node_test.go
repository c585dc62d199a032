package raftlog_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"github.com/hashicorp/raft"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/starling-io/starling/raftlog"
	"github.com/starling-io/starling/raftlog/raftlogtest"
)

// wait is how long a test waits for something that takes milliseconds on an idle machine:
// generous, so that a loaded machine under the race detector does not fail it.
const wait = 20 * time.Second

func puts(prefix string, n int) []raftlog.Command {
	cs := make([]raftlog.Command, n)
	for i := range cs {
		cs[i] = raftlogtest.Put(fmt.Sprintf("%s-%d", prefix, i))
	}
	return cs
}

// TestNodeReplicates: proposals on the leader, singles and batches, several in flight, are
// applied on all three nodes in the same order with the same indexes; a batch is one entry.
func TestNodeReplicates(t *testing.T) {
	c := raftlogtest.Start(t, raftlogtest.Options{})
	leader := c.Leader(wait)
	ctx := context.Background()

	// Proposed from one goroutine without waiting, so they are in flight together and take
	// the log in proposal order.
	var futures []raftlog.Future
	var want []raftlogtest.Entry
	var sizes []int
	for i := range 20 {
		var f raftlog.Future
		var cs []raftlog.Command
		if i%4 == 3 {
			cs = puts(fmt.Sprintf("batch%d", i), 8)
			f = leader.Node.ProposeBatch(ctx, cs)
		} else {
			cs = []raftlog.Command{raftlogtest.Put(fmt.Sprintf("one%d", i))}
			f = leader.Node.Propose(ctx, cs[0])
		}
		futures = append(futures, f)
		sizes = append(sizes, len(cs))
		for _, c := range cs {
			want = append(want, raftlogtest.Entry{Index: uint64(len(want) + 1), Data: string(c.Data)})
		}
	}
	next := uint64(1)
	for i, f := range futures {
		idx, err := f.Wait()
		if err != nil {
			t.Fatalf("proposal %d: %v", i, err)
		}
		if idx != next {
			t.Fatalf("proposal %d at index %d, want %d", i, idx, next)
		}
		for j := range sizes[i] {
			if r := f.ResultAt(j); r != idx+uint64(j) {
				t.Fatalf("proposal %d command %d: result %v, want its index %d", i, j, r, idx+uint64(j))
			}
		}
		next += uint64(sizes[i])
	}
	last := c.WaitConverged(wait, next-1)
	if last != next-1 {
		t.Fatalf("converged at command %d, want %d", last, next-1)
	}
	for _, m := range c.Members {
		if got := m.SM.Entries(); !slices.Equal(got, want) {
			t.Errorf("%s applied %v\nwant %v", m, got, want)
		}
	}

	// A batch is one raft entry, whatever its size.
	before := leader.Node.Stats().LastLogIndex
	if _, err := leader.Node.ProposeBatch(ctx, puts("big", 100)).Wait(); err != nil {
		t.Fatal(err)
	}
	if st := leader.Node.Stats(); st.LastLogIndex != before+1 || st.CommandIndex != next+99 {
		t.Fatalf("a batch of 100: raft index %d → %d (want +1), command index %d (want %d)",
			before, st.LastLogIndex, st.CommandIndex, next+99)
	}
	c.WaitConverged(wait, next+99)
}

// TestNodeSplitsLargeBatches: a batch larger than MaxEntryBytes is written as several
// entries, yet its commands keep contiguous indexes and their results, even with other
// proposals made at the same time from other goroutines, and every replica applies the same.
func TestNodeSplitsLargeBatches(t *testing.T) {
	// Small entries, so that many split proposals race without loading the machine. A
	// leader lease of 10 times the harness's: a leader that loses it fails the proposals in
	// flight with ErrLeadershipLost (outcome unknown), which 16 racing proposers under the
	// race detector on a loaded machine caused in over a third of the runs at 100 ms.
	const hb = time.Second
	c := raftlogtest.Start(t, raftlogtest.Options{Config: func(_ int, cfg *raftlog.Config) {
		cfg.MaxEntryBytes = 1 << 10
		cfg.HeartbeatTimeout, cfg.ElectionTimeout, cfg.LeaderLeaseTimeout = hb, hb, hb
	}})
	leader := c.Leader(wait)
	ctx := context.Background()
	payload := strings.Repeat("x", 100)
	big := func(prefix string) []raftlog.Command { // 4 KB: four entries or more
		cs := make([]raftlog.Command, 40)
		for i := range cs {
			cs[i] = raftlogtest.Put(fmt.Sprintf("%s-%d-%s", prefix, i, payload))
		}
		return cs
	}

	before := leader.Node.Stats().LastLogIndex
	idx, err := leader.Node.ProposeBatch(ctx, big("alone")).Wait()
	if err != nil {
		t.Fatal(err)
	}
	st := leader.Node.Stats()
	if entries := st.LastLogIndex - before; entries < 4 || st.CommandIndex != idx+39 {
		t.Fatalf("a batch of 4 KB: %d raft entries (want ≥ 4), commands %d..%d (want 40)", entries, idx, st.CommandIndex)
	}

	type result struct {
		f raftlog.Future
		n int
	}
	const proposers = 16
	results := make(chan result, proposers*8)
	done := make(chan struct{})
	for g := range proposers {
		go func() {
			defer func() { done <- struct{}{} }()
			for i := range 8 {
				cs := big(fmt.Sprintf("g%d-%d", g, i))
				if i%2 == 1 {
					cs = cs[:1]
				}
				results <- result{leader.Node.ProposeBatch(ctx, cs), len(cs)}
			}
		}()
	}
	for range proposers {
		<-done
	}
	close(results)
	for r := range results {
		idx, err := r.f.Wait()
		if err != nil {
			t.Fatal(err)
		}
		for j := range r.n {
			if got := r.f.ResultAt(j); got != idx+uint64(j) {
				t.Fatalf("batch at %d, command %d: result %v, want %d (contiguous)", idx, j, got, idx+uint64(j))
			}
		}
	}
	last := leader.Node.Stats().CommandIndex
	c.WaitConverged(wait, last)
	want := leader.SM.Entries()
	for _, m := range c.Others(leader) {
		if got := m.SM.Entries(); !slices.Equal(got, want) {
			t.Errorf("%s applied %d commands, differing from the leader's %d", m, len(got), len(want))
		}
	}
}

// sizedTransport records the largest AppendEntries it sends, in entry bytes. It has no
// pipeline, so that every AppendEntries passes through it.
type sizedTransport struct {
	*raft.InmemTransport
	largest *atomic.Int64
}

func (s sizedTransport) AppendEntries(id raft.ServerID, target raft.ServerAddress, args *raft.AppendEntriesRequest, resp *raft.AppendEntriesResponse) error {
	n := 0
	for _, e := range args.Entries {
		n += len(e.Data)
	}
	for old := s.largest.Load(); int64(n) > old && !s.largest.CompareAndSwap(old, int64(n)); old = s.largest.Load() {
	}
	return s.InmemTransport.AppendEntries(id, target, args, resp)
}

func (sizedTransport) AppendEntriesPipeline(raft.ServerID, raft.ServerAddress) (raft.AppendPipeline, error) {
	return nil, raft.ErrPipelineReplicationNotSupported
}

// TestNodeCatchUpBoundedByBytes: a follower that catches up on large commands (messages of
// 256 KiB) is sent AppendEntries of at most MaxAppendEntries entries of MaxEntryBytes: a
// command larger than an entry goes in fragments. Before, each was an entry of its own, and
// an AppendEntries of MaxAppendEntries of them grew with the message size (256 × max_payload
// by default: 256 MiB of 1 MiB messages, per request, on the leader and the follower).
func TestNodeCatchUpBoundedByBytes(t *testing.T) {
	const maxEntries, entryBytes = 16, 32 << 10
	var largest atomic.Int64
	c := raftlogtest.Start(t, raftlogtest.Options{
		Config: func(_ int, cfg *raftlog.Config) { cfg.MaxAppendEntries, cfg.MaxEntryBytes = maxEntries, entryBytes },
		Transport: func(_ *raftlogtest.Member, t *raft.InmemTransport) raft.Transport {
			return sizedTransport{t, &largest}
		},
	})
	leader := c.Leader(wait)
	lagging := c.Others(leader)[0]
	c.Isolate(lagging)
	var last uint64
	for i := range 32 {
		last = c.Propose(wait, raftlogtest.Put(strings.Repeat(string(rune('a'+i%26)), 256<<10)))
	}
	c.Heal()
	c.WaitConverged(wait, last)
	if n := largest.Load(); n > maxEntries*entryBytes {
		t.Fatalf("an AppendEntries of %d KiB, over %d entries of %d KiB", n>>10, maxEntries, entryBytes>>10)
	}
}

// TestNodeFollowerRefuses: a follower refuses at once, naming the leader.
func TestNodeFollowerRefuses(t *testing.T) {
	c := raftlogtest.Start(t, raftlogtest.Options{})
	leader := c.Leader(wait)
	c.Propose(wait, raftlogtest.Put("x")) // so that every follower has heard from the leader
	c.WaitConverged(wait, 1)
	for _, m := range c.Others(leader) {
		start := time.Now()
		idx, err := m.Node.Propose(context.Background(), raftlogtest.Put("y")).Wait()
		if took := time.Since(start); took > time.Second {
			t.Errorf("%s took %v to refuse", m, took)
		}
		var nl *raftlog.NotLeaderError
		if idx != 0 || !errors.Is(err, raftlog.ErrNotLeader) || !errors.As(err, &nl) {
			t.Fatalf("%s: Propose = %d, %v; want 0, a NotLeaderError", m, idx, err)
		}
		if nl.LeaderID != leader.ID || nl.LeaderAddr != leader.ID {
			t.Errorf("%s: %+v; want leader %s (its in-memory address is its ID)", m, nl, leader.ID)
		}
		if m.Node.IsLeader() {
			t.Errorf("%s: IsLeader on a follower", m)
		}
		if err := m.Node.Barrier(context.Background()); !errors.Is(err, raftlog.ErrNotLeader) {
			t.Errorf("%s: Barrier = %v, want ErrNotLeader", m, err)
		}
		// Heartbeats keep a follower's last contact within the heartbeat timeout.
		if lc := m.Node.Stats().LastContact; lc < 0 || lc >= raftlogtest.HeartbeatTimeout {
			t.Errorf("%s: last contact %v ago, want within %v", m, lc, raftlogtest.HeartbeatTimeout)
		}
	}
	if lc := leader.Node.Stats().LastContact; lc != 0 {
		t.Errorf("the leader's last contact is %v, want 0", lc)
	}
}

// done reports whether f is resolved, waiting up to d.
func done(f raftlog.Future, d time.Duration) bool {
	select {
	case <-f.Done():
		return true
	case <-time.After(d):
		return false
	}
}

// TestNodePartitionedLeader: a leader cut off from the others loses its leadership; what it
// accepted meanwhile does not succeed, the others elect a new leader and go on, and after
// healing all three hold the same state, without the old leader's lost proposals.
func TestNodePartitionedLeader(t *testing.T) {
	c := raftlogtest.Start(t, raftlogtest.Options{})
	old := c.Leader(wait)
	first := c.Propose(wait, raftlogtest.Put("before"))
	c.WaitConverged(wait, first)
	oldLeadership := old.Node.Leadership()
	if v := <-oldLeadership; !v {
		t.Fatal("the leader's Leadership channel holds false")
	}

	c.Isolate(old)
	var lost []raftlog.Future
	for i := range 5 {
		lost = append(lost, old.Node.Propose(context.Background(), raftlogtest.Put(fmt.Sprintf("lost-%d", i))))
	}
	others := c.Others(old)
	leader := c.Leader(wait, others...)
	for i, f := range lost {
		if !done(f, wait) {
			t.Fatalf("the old leader's proposal %d is still pending", i)
		}
		if idx, err := f.Wait(); err == nil || idx != 0 {
			t.Fatalf("the old leader's proposal %d: %d, %v; want index 0 and an error", i, idx, err)
		} else if !errors.Is(err, raftlog.ErrLeadershipLost) && !errors.Is(err, raftlog.ErrNotLeader) {
			t.Fatalf("the old leader's proposal %d: %v; want ErrLeadershipLost or ErrNotLeader", i, err)
		}
	}
	raftlogtest.Eventually(t, wait, "the old leader to report leadership lost", func() bool {
		select {
		case v := <-oldLeadership:
			return !v
		default:
			return false
		}
	})

	idx, err := leader.Node.Propose(context.Background(), raftlogtest.Put("after")).Wait()
	if err != nil {
		t.Fatalf("the new leader %s: %v", leader, err)
	}
	c.WaitConverged(wait, idx, others...)

	c.Heal()
	last := c.Propose(wait, raftlogtest.Put("healed"))
	c.WaitConverged(wait, last)
	for _, m := range c.Members {
		for _, e := range m.SM.Entries() {
			if len(e.Data) > 5 && e.Data[1:5] == "lost" {
				t.Errorf("%s applied %q, a proposal its leader never committed", m, e.Data)
			}
		}
	}
}

// TestNodeRestart: a node closed and reopened on its directory rebuilds the same state, as a
// follower that missed entries meanwhile and as the whole cluster restarted.
func TestNodeRestart(t *testing.T) {
	c := raftlogtest.Start(t, raftlogtest.Options{})
	c.Leader(wait)
	for i := range 10 {
		c.Propose(wait, puts(fmt.Sprint("a", i), 3)...)
	}
	last := c.WaitConverged(wait, 30)

	follower := c.Others(c.Leader(wait))[0]
	c.Stop(follower)
	for i := range 10 {
		last = c.Propose(wait, puts(fmt.Sprint("b", i), 2)...) + 1
	}
	c.Start(follower)
	c.WaitConverged(wait, last)

	leader := c.Leader(wait)
	c.Restart(leader)
	last = c.Propose(wait, raftlogtest.Put("after the leader's restart"))
	c.WaitConverged(wait, last)

	want := c.Members[0].SM.Entries()
	for _, m := range c.Members {
		c.Stop(m)
	}
	for _, m := range c.Members {
		c.Start(m)
	}
	c.WaitConverged(wait, last)
	for _, m := range c.Members {
		if got := m.SM.Entries(); !slices.Equal(got, want) {
			t.Errorf("%s after a full restart: %d entries, want %d", m, len(got), len(want))
		}
	}
	next := c.Propose(wait, raftlogtest.Put("next"))
	if next != last+1 && c.Ambiguous() == 0 {
		t.Fatalf("the first command after the restart is at %d, want %d", next, last+1)
	}
	c.WaitConverged(wait, next)
}

// TestNodeBeforeStart: the hook runs once, with the stores open and checked and nothing yet
// restored into the state machine; its error stops NewNode and leaves the directory free.
func TestNodeBeforeStart(t *testing.T) {
	c := raftlogtest.Start(t, raftlogtest.Options{})
	c.Leader(wait)
	last := c.Propose(wait, puts("a", 5)...)
	c.WaitConverged(wait, last)
	follower := c.Others(c.Leader(wait))[0]
	c.Stop(follower)

	refused := errors.New("core did not start")
	cfg := c.Config(follower)
	_, cfg.Transport = raft.NewInmemTransport(raft.ServerAddress(follower.ID))
	calls := 0
	cfg.BeforeStart = func() error { calls++; return refused }
	if _, err := raftlog.NewNode(cfg, &raftlogtest.SM{}); !errors.Is(err, refused) || calls != 1 {
		t.Fatalf("NewNode with a failing hook: %v after %d calls", err, calls)
	}

	sm := &raftlogtest.SM{}
	cfg = c.Config(follower)
	_, cfg.Transport = raft.NewInmemTransport(raft.ServerAddress(follower.ID))
	calls = 0
	cfg.BeforeStart = func() error {
		calls++
		if n := len(sm.Entries()); n != 0 {
			t.Errorf("BeforeStart ran after %d entries were applied", n)
		}
		return nil
	}
	n, err := raftlog.NewNode(cfg, sm)
	if err != nil || calls != 1 {
		t.Fatalf("NewNode: %v after %d calls", err, calls)
	}
	if err := n.Close(); err != nil {
		t.Fatal(err)
	}
	c.Start(follower)
	c.WaitConverged(wait, c.Propose(wait, raftlogtest.Put("after")))
}

// TestNodeRefusesDamagedSnapshotsBeforeStart: a node whose only snapshot fails its CRC is
// refused before BeforeStart runs (where the application opens its client port). Before, raft
// found the damage as it started, after the hook: the node accepted clients for a moment and
// exited.
func TestNodeRefusesDamagedSnapshotsBeforeStart(t *testing.T) {
	c := raftlogtest.Start(t, raftlogtest.Options{})
	c.Leader(wait)
	c.WaitConverged(wait, c.Propose(wait, puts("a", 5)...))
	follower := c.Others(c.Leader(wait))[0]
	if err := follower.Node.Snapshot(); err != nil {
		t.Fatal(err)
	}
	c.Stop(follower)
	states, err := filepath.Glob(filepath.Join(follower.Dir, "g0", "snapshots", "*", "state.bin"))
	if err != nil || len(states) != 1 {
		t.Fatalf("snapshot states %v: %v", states, err)
	}
	b, err := os.ReadFile(states[0])
	if err != nil {
		t.Fatal(err)
	}
	b[len(b)-1] ^= 0x40
	if err := os.WriteFile(states[0], b, 0o600); err != nil {
		t.Fatal(err)
	}

	cfg := c.Config(follower)
	_, cfg.Transport = raft.NewInmemTransport(raft.ServerAddress(follower.ID))
	calls := 0
	cfg.BeforeStart = func() error { calls++; return nil }
	n, err := raftlog.NewNode(cfg, &raftlogtest.SM{})
	if err == nil {
		n.Close()
	}
	if err == nil || calls != 0 || !strings.Contains(err.Error(), "snapshots") {
		t.Fatalf("NewNode on a damaged snapshot: %v, after %d calls of BeforeStart", err, calls)
	}
	t.Log(err)
}

// TestNodeSnapshotCatchUp: after a snapshot compacts the log, a node that lagged behind it,
// and one that lost its disk, catch up from the snapshot plus the log; a restarted node
// restores it; command indexes go on without a gap in every case.
func TestNodeSnapshotCatchUp(t *testing.T) {
	c := raftlogtest.Start(t, raftlogtest.Options{Config: func(_ int, cfg *raftlog.Config) {
		cfg.TrailingLogs = 8
	}})
	leader := c.Leader(wait)
	lagging := c.Others(leader)[0]
	c.Isolate(lagging)
	var last uint64
	for i := range 60 {
		// A rejected command takes an index too: the counter must carry it across snapshots.
		last = c.Propose(wait, raftlogtest.Put(fmt.Sprint("p", i)), raftlogtest.Cmd(raftlogtest.OpReject, "r")) + 1
	}
	leader = c.Leader(wait, c.Others(lagging)...)
	c.WaitConverged(wait, last, c.Others(lagging)...)
	if err := leader.Node.Snapshot(); err != nil {
		t.Fatal(err)
	}

	c.Heal()
	c.WaitConverged(wait, last)
	if _, restores := lagging.SM.Calls(); restores == 0 {
		t.Fatalf("%s caught up without a snapshot: the log was not compacted", lagging)
	}
	next := c.Propose(wait, raftlogtest.Put("after the snapshot"))
	if next != last+1 && c.Ambiguous() == 0 {
		t.Fatalf("next command at %d, want %d", next, last+1)
	}
	c.WaitConverged(wait, next)

	// A replacement node with an empty disk.
	wiped := c.Others(c.Leader(wait))[0]
	c.Stop(wiped)
	c.Wipe(wiped)
	c.Start(wiped)
	c.WaitConverged(wait, next)
	if _, restores := wiped.SM.Calls(); restores == 0 {
		t.Fatalf("the wiped %s caught up without a snapshot", wiped)
	}

	// A restart restores the node's own latest snapshot.
	if err := lagging.Node.Snapshot(); err != nil {
		t.Fatal(err)
	}
	c.Restart(lagging)
	if _, restores := lagging.SM.Calls(); restores == 0 {
		t.Fatalf("%s restarted without restoring its snapshot", lagging)
	}
	next = c.Propose(wait, raftlogtest.Put("after the restart"))
	if next != last+2 && c.Ambiguous() == 0 {
		t.Fatalf("next command at %d, want %d", next, last+2)
	}
	c.WaitConverged(wait, next)
}

// TestNodeRestoresARepeatedSnapshotOnce: a follower whose restore outlasts the leader's
// InstallSnapshot timeout (the in-memory transport's: 10 RPCTimeouts, 2 s) is sent the same
// snapshot again once it is done, and restored it a second time — the state it held already.
func TestNodeRestoresARepeatedSnapshotOnce(t *testing.T) {
	c := raftlogtest.Start(t, raftlogtest.Options{Config: func(_ int, cfg *raftlog.Config) {
		cfg.TrailingLogs = 8
	}})
	leader := c.Leader(wait)
	lagging := c.Others(leader)[0]
	c.Isolate(lagging)
	var last uint64
	for i := range 30 {
		last = c.Propose(wait, raftlogtest.Put(fmt.Sprint("p", i)))
	}
	leader = c.Leader(wait, c.Others(lagging)...)
	c.WaitConverged(wait, last, c.Others(lagging)...)
	if err := leader.Node.Snapshot(); err != nil {
		t.Fatal(err)
	}
	lagging.SM.DelayNextRestore(10*raftlogtest.RPCTimeout + 500*time.Millisecond)
	c.Heal()
	c.WaitConverged(wait, last)
	c.WaitConverged(wait, c.Propose(wait, raftlogtest.Put("after")))
	if _, restores := lagging.SM.Calls(); restores != 1 {
		t.Fatalf("%s restored the snapshot %d times, want once", lagging, restores)
	}
}

// TestNodeSendsNoEntryItsLogDropped: a node that installs a snapshot past the end of its
// log drops that log (the segment log does, at the next append), but raft's log cache kept
// the old entries — among them ones the node had appended as a deposed leader and that were
// never committed. Leading later, it sent them from the cache to a follower that needed
// entries from before its log, instead of a snapshot, and the follower applied them.
func TestNodeSendsNoEntryItsLogDropped(t *testing.T) {
	c := raftlogtest.Start(t, raftlogtest.Options{Config: func(_ int, cfg *raftlog.Config) {
		cfg.MaxAppendEntries = 2 // requests that fit within the cached old entries
		cfg.TrailingLogs = 8     // the leader's compaction passes the old log, the install's does not
	}})
	old := c.Leader(wait)
	c.WaitConverged(wait, c.Propose(wait, raftlogtest.Put("committed")))
	c.Isolate(old)
	before := old.Node.Stats().LastLogIndex
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	for range 4 {
		old.Node.Propose(ctx, raftlogtest.Put("never-committed")) // stored and cached by old alone
	}
	raftlogtest.Eventually(t, wait, "the isolated leader to store its proposals", func() bool {
		return old.Node.Stats().LastLogIndex >= before+4
	})
	others := c.Others(old)
	var last uint64
	for i := range 20 {
		last = c.Propose(wait, raftlogtest.Put(fmt.Sprint("p", i)))
	}
	c.WaitConverged(wait, last, others...)
	for _, m := range others {
		if err := m.Node.Snapshot(); err != nil {
			t.Fatal(err)
		}
	}
	c.Heal()
	c.WaitConverged(wait, last)
	if _, restores := old.SM.Calls(); restores == 0 {
		t.Fatalf("%s caught up without a snapshot", old)
	}
	c.WaitConverged(wait, c.Propose(wait, raftlogtest.Put("old learns the commit index")))

	// old leads a follower that holds nothing: it must send a snapshot.
	for _, m := range others {
		c.Stop(m)
	}
	wiped := others[0]
	c.Wipe(wiped)
	c.Start(wiped)
	c.WaitConverged(wait, c.Propose(wait, raftlogtest.Put("after")), old, wiped)
	for _, d := range wiped.SM.Applied() {
		if strings.Contains(d, "never-committed") {
			t.Fatalf("%s applied an entry that was never committed: %q", wiped, wiped.SM.Applied())
		}
	}
}

// TestNodeUnknownOp: a node that cannot decode an op stops applying before it (the others go
// on), leaves the group, and refuses everything with ErrStopped.
func TestNodeUnknownOp(t *testing.T) {
	c := raftlogtest.Start(t, raftlogtest.Options{NewOps: func(int) bool { return true }})
	leader := c.Leader(wait)
	old := c.Others(leader)[0]
	old.SM.SetNewOps(false) // an older version than the others
	first := c.Propose(wait, raftlogtest.Put("known"))
	c.Propose(wait, raftlogtest.Put("x"), raftlogtest.Cmd(raftlogtest.OpNew, "new"))
	last := c.Propose(wait, raftlogtest.Put("later"))
	others := c.Others(old)
	c.WaitConverged(wait, last, others...)

	raftlogtest.Eventually(t, wait, "the older node to stop", func() bool {
		return old.Node.Stats().Stopped != nil && old.Node.Stats().Role.String() == "Shutdown"
	})
	st := old.Node.Stats()
	if !errors.Is(st.Stopped, raftlog.ErrStopped) || !errors.Is(st.Stopped, raftlog.ErrUnknownOp) {
		t.Fatalf("Stopped = %v, want ErrStopped and ErrUnknownOp", st.Stopped)
	}
	if st.CommandIndex != first {
		t.Errorf("the stopped node applied up to %d, want %d (nothing of the entry it could not decode)", st.CommandIndex, first)
	}
	if got := old.SM.Entries(); (len(got) != 1 || got[0].Data != "pknown") && c.Ambiguous() == 0 {
		t.Errorf("the stopped node's state: %v", got)
	}
	if _, err := old.Node.Propose(context.Background(), raftlogtest.Put("y")).Wait(); !errors.Is(err, raftlog.ErrStopped) {
		t.Errorf("Propose on the stopped node: %v, want ErrStopped", err)
	}
	if err := old.Node.Barrier(context.Background()); !errors.Is(err, raftlog.ErrStopped) {
		t.Errorf("Barrier on the stopped node: %v, want ErrStopped", err)
	}
	if old.Node.IsLeader() {
		t.Error("the stopped node claims leadership")
	}
	next := c.Propose(wait, raftlogtest.Put("the others go on"))
	c.WaitConverged(wait, next, others...)
}

// TestNodeIgnorableOp: an op unknown but flagged ignorable is skipped, and keeps its index,
// identically on every node — and a newer node that applies it numbers the next commands as
// the older ones do.
func TestNodeIgnorableOp(t *testing.T) {
	c := raftlogtest.Start(t, raftlogtest.Options{})
	leader := c.Leader(wait)
	c.Propose(wait, raftlogtest.Put("a"))
	f := leader.Node.ProposeBatch(context.Background(), []raftlog.Command{
		raftlogtest.Cmd(raftlogtest.OpNewIgnorable, "skipped"), raftlogtest.Put("b")})
	idx, err := f.Wait()
	if idx != 2 || !errors.Is(err, raftlog.ErrIgnorableOp) {
		t.Fatalf("a batch with an ignorable op: %d, %v; want index 2 and ErrIgnorableOp", idx, err)
	}
	if f.ResultAt(1) != uint64(3) {
		t.Fatalf("the command after the skipped one: result %v, want its index 3", f.ResultAt(1))
	}
	last := c.Propose(wait, raftlogtest.Put("c"))
	c.WaitConverged(wait, last)
	want := []raftlogtest.Entry{{Index: 1, Data: "pa"}, {Index: 3, Data: "pb"}, {Index: 4, Data: "pc"}}
	for _, m := range c.Members {
		if got := m.SM.Entries(); !slices.Equal(got, want) && c.Ambiguous() == 0 {
			t.Errorf("%s: %v, want %v", m, got, want)
		}
	}

	// Version skew: one node knows the op and applies it; the indexes stay the same.
	newer := c.Members[0]
	newer.SM.SetNewOps(true)
	skipped := c.Propose(wait, raftlogtest.Cmd(raftlogtest.OpNewIgnorable, "new"))
	next := c.Propose(wait, raftlogtest.Put("d"))
	if next != skipped+1 && c.Ambiguous() == 0 {
		t.Fatalf("next at %d, want %d", next, skipped+1)
	}
	c.WaitConverged(wait, next, c.Others(newer)...)
	raftlogtest.Eventually(t, wait, "the newer node to apply", func() bool {
		return newer.Node.Stats().CommandIndex == next
	})
	got := newer.SM.Entries()
	if l := len(got); l < 2 || got[l-2] != (raftlogtest.Entry{Index: skipped, Data: "inew"}) || got[l-1] != (raftlogtest.Entry{Index: next, Data: "pd"}) {
		t.Errorf("the newer node ends with %v", got[max(0, len(got)-2):])
	}
	for _, m := range c.Others(newer) {
		if got := m.SM.Entries(); got[len(got)-1] != (raftlogtest.Entry{Index: next, Data: "pd"}) {
			t.Errorf("%s ends with %v", m, got[len(got)-1])
		}
	}
}

// TestNodeClose: after Close proposals and barriers fail with ErrClosed and leadership is
// false; proposals in flight at Close all resolve.
func TestNodeClose(t *testing.T) {
	c := raftlogtest.Start(t, raftlogtest.Options{})
	leader := c.Leader(wait)
	leadership := leader.Node.Leadership()
	var inflight []raftlog.Future
	for i := range 50 {
		inflight = append(inflight, leader.Node.Propose(context.Background(), raftlogtest.Put(fmt.Sprint(i))))
	}
	node := leader.Node
	c.Stop(leader)
	for i, f := range inflight {
		if !done(f, wait) {
			t.Fatalf("proposal %d in flight at Close never resolved", i)
		}
		if idx, err := f.Wait(); err != nil && (idx != 0 || !errors.Is(err, raftlog.ErrClosed) &&
			!errors.Is(err, raftlog.ErrLeadershipLost) && !errors.Is(err, raftlog.ErrNotLeader)) {
			t.Errorf("proposal %d in flight at Close: %d, %v", i, idx, err)
		}
	}
	if idx, err := node.Propose(context.Background(), raftlogtest.Put("late")).Wait(); idx != 0 || err != raftlog.ErrClosed {
		t.Errorf("Propose after Close: %d, %v; want 0, ErrClosed", idx, err)
	}
	if _, err := node.ProposeBatch(context.Background(), puts("late", 2)).Wait(); err != raftlog.ErrClosed {
		t.Errorf("ProposeBatch after Close: %v, want ErrClosed", err)
	}
	if err := node.Barrier(context.Background()); err != raftlog.ErrClosed {
		t.Errorf("Barrier after Close: %v, want ErrClosed", err)
	}
	if node.IsLeader() {
		t.Error("IsLeader after Close")
	}
	var last bool
	for len(leadership) > 0 {
		last = <-leadership
	}
	if last {
		t.Error("the last leadership value after Close is true")
	}
	if err := node.Close(); err != nil {
		t.Errorf("a second Close: %v", err)
	}
	if st := node.Stats(); st.Role.String() != "Shutdown" {
		t.Errorf("role after Close: %v", st.Role)
	}
	// The two others go on.
	c.WaitConverged(wait, c.Propose(wait, raftlogtest.Put("on")))
}

// TestNodeBarrier: once Barrier returns on the leader, everything proposed before it is
// applied there.
func TestNodeBarrier(t *testing.T) {
	c := raftlogtest.Start(t, raftlogtest.Options{})
	leader := c.Leader(wait)
	var fs []raftlog.Future
	for i := range 100 {
		fs = append(fs, leader.Node.Propose(context.Background(), raftlogtest.Put(fmt.Sprint(i))))
	}
	if err := leader.Node.Barrier(context.Background()); err != nil {
		t.Fatal(err)
	}
	for i, f := range fs {
		select {
		case <-f.Done():
		default:
			t.Fatalf("proposal %d is not resolved after Barrier", i)
		}
	}
	if st := leader.Node.Stats(); st.CommandIndex != 100 {
		t.Fatalf("after Barrier the leader applied up to %d, want 100", st.CommandIndex)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := leader.Node.Barrier(ctx); err != context.Canceled {
		t.Fatalf("Barrier with a cancelled ctx: %v", err)
	}
}

// TestNodeContext: a ctx that ends before the proposal is applied resolves it with the ctx's
// error.
func TestNodeContext(t *testing.T) {
	c := raftlogtest.Start(t, raftlogtest.Options{})
	leader := c.Leader(wait)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if idx, err := leader.Node.Propose(ctx, raftlogtest.Put("x")).Wait(); idx != 0 || err != context.Canceled {
		t.Fatalf("Propose with a cancelled ctx: %d, %v", idx, err)
	}

	// Cut off from the others the leader cannot commit: the ctx ends first, or the lease.
	c.Isolate(leader)
	ctx, cancel = context.WithCancel(context.Background())
	f := leader.Node.Propose(ctx, raftlogtest.Put("y"))
	cancel()
	if idx, err := f.Wait(); idx != 0 || err == nil {
		t.Fatalf("Propose cancelled in flight: %d, %v", idx, err)
	} else if err != context.Canceled && !errors.Is(err, raftlog.ErrLeadershipLost) && !errors.Is(err, raftlog.ErrNotLeader) {
		t.Fatalf("Propose cancelled in flight: %v", err)
	}
}

// damageTarget is where a test damages a stopped member's raft log: the segment log's
// newest segment file (the directory is what the refusal names and what is moved aside),
// or raft.db when the log is bolt's.
func damageTarget(t *testing.T, m *raftlogtest.Member, store string) (file, aside string) {
	t.Helper()
	if store == raftlog.LogStoreBolt {
		p := filepath.Join(m.Dir, "g0", "raft.db")
		return p, p
	}
	dir := filepath.Join(m.Dir, "g0", "log")
	segs, err := filepath.Glob(filepath.Join(dir, "*.seg"))
	if err != nil || len(segs) == 0 {
		t.Fatalf("no segment in %s: %v", dir, err)
	}
	return segs[len(segs)-1], dir
}

func withLogStore(store string) raftlogtest.Options {
	return raftlogtest.Options{Config: func(_ int, c *raftlog.Config) { c.LogStore = store }}
}

// TestNodeRefusesADamagedLog: a follower whose raft log was damaged in the middle (pages
// overwritten, records overwritten) does not start — so it cannot vote — and says which
// file and how to repair; once the log is moved aside it rejoins and catches up.
func TestNodeRefusesADamagedLog(t *testing.T) {
	for _, store := range []string{raftlog.LogStoreSegments, raftlog.LogStoreBolt} {
		t.Run(store, func(t *testing.T) {
			c := raftlogtest.Start(t, withLogStore(store))
			c.Leader(wait)
			for i := range 20 {
				// Each stored everywhere before the next: twenty writes on every node, so that
				// the damage is not all in a node's last write (a torn tail, cut and caught up).
				c.WaitConverged(wait, c.Propose(wait, puts(fmt.Sprint("a", i), 3)...))
			}
			follower := c.Others(c.Leader(wait))[0]
			c.Stop(follower)

			path, aside := damageTarget(t, follower, store)
			f, err := os.OpenFile(path, os.O_RDWR, 0)
			if err != nil {
				t.Fatal(err)
			}
			from, size := int64(2*4096), int64(0) // bolt: every page but the two meta pages
			if store == raftlog.LogStoreSegments {
				b, _ := os.ReadFile(path)
				from, size = 200, int64(len(bytes.TrimRight(b, "\x00")))/2 // the first half of the records
			} else {
				st, _ := f.Stat()
				size = st.Size() - from
			}
			if _, err := f.WriteAt(bytes.Repeat([]byte{0xA5}, int(size)), from); err != nil {
				t.Fatal(err)
			}
			f.Close()

			cfg := c.Config(follower)
			_, cfg.Transport = raft.NewInmemTransport(raft.ServerAddress(follower.ID))
			cfg.BeforeStart = func() error { t.Error("BeforeStart ran on a damaged log"); return nil }
			_, err = raftlog.NewNode(cfg, &raftlogtest.SM{})
			if err == nil || !strings.Contains(err.Error(), aside+" is damaged") || !strings.Contains(err.Error(), "move "+aside+" aside") {
				t.Fatalf("NewNode on a damaged log: %v", err)
			}

			if err := os.Rename(aside, aside+".damaged"); err != nil {
				t.Fatal(err)
			}
			c.Start(follower)
			last := c.Propose(wait, raftlogtest.Put("after the repair"))
			c.WaitConverged(wait, last)
		})
	}
}

// TestNodeRefusesALogWithAMissingSegment: a segment file lost from the middle of a
// follower's log (the file system lost it) leaves a gap, which the segment log takes for a
// deletion a crash undid and drops everything before it. With no snapshot covering those
// entries the node must refuse to start: it started, and raft panicked applying the first
// missing entry (the whole process, at every restart).
func TestNodeRefusesALogWithAMissingSegment(t *testing.T) {
	c := raftlogtest.Start(t, raftlogtest.Options{Config: func(_ int, cfg *raftlog.Config) {
		cfg.LogSegmentBytes = 4 << 10
	}})
	c.Leader(wait)
	for i := range 30 {
		c.WaitConverged(wait, c.Propose(wait, raftlogtest.Put(fmt.Sprint(i, strings.Repeat("x", 500)))))
	}
	follower := c.Others(c.Leader(wait))[0]
	c.Stop(follower)
	dir := filepath.Join(follower.Dir, "g0", "log")
	segs, _ := filepath.Glob(filepath.Join(dir, "*.seg"))
	if len(segs) < 3 {
		t.Fatalf("%d segments, want 3 or more", len(segs))
	}
	if err := os.Remove(segs[len(segs)/2]); err != nil {
		t.Fatal(err)
	}

	cfg := c.Config(follower)
	_, cfg.Transport = raft.NewInmemTransport(raft.ServerAddress(follower.ID))
	n, err := raftlog.NewNode(cfg, &raftlogtest.SM{})
	if err == nil {
		_ = n.Close()
	}
	if err == nil || !strings.Contains(err.Error(), dir+" is damaged") {
		t.Fatalf("NewNode on a log missing entries: %v", err)
	}
	if err := os.Rename(dir, dir+".damaged"); err != nil {
		t.Fatal(err)
	}
	c.Start(follower)
	c.WaitConverged(wait, c.Propose(wait, raftlogtest.Put("after the repair")))
}

// TestNodeRefusesAFlippedBit: a bit flipped at rest inside a logged command is found when
// the node starts — by the segment's record checksum, or (bolt checks nothing in its values)
// by the entry checksum: it refuses to start rather than vote with, lead with or send the
// damaged entry; moved aside, it rejoins.
func TestNodeRefusesAFlippedBit(t *testing.T) {
	for _, store := range []string{raftlog.LogStoreSegments, raftlog.LogStoreBolt} {
		t.Run(store, func(t *testing.T) {
			c := raftlogtest.Start(t, withLogStore(store))
			c.Leader(wait)
			// The payload, then a later write on every node: damage in a node's last write is a
			// torn tail, cut and caught up (raft may send both entries in one request unless
			// the first is stored everywhere before the second is proposed).
			c.WaitConverged(wait, c.Propose(wait, raftlogtest.Put("payload-to-damage-0123456789")))
			last := c.Propose(wait, raftlogtest.Put("later"))
			c.WaitConverged(wait, last)
			follower := c.Others(c.Leader(wait))[0]
			c.Stop(follower)

			path, aside := damageTarget(t, follower, store)
			b, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			// Every copy: bolt's copy-on-write leaves stale ones in free pages.
			n := 0
			for at := bytes.Index(b, []byte("payload-to-damage")); at >= 0; at = bytes.Index(b, []byte("payload-to-damage")) {
				b[at+3] ^= 0x04
				n++
			}
			if n == 0 {
				t.Fatal("the payload is not in the file")
			}
			if err := os.WriteFile(path, b, 0o600); err != nil {
				t.Fatal(err)
			}
			cfg := c.Config(follower)
			_, cfg.Transport = raft.NewInmemTransport(raft.ServerAddress(follower.ID))
			_, err = raftlog.NewNode(cfg, &raftlogtest.SM{})
			if err == nil || !strings.Contains(err.Error(), aside+" is damaged") || !strings.Contains(err.Error(), "checksum") {
				t.Fatalf("NewNode on a log with a flipped bit: %v", err)
			}
			if err := os.Rename(aside, aside+".damaged"); err != nil {
				t.Fatal(err)
			}
			c.Start(follower)
			c.WaitConverged(wait, c.Propose(wait, raftlogtest.Put("after the repair")))
		})
	}
}

// TestNodeElectionNudge: after the leader falls silent, each follower gives it up about one
// heartbeat timeout later (plus the nudge's jitter), not at raft's next random timer tick
// (nudge.go). Measured is when both followers have stopped naming the old leader — when an
// election can succeed —, not the election itself, which a split vote may delay by chance.
func TestNodeElectionNudge(t *testing.T) {
	const hb = time.Second
	c := raftlogtest.Start(t, raftlogtest.Options{Config: func(_ int, cfg *raftlog.Config) {
		cfg.HeartbeatTimeout, cfg.ElectionTimeout = hb, hb
	}})
	// The bound: the timeout, the largest jitter (1/4), and room for a loaded machine;
	// without the nudge a follower waits for its timer, up to twice the timeout.
	bound := hb + hb/4 + 450*time.Millisecond
	for round := range 3 {
		old := c.Leader(10 * time.Second)
		c.Propose(wait, raftlogtest.Put(fmt.Sprintf("r%d", round))) // every follower has heard from it
		c.Isolate(old)
		start := time.Now()
		raftlogtest.Eventually(t, 10*time.Second, "both followers to give up the old leader", func() bool {
			for _, m := range c.Others(old) {
				if m.Node.Stats().LeaderID == old.ID {
					return false
				}
			}
			return true
		})
		if took := time.Since(start); took > bound {
			t.Errorf("round %d: the followers gave up %s %v after it fell silent (bound %v)", round, old.ID, took, bound)
		} else {
			t.Logf("round %d: the followers gave up %s after %v", round, old.ID, took)
		}
		c.Leader(10*time.Second, c.Others(old)...)
		c.Heal()
	}
}
