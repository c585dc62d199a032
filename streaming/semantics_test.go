package streaming

import (
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/starling-io/starling/proto/stanpb"
	"github.com/starling-io/starling/raftlog"
	"github.com/starling-io/starling/stores"
)

// Unit checks of subscription semantics (tests/stan_semantics_test.go has the end-to-end
// ones), on the engine newPipelinedEngine sets up: client c1 on connection "conn".

// queueMembers subscribes one queue member of group g on channel q per inbox and returns
// them in that order.
func queueMembers(t *testing.T, s *Server, inboxes ...string) []*subState {
	t.Helper()
	var out []*subState
	for _, inbox := range inboxes {
		s.step(op{kind: opSubscribe, reply: "r", data: marshal(&stanpb.SubscriptionRequest{ClientID: "c1", Subject: "q", QGroup: "g",
			Inbox: inbox, MaxInFlight: 10, AckWaitInSecs: 30})})
		m := s.findByInbox(s.channels["q"], inbox)
		if m == nil || !m.ready {
			t.Fatalf("member %s not subscribed", inbox)
		}
		out = append(out, m)
	}
	return out
}

func publishTo(s *Server, channel string, i int) {
	s.step(op{kind: opPublish, reply: "ack.q", data: marshal(&stanpb.PubMsg{ClientID: "c1", Guid: fmt.Sprint("q", i),
		Subject: channel, Data: []byte("x"), ConnID: []byte("conn")})})
}

// expireNow makes sub's pending seq due at, engineClock.mono (as if its ack wait had run
// out then).
func expireNow(sub *subState, seq uint64, at int64) {
	p, _ := sub.pending.Get(seq)
	p.expiry = at
	sub.pending.Set(seq, p)
	sub.expReset()
	sub.expPush(expiry{seq: seq, at: p.expiry})
}

// recordedPending is what a restart (or a follower) has pending for each subscription ID.
func recordedPending(t *testing.T, s *Server, channel string) map[uint64][]uint64 {
	t.Helper()
	st, err := s.sm.current()
	if err != nil {
		t.Fatal(err)
	}
	out := map[uint64][]uint64{}
	for _, rc := range st.Channels {
		if rc.Channel.Name != channel {
			continue
		}
		for _, rs := range rc.Subs {
			out[rs.State.ID] = slices.Clone(rs.Pending)
		}
	}
	return out
}

func stopTimers(subs ...*subState) {
	for _, sub := range subs {
		sub.stopTimer()
	}
}

// An expired queue message goes to the best member at that moment (spec §8.3); the move is
// recorded — pending on the new owner, acked on the old one — so a restart sees the same
// pending sets as the engine. After a restart (or a takeover) what was already due goes
// back to the member that had it (the reference's isStartup pass), later expiries to the
// best member again.
func TestQueueRedeliveryMovesToBestMemberAndIsRecorded(t *testing.T) {
	s, bus, _ := newPipelinedEngine(t, nil)
	ms := queueMembers(t, s, "qa", "qb")
	a, b := ms[0], ms[1]
	publishTo(s, "q", 1)
	s.waitCommits(0)
	if !a.pending.Has(1) || bus.count("qa") != 1 {
		t.Fatalf("seq 1 did not go to the first member: sent %q", bus.subjects)
	}
	expireNow(a, 1, s.clock.monoNow()-int64(time.Second))
	s.step(op{kind: opRedeliver, sub: a})
	p, ok := b.pending.Get(1)
	if a.pending.Has(1) || !ok || p.count != 1 || bus.count("qb") != 1 {
		t.Fatalf("after the ack wait: on a %v, on b %v (count %d), sent to b %d; want moved to b, count 1",
			a.pending.Has(1), ok, p.count, bus.count("qb"))
	}
	rec := recordedPending(t, s, "q")
	if len(rec[a.id]) != 0 || !slices.Equal(rec[b.id], []uint64{1}) {
		t.Fatalf("recorded pending %v, want a (%d) none and b (%d) [1]", rec, a.id, b.id)
	}
	stopTimers(a, b)

	// A takeover rebuilds the engine's view from what was recorded (a restart likewise).
	s.dropView()
	st, err := s.sm.current()
	if err != nil {
		t.Fatal(err)
	}
	if err := s.restore(st); err != nil {
		t.Fatal(err)
	}
	a, b = s.findByInbox(s.channels["q"], "qa"), s.findByInbox(s.channels["q"], "qb")
	if a == nil || b == nil || !b.pending.Has(1) || a.pending.Len() != 0 {
		t.Fatalf("restored: a %v, b %v", a, b)
	}
	expireNow(b, 1, b.restoredDue-int64(time.Second)) // due when restored
	s.step(op{kind: opRedeliver, sub: b})
	if !b.pending.Has(1) || a.pending.Has(1) {
		t.Fatal("the restart's first redelivery moved the message off the member that had it")
	}
	time.Sleep(2 * redeliverSlack)
	expireNow(b, 1, s.clock.monoNow()) // due after the restore: the best member (a) gets it
	s.step(op{kind: opRedeliver, sub: b})
	if b.pending.Has(1) || !a.pending.Has(1) {
		t.Fatal("a later expiry after the restart stayed on the member that had it")
	}
	stopTimers(a, b)
}

// refusingStore refuses every subscription update (UpdateSub) while refuse is set, as a
// store refuses a record for a cause other than durability.
type refusingStore struct {
	stores.Store
	refuse bool
}

type refusingSubs struct {
	stores.SubStore
	st *refusingStore
}

var errRefusedUpdate = errors.New("update refused")

func (m *refusingSubs) UpdateSub(st *stores.SubState) error {
	if m.st.refuse {
		return errRefusedUpdate
	}
	return m.SubStore.UpdateSub(st)
}

func (s *refusingStore) CreateChannelAfter(name string, id, after uint64) (*stores.Channel, error) {
	ch, err := s.Store.CreateChannelAfter(name, id, after)
	if err == nil {
		ch.Subs = &refusingSubs{SubStore: ch.Subs, st: s}
	}
	return ch, err
}

// newRefusingEngine is an engine over a refusingStore with client c1 connected and seq 1
// published on channel q.
func newRefusingEngine(t *testing.T) (*Server, *dataBus, *refusingStore) {
	t.Helper()
	st := &refusingStore{Store: newMemStore(t)}
	bus := &dataBus{}
	s, err := New(bus, st, raftlog.Standalone, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.recover(); err != nil {
		t.Fatal(err)
	}
	s.started = true
	t.Cleanup(s.drainCommits)
	s.step(op{kind: opConnect, reply: "r", data: marshal(&stanpb.ConnectRequest{ClientID: "c1", HeartbeatInbox: "hb", Protocol: 1, ConnID: []byte("conn")})})
	publishTo(s, "q", 1)
	s.waitCommits(0)
	return s, bus, st
}

// subscribeAs sends a subscription request for a durable (queue member when queue is
// set) on channel q, answered on reply, and returns the response.
func subscribeAs(t *testing.T, s *Server, bus *dataBus, durable, queue, inbox, reply string) *stanpb.SubscriptionResponse {
	t.Helper()
	s.step(op{kind: opSubscribe, reply: reply, data: marshal(&stanpb.SubscriptionRequest{ClientID: "c1", Subject: "q", QGroup: queue,
		DurableName: durable, Inbox: inbox, MaxInFlight: 10, AckWaitInSecs: 30, StartPosition: stanpb.StartPosition_First})})
	got := bus.to(reply)
	if len(got) != 1 {
		t.Fatalf("%d replies to %s", len(got), reply)
	}
	resp := &stanpb.SubscriptionResponse{}
	if err := proto.Unmarshal(got[0].data, resp); err != nil {
		t.Fatal(err)
	}
	return resp
}

// closeSub closes (not unsubscribes) the subscription with that ack inbox.
func closeSub(s *Server, ackInbox string) {
	s.step(op{kind: opSubClose, reply: "closed", data: marshal(&stanpb.UnsubscribeRequest{ClientID: "c1", Subject: "q", Inbox: ackInbox})})
}

// A durable whose resume was refused goes back offline, as its record still says: the
// next attempt resumes it, pending message and all. Before the fix it stayed registered as
// online and every later attempt got "duplicate durable registration".
func TestRefusedDurableResumeStaysResumable(t *testing.T) {
	refusedResumeThenResumed(t, "", "in", "resume once the store takes it",
		"the resumed durable got %d messages (first %v), want its pending seq 1 redelivered")
}

// A durable queue group's member whose resume of the group's shadow was refused gives the
// state back to the shadow: the next member that joins takes it over, pending message and
// all. Before the fix the group was dropped from memory and the joiner started a new one.
func TestRefusedDurableQueueResumeKeepsTheShadow(t *testing.T) {
	// A new group (starting at the first message) would send seq 1 not redelivered.
	refusedResumeThenResumed(t, "g", "m", "join once the store takes it",
		"the joiner got %d messages (first %v), want the shadow's pending seq 1 redelivered")
}

// refusedResumeThenResumed subscribes durable "d" (in queue group queue, "" for none) on
// inbox prefix+"1", closes it, has its resume on prefix+"2" refused by the store, and
// checks that the next one, on prefix+"3", gets the pending seq 1 redelivered (resumed
// and wantGot name the failures).
func refusedResumeThenResumed(t *testing.T, queue, prefix, resumed, wantGot string) {
	t.Helper()
	s, bus, st := newRefusingEngine(t)
	resp := subscribeAs(t, s, bus, "d", queue, prefix+"1", "r1")
	if resp.Error != "" || len(bus.to(prefix+"1")) != 1 {
		t.Fatalf("subscribe: %q, %d sent", resp.Error, len(bus.to(prefix+"1")))
	}
	closeSub(s, resp.AckInbox)
	st.refuse = true
	if resp := subscribeAs(t, s, bus, "d", queue, prefix+"2", "r2"); resp.Error != errRefusedUpdate.Error() {
		t.Fatalf("resume while the store refuses: %q", resp.Error)
	}
	st.refuse = false
	if resp := subscribeAs(t, s, bus, "d", queue, prefix+"3", "r3"); resp.Error != "" {
		t.Fatalf("%s: %q", resumed, resp.Error)
	}
	got := bus.to(prefix + "3")
	m := &stanpb.MsgProto{}
	if len(got) != 1 || proto.Unmarshal(got[0].data, m) != nil || m.Sequence != 1 || !m.Redelivered {
		t.Fatalf(wantGot, len(got), m)
	}
	stopTimers(s.findByInbox(s.channels["q"], prefix+"3"))
}

// The same when other members joined while the refused resume was in flight (replicated
// only: standalone a refusal answers at once): the pending messages it took over from the
// shadow go to them, as a leaving member's do, and the shadow's record goes.
func TestRefusedDurableQueueResumeHandsPendingToMembers(t *testing.T) {
	s, bus, _ := newRefusingEngine(t)
	resp := subscribeAs(t, s, bus, "d", "g", "m1", "r1")
	closeSub(s, resp.AckInbox)
	subscribeAs(t, s, bus, "d", "g", "m2", "r2") // resumes the shadow: seq 1 pending on it
	subscribeAs(t, s, bus, "d", "g", "m3", "r3")
	ch := s.channels["q"]
	m2, m3 := s.findByInbox(ch, "m2"), s.findByInbox(ch, "m3")
	if !m2.pending.Has(1) {
		t.Fatal("the resumed member does not have the shadow's pending message")
	}
	s.forgetSub(m2, true) // as the refusal of m2's resume does
	s.endBatch()
	g := m3.group
	if len(g.members) != 1 || g.members[0] != m3 || g.shadow != nil || !m3.pending.Has(1) {
		t.Fatalf("members %d, shadow %v, m3 pending seq 1 %v", len(g.members), g.shadow != nil, m3.pending.Has(1))
	}
	rec := recordedPending(t, s, "q")
	if _, ok := rec[m2.id]; ok || !slices.Equal(rec[m3.id], []uint64{1}) {
		t.Fatalf("recorded pending %v: want the shadow's record (%d) gone, seq 1 on m3 (%d)", rec, m2.id, m3.id)
	}
	stopTimers(m2, m3)
}

// Deadlines pushed out of order (a reassigned message due sooner than the member's own)
// come out earliest first, so the ack timer and the redelivery pass see them when due.
func TestExpiriesStayInDeadlineOrder(t *testing.T) {
	sub := &subState{}
	for i, at := range []int64{10, 20, 30, 15, 5, 30, 25} {
		sub.expPush(expiry{seq: uint64(i + 1), at: at})
	}
	sub.expPop() // 5
	sub.expPush(expiry{seq: 8, at: 12})
	var got []int64
	for sub.expLen() > 0 {
		got = append(got, sub.expFront().at)
		sub.expPop()
	}
	if want := []int64{10, 12, 15, 20, 25, 30, 30}; !slices.Equal(got, want) {
		t.Fatalf("deadlines came out %v, want %v", got, want)
	}
}

// A leaving queue member's pending messages are due reassignDelay later on the members
// they went to, even behind later deadlines of those members' own, and are not sent at
// once (the reference's 100 ms).
func TestReassignedMessagesAreDueShortly(t *testing.T) {
	s, bus, _ := newPipelinedEngine(t, nil)
	ms := queueMembers(t, s, "qa", "qb")
	a, b := ms[0], ms[1]
	publishTo(s, "q", 1) // to a
	publishTo(s, "q", 2) // to b
	s.waitCommits(0)
	if !a.pending.Has(1) || !b.pending.Has(2) {
		t.Fatal("setup: one message to each member")
	}
	s.step(op{kind: opSubClose, reply: "closed", data: marshal(&stanpb.UnsubscribeRequest{ClientID: "c1", Subject: "q", Inbox: a.ackInbox})})
	p, ok := b.pending.Get(1)
	if !ok || bus.count("qb") != 1 || p.count != 0 {
		t.Fatalf("after a left: b has seq 1 %v (count %d), %d sent to b; want it pending, not sent yet", ok, p.count, bus.count("qb"))
	}
	if e := b.expFront(); e.seq != 1 || time.Duration(e.at-s.clock.monoNow()) > reassignDelay {
		t.Fatalf("b's first deadline: seq %d in %v, want seq 1 within %v", e.seq, time.Duration(e.at-s.clock.monoNow()), reassignDelay)
	}
	if d := time.Duration(b.timerAt - s.clock.monoNow()); d > reassignDelay {
		t.Fatalf("b's ack timer fires in %v, want within %v", d, reassignDelay)
	}
	time.Sleep(reassignDelay)
	s.step(op{kind: opRedeliver, sub: b})
	if p, _ := b.pending.Get(1); bus.count("qb") != 2 || p.count != 1 {
		t.Fatalf("once due: %d sent to b, count %d; want seq 1 redelivered, count 1", bus.count("qb"), p.count)
	}
	stopTimers(a, b)
}
