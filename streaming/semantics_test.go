package streaming

import (
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/starling-io/starling/proto/stanpb"
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

// expireNow makes sub's pending seq due at (as if its ack wait had run out then).
func expireNow(sub *subState, seq uint64, at time.Time) {
	p, _ := sub.pending.Get(seq)
	p.expiry = at.UnixNano()
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
	expireNow(a, 1, time.Now().Add(-time.Second))
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
	expireNow(b, 1, time.Unix(0, b.restoredDue).Add(-time.Second)) // due when restored
	s.step(op{kind: opRedeliver, sub: b})
	if !b.pending.Has(1) || a.pending.Has(1) {
		t.Fatal("the restart's first redelivery moved the message off the member that had it")
	}
	time.Sleep(2 * redeliverSlack)
	expireNow(b, 1, time.Now()) // due after the restore: the best member (a) gets it
	s.step(op{kind: opRedeliver, sub: b})
	if b.pending.Has(1) || !a.pending.Has(1) {
		t.Fatal("a later expiry after the restart stayed on the member that had it")
	}
	stopTimers(a, b)
}
