package streaming

import (
	"context"
	"log/slog"
	"time"

	"github.com/starling-io/starling/raftlog"
	"github.com/starling-io/starling/stores"
)

// Age and inactivity limits run on timers: one per channel at most for each, set to the
// next due time — never a ticker, never a timer per message.

// limitRetryWait is how long an expiry or an inactive channel's deletion whose proposal
// failed (no majority, a full disk) waits before it is tried again.
const limitRetryWait = time.Second

// armAge schedules the next age expiry of a channel with MaxAge.
func (s *Server) armAge(ch *channel, at int64) {
	if ch.limits.MaxAge > 0 {
		s.armExpire(ch, at)
	}
}

// armExpire schedules an expiry pass of ch (opExpire) at at, its clock's time, on its age
// timer: the next age expiry, or the retry of a pass whose proposal failed — with or
// without MaxAge, as the trim at start of a channel over MaxMsgs or MaxBytes is such a
// pass (restore).
func (s *Server) armExpire(ch *channel, at int64) {
	if at <= 0 || (ch.ageTimer != nil && ch.ageAt != 0 && ch.ageAt <= at) {
		return
	}
	ch.ageAt = at
	d := time.Duration(at - s.clock.chanNow(&ch.clock))
	if ch.ageTimer == nil {
		ch.ageTimer = time.AfterFunc(d, func() { s.push(op{kind: opExpire, ch: ch}) })
		return
	}
	ch.ageTimer.Reset(d)
}

// processExpire removes the messages that reached MaxAge and re-arms for the next one.
func (s *Server) processExpire(ch *channel) {
	ch.ageAt = 0
	if ch.deleted {
		return
	}
	last := ch.assigned
	s.proposeThen(&cmdExpire{chanRef: refOf(ch), now: s.clock.chanNow(&ch.clock), last: last}, func(v any, err error) {
		s.expired(ch, last, v, err)
	})
}

// expired handles the outcome of an expiry pass of ch proposed with last (its view of the
// channel's last sequence then): it re-arms the age timer for the next message to expire,
// or for a retry if the pass failed or was skipped.
func (s *Server) expired(ch *channel, last uint64, v any, err error) {
	if err != nil {
		s.log.Error("expiring messages failed", "channel", ch.name, "err", err)
		if !ch.deleted { // else nothing but the next publish would try again
			s.armExpire(ch, s.clock.chanNow(&ch.clock)+int64(limitRetryWait))
		}
		return
	}
	r, _ := v.(expireResult)
	if r.skipped {
		if !ch.deleted {
			s.viewBehind(ch, last)
			s.armExpire(ch, s.afterSkip(ch))
		}
		return
	}
	if r.removed > 0 {
		s.log.Debug("expired messages", "channel", ch.name, "removed", r.removed)
	}
	if !ch.deleted {
		s.armAge(ch, r.next)
	}
}

// viewBehind handles a pass of ch that Apply skipped (fsm.go) although this engine
// proposed it: the store holds a message past the pass's last sequence, so the engine's
// view of the channel (ch.assigned) is behind its store — a publish whose proposal failed
// (a timeout) but that was applied after heal had set the view from the store. Every later
// pass would be skipped likewise, and MaxAge (or a lowered MaxMsgs or MaxBytes) never
// enforced, until the channel's next publish failed and healed it. The view is set from the
// store as heal sets it, at once if nothing of the channel can be in flight (no proposal
// since the pass, no commit group in flight); else the channel is marked broken and heal,
// which first waits for what is in flight, does it.
func (s *Server) viewBehind(ch *channel, last uint64) {
	storeLast := ch.store.Msgs.State().Last
	s.rateLogged(&s.viewLog, slog.LevelWarn, "channel view behind its store: an expiry pass was skipped; resyncing the view from the store",
		"skipped_since_last_report", "channel", ch.name, "view_last", last, "store_last", storeLast)
	switch {
	case ch.broken: // heal runs already
	case ch.assigned == last && s.commit.groups == 0 && s.replicated:
		s.heal(ch) // replicated, heal only sets the view from the store (never fails)
	default:
		// Standalone, heal also rolls the store back to what is durable: nothing else may.
		s.markBroken(ch)
	}
}

// afterSkip is when to run again a pass of ch that was skipped (0: no pass due): when its
// oldest message reaches MaxAge, or — a channel over MaxMsgs or MaxBytes, or a message it
// cannot read — now; never sooner than limitRetryWait, so that a pass skipped again (its
// view not yet resynced: heal waits for what is in flight) cannot spin the engine.
func (s *Server) afterSkip(ch *channel) int64 {
	st := ch.store.Msgs.State()
	if st.Msgs == 0 {
		return 0
	}
	soonest := s.clock.chanNow(&ch.clock) + int64(limitRetryWait)
	if ch.limits.Exceeded(st.Msgs, st.Bytes) {
		return soonest
	}
	if ch.limits.MaxAge <= 0 {
		return 0
	}
	var first stores.Msg
	if err := ch.store.Msgs.Load(st.First, &first); err != nil {
		return soonest
	}
	return max(ch.limits.ExpiresAt(first.Time), soonest)
}

// dueAtStart reports whether a channel as restored holds what its limits drop: messages
// that reached MaxAge while no server ran its age timer (stopped, or no leader), or more
// than MaxMsgs or MaxBytes allow (limits lowered meanwhile, a store imported from nss).
// If not, it arms the age timer for its oldest message.
func (s *Server) dueAtStart(ch *channel, state stores.ChannelState) bool {
	if state.Msgs == 0 {
		return false
	}
	if ch.limits.Exceeded(state.Msgs, state.Bytes) {
		return true
	}
	if ch.limits.MaxAge <= 0 {
		return false
	}
	var first stores.Msg
	if err := ch.store.Msgs.Load(state.First, &first); err != nil {
		return true // Expire finds out what is due
	}
	if ch.limits.Expired(first.Time, s.clock.chanNow(&ch.clock)) {
		return true
	}
	s.armAge(ch, ch.limits.ExpiresAt(first.Time))
	return false
}

// expireNow runs the expiry of chans (dueAtStart) as one proposal and waits for it
// (restore): the first deliveries of a start or a takeover (deliverAll) run before the
// engine handles any op, so an expiry left to the age timer came after them, and
// subscribers whose client was still connected (through another node, or an external NATS
// server) were sent messages older than MaxAge.
func (s *Server) expireNow(chans []*channel) {
	if len(chans) == 0 {
		return
	}
	cs := make([]raftlog.Command, 0, len(chans))
	var err error
	for _, ch := range chans {
		var c raftlog.Command
		if c, err = s.command(&cmdExpire{chanRef: refOf(ch), now: s.clock.chanNow(&ch.clock), last: ch.assigned}); err != nil {
			break
		}
		cs = append(cs, c)
	}
	var f raftlog.Future
	if err == nil {
		// Bounded as a takeover's barrier is: a log that cannot commit must not hold the
		// engine (each channel's expiry is then tried again limitRetryWait later).
		ctx, cancel := context.WithTimeout(context.Background(), barrierTimeout)
		f = s.rlog.ProposeBatch(ctx, cs)
		_, err = f.Wait()
		cancel()
	}
	for i, ch := range chans {
		var v any
		if err == nil {
			v = f.ResultAt(i)
		}
		if r, ok := v.(error); ok && r != nil {
			s.expired(ch, ch.assigned, nil, r)
			continue
		}
		s.expired(ch, ch.assigned, v, err)
	}
}

// touch records activity on a channel with MaxInactivity and (re)arms its timer.
func (s *Server) touch(ch *channel) {
	if ch.limits.MaxInactivity <= 0 {
		return
	}
	ch.active = s.clock.monoNow()
	if ch.idleTimer == nil {
		ch.idleTimer = time.AfterFunc(ch.limits.MaxInactivity, func() { s.push(op{kind: opIdle, ch: ch}) })
		return
	}
	ch.idleTimer.Reset(ch.limits.MaxInactivity)
}

// processIdle deletes a channel that had no new message and no active subscription for
// MaxInactivity (offline durables do not count; they go with it). Its last sequence is
// remembered by the store, so a channel created again with the name continues after it.
// The engine waits for the deletion: no request sees the channel half deleted, so the
// reference's "stan: channel is being deleted" is never an answer here. The idle ops right
// behind this one in the batch (timers that fired together) are handled with it: one
// proposal, one commit of the store.
func (s *Server) processIdle(ch *channel) {
	if ch == nil || !s.idle(ch, true) { // nil: handled with an op before it (below)
		return
	}
	chans := []*channel{ch}
	for i := range s.ahead {
		o := &s.ahead[i]
		if o.kind != opIdle {
			break // an op in between may make its channel active: it is handled in turn
		}
		if o.ch == nil {
			continue
		}
		switch {
		case containsChan(chans, o.ch):
		case s.idle(o.ch, false):
			chans = append(chans, o.ch)
		default:
			continue // not idle: its own op re-arms it
		}
		// Handled here, deleted or re-armed for a retry: its own op would propose again at
		// once, skipping the retry wait after a failure.
		o.ch = nil
	}
	cmds := make([]raftlog.Command, 0, len(chans))
	for _, ch := range chans {
		c, err := s.command(&cmdDeleteChannel{refOf(ch)})
		if err != nil { // a bug
			s.log.Error("deleting inactive channel failed", "channel", ch.name, "err", err)
			return
		}
		cmds = append(cmds, c)
	}
	f := s.rlog.ProposeBatch(context.Background(), cmds)
	index, refusal := f.Wait()
	for i, ch := range chans {
		err := refusal
		if index != 0 {
			err, _ = f.ResultAt(i).(error)
		}
		if err != nil {
			s.log.Error("deleting inactive channel failed", "channel", ch.name, "err", err)
			s.touchAfter(ch, limitRetryWait) // else only new activity would arm the timer again
			continue
		}
		s.dropChannelView(ch)
		s.log.Debug("deleted inactive channel", "channel", ch.name)
	}
}

// idle reports whether ch is to be deleted now; if it is not and rearm is set, its timer is
// armed again for when it may be.
func (s *Server) idle(ch *channel, rearm bool) bool {
	if ch.deleted {
		return false
	}
	idle := time.Duration(s.clock.monoNow() - ch.active)
	// Publishes in flight count as activity: replicated, a publish touches its channel only
	// once committed, and a deletion proposed behind it would drop the acknowledged message.
	if idle < ch.limits.MaxInactivity || s.activeSubs(ch) || ch.assigned > ch.synced {
		if rearm {
			s.touchAfter(ch, ch.limits.MaxInactivity-idle)
		}
		return false
	}
	return true
}

func (s *Server) touchAfter(ch *channel, d time.Duration) {
	if d <= 0 {
		d = ch.limits.MaxInactivity
	}
	ch.idleTimer.Reset(d)
}

func (s *Server) activeSubs(ch *channel) bool {
	if len(ch.subs) > 0 {
		return true
	}
	for _, g := range ch.queues {
		if len(g.members) > 0 {
			return true
		}
	}
	return false
}

// dropChannelView is the engine's side of a deleted channel.
func (s *Server) dropChannelView(ch *channel) {
	ch.deleted = true
	for _, d := range ch.durables {
		delete(s.byAck, d.ackInbox)
		delete(s.byAckID, d.ack)
	}
	for _, g := range ch.queues {
		if g.shadow != nil {
			delete(s.byAck, g.shadow.ackInbox)
			delete(s.byAckID, g.shadow.ack)
		}
	}
	if ch.ageTimer != nil {
		ch.ageTimer.Stop()
	}
	if ch.healTimer != nil {
		ch.healTimer.Stop()
	}
	delete(s.channels, ch.name)
	delete(s.lowerNames, lowerName(ch.name))
	clear(s.createFailed) // a creation refused for MaxChannels may succeed now
}
