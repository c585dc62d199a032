package streaming

import (
	"context"
	"errors"
	"log/slog"
	"slices"
	"time"

	"github.com/starling-io/starling/raftlog"
	"github.com/starling-io/starling/stores"
)

// deliverAll sends every channel's ready subscriptions what they have not been sent yet:
// after a restart or a takeover, the messages stored before it and never sent would
// otherwise wait for the channel's next publish (found by TestFormerLeaderDeliversNothing).
func (s *Server) deliverAll() {
	for _, ch := range s.channels {
		s.deliverNew(ch)
	}
}

// deliverNew sends a channel's newly stored messages to its ready subscriptions.
func (s *Server) deliverNew(ch *channel) {
	for sub := range ch.subs {
		if sub.ready && !sub.offline {
			s.sendAvailable(sub)
		}
	}
	for _, g := range ch.queues {
		s.sendGroup(g)
	}
}

// sendAvailable sends a plain or durable subscription everything after its position, up
// to max in flight (spec §8.1).
func (s *Server) sendAvailable(sub *subState) {
	outer := s.startRun()
	s.sendAvailableRun(sub)
	s.endRun(outer)
}

// sendAvailableRun is sendAvailable, its sends collected into the run.
func (s *Server) sendAvailableRun(sub *subState) {
	st := sub.ch.store.Msgs.State()
	first, last := s.firstDeliverable(sub.ch, st.First), min(st.Last, sub.ch.synced)
	for !sub.stalled() {
		next := max(sub.lastSent+1, first)
		if next > last {
			return
		}
		if s.heldBack(sub) {
			return
		}
		if err := s.sendMsg(sub, next, uncertainCount(next, sub.uncertain), true); err != nil && !errors.Is(err, stores.ErrNotFound) {
			return // the store failed to read it: stay before it, try again at the next chance
		}
		sub.lastSent = next
	}
}

// uncertainCount is the redelivery count of a first delivery: 1 for a sequence that may
// have been delivered before a crash (its "sent" record was not yet synced), else 0.
func uncertainCount(seq, uncertain uint64) uint32 {
	if seq <= uncertain {
		return 1
	}
	return 0
}

// firstDeliverable is the oldest sequence that can still be sent: the store's first, or
// the first of the batch being delivered when limits evicted part of it already.
func (s *Server) firstDeliverable(ch *channel, storeFirst uint64) uint64 {
	if b := s.scratch.batch; s.scratch.batchCh == ch && len(b) > 0 && b[0].Seq < storeFirst {
		return b[0].Seq
	}
	return storeFirst
}

// sendGroup sends a queue group its new messages, each to the best member (§8.4).
func (s *Server) sendGroup(g *queueGroup) {
	if len(g.members) == 0 {
		return
	}
	outer := s.startRun()
	s.sendGroupRun(g)
	s.endRun(outer)
}

// sendGroupRun is sendGroup, its sends collected into runs (one per member in a row).
func (s *Server) sendGroupRun(g *queueGroup) {
	ch := g.members[0].ch
	st := ch.store.Msgs.State()
	first, last := s.firstDeliverable(ch, st.First), min(st.Last, ch.synced)
	for {
		next := max(g.lastSent+1, first)
		if next > last {
			return
		}
		m := s.bestMember(g, false)
		if m == nil {
			return // every member stalled or held back
		}
		if s.heldBack(m) {
			continue // bestMember passes it over now
		}
		if err := s.sendMsg(m, next, uncertainCount(next, g.uncertain), true); err != nil && !errors.Is(err, stores.ErrNotFound) {
			return // the store failed to read it: stay before it, try again at the next chance
		}
		g.lastSent = next
	}
}

// bestMember: the ready, unstalled member with the fewest pending messages whose client
// answers heartbeats; the chosen first member rotates to the end. When none qualifies it
// is the first member, as in the reference's findBestQueueSub (§8.4): a group whose every
// client missed a heartbeat still gets its messages. For a new message that member must
// still be able to take one: ready, neither stalled nor held back (sendGroup would send
// past max in flight). A redelivery (force) ignores max in flight, as the reference's
// forced send does: the first member takes it if ready (redeliver defers it if held).
func (s *Server) bestMember(g *queueGroup, force bool) *subState {
	best := -1
	for i, m := range g.members {
		if !m.ready || m.stalled() || m.held {
			continue
		}
		if c := s.clients[m.clientID]; c != nil && c.hbFails > 0 {
			continue
		}
		if best < 0 || m.pending.Len() < g.members[best].pending.Len() {
			best = i
		}
	}
	if best < 0 {
		if len(g.members) == 0 {
			return nil
		}
		if f := g.members[0]; !f.ready || (!force && (f.stalled() || f.held)) {
			return nil
		}
		best = 0
	}
	m := g.members[best]
	if best == 0 && len(g.members) > 1 {
		copy(g.members, g.members[1:])
		g.members[len(g.members)-1] = m
	}
	return m
}

// sendMsg publishes one stored message to sub, flagged redelivered when count > 0; a first
// delivery is recorded as pending with its ack deadline. It fails with the store's error
// when the message cannot be read: stores.ErrNotFound when it is gone (limits removed it),
// anything else when the store failed (then nothing changed: the caller tries again later).
func (s *Server) sendMsg(sub *subState, seq uint64, count uint32, first bool) error {
	now, mono := s.scratch.sendTime(s.replicated, &s.clock)
	if !s.leaseHeld(now) {
		return errNoLease
	}
	var ld *stores.Msg
	if b := s.scratch.batch; s.scratch.batchCh == sub.ch && len(b) > 0 && seq >= b[0].Seq && seq <= b[len(b)-1].Seq {
		// Just stored: send it from the batch at hand rather than read it back (a file
		// store's Load is a read system call per message). It is also the only copy of
		// a message that limits evicted at once.
		ld = &b[seq-b[0].Seq]
	} else {
		ld = &s.scratch.load
		if err := sub.ch.store.Msgs.Load(seq, ld); err != nil {
			if !errors.Is(err, stores.ErrNotFound) {
				s.deliveryFailed(sub, seq, err)
			}
			return err
		}
	}
	n := s.publishMsg(sub, seq, ld, count)
	s.scratch.stats.OutMsgs++
	s.scratch.stats.OutBytes += uint64(len(ld.Data))
	s.scratch.sentBytes += uint64(n)
	if first {
		at := mono + int64(sub.ackWait)
		sub.pending.Set(seq, pendingMsg{expiry: at, count: count})
		sub.expPush(expiry{seq: seq, at: at})
		s.recordEvent(sub, stores.SubEvent{SubID: sub.id, Seq: seq})
		s.armTimer(sub)
	}
	return nil
}

// errNoLease: this replica could not confirm that it still leads, so it sends nothing.
var errNoLease = errors.New("streaming: leadership not confirmed")

// leaseHeld reports whether the engine may send messages now: standalone always; replicated
// only under a lease on leadership (raftlog.Log.Lease), asked for once per engine iteration.
// A leader that was paused past its lease (SIGSTOP, a frozen VM) and resumes before it
// learns of its successor must not send what the successor may have sent already (flagged
// redelivered) as first deliveries (TestFormerLeaderDeliversNothing). Sends refused while
// the engine still leads are retried shortly (opRetrySends).
func (s *Server) leaseHeld(now time.Time) bool {
	if !s.replicated {
		return true
	}
	if !s.leaseAsked {
		s.leaseAsked = true
		until, err := s.rlog.Lease(context.Background()) // bounded by the log: no allocation here
		if err != nil {
			s.log.Debug("not sending: leadership not confirmed", "err", err)
		}
		s.leaseUntil = until // zero on an error
	}
	if now.Before(s.leaseUntil) {
		return true
	}
	// Taking over, the engine does not lead yet but the log does: the takeover's sends
	// (deliverAll) are retried too.
	if (s.leader || s.rlog.IsLeader()) && s.retryTimer == nil {
		s.retryTimer = time.AfterFunc(retrySendsAfter, func() { s.push(op{kind: opRetrySends}) })
	}
	return false
}

// processRetrySends sends what leaseHeld refused: every channel's new messages (pending
// ones come back with their ack deadlines).
func (s *Server) processRetrySends() {
	s.retryTimer = nil
	if s.leader {
		s.deliverAll()
	}
}

// retrySendsAfter is how soon sends refused for want of a lease, or redeliveries held back
// by a backlogged destination, are tried again.
const retrySendsAfter = 50 * time.Millisecond

// A destination that has not read what it was sent holds deliveries back: its subscriptions'
// messages stay in their channel instead of piling up in core's output buffer for it, which
// past max_pending would cut the subscriber off as a slow consumer. A replay of large
// messages with stan.go's default MaxInflight (1,024 × up to 1 MiB) did exactly that
// (TestReplayOfLargeMessagesKeepsTheSubscriber).
const (
	heldRetry    = 5 * time.Millisecond // how soon held-back first deliveries are tried again
	backlogBytes = 256 << 10            // the engine's sends between two looks at one destination
)

// heldBack reports whether sub's destination is backlogged; if so sub's first deliveries
// wait, and processRetryHeld tries again heldRetry later. It looks (a subject match and a
// lock in core) once per backlogBytes the engine sends, so no destination gets more than
// that past its stall mark between two looks.
func (s *Server) heldBack(sub *subState) bool {
	if sub.held {
		return true
	}
	if s.scratch.sentBytes < sub.lookAt {
		return false
	}
	sub.lookAt = s.scratch.sentBytes + backlogBytes
	s.flushRun() // what was sent counts toward the backlog
	if !s.bus.Backlogged(sub.inbox) {
		return false
	}
	sub.held = true
	s.held = append(s.held, sub)
	if s.heldTimer == nil {
		s.heldTimer = time.AfterFunc(heldRetry, func() { s.push(op{kind: opRetryHeld}) })
	}
	return true
}

// processRetryHeld resumes the deliveries heldBack stopped (each is held again if its
// destination has still not read enough).
func (s *Server) processRetryHeld() {
	s.heldTimer = nil
	subs := s.held
	s.held = nil
	for _, sub := range subs {
		sub.held, sub.lookAt = false, 0 // look again before its next send
	}
	if !s.leader {
		return
	}
	for _, sub := range subs {
		switch {
		case sub.gone || !sub.ready || sub.offline:
		case sub.group != nil:
			s.sendGroup(sub.group)
		default:
			s.sendAvailable(sub)
		}
	}
}

// redeliver resends a pending message, flagged, with a new deadline. Refused for want of a
// lease while the engine still leads, or held back by a backlogged destination, it is tried
// again retrySendsAfter later, not one ack wait later: nothing was sent.
func (s *Server) redeliver(sub *subState, seq uint64) {
	p, _ := sub.pending.Get(seq)
	now := time.Now()
	mono := s.clock.mono(now)
	// A former leader's sendMsg refuses, as before; a backlogged destination gets it later.
	s.flushRun() // none is open here; were one, it counts toward the backlog
	send := !s.leader || (s.leaseHeld(now) && !s.bus.Backlogged(sub.inbox))
	if send {
		p.count++
		p.expiry = mono + int64(sub.ackWait)
	} else {
		p.expiry = mono + int64(retrySendsAfter)
	}
	sub.pending.Set(seq, p)
	sub.expPush(expiry{seq: seq, at: p.expiry})
	if !send {
		s.armTimer(sub)
		return
	}
	if err := s.sendMsg(sub, seq, p.count, false); errors.Is(err, stores.ErrNotFound) {
		// Removed by limits in the meantime: as good as acknowledged. (Any other read
		// failure keeps it pending: the next deadline tries again.)
		sub.pending.Delete(seq)
		s.recordEvent(sub, stores.SubEvent{SubID: sub.id, Seq: seq, Acked: true})
		return
	}
	s.armTimer(sub)
}

// redeliverAll resends everything pending, in sequence order (durable resume, §7.4).
func (s *Server) redeliverAll(sub *subState) {
	seqs := make([]uint64, 0, sub.pending.Len())
	sub.pending.Range(func(seq uint64, _ pendingMsg) { seqs = append(seqs, seq) })
	sortSeqs(seqs)
	sub.expReset()
	for _, seq := range seqs {
		s.redeliver(sub, seq)
	}
}

func sortSeqs(a []uint64) { slices.Sort(a) }

// armTimer keeps one timer per subscription, set to its earliest ack deadline.
//
// A deadline further away than the ack wait was not set by this engine: it was restored
// from a message's timestamp, stamped by a clock ahead of this one (another leader's, or
// this node's before its clock stepped back while it was down). It is due one ack wait from
// now, not an hour later after a step of an hour.
func (s *Server) armTimer(sub *subState) {
	for sub.expLen() > 0 {
		e := sub.expFront()
		if p, ok := sub.pending.Get(e.seq); ok && p.expiry == e.at {
			break
		}
		sub.expPop() // acked or re-queued: drop lazily
	}
	if sub.expLen() == 0 {
		return
	}
	at := sub.expFront().at
	if sub.timer != nil && sub.timerAt != 0 && at >= sub.timerAt {
		return // already due no later than that
	}
	now := s.clock.monoNow()
	d := time.Duration(at - now)
	if d > sub.ackWait+redeliverSlack {
		d = sub.ackWait
		at = now + int64(d)
		sub.clampExpiries(at)
	}
	sub.timerAt = at
	if sub.timer == nil {
		sub.timer = time.AfterFunc(d, func() { s.push(op{kind: opRedeliver, sub: sub}) })
		return
	}
	sub.timer.Reset(d)
}

// stopTimer stops the ack-wait timer and forgets its deadline: a durable resumed on this
// state arms it again with its first send (armTimer skips a deadline an armed timer covers).
func (sub *subState) stopTimer() {
	if sub.timer != nil {
		sub.timer.Stop()
	}
	sub.timerAt = 0
}

// processRedeliver resends every message whose ack deadline has passed (§8.3).
func (s *Server) processRedeliver(sub *subState) {
	sub.timerAt = 0
	if !sub.ready || sub.offline {
		return
	}
	if c := s.clients[sub.clientID]; c != nil && c.hbFails > 0 && sub.group == nil {
		s.armLater(sub)
		return
	}
	// Nobody listens on the inbox (its subscriber died, or never subscribed): do not
	// redeliver into the void (audit finding 11). A queue member's expired messages go to a
	// member that listens, as the reference would move them; with none, or for a plain
	// subscription, look again one ack wait later.
	deaf := !s.bus.HasInterest(sub.inbox)
	var heir *subState
	if deaf && sub.group != nil {
		heir = s.listeningMember(sub.group, sub)
	}
	if deaf && heir == nil {
		if now := s.clock.monoNow(); sub.restoredDue != 0 && s.clients[sub.clientID] != nil && now < sub.restoredDue+int64(restoredGrace) {
			// Just restored: the client is likely reconnecting. Look again shortly, not
			// one ack wait later, or a restart delays by an ack wait what is due at once
			// (and a stall on messages that limits removed, which the first pass drops).
			s.armIn(sub, restoredLookAgain(time.Duration(now-sub.restoredDue), sub.ackWait))
			return
		}
		s.armLater(sub)
		return
	}
	due := s.clock.monoNow() + int64(redeliverSlack)
	wasStalled := sub.stalled()
	for sub.expLen() > 0 {
		e := sub.expFront()
		p, ok := sub.pending.Get(e.seq)
		if !ok || p.expiry != e.at {
			sub.expPop()
			continue
		}
		if e.at > due {
			break
		}
		sub.expPop()
		to := sub
		switch {
		case heir != nil:
			to = s.moveTo(sub, heir, e.seq, p)
		case sub.group != nil && e.at > sub.restoredDue:
			to = s.moveToBest(sub, e.seq, p)
		}
		s.redeliver(to, e.seq)
	}
	s.armTimer(sub)
	// A message that limits removed meanwhile was dropped as acknowledged (redeliver), or
	// a queue member's went to another member: a subscription that was stalled takes new
	// messages again now, as after an ack (reference: processAck), not at the next publish
	// or ack.
	if wasStalled && !sub.stalled() {
		s.resume(sub)
	}
}

// moveToBest hands a queue member's expired message to the group's best member at this
// moment, which may be another member (spec §8.3; reference: performAckExpirationRedelivery
// -> sendMsgToQueueGroup, then an implicit ack on the original), and returns the member to
// redeliver it to. The move is recorded, sent for the new owner and acked for the old one,
// so a restart or a follower has it pending on its new owner only; its redelivery count
// goes with it (the reference counts per group).
func (s *Server) moveToBest(from *subState, seq uint64, p pendingMsg) *subState {
	to := s.bestMember(from.group, true)
	if to == nil || to == from {
		return from
	}
	return s.moveTo(from, to, seq, p)
}

// moveTo hands a queue member's expired message to another member of its group, recorded
// as moveToBest says, and returns that member.
func (s *Server) moveTo(from, to *subState, seq uint64, p pendingMsg) *subState {
	from.pending.Delete(seq)
	to.pending.Set(seq, p)
	s.recordEvent(to, stores.SubEvent{SubID: to.id, Seq: seq})
	s.recordEvent(from, stores.SubEvent{SubID: from.id, Seq: seq, Acked: true})
	return to
}

// listeningMember returns the member of g other than not that should take a deaf
// member's expired messages: one whose inbox has a listener, preferring a ready member
// that is neither stalled, held nor missing heartbeats, with the fewest pending; nil if no
// other member listens.
func (s *Server) listeningMember(g *queueGroup, not *subState) *subState {
	var best *subState
	bestOK := false
	for _, m := range g.members {
		if m == not || !m.ready || !s.bus.HasInterest(m.inbox) {
			continue
		}
		ok := !m.stalled() && !m.held
		if c := s.clients[m.clientID]; c != nil && c.hbFails > 0 {
			ok = false
		}
		if best == nil || (ok && !bestOK) || (ok == bestOK && m.pending.Len() < best.pending.Len()) {
			best, bestOK = m, ok
		}
	}
	return best
}

// resume sends new messages to a subscription that is no longer stalled (to its group,
// for a queue member).
func (s *Server) resume(sub *subState) {
	if sub.group != nil {
		s.sendGroup(sub.group)
	} else {
		s.sendAvailable(sub)
	}
}

// armLater retries a redelivery pass one ack wait later.
func (s *Server) armLater(sub *subState) { s.armIn(sub, sub.ackWait) }

// armIn retries a redelivery pass d later.
func (s *Server) armIn(sub *subState, d time.Duration) {
	sub.timerAt = s.clock.monoNow() + int64(d)
	if sub.timer != nil {
		sub.timer.Reset(d)
	}
}

// After a restore (restart or takeover), a deaf subscription of a registered client is
// looked at again soon for restoredGrace, the time its client has to reconnect, before its
// redeliveries wait an ack wait.
const (
	restoredGrace = 10 * time.Second
	restoredRetry = 100 * time.Millisecond
)

// restoredLookAgain is when a deaf subscription restored since is looked at again: after
// half that time, from restoredRetry, at most an ack wait. A client back at t is served by
// 1.5 t; a server restored with many subscriptions makes a dozen passes each in the grace
// period, not a hundred.
func restoredLookAgain(since, ackWait time.Duration) time.Duration {
	return min(max(restoredRetry, since/2), max(ackWait, restoredRetry))
}

// processAck removes an acknowledged sequence from the subscription (or, for a queue
// member, from whichever member has it); a delivery the ack unstalled is resumed after the
// run of acks (flushResumes).
func (s *Server) processAck(o *op) {
	sub := s.byAckID[o.ack]
	if sub == nil {
		return
	}
	// Only the subscriber's own connection may acknowledge (binding.go): an ack inbox
	// seen elsewhere (monitoring lists them) is no licence to ack.
	if c := sub.owner; c == nil {
		s.refusedLog(&s.ackLog, "ack refused", "client_id", sub.clientID, "channel", sub.ch.name, "cause", "not from the subscriber's connection")
		return
	} else if o.from != c.nats {
		switch s.bind(c, o) {
		case bindHeld:
			return // kept: it runs if the liveness check binds the client to its connection
		case bindRefused:
			s.refusedLog(&s.ackLog, "ack refused", "client_id", sub.clientID, "channel", sub.ch.name, "cause", s.bindRefusal(c, o.from))
			return
		}
	}
	seq := o.seq
	owner := sub
	if !owner.pending.Has(seq) && sub.group != nil {
		owner = nil
		for _, m := range sub.group.members {
			if m.pending.Has(seq) {
				owner = m
				break
			}
		}
	}
	if owner == nil {
		return
	}
	wasStalled := owner.stalled()
	if !owner.pending.Delete(seq) {
		return
	}
	s.recordEvent(owner, stores.SubEvent{SubID: owner.id, Seq: seq, Acked: true})
	if wasStalled && !owner.resuming {
		owner.resuming = true
		s.resumes = append(s.resumes, owner)
	}
}

// flushResumes resumes the subscriptions that acks unstalled since the last call, in the
// order of those acks. processAck defers the resume to the end of its run of acks (process
// calls this before any other op it handles, endBatch at the end of the batch): a stalled
// subscriber's acks arrive by the hundred per read buffer, and resuming at each ack sent its
// messages one by one, each a sendAvailable of its own; now the run's freed slots go out
// together. Only acks ran meanwhile, and an ack only frees slots: each inbox still gets its
// messages in sequence order. Publishes of the same batch (flushPublishes, at endBatch) may
// reach an unstalled subscription first, through deliverNew, and the resume then finds
// nothing new; in a queue group, which member gets a freed slot's message may differ from
// resuming at each ack.
func (s *Server) flushResumes() {
	for i := 0; i < len(s.resumes); i++ { // a resume may not add any, but stay safe if it does
		sub := s.resumes[i]
		sub.resuming = false
		if !sub.gone {
			s.resume(sub)
		}
	}
	clear(s.resumes)
	s.resumes = s.resumes[:0]
}

// recordEvent batches sent/ack records per channel; flushSentAcks proposes them once per
// engine batch (and before every commit group).
func (s *Server) recordEvent(sub *subState, e stores.SubEvent) {
	ch := sub.ch
	if len(ch.events) == 0 {
		s.scratch.sentChans = append(s.scratch.sentChans, ch)
	}
	ch.events = append(ch.events, e)
}

// flushSentAcks proposes the waiting sent/ack records, one command per channel, as one
// proposal. Not waited for: the records go into the log before the next publish group,
// which therefore covers them, and a lost one only means a redelivery — but a visible one:
// a proposal still in flight is looked at once it resolves (pollSentAcks).
func (s *Server) flushSentAcks() {
	if !s.sentPending() {
		return
	}
	cs := s.appendSentAcks(s.scratch.sentCmds[:0])
	f := s.rlog.ProposeBatch(context.Background(), cs)
	select {
	case <-f.Done(): // standalone: applied already
		if _, err := f.Wait(); err != nil {
			s.sentAcksFailed(f, cs, err)
		}
	default: // replicated: in flight
		if len(cs) > 0 {
			p := ackProposal{f: f, channel: cs[0].Value.(*cmdSentAck).channel, channels: len(cs)}
			for _, c := range cs {
				p.records += len(c.Value.(*cmdSentAck).events)
			}
			s.acksInFlight = append(s.acksInFlight, p)
		}
	}
	clear(cs)
	s.scratch.sentCmds = cs[:0]
}

// ackProposal is a proposal of sent/ack records that was in flight when made: what its
// failure's log line says (its commands were engine scratch, gone since).
type ackProposal struct {
	f        raftlog.Future
	channel  string // its first channel
	channels int
	records  int // sent and ack records
}

// pollSentAcks logs the failures among the sent/ack proposals that resolved since the last
// call, oldest first, without waiting: it stops at the first still in flight (one resolved
// behind it waits for a later call). At most one line per call, and per deliveryLogEvery
// (sentAcksLost): a lost leadership fails every proposal in flight at once (engine, at the
// end of every iteration).
func (s *Server) pollSentAcks() {
	var (
		first, firstBad              error // the first failure; the first not a lost leadership
		channel                      string
		oneChannel                   = true // every failure was of one command, of channel
		i, failed, channels, records int
	)
	for ; i < len(s.acksInFlight); i++ {
		p := &s.acksInFlight[i]
		if !resolved(p.f) {
			break
		}
		if _, err := p.f.Wait(); err != nil {
			if first == nil {
				first, channel = err, p.channel
			}
			if firstBad == nil && !leadershipGone(err) {
				firstBad = err
			}
			oneChannel = oneChannel && p.channels == 1 && p.channel == channel
			failed++
			channels += p.channels
			records += p.records
		}
	}
	n := copy(s.acksInFlight, s.acksInFlight[i:])
	clear(s.acksInFlight[n:])
	s.acksInFlight = s.acksInFlight[:n]
	if failed == 0 {
		return
	}
	args := []any{"proposals", failed, "records", records, "channels", channels}
	if oneChannel {
		args = append(args, "channel", channel)
	}
	if firstBad != nil {
		first = firstBad
	}
	s.sentAcksLost(first, append(args, "err", first)...)
}

// sentAcksLost logs sent/ack records that were not recorded (their messages are then
// redelivered after their ack wait), at most once per deliveryLogEvery: at Info if err is
// a leadership lost, not held or ended by a shutdown, which every leadership change
// brings to the proposals then in flight; else at Error.
func (s *Server) sentAcksLost(err error, args ...any) {
	if leadershipGone(err) {
		s.rateLogged(&s.sentLostLog, slog.LevelInfo, "recording deliveries failed", "failures_since_last_report", args...)
		return
	}
	s.rateLogged(&s.sentFailLog, slog.LevelError, "recording deliveries failed", "failures_since_last_report", args...)
}

// leadershipGone reports whether a proposal failed because this node does not (or no
// longer) lead, or its log closed (a shutdown).
func leadershipGone(err error) bool {
	return errors.Is(err, raftlog.ErrNotLeader) || errors.Is(err, raftlog.ErrLeadershipLost) || errors.Is(err, raftlog.ErrClosed)
}

// resolved reports whether f is resolved, without waiting.
func resolved(f raftlog.Future) bool {
	select {
	case <-f.Done():
		return true
	default:
		return false
	}
}

// sentAcksFailed logs a proposal of sent/ack records that failed: the first channel whose
// command Apply refused, or the refusal of the whole proposal.
func (s *Server) sentAcksFailed(f raftlog.Future, cs []raftlog.Command, err error) {
	for i, c := range cs {
		if r, ok := f.ResultAt(i).(error); ok && r != nil {
			s.sentAcksLost(r, "channel", c.Value.(*cmdSentAck).channel, "err", r)
			return // one line: the rest of this proposal would be rate-limited anyway
		}
	}
	s.sentAcksLost(err, "err", err)
}

// appendSentAcks appends the waiting sent/ack events to cs, one command per channel,
// encoded when replicated; a publish group's entry carries them there (proposeGroup), as
// an entry of their own after every delivery would double the log's entries under load.
// The commands' values are engine scratch, valid until the next call: a log that applies
// values (Local) does so within the proposal.
func (s *Server) appendSentAcks(cs []raftlog.Command) []raftlog.Command {
	vals := s.scratch.sentVals[:0]
	for _, ch := range s.scratch.sentChans {
		if len(ch.events) > 0 && !ch.deleted {
			vals = append(vals, cmdSentAck{chanRef: refOf(ch), events: ch.events})
		}
		ch.events = ch.events[:0] // the array is rewritten only by later events
	}
	// Encoded into a buffer reused by the next call, as proposeGroup does: both callers
	// propose at once, and the log keeps nothing of the commands after ProposeBatch.
	enc := s.scratch.ackEnc[:0]
	for i := range vals {
		c := raftlog.Command{Value: &vals[i]}
		if s.replicated {
			from := len(enc)
			enc = appendSentAck(enc, &vals[i])
			c.Data = enc[from:len(enc):len(enc)]
		}
		cs = append(cs, c)
	}
	if cap(enc) <= maxScratchEnc {
		s.scratch.ackEnc = enc[:0]
	}
	s.scratch.sentVals = vals
	clear(s.scratch.sentChans)
	s.scratch.sentChans = s.scratch.sentChans[:0]
	return cs
}

// deliveryFailed logs a delivery that core refused (a message that no longer fits
// max_payload, an inbox core refuses): at most one line per deliveryLogEvery, with how
// many failed meanwhile, so a subscription stuck on such a message cannot flood the log.
func (s *Server) deliveryFailed(sub *subState, seq uint64, err error) {
	s.rateLogged(&s.failLog, slog.LevelWarn, "delivery failed", "failures_since_last_report",
		"channel", sub.ch.name, "client_id", sub.clientID, "seq", seq, "inbox", quote(sub.inbox), "err", err)
}

// refusedLog logs a refusal that has no reply to carry it (an ack, a heartbeat answer):
// one line naming the client and the cause, at most one per deliveryLogEvery per kind,
// with how many were refused meanwhile — a forger cannot flood the log.
func (s *Server) refusedLog(l *rateLog, msg string, args ...any) {
	s.rateLogged(l, slog.LevelInfo, msg, "refused_since_last_report", args...)
}

// rateLogged logs msg at level at most once per deliveryLogEvery, with how many times it
// was due meanwhile (under countKey).
func (s *Server) rateLogged(l *rateLog, level slog.Level, msg, countKey string, args ...any) {
	now := time.Now()
	l.n++
	if now.Sub(l.last) < deliveryLogEvery {
		return
	}
	s.log.Log(context.Background(), level, msg, append(args, countKey, l.n)...)
	l.last, l.n = now, 0
}

// deliveryLogEvery is the shortest interval between two "delivery failed" lines.
const deliveryLogEvery = 10 * time.Second

// rateLog is the state of a rate-limited log line (engine-owned).
type rateLog struct {
	last time.Time
	n    int
}

// sentPending reports whether sent/ack events wait for flushSentAcks.
func (s *Server) sentPending() bool { return len(s.scratch.sentChans) > 0 }
