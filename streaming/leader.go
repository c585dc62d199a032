package streaming

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/starling-io/starling/raftlog"
	"github.com/starling-io/starling/stores"
)

// Only the leader serves: it subscribes to the protocol subjects, heartbeats clients,
// delivers and answers. Its engine holds a view of the state machine (clients, channels,
// subscriptions with their pending messages and deadlines); a follower's engine holds
// none. On gaining leadership the engine waits until every committed command is applied,
// then builds its view from the state machine as a restart does from the store (takeOver);
// on losing it, it drops the view and stops serving (stepDown).

// barrierTimeout bounds how long a new leader waits for the commands committed before it.
const barrierTimeout = 10 * time.Second

// serve subscribes to the protocol subjects (on) or unsubscribes from them. Serving means
// reachable: over a bus whose subscriptions reach their server asynchronously (natsbus), it
// returns once that server confirmed them — a client that connects once Start returned must
// not find nobody on the discover subject. The round trip is made without mu held.
func (s *Server) serve(on bool) error {
	subscribed, err := s.subscribeAll(on)
	if fs, ok := s.bus.(subscriptionFlusher); ok && subscribed && err == nil {
		if err := fs.FlushSubscriptions(); err != nil {
			s.log.Warn("the NATS server did not confirm the streaming subscriptions", "err", err)
		}
	}
	return err
}

// subscribeAll is serve's part under mu; it reports whether it subscribed.
func (s *Server) subscribeAll(on bool) (bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !on {
		s.unsubscribeAll()
		return false, nil
	}
	if s.closed || len(s.subs) > 0 {
		return false, nil
	}
	handlers := []struct {
		subject string
		kind    opKind
	}{
		{s.discover, opConnect}, {s.pings, opPing}, {s.pubPrefix + ".>", opPublish},
		{s.subReq, opSubscribe}, {s.unsubReq, opUnsubscribe}, {s.subCloseReq, opSubClose},
		{s.closeReq, opClose}, {s.ackPrefix + ".*", opAck}, {s.hbPrefix + ".*", opHbReply},
		{s.checkPrefix + ".*", opCheckReply},
	}
	for subject := range s.otherAckPrefixes {
		handlers = append(handlers, struct {
			subject string
			kind    opKind
		}{subject, opAck})
	}
	for _, h := range handlers {
		var sub Subscription
		var err error
		if s.batchBus != nil {
			sub, err = s.batchBus.SubscribeBatch(h.subject, "", s.handler(h.kind), s.endOfBuffer)
		} else {
			sub, err = s.bus.Subscribe(h.subject, "", s.handler(h.kind))
		}
		if err != nil {
			s.unsubscribeAll()
			return false, fmt.Errorf("streaming: subscribe %s: %w", h.subject, err)
		}
		s.subs = append(s.subs, sub)
	}
	return true, nil
}

// subscriptionFlusher is a bus whose subscriptions reach the server that routes them
// asynchronously (natsbus: a client connection): FlushSubscriptions returns once it has
// them.
type subscriptionFlusher interface {
	FlushSubscriptions() error
}

// unsubscribeAll removes the protocol subscriptions. Caller holds mu.
func (s *Server) unsubscribeAll() {
	for _, sub := range s.subs {
		if sub != nil {
			_ = sub.Unsubscribe()
		}
	}
	s.subs = nil
}

// takeOver makes a new leader's engine ready to serve (engine).
func (s *Server) takeOver() error {
	ctx, cancel := context.WithTimeout(context.Background(), barrierTimeout)
	defer cancel()
	if t, ok := s.rlog.(termer); ok {
		s.leaderTerm = t.Term() // read before the barrier: a later term is a later leadership
	}
	if err := s.rlog.Barrier(ctx); err != nil {
		return fmt.Errorf("waiting for the committed commands: %w", err)
	}
	if s.replicated {
		if err := s.shareLimits(ctx); err != nil {
			return err
		}
	}
	st, err := s.sm.current()
	if err != nil {
		return err
	}
	s.dropView()
	// Sent records replicate lazily (they ride the next commit): any message past a
	// subscription's replicated position may have been sent by the old leader, so it is
	// flagged redelivered when first sent, as after a crash.
	st.Clean = false
	if err := s.restore(st); err != nil {
		return err
	}
	if err := s.serve(true); err != nil {
		return err
	}
	s.leaseAsked = false // ask again: whatever was asked in this iteration was asked as a follower
	s.deliverAll()
	return nil
}

// takeOverAttempts is how many takeovers in a row, in one term, a leader tries before it
// gives leadership up. A transient failure (a barrier that timed out behind a long apply, a
// store hiccup) gets two more tries, a second apart; one that persists — a store that cannot
// restore, snapshot data that cannot be fetched, a disk that refuses writes raft does not
// make — would otherwise keep the group's leadership on a node that serves nobody while the
// others could serve. Counted in attempts, not time: one attempt can wait a whole
// barrierTimeout, and a time bound would cut off the first of them.
const takeOverAttempts = 3

// takeOverFailure is a takeover that keeps failing, for monitoring (Health, Serverz).
type takeOverFailure struct {
	attempts int
	err      error
}

// giveUpTimeout bounds giveUpLeadership's hand-off: a transfer to each other voter in turn
// until one takes it, each of which raft bounds by its election timeout. Nothing waits
// for it but Shutdown, which ends it first.
const giveUpTimeout = 10 * time.Second

// handOffer is a log that hands leadership to the voter after it in turn
// (raftlog.Node.HandOff), where TransferLeadership lets raft choose.
type handOffer interface {
	HandOff(ctx context.Context) error
}

// takeOverFailed handles a failed takeover (engine): while the log still leads it tries
// again after takeOverRetry, and after takeOverAttempts failures in a row it hands
// leadership to another node (giveUpLeadership). A takeover that failed because the log
// no longer leads is nobody's fault here: the next leader takes over.
func (s *Server) takeOverFailed(err error) {
	if errors.Is(err, raftlog.ErrNotLeader) || errors.Is(err, raftlog.ErrLeadershipLost) || !s.rlog.IsLeader() {
		s.log.Warn("streaming takeover abandoned: raft leadership lost", "err", err)
		s.clearTakeOverFailures()
		s.retryTakeOver() // in case it was regained meanwhile, unreported
		return
	}
	if s.failTerm != s.leaderTerm { // a new term: its leadership starts counting afresh
		s.takeOverFails, s.failTerm = 0, s.leaderTerm
	}
	s.takeOverFails++
	s.takeOverErr.Store(&takeOverFailure{attempts: s.takeOverFails, err: err})
	if s.takeOverFails < takeOverAttempts || !s.replicated {
		s.log.Error("cannot take over as streaming leader", "err", err, "attempt", s.takeOverFails, "retry_in", takeOverRetry)
		s.retryTakeOver()
		return
	}
	s.log.Error("cannot take over as streaming leader: giving raft leadership up so that another node serves",
		"err", err, "attempts", s.takeOverFails)
	s.takeOverFails = 0 // should it still lead after the hand-off, it tries as many times again
	s.giveUps.Add(1)
	go func(term uint64) {
		defer s.giveUps.Done()
		s.giveUpLeadership(term)
	}(s.leaderTerm)
}

// retryTakeOver makes the engine take over again after takeOverRetry if the log leads then.
// Shutdown ends the wait (giveUpCtx) and waits for a retry under way (giveUps), as for a
// hand-off: before, the timer outlived Shutdown, holding the server for up to takeOverRetry
// and queueing an op for an engine that had stopped. It is called on the engine (before
// Shutdown waits for giveUps) or from a hand-off giveUps counts, so its Add comes before
// that Wait.
func (s *Server) retryTakeOver() {
	if s.giveUpCtx.Err() != nil {
		return // shutting down
	}
	s.giveUps.Add(1)
	var mu sync.Mutex // orders the timer's assignment before both callbacks read it
	var t *time.Timer
	mu.Lock()
	defer mu.Unlock()
	unhook := context.AfterFunc(s.giveUpCtx, func() {
		mu.Lock()
		defer mu.Unlock()
		if t.Stop() { // the retry will not run: it is done
			s.giveUps.Done()
		}
	})
	t = time.AfterFunc(takeOverRetry, func() {
		defer s.giveUps.Done()
		mu.Lock()
		unhook()
		mu.Unlock()
		if s.giveUpCtx.Err() == nil && s.rlog.IsLeader() {
			s.push(op{kind: opLeadership, leader: true})
		}
	})
}

// clearTakeOverFailures forgets failed takeovers: one succeeded, or the log no longer leads.
func (s *Server) clearTakeOverFailures() {
	s.takeOverFails = 0
	s.takeOverErr.Store(nil)
}

// giveUpLeadership hands the log's leadership of term to another node, off the engine: a
// transfer waits for raft. Each node that cannot take over gives up in turn (HandOff goes
// round the voters), so one that can is reached; if none can, leadership goes round the
// group, each node holding it for its takeOverAttempts, and nobody serves, as before, until
// one can. Should this node still lead afterwards (a group of one, a transfer that failed),
// it tries to take over again. Shutdown ends it (giveUpCtx) and waits for it (giveUps).
func (s *Server) giveUpLeadership(term uint64) {
	if s.giveUpCtx.Err() != nil {
		return // shutting down
	}
	ctx, cancel := context.WithTimeout(s.giveUpCtx, giveUpTimeout)
	defer cancel()
	if t, ok := s.rlog.(termer); s.rlog.IsLeader() && (!ok || t.Term() == term) {
		var err error
		if h, ok := s.rlog.(handOffer); ok {
			err = h.HandOff(ctx)
		} else {
			err = s.rlog.TransferLeadership(ctx)
		}
		if s.giveUpCtx.Err() != nil {
			return // shutting down: the server hands its leadership over itself (HandOver)
		}
		if err != nil {
			s.log.Error("streaming leadership not given up: the transfer failed; taking over again", "err", err)
		}
	}
	s.retryTakeOver()
}

// stepDown stops serving and drops the engine's view (engine).
func (s *Server) stepDown() {
	_ = s.serve(false)
	s.dropView()
}

// dropView forgets the engine's view of the state: every timer stopped, every object
// inert for ops still queued that name it. The state machine keeps the state itself.
func (s *Server) dropView() {
	// Replies this batch attached to no group yet (a subscribe answered in the batch that
	// steps down) go with one now: cleared below, their clients would wait in vain for
	// commands that may well have been committed.
	if len(s.waiting) > 0 {
		s.commitMeta()
	}
	s.waitCommits(0)
	for _, ch := range s.channels {
		ch.deleted = true
		if ch.ageTimer != nil {
			ch.ageTimer.Stop()
		}
		if ch.idleTimer != nil {
			ch.idleTimer.Stop()
		}
		if ch.healTimer != nil {
			ch.healTimer.Stop()
		}
		ch.events = ch.events[:0]
	}
	for _, sub := range s.byAck {
		sub.ready, sub.gone = false, true
		sub.stopTimer()
	}
	clear(s.scratch.sentChans)
	s.scratch.sentChans = s.scratch.sentChans[:0]
	clear(s.waiting)
	s.waiting = s.waiting[:0]
	s.clients = map[string]*client{}
	s.byConnID = map[string]*client{}
	s.channels = map[string]*channel{}
	s.lowerNames = map[string]string{}
	s.byAck = map[string]*subState{}
	s.byAckID = map[ackKey]*subState{}
	s.checks = map[string]*dupCheck{}
	s.otherAckPrefixes = map[string]struct{}{}
}

// current returns the state machine's state as a restart would recover it.
func (m *stateMachine) current() (*stores.RecoveredState, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	st := &stores.RecoveredState{}
	for _, c := range m.clients {
		st.Clients = append(st.Clients, c)
	}
	slices.SortFunc(st.Clients, func(a, b stores.ClientInfo) int { return cmp.Compare(a.ID, b.ID) })
	for _, ch := range m.chans {
		subs, err := ch.Subs.Subs()
		if err != nil {
			return nil, fmt.Errorf("streaming: subscriptions of %q: %w", ch.Name, err)
		}
		st.Channels = append(st.Channels, &stores.RecoveredChannel{Channel: ch, Subs: subs})
	}
	slices.SortFunc(st.Channels, func(a, b *stores.RecoveredChannel) int { return cmp.Compare(a.Channel.Name, b.Channel.Name) })
	return st, nil
}
