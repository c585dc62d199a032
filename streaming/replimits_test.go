package streaming

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/starling-io/starling/proto/raftpb"
	"github.com/starling-io/starling/proto/stanpb"
	"github.com/starling-io/starling/stores"
)

// Three nodes configured with different channel limits keep identical stores: the leader's
// limits are replicated, and every replica trims by them. Before, each node trimmed by its
// own MaxMsgs, so the followers kept messages the leader had removed (and a later leader
// delivered from a channel the others no longer held). A new leader with other limits
// makes its own the cluster's, and the others say in their log that they differ.
func TestNodesWithOtherLimitsAgree(t *testing.T) {
	if testing.Short() {
		t.Skip("elections take a second")
	}
	maxMsgs := map[string]int{"n1": 5, "n2": 8, "n3": 12}
	logs := map[string]*countHandler{}
	ms := startRaftGroupWith(t, func(id string) Options {
		logs[id] = &countHandler{n: map[string]int{}}
		g := stores.DefaultLimits()
		g.MaxMsgs = maxMsgs[id]
		return Options{Limits: &stores.LimitsSet{Global: g}, Logger: slog.New(logs[id])}
	})
	leader := leaderOf(t, ms)
	req := func(kind opKind, m any) op { return requestOp(kind, "r", m) }
	do := func(s *Server, o op) { s.push(o); s.takeSnapshot(false) }
	publish := func(s *Server, from, n int) {
		for i := from; i < from+n; i++ {
			do(s, req(opPublish, &stanpb.PubMsg{ClientID: "c1", Guid: fmt.Sprint("g", i), Subject: "foo",
				Data: []byte(fmt.Sprint("m", i)), ConnID: []byte("x")}))
		}
	}
	holds := func(m *raftMember, first, last uint64) {
		t.Helper()
		waitUntil(t, fmt.Sprintf("%s holds %d..%d", m.id, first, last), func() bool {
			st, err := m.store.Recover()
			if err != nil || st == nil || len(st.Channels) != 1 {
				return false
			}
			s := st.Channels[0].Channel.Msgs.State()
			return s.First == first && s.Last == last
		})
	}
	do(leader.srv, req(opConnect, &stanpb.ConnectRequest{ClientID: "c1", HeartbeatInbox: "hb.c1", Protocol: 1, ConnID: []byte("x")}))
	publish(leader.srv, 0, 20)
	keep := uint64(maxMsgs[leader.id])
	for _, m := range ms {
		holds(m, 21-keep, 20)
	}
	converged(t, ms, leader)
	warned := func(m *raftMember) int {
		h := logs[m.id]
		h.mu.Lock()
		defer h.mu.Unlock()
		for msg, n := range h.n {
			if strings.Contains(msg, "the leader's channel limits differ from this node's") {
				return n
			}
		}
		return 0
	}
	for _, m := range ms {
		if m != leader && warned(m) == 0 {
			t.Errorf("%s, configured with max_msgs %d, did not log that it applies the leader's %d", m.id, maxMsgs[m.id], keep)
		}
	}

	leader.stop()
	next := leaderOf(t, ms)
	publish(next.srv, 20, 20)
	keep = uint64(maxMsgs[next.id])
	for _, m := range ms {
		if m.up {
			holds(m, 41-keep, 40)
		}
	}
	converged(t, ms, next)
}

// The replicated limits travel in snapshots: a replica restored from one trims as the
// others do, whatever it was configured with, and its snapshot is theirs byte for byte.
// A snapshot whose limits are invalid is refused before anything changes.
func TestLimitsTravelInSnapshots(t *testing.T) {
	leader, _ := newReplica(t)
	ls := &stores.LimitsSet{Global: stores.Limits{MaxMsgs: 3, MaxSubs: 10},
		Channels: map[string]stores.Limits{"y.*": {MaxMsgs: 2, MaxAge: time.Hour}}}
	if r := applyCmds(t, leader, &cmdSetLimits{limits: ls}); r[0] != nil {
		t.Fatal(r[0])
	}
	applyCmds(t, leader, &cmdCreateChannel{name: "x", id: 1})
	applyCmds(t, leader, &cmdPublish{chanRef: chanRef{"x", 1}, msgs: msgRun(1, 5)})
	snap := persist(t, leader)

	follower, _ := newReplica(t) // the store's default limits: 1,000,000 messages
	if err := follower.Restore(bytes.NewReader(snap)); !errors.Is(err, errMissingMsgs) {
		t.Fatalf("restore without the messages: %v", err) // (no fetcher: fetched by the node)
	}
	applyCmds(t, follower, &cmdCreateChannel{name: "x", id: 1})
	applyCmds(t, follower, &cmdPublish{chanRef: chanRef{"x", 1}, msgs: msgRun(1, 5)})
	if err := follower.Restore(bytes.NewReader(snap)); err != nil {
		t.Fatal(err)
	}
	for _, m := range []*stateMachine{leader, follower} {
		applyCmds(t, m, &cmdPublish{chanRef: chanRef{"x", 1}, msgs: msgRun(6, 2)})
		if st := m.chans["x"].Msgs.State(); st.First != 5 || st.Last != 7 {
			t.Fatalf("x holds %d..%d, want 5..7 (max_msgs 3)", st.First, st.Last)
		}
		applyCmds(t, m, &cmdCreateChannel{name: "y.a", id: 2})
		applyCmds(t, m, &cmdPublish{chanRef: chanRef{"y.a", 2}, msgs: msgRun(1, 4)})
		if st := m.chans["y.a"].Msgs.State(); st.First != 3 || st.Last != 4 {
			t.Fatalf("y.a holds %d..%d, want 3..4 (max_msgs 2 for y.*)", st.First, st.Last)
		}
	}
	if !bytes.Equal(persist(t, leader), persist(t, follower)) {
		t.Fatal("the snapshots differ")
	}

	var sn raftpb.Snapshot
	if err := proto.Unmarshal(snap, &sn); err != nil {
		t.Fatal(err)
	}
	sn.Limits.Global.MaxMsgs = -1
	bad, _ := proto.Marshal(&sn)
	other, store := newReplica(t)
	if err := other.Restore(bytes.NewReader(bad)); !errors.Is(err, errBadSnapshot) {
		t.Fatalf("a snapshot with negative limits: %v", err)
	}
	if other.limits != nil {
		t.Fatal("the refused snapshot's limits were installed")
	}
	if st, _ := store.Recover(); st != nil && len(st.Channels) != 0 {
		t.Fatal("the refused snapshot changed the store")
	}
}

// A limits op is ignorable: a node of an older version skips it and keeps its own limits.
// One with no global limits is malformed.
func TestSetLimitsOpIsIgnorable(t *testing.T) {
	data, err := encodeCommand(&cmdSetLimits{limits: &stores.LimitsSet{Global: stores.DefaultLimits()}})
	if err != nil {
		t.Fatal(err)
	}
	var op raftpb.Op
	if err := proto.Unmarshal(data, &op); err != nil || !op.Ignorable {
		t.Fatalf("ignorable %v (%v)", op.Ignorable, err)
	}
	m, _ := newReplica(t)
	malformed, _ := proto.Marshal(&raftpb.Op{Op: &raftpb.Op_SetLimits{SetLimits: &raftpb.SetLimits{}}})
	if _, err := m.Decode(malformed); err == nil {
		t.Fatal("limits without global limits decoded")
	}
}

// A new member of a durable queue group that is refused for max_subs, replicated, after the
// group's last member left while its subscribe was in flight: the leaver handed it the
// group (its unacknowledged messages, and the last record of the group, deleted). Before,
// the refusal dropped the group with them: a member joining later got none of them.
func TestRefusedQueueMemberKeepsTheDurableGroup(t *testing.T) {
	if testing.Short() {
		t.Skip("elections take a second")
	}
	ms := startRaftGroupWith(t, func(string) Options {
		g := stores.DefaultLimits()
		g.MaxSubs = 1
		return Options{Limits: &stores.LimitsSet{Global: g}}
	})
	leader := leaderOf(t, ms)
	s := leader.srv
	do := func(o op) { s.push(o); s.takeSnapshot(false) }
	response := func(reply string) *stanpb.SubscriptionResponse {
		t.Helper()
		waitUntil(t, "the response on "+reply, func() bool { return len(leader.bus.to(reply)) == 1 })
		var r stanpb.SubscriptionResponse
		if err := unmarshalAny(leader.bus.to(reply)[0].data, &r); err != nil {
			t.Fatal(err)
		}
		return &r
	}
	member := func(inbox, reply string, start stanpb.StartPosition) op {
		return requestOp(opSubscribe, reply, &stanpb.SubscriptionRequest{ClientID: "c1", Subject: "foo", Inbox: inbox,
			MaxInFlight: 100, AckWaitInSecs: 30, QGroup: "g", DurableName: "d", StartPosition: start})
	}
	do(requestOp(opConnect, "r.conn", &stanpb.ConnectRequest{ClientID: "c1", HeartbeatInbox: "hb.c1", Protocol: 1, ConnID: []byte("x")}))
	do(member("in.a", "r.a", stanpb.StartPosition_First))
	a := response("r.a")
	for i := range 3 {
		do(requestOp(opPublish, "r.pub", &stanpb.PubMsg{ClientID: "c1", Guid: fmt.Sprint("g", i), Subject: "foo",
			Data: []byte(fmt.Sprint("m", i)), ConnID: []byte("x")}))
	}
	waitUntil(t, "a gets the 3 messages", func() bool { return len(leader.bus.to("in.a")) == 3 })
	// b joins while a leaves: b's record is refused (a's still counts when it is applied).
	s.push(member("in.b", "r.b", stanpb.StartPosition_First))
	s.push(requestOp(opSubClose, "r.close", &stanpb.UnsubscribeRequest{ClientID: "c1", Subject: "foo", Inbox: a.AckInbox, DurableName: "d"}))
	if r := response("r.b"); r.Error != stores.ErrTooManySubs.Error() {
		t.Fatalf("b: %q, want it refused for max_subs", r.Error)
	}
	response("r.close")
	do(member("in.c", "r.c", stanpb.StartPosition_NewOnly))
	if r := response("r.c"); r.Error != "" {
		t.Fatalf("c: %q", r.Error)
	}
	waitUntil(t, "c gets the group's 3 unacknowledged messages", func() bool { return len(leader.bus.to("in.c")) == 3 })
	for _, m := range leader.bus.to("in.c") {
		var mp stanpb.MsgProto
		if err := unmarshalAny(m.data, &mp); err != nil || !mp.Redelivered {
			t.Fatalf("c got sequence %d not flagged redelivered (%v)", mp.Sequence, err)
		}
	}
	converged(t, ms, leader)
}

// limitsFailAfter fails SetLimits after its first n calls.
type limitsFailAfter struct {
	stores.Store
	n int
}

func (s *limitsFailAfter) SetLimits(ls *stores.LimitsSet) error {
	if s.n--; s.n < 0 {
		return errors.New("set limits: injected failure")
	}
	return s.Store.SetLimits(ls)
}

// A restore that cannot install the snapshot's limits once done fails: the store would keep
// the uncounted ones it restored under, and the replica the limits it had. Before, the
// error was set on a variable the limits' own check shadowed, and Restore returned nil.
func TestRestoreFailsWhenItsLimitsCannotBeInstalled(t *testing.T) {
	leader, _ := newReplica(t)
	ls := &stores.LimitsSet{Global: stores.Limits{MaxMsgs: 3, MaxSubs: 10}}
	if r := applyCmds(t, leader, &cmdSetLimits{limits: ls}); r[0] != nil {
		t.Fatal(r[0])
	}
	snap := persist(t, leader)
	follower, _ := newReplica(t)
	follower.store = &limitsFailAfter{Store: follower.store, n: 1} // the uncounted ones pass
	if err := follower.Restore(bytes.NewReader(snap)); err == nil || !strings.Contains(err.Error(), "injected") {
		t.Fatalf("restore whose limits failed to install: %v", err)
	}
}
