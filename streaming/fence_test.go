package streaming

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/starling-io/starling/proto/stanpb"
	"github.com/starling-io/starling/raftlog"
	"github.com/starling-io/starling/stores"
	"github.com/starling-io/starling/stores/filestore"
)

// metaFailingStore opens a file store in dir whose fsyncs of meta.log, its rewrite and the
// store directory fail while fail is set: a deletion then leaves its channel fenced
// (stores/filestore DESIGN.md).
func metaFailingStore(t *testing.T, dir string, fail *atomic.Bool) *filestore.Store {
	t.Helper()
	store, err := filestore.Open(dir, filestore.Options{Hooks: filestore.Hooks{BeforeSync: func(p string) error {
		switch rel, _ := filepath.Rel(dir, p); {
		case fail.Load() && (rel == "." || rel == "meta.log" || rel == "meta.log.tmp"):
			return fmt.Errorf("injected: %s", rel)
		}
		return nil
	}}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = store.Close() })
	return store
}

// metaFailingReplica is a replicated state machine over metaFailingStore, recovered from
// what dir holds.
func metaFailingReplica(t *testing.T, dir string, fail *atomic.Bool) (*stateMachine, *filestore.Store) {
	t.Helper()
	store := metaFailingStore(t, dir, fail)
	m := newStateMachine(store)
	rs, err := m.recover()
	if err != nil {
		t.Fatal(err)
	}
	if rs == nil {
		if err := store.Init(stores.ServerInfo{ClusterID: "replica"}); err != nil {
			t.Fatal(err)
		}
	}
	m.setReplicated(true)
	m.fetch = func(_ context.Context, ch string, _, from, to uint64, _ func(uint64, []stores.Msg) error) error {
		if from > to {
			return nil
		}
		return fmt.Errorf("%w: no node answered for %q from %d", errFetch, ch, from) // none needed here
	}
	return m, store
}

// TestFailedDeletionStopsItsNode: over raft, the node whose store fails an inactive
// channel's deletion (its meta.log's fsyncs fail, so the file store fences the channel)
// stops applying the log there, follower or leader, as at any failure of its own: it never
// holds a fenced channel while it applies later commands (the engine's heal, which skips
// Rollback replicated, has nothing to lift). The two others deleted the channel, and a
// publish to its name is acknowledged and reaches both.
func TestFailedDeletionStopsItsNode(t *testing.T) {
	if testing.Short() {
		t.Skip("elections take a second")
	}
	for _, who := range []string{"follower", "leader"} {
		t.Run(who, func(t *testing.T) { failedDeletionStopsItsNode(t, who == "leader") })
	}
}

func failedDeletionStopsItsNode(t *testing.T, leaderFails bool) {
	limits := &stores.LimitsSet{Global: stores.DefaultLimits()}
	limits.Global.MaxInactivity = 1500 * time.Millisecond
	fail := map[string]*atomic.Bool{"n1": {}, "n2": {}, "n3": {}}
	ms := startRaftGroupOn(t, func(string) Options { return Options{Limits: limits} },
		func(id string) stores.Store { return metaFailingStore(t, t.TempDir(), fail[id]) })
	leader := leaderOf(t, ms)
	seq := 0
	pub := func(s *Server) {
		seq++
		s.push(op{kind: opPublish, reply: "r", from: 1, data: marshalAny(&stanpb.PubMsg{ClientID: "c1",
			Guid: fmt.Sprint("g", seq), Subject: "idle", Data: []byte(fmt.Sprint("m", seq)), ConnID: []byte("x")})})
	}
	lastAck := func(m *raftMember) (int, string) {
		acks := m.bus.to("r")
		if len(acks) == 0 {
			return 0, ""
		}
		var pa stanpb.PubAck
		if err := unmarshalAny(acks[len(acks)-1].data, &pa); err != nil {
			t.Fatal(err)
		}
		return len(acks), pa.Error
	}
	leader.srv.push(op{kind: opConnect, reply: "r", from: 1, data: marshalAny(&stanpb.ConnectRequest{ClientID: "c1",
		HeartbeatInbox: "hb.c1", Protocol: 1, ConnID: []byte("x")})})
	pub(leader.srv)
	pub(leader.srv)
	waitUntil(t, "both messages acknowledged", func() bool { n, _ := lastAck(leader); return n == 3 })
	converged(t, ms, leader)

	failing := leader
	if !leaderFails {
		failing = ms[0]
		if failing == leader {
			failing = ms[1]
		}
	}
	var others []*raftMember
	for _, m := range ms {
		if m != failing {
			others = append(others, m)
		}
	}
	failing.srv.sm.mu.Lock()
	old := failing.srv.sm.chans["idle"]
	failing.srv.sm.mu.Unlock()
	fail[failing.id].Store(true)
	waitUntil(t, "the node whose deletion failed stops applying", func() bool { return failing.node.Stats().Stopped != nil })
	if err := failing.node.Stats().Stopped; !errors.Is(err, raftlog.ErrReplicaFailed) {
		t.Fatalf("the node stopped for %v, want a failure of its own", err)
	}
	if err := old.Msgs.Append(msgRun(3, 1)); err == nil {
		t.Fatal("the channel whose deletion failed is not fenced: the test injects nothing")
	}
	fail[failing.id].Store(false) // the fence may lift now: nothing more is applied

	if leaderFails {
		waitUntil(t, "the failed leader steps down", func() bool { return !failing.node.IsLeader() })
		failing.stop()
		leader = leaderOf(t, ms)
	}
	for _, m := range others { // a follower learns of the commit at the next leader's append
		waitUntil(t, m.id+" deletes the inactive channel", func() bool {
			m.srv.sm.mu.Lock()
			defer m.srv.sm.mu.Unlock()
			ch := m.srv.sm.chans["idle"]
			return ch == nil || ch.ID != old.ID
		})
	}
	n, _ := lastAck(leader)
	pub(leader.srv)
	waitUntil(t, "the publish after the deletion is answered", func() bool { k, _ := lastAck(leader); return k > n })
	if _, e := lastAck(leader); e != "" {
		t.Fatalf("the publish after the deletion: PubAck error %q", e)
	}
	if failing.up {
		failing.up = false // not compared: it applies nothing more
		defer func() { failing.up = true }()
	}
	converged(t, ms, leader)
	failing.srv.sm.mu.Lock()
	ch := failing.srv.sm.chans["idle"]
	failing.srv.sm.mu.Unlock()
	if ch != old || ch.Msgs.State().Last != 2 {
		t.Fatalf("the stopped node holds %+v, want the channel whose deletion failed, up to 2", ch)
	}
}

// TestReplicaStopsAtAFailedDeletion: a replica whose store fails an inactive channel's
// deletion (meta.log's fsyncs fail, so the file store fences the channel) stops applying at
// that command, as at any failure of its own: it neither goes on with the channel the others
// deleted nor waits, fenced, for a commit of meta.log that would let it diverge. Restarted
// with a working disk, it replays the log onto what its store kept and ends where the
// others are. Nothing of the engine's heal runs on a replica, and none is needed.
func TestReplicaStopsAtAFailedDeletion(t *testing.T) {
	log := []any{
		&cmdCreateChannel{name: "a", id: 1},
		&cmdPublish{chanRef: chanRef{"a", 1}, msgs: msgRun(1, 3)},
		&cmdDeleteChannel{chanRef{"a", 1}}, // max_inactivity
		&cmdCreateChannel{name: "a", id: 2},
		&cmdPublish{chanRef: chanRef{"a", 2}, msgs: msgRun(4, 2)},
	}
	leader, leaderStore := newReplica(t)
	leader.setReplicated(true)
	for _, c := range log {
		if err, _ := applyCmds(t, leader, c)[0].(error); err != nil {
			t.Fatalf("leader: %T: %v", c, err)
		}
	}
	want := storeDigest(t, leaderStore)

	dir := t.TempDir()
	var fail atomic.Bool
	m, store := metaFailingReplica(t, dir, &fail)
	for _, c := range log[:2] {
		if err, _ := applyCmds(t, m, c)[0].(error); err != nil {
			t.Fatalf("%T: %v", c, err)
		}
	}
	old := m.chans["a"]
	fail.Store(true)
	err, _ := applyCmds(t, m, log[2])[0].(error)
	if !errors.Is(err, raftlog.ErrReplicaFailed) {
		t.Fatalf("the failed deletion's result: %v, want raftlog.ErrReplicaFailed", err)
	}
	if aerr := old.Msgs.Append(msgRun(4, 1)); aerr == nil {
		t.Fatal("the channel whose deletion failed is not fenced: the test injects nothing")
	}
	fail.Store(false)
	// meta.log works again; the fence may lift at any commit, but nothing more is applied.
	for _, c := range log[3:] {
		if r := applyCmds(t, m, c)[0]; !errors.Is(r.(error), raftlog.ErrReplicaFailed) {
			t.Fatalf("%T applied after the replica failed: %v", c, r)
		}
	}
	if ch := m.chans["a"]; ch != old || ch.Msgs.State().Last != 3 {
		t.Fatalf("after the failure the replica holds %+v, want channel a (ID 1) up to 3", ch)
	}
	if err := store.Close(); err != nil {
		t.Fatal(err)
	}

	// The node is restarted (raft replays the log: no snapshot was taken here).
	m2, store2 := metaFailingReplica(t, dir, &fail)
	for _, c := range log {
		r := applyCmds(t, m2, c)[0]
		if err, _ := r.(error); err != nil && !errors.Is(err, errNoChannel) {
			t.Fatalf("replaying %T: %v", c, err)
		}
	}
	if got := storeDigest(t, store2); got != want {
		t.Fatalf("the restarted replica holds\n%s\nwant\n%s", got, want)
	}
}

// TestRestoreRetriedAfterAFailedDeletion: a follower restores a snapshot that no longer
// holds a channel it has (or holds another incarnation of it), and the store fails that
// deletion (meta.log's fsyncs fail: the channel is kept, fenced), so the restore fails. Once
// the disk works the leader sends the snapshot again, or a new leader that kept the log the
// follower missed sends that instead: either must delete the channel, and the channel
// created again under its name must reach the follower as it reaches the others. Before,
// the failed restore forgot the channel the store kept: the retry left it in the store
// unseen, the creation was refused as "already exists" — a refusal taken as shared — and
// the follower went on without the channel; or, another incarnation in the snapshot, every
// retry of the restore failed so. And the log's commands for the kept channel found it
// still fenced with the disk working again (only a commit of meta.log lifts the fence, and
// nothing on a replica made one): the follower stopped at the first.
func TestRestoreRetriedAfterAFailedDeletion(t *testing.T) {
	gone := []any{&cmdDeleteChannel{chanRef{"a", 1}}, &cmdCreateChannel{name: "b", id: 2}}
	createdAgain := []any{
		&cmdCreateChannel{name: "a", id: 3},
		&cmdPublish{chanRef: chanRef{"a", 3}, msgs: msgRun(4, 2)},
	}
	for _, tc := range []struct {
		name          string
		oldLog        bool
		missed, after []any
	}{
		{name: "gone/snapshot-again", missed: gone, after: createdAgain},
		{name: "gone/old-log", oldLog: true, missed: gone, after: createdAgain},
		// The old log publishes to the channel before it deletes it: the store fenced the
		// channel at the failed deletion, and no commit of meta.log has lifted the fence yet.
		{name: "gone/old-log-publishing", oldLog: true, after: createdAgain,
			missed: append([]any{&cmdPublish{chanRef: chanRef{"a", 1}, msgs: msgRun(4, 2)}}, gone...)},
		// The snapshot holds a new, empty incarnation (replaced as a fetch would).
		// The snapshot holds another incarnation with messages: the restore replaces it
		// (fetchMissing), and that deletion fails.
		{name: "incarnation/old-log-publishing", oldLog: true,
			missed: []any{&cmdPublish{chanRef: chanRef{"a", 1}, msgs: msgRun(4, 2)}, &cmdDeleteChannel{chanRef{"a", 1}},
				&cmdCreateChannel{name: "a", id: 2}, &cmdPublish{chanRef: chanRef{"a", 2}, msgs: msgRun(6, 2)}},
			after: []any{&cmdPublish{chanRef: chanRef{"a", 2}, msgs: msgRun(8, 2)}}},
		{name: "incarnation/snapshot-again", missed: []any{&cmdDeleteChannel{chanRef{"a", 1}}, &cmdCreateChannel{name: "a", id: 2}},
			after: []any{&cmdPublish{chanRef: chanRef{"a", 2}, msgs: msgRun(4, 2)}}},
	} {
		t.Run(tc.name, func(t *testing.T) { restoreRetriedAfterAFailedDeletion(t, tc.oldLog, tc.missed, tc.after) })
	}
}

func restoreRetriedAfterAFailedDeletion(t *testing.T, oldLog bool, missed, after []any) {
	leader, leaderStore := newReplica(t)
	leader.setReplicated(true)
	common := []any{
		&cmdCreateChannel{name: "a", id: 1},
		&cmdPublish{chanRef: chanRef{"a", 1}, msgs: msgRun(1, 3)},
	}
	var snap []byte
	for i, c := range append(append(common[:len(common):len(common)], missed...), after...) {
		if i == len(common)+len(missed) {
			snap = persist(t, leader)
		}
		if err, _ := applyCmds(t, leader, c)[0].(error); err != nil {
			t.Fatalf("leader: %T: %v", c, err)
		}
	}
	want := storeDigest(t, leaderStore)

	var fail atomic.Bool
	m, store := metaFailingReplica(t, t.TempDir(), &fail)
	for _, c := range common {
		if err, _ := applyCmds(t, m, c)[0].(error); err != nil {
			t.Fatalf("%T: %v", c, err)
		}
	}
	fail.Store(true)
	if err := m.Restore(bytes.NewReader(snap)); err == nil {
		t.Fatal("the restore succeeded while meta.log's fsyncs fail")
	}
	fail.Store(false)
	rest := after
	if oldLog {
		rest = append(missed[:len(missed):len(missed)], after...)
	} else if err := m.Restore(bytes.NewReader(snap)); err != nil {
		t.Fatalf("the restore sent again once the disk works: %v", err)
	}
	for _, c := range rest {
		if err, _ := applyCmds(t, m, c)[0].(error); err != nil && !(oldLog && errors.Is(err, errNoChannel)) {
			t.Fatalf("after the failed restore: %T: %v", c, err)
		}
	}
	if got := storeDigest(t, store); got != want {
		t.Fatalf("the follower holds\n%s\nwant\n%s", got, want)
	}
}

// A deletion the store made durable, but whose files it could not remove (it removes them
// at its next open), is a deletion: the replica forgets the channel as the others do, and
// the name's next creation goes through. Before, the error counted as the replica's own
// failure (stopping it), and a restore kept the channel known though the store had dropped
// it (found by review).
func TestDeletionWithFilesLeftIsADeletion(t *testing.T) {
	var fail atomic.Bool
	dir := t.TempDir()
	store, err := filestore.Open(dir, filestore.Options{Hooks: filestore.Hooks{Change: func(op, p string, _ int64, do func() error) error {
		if fail.Load() && strings.HasSuffix(p, ".deleted") {
			return fmt.Errorf("injected: %s %s", op, p)
		}
		return do()
	}}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = store.Close() })
	if err := store.Init(stores.ServerInfo{ClusterID: "replica"}); err != nil {
		t.Fatal(err)
	}
	m := newStateMachine(store)
	m.setReplicated(true)
	applyCmds(t, m, &cmdCreateChannel{name: "gone", id: 1}, &cmdCreateChannel{name: "alone", id: 2})
	applyCmds(t, m, &cmdPublish{chanRef: chanRef{"gone", 1}, msgs: msgRun(1, 3)})
	fail.Store(true)
	// A run of two deletions (deleteRun) and one alone (applyOne).
	if r := applyCmds(t, m, &cmdDeleteChannel{chanRef{"gone", 1}}); r[0] != nil {
		t.Fatalf("deletion with its files left: %v", r[0])
	}
	for _, v := range applyCmds(t, m, &cmdCreateChannel{name: "x", id: 3}, &cmdCreateChannel{name: "y", id: 4}) {
		if err, ok := v.(error); ok {
			t.Fatal(err)
		}
	}
	if r := applyCmds(t, m, &cmdDeleteChannel{chanRef{"x", 3}}, &cmdDeleteChannel{chanRef{"y", 4}}); r[0] != nil || r[1] != nil {
		t.Fatalf("deletions with their files left: %v", r)
	}
	if m.failed != nil {
		t.Fatalf("the replica stopped: %v", m.failed)
	}
	for _, name := range []string{"gone", "x", "y"} {
		if m.chans[name] != nil {
			t.Fatalf("%s still known", name)
		}
	}
	fail.Store(false)
	if r := applyCmds(t, m, &cmdCreateChannel{name: "gone", id: 5}); r[0] == nil {
		t.Fatal("no channel created")
	} else if _, ok := r[0].(error); ok {
		t.Fatalf("creating the name again: %v", r[0])
	}
	if st := m.chans["gone"].Msgs.State(); st.Last != 3 {
		t.Fatalf("gone again continues after %d, want 3", st.Last)
	}
}
