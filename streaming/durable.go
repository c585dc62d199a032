package streaming

import (
	"errors"
	"log/slog"
	"time"

	"github.com/starling-io/starling/stores"
)

// Nothing acknowledged is ever lost: a reply that confirms a state change — a connect,
// subscribe (created or resumed), unsubscribe, subscription close or close response —
// is sent only once the records of that change are as durable as a PubAck makes
// messages (audit finding 1). The records ride the group commit of messages rather than
// paying an fsync each:
//
//   - Apply marks what changed: the SubStore of a channel (subscriptions and their
//     sent/ack records) or the Store's client records.
//   - The reply is deferred with proposeReply (inflight.go).
//   - Whenever the engine hands a commit group to the committer (publishes of the
//     batch), and at the end of every engine batch, it records the sent/ack events of
//     the batch, Flushes every marked store into the group and attaches the deferred
//     replies to it; the committer's SyncFlushed of those stores is the group commit, in
//     the same pass as the messages' fsyncs. Replies are sent when the group completes.
//
// So sent and ack records are durable no later than the group commit that follows the
// delivery or ack, and every PubAck or reply also covers the acks received before it.
// Stores that do not split their Sync (memory) are synced at the end of the batch, then
// the replies go.

// metaPending reports whether anything waits for a metadata commit.
func (s *Server) metaPending() bool {
	return len(s.waiting) > 0 || s.sm.dirty() || s.sentPending()
}

// commitMeta commits the metadata changed in this batch and releases the replies waiting
// for it: pipelined, as a commit group of its own; otherwise synchronously (engine, at
// the end of a batch).
func (s *Server) commitMeta() {
	if !s.metaPending() {
		s.disarmMeta()
		return
	}
	if len(s.waiting) == 0 && time.Now().Before(s.metaRetryAt) {
		return // metaFailed armed the timer for the retry
	}
	if s.splitMeta && s.started && len(s.waiting) == 0 && !s.metaDue() {
		return
	}
	s.disarmMeta()
	g := s.commit.group()
	s.flushMetaInto(g)
	s.finish(g)
}

// metaDue reports whether records that no reply waits for (sent and ack events, an
// expired client) need a commit group of their own now. They ride the next group of
// publishes if one comes: while groups are in flight, and for metaDelay after the last
// completed, whichever is later; then a group of their own commits them. Under a steady
// load of publishes that costs nothing, where a commit pass of their own after every
// delivery would add a write and an fsync to each pass of messages.
func (s *Server) metaDue() bool {
	if s.commit.groups > 0 {
		s.metaAt = time.Time{} // counted again once nothing is in flight
		return false
	}
	if s.metaAt.IsZero() {
		s.armMeta(metaDelay)
		return false
	}
	return s.metaFired || !time.Now().Before(s.metaAt)
}

// armMeta sets the metadata timer to wake the engine in d. The engine's wake-up on it
// (metaFired) makes the records due whatever the clocks say: a deadline read after the
// timer was set can lie a little past the moment it fires, and a commit then found not yet
// due would have waited for the next unrelated wake-up (a test saw it wait 10 s).
func (s *Server) armMeta(d time.Duration) {
	s.metaAt = time.Now().Add(d)
	if s.metaTimer == nil {
		s.metaTimer = time.NewTimer(d)
	} else {
		s.metaTimer.Reset(d)
	}
	s.metaC, s.metaFired = s.metaTimer.C, false
}

// disarmMeta forgets the metadata deadline: nothing waits for it, or it is being committed.
// The timer is left to fire; a wake-up for nothing costs one empty iteration.
func (s *Server) disarmMeta() {
	s.metaC, s.metaAt, s.metaFired = nil, time.Time{}, false
}

// metaDelay is how long records with no reply waiting may wait for a group of publishes
// to carry them once nothing is in flight: the bound of the ack loss window beyond one
// group commit (README).
const metaDelay = time.Millisecond

// syncMetaAndReply commits the changed metadata synchronously and sends the replies
// waiting for it (at stop, once the committer is closed).
func (s *Server) syncMetaAndReply() {
	for range 4 { // a reply's follow-up may change metadata again; bounded, never a loop
		if !s.metaPending() {
			return
		}
		g := s.commit.group()
		s.flushMetaInto(g)
		s.finish(g)
	}
}

// flushMetaInto records the batch's sent/ack events, flushes every changed SubStore and
// the client records, and hands them and the waiting replies to commit group g.
func (s *Server) flushMetaInto(g *commitGroup) {
	s.flushSentAcks()
	dirty, clients := s.sm.takeDirty(s.scratch.dirty[:0])
	for _, st := range dirty {
		if sp, ok := st.Subs.(stores.SplitSyncer); ok {
			g.addSyncer(st, s.syncerOf(sp), sp.Flush())
		} else {
			g.addSyncer(st, nil, st.Subs.Sync())
		}
	}
	clear(dirty)
	s.scratch.dirty = dirty[:0]
	if clients {
		if sp, ok := s.store.(stores.SplitSyncer); ok {
			g.addSyncer(nil, s.syncerOf(sp), sp.Flush())
		} else {
			g.addSyncer(nil, nil, s.store.Sync())
		}
	}
	s.takeWaiting(g)
}

// takeWaiting hands what waits for a commit to group g.
func (s *Server) takeWaiting(g *commitGroup) {
	g.after = append(g.after, s.waiting...)
	clear(s.waiting)
	s.waiting = s.waiting[:0]
}

// syncerOf is what the committer fsyncs after a flush of sp: sp standalone; nothing
// replicated, where the records are in the raft log already (the write-ahead log, fsynced
// by its commit) and the stores are synced at snapshots — an fsync per group on the leader
// alone was redundant work on the hot path.
func (s *Server) syncerOf(sp stores.SplitSyncer) stores.SplitSyncer {
	if s.replicated {
		return nil
	}
	return sp
}

// metaFailed handles a group whose metadata commit failed: the stores that failed are
// flushed again later — a store that failed writes its whole state at its next Flush —
// but not at once, so a full disk does not spin the engine.
func (s *Server) metaFailed(g *commitGroup) {
	s.log.Error("storing subscriptions or clients failed", "err", g.metaErr())
	for i := range g.syncers {
		cs := &g.syncers[i]
		if cs.err == nil {
			continue
		}
		s.sm.remark(cs.ch)
	}
	s.metaRetryAt = time.Now().Add(metaRetryWait)
	// Nothing else may wake the engine for the retry. The group may have failed inside
	// commitMeta itself (a Flush that failed completes it at once), after the timer was
	// disarmed, so the timer is armed here.
	s.armMeta(metaRetryWait)
}

// metaRetryWait is how long a failed metadata commit waits before it is tried again
// unless a reply needs it sooner.
const metaRetryWait = 100 * time.Millisecond

// syncMeta syncs, synchronously, everything changed since the last commit.
func (s *Server) syncMeta() error {
	s.flushSentAcks()
	var errs []error
	dirty, clients := s.sm.takeDirty(nil)
	for _, st := range dirty {
		errs = append(errs, st.Subs.Sync())
	}
	if clients {
		errs = append(errs, s.store.Sync())
	}
	return errors.Join(errs...)
}

// markBroken notes that ch's store failed: its next publish heals it first, and so does a
// timer meanwhile. A failed file store refuses reads until it rolls back, so a channel no
// one publishes to delivered nothing (and expired nothing) until a restart.
func (s *Server) markBroken(ch *channel) {
	ch.broken = true
	if ch.healTimer == nil {
		ch.healTimer = time.AfterFunc(limitRetryWait, func() { s.push(op{kind: opHeal, ch: ch}) })
		return
	}
	ch.healTimer.Reset(limitRetryWait)
}

// processHeal heals a channel still broken when its timer fires, then sends its
// subscribers what they missed and runs its age expiry; or tries again later.
func (s *Server) processHeal(ch *channel) {
	if ch.deleted || !ch.broken {
		return
	}
	if !s.heal(ch) {
		s.markBroken(ch)
		return
	}
	s.deliverNew(ch)
	if ch.limits.MaxAge > 0 {
		s.armAge(ch, s.clock.chanNow(&ch.clock)) // the pass re-arms for the next message due
	}
}

// heal makes a channel whose store failed (a full disk, say) usable again: once nothing
// is in flight, the store rolls back to what is durable and appends continue from there
// (audit finding 8). It reports false, the channel still broken, if the store cannot yet.
func (s *Server) heal(ch *channel) bool {
	s.waitCommits(0) // Rollback needs no SyncFlushed in flight
	if s.replicated {
		// The log is the write-ahead log and the store is synced at snapshots only: a
		// rollback to its last sync would drop committed messages. What failed is a
		// proposal the log refused; the proposer continues from what was applied.
		ch.broken = false
		ch.assigned = ch.store.Msgs.State().Last
		ch.synced = min(ch.synced, ch.assigned)
		return true
	}
	if err := ch.store.Msgs.Rollback(); err != nil {
		// Tried every second per broken channel (markBroken): one line per
		// deliveryLogEvery, whatever the number of channels a full disk broke.
		s.rateLogged(&s.healLog, slog.LevelWarn, "channel store still failing", "failures_since_last_report", "channel", ch.name, "err", err)
		return false
	}
	ch.broken = false
	ch.synced = min(ch.synced, ch.store.Msgs.State().Last)
	ch.assigned = ch.store.Msgs.State().Last
	s.log.Info("channel store recovered after a failure", "channel", ch.name, "last", ch.store.Msgs.State().Last)
	return true
}
