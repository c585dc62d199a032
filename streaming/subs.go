package streaming

import (
	"errors"
	"strings"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/starling-io/starling/proto/stanpb"
	"github.com/starling-io/starling/raftlog"
	"github.com/starling-io/starling/stores"
)

func (s *Server) subError(reply, text string) {
	s.reply(reply, &stanpb.SubscriptionResponse{Error: text})
}

// processSubscribe follows the reference's validation order (spec §7.2), with the
// delivery inbox checked as well: the server will publish to it.
func (s *Server) processSubscribe(o *op) {
	req := &stanpb.SubscriptionRequest{}
	var errText, why string
	if err := proto.Unmarshal(o.data, req); err != nil {
		errText, why = errInvalidSubReq, "malformed request"
	} else {
		errText, why = s.subRefusal(req)
	}
	if errText == "" {
		switch c := s.clients[req.ClientID]; s.bind(c, o) {
		case bindHeld:
			return
		case bindRefused:
			errText, why = errUnknownClient, s.bindRefusal(c, o.from)
		}
	}
	if errText != "" {
		s.log.Info("subscription refused", "client_id", logID(req.ClientID), "channel", req.Subject, "cause", why)
		s.subError(o.reply, errText)
		return
	}
	s.subscribe(o, req)
}

// subRefusal returns why a well-formed subscription request is refused before its client's
// binding is checked ("" if it is not).
func (s *Server) subRefusal(req *stanpb.SubscriptionRequest) (errText, why string) {
	switch {
	case req.ClientID == "":
		errText, why = errMissingClient, "no client ID"
	case req.AckWaitInSecs <= 0:
		errText, why = errInvalidAckWait, "ack wait"
	case req.MaxInFlight <= 0:
		errText, why = errInvalidMaxInflight, "max in flight"
	case req.StartPosition < stanpb.StartPosition_NewOnly || req.StartPosition > stanpb.StartPosition_First:
		errText, why = errInvalidStart, "start position"
	case !validChannel(req.Subject):
		errText, why = errInvalidSubject, "invalid channel"
	case !s.validInbox(req.Inbox):
		errText, why = errInvalidSubReq, "inbox is not a subject the client may own: "+quote(req.Inbox)
	case s.clients[req.ClientID] == nil:
		errText, why = errUnknownClient, "unknown client"
	}
	return errText, why
}

// subscribe creates (or resumes) the subscription req asks for, once validated.
func (s *Server) subscribe(o *op, req *stanpb.SubscriptionRequest) {
	ch, chErr := s.lookupOrCreateChannel(req.Subject)
	if ch == nil {
		s.subError(o.reply, chErr)
		return
	}
	// Refused only now, as by nss: the channel stays created (and counts toward
	// max_channels).
	if req.QGroup != "" && req.DurableName != "" && strings.Contains(req.DurableName, ":") {
		s.log.Info("subscription refused", "client_id", logID(req.ClientID), "channel", req.Subject, "cause", "durable queue name with ':'")
		s.subError(o.reply, errDurableQueueColon)
		return
	}
	c := s.clients[req.ClientID]
	sub := &subState{ch: ch, clientID: req.ClientID, user: c.user, inbox: req.Inbox, durable: req.DurableName,
		qgroup: req.QGroup, maxInFlight: int(req.MaxInFlight), ackWait: time.Duration(req.AckWaitInSecs) * time.Second}
	resume := false
	switch {
	case req.QGroup != "":
		resume = s.joinQueue(ch, sub, req)
	case req.DurableName != "":
		var ok bool
		if sub, resume, ok = s.addDurable(o.reply, ch, sub, req); !ok {
			return
		}
		ch.subs[sub] = struct{}{}
	default:
		sub.lastSent = s.startPosition(ch, req)
		ch.subs[sub] = struct{}{}
	}
	s.registerSub(ch, sub, c)
	s.proposeSub(o.reply, ch, sub, resume)
}

// joinQueue adds sub to its queue group on ch, created if none, and reports whether sub
// resumes a durable group: it takes over the state of the group's last member.
func (s *Server) joinQueue(ch *channel, sub *subState, req *stanpb.SubscriptionRequest) (resume bool) {
	qid := queueID{user: sub.user, key: queueKey(req.QGroup, req.DurableName)}
	g := ch.queues[qid]
	if g == nil {
		g = &queueGroup{id: qid, key: qid.key, durable: req.DurableName != "", lastSent: s.startPosition(ch, req)}
		ch.queues[qid] = g
	}
	if g.shadow != nil { // a durable group coming back: take over its last member's state
		sh := g.shadow
		sub.pending, sub.expiries, sub.expHead, sub.id = sh.pending, sh.expiries, sh.expHead, sh.id
		delete(s.byAck, sh.ackInbox)
		delete(s.byAckID, sh.ack)
		g.shadow = nil
		resume = true
	}
	sub.group = g
	g.members = append(g.members, sub)
	return resume
}

// addDurable makes sub durable req.DurableName of its client on ch, or resumes the durable
// of that name: it returns the durable, and whether it resumes one. A durable still online
// is taken over when ReplaceDurable is set or nobody listens on its inbox; else the request
// is refused (answered here, ok false).
func (s *Server) addDurable(reply string, ch *channel, sub *subState, req *stanpb.SubscriptionRequest) (_ *subState, resume, ok bool) {
	key := durableID{user: sub.user, clientID: req.ClientID, name: req.DurableName}
	d := ch.durables[key]
	if d == nil {
		sub.lastSent = s.startPosition(ch, req)
		ch.durables[key] = sub
		return sub, false, true
	}
	if !d.offline {
		switch {
		case s.opts.ReplaceDurable:
		case !s.bus.HasInterest(d.inbox):
			// Its client dropped the inbox: the subscribe's reply was lost (a leader
			// change) or came too late. Nobody receives this subscription, so it is
			// no duplicate; refused, it stayed online until the client closed.
			s.log.Info("durable online with nobody on its inbox: resumed", "client_id", logID(req.ClientID), "channel", req.Subject)
		default:
			s.log.Info("subscription refused", "client_id", logID(req.ClientID), "channel", req.Subject, "cause", "durable already online")
			s.subError(reply, errDuplicateDurable)
			return nil, false, false
		}
		s.removeSub(d, false)
	}
	// Resume: position and pending kept; inbox, limits and ack inbox renewed.
	d.inbox, d.maxInFlight, d.ackWait, d.offline, d.gone = sub.inbox, sub.maxInFlight, sub.ackWait, false, false
	return d, true, true
}

// registerSub gives sub an ID on ch if it has none and a new ack inbox, and makes c its
// owner.
func (s *Server) registerSub(ch *channel, sub *subState, c *client) {
	if sub.id == 0 {
		ch.nextSubID++
		sub.id = ch.nextSubID
	}
	if sub.ackInbox != "" { // a durable resuming gets a new ack inbox
		delete(s.byAck, sub.ackInbox)
		delete(s.byAckID, sub.ack)
	}
	sub.ack = newAckKey()
	sub.ackInbox = s.ackPrefix + "." + sub.ack.token()
	s.byAck[sub.ackInbox] = sub
	s.byAckID[sub.ack] = sub
	sub.owner = c
	c.subs[sub] = struct{}{}
}

// proposeSub proposes sub's record (an update when it resumes) and answers the request on
// reply once it is committed.
//
// The response confirms the subscription: it waits until its record is committed and
// durable, and only after it may messages flow (spec §7.2 step 13). Meanwhile the engine
// has the subscription (not ready): a close or a resubscribe behind it sees it. Once it
// was closed, or resumed by a later request (a new ack inbox), this one only answers.
func (s *Server) proposeSub(reply string, ch *channel, sub *subState, resume bool) {
	cmd := any(&cmdSubscribe{chanRef: refOf(ch), state: sub.storeState()})
	if resume {
		cmd = &cmdUpdateSub{chanRef: refOf(ch), state: sub.storeState()}
	}
	s.touch(ch)
	ackInbox := sub.ackInbox
	s.proposeReply(cmd, func(_ any, err error) {
		current := !sub.gone && sub.ackInbox == ackInbox
		if err != nil {
			s.subscribeFailed(reply, ch, sub, current, resume, err)
			return
		}
		s.reply(reply, &stanpb.SubscriptionResponse{AckInbox: ackInbox})
		if current {
			s.startSub(sub, resume)
		}
	})
}

// subscribeFailed answers a subscription whose record was not stored, and undoes it unless
// it is no longer current.
func (s *Server) subscribeFailed(reply string, ch *channel, sub *subState, current, resume bool, err error) {
	if isNotDurable(err) {
		s.log.Error("storing subscription failed", "client_id", sub.clientID, "channel", ch.name, "err", err)
		if current {
			s.removeSub(sub, false)
		}
	} else {
		s.log.Info("subscription refused", "client_id", logID(sub.clientID), "channel", ch.name, "cause", err)
		if current {
			s.forgetSub(sub, resume)
			s.buryRefused(ch, sub, resume, err)
		}
	}
	s.subError(reply, err.Error())
}

// buryRefused proposes the removal of a new subscription refused for max_subs, which
// every replica finds already gone — except one that replays its log onto a store synced
// past it (a restart): the subscriptions the store has from later commands count against
// max_subs early in the replay, so a subscription that existed then may be refused and
// missing later, and the refused one finds room there. Without the removal that replica
// kept it for good (TestStanClusterRefusedSubNotRevivedByReplay). A queue member too,
// unless forgetSub made it its durable group's shadow, whose record keeps its ID.
func (s *Server) buryRefused(ch *channel, sub *subState, resume bool, err error) {
	if !s.replicated || resume || !errors.Is(err, stores.ErrTooManySubs) {
		return
	}
	if g := sub.group; g != nil && g.shadow == sub {
		return
	}
	ref := refOf(ch)
	s.proposeLogged(&cmdDeleteSub{chanRef: ref, id: sub.id}, "removing a refused subscription", ref)
}

// startSub makes a confirmed subscription ready and sends it what it may receive.
func (s *Server) startSub(sub *subState, resume bool) {
	sub.ready = true
	if resume {
		s.redeliverAll(sub)
	} else {
		s.armTimer(sub) // messages reassigned to it meanwhile: their timer found it not ready
	}
	s.resume(sub)
}

// startPosition resolves a start position to the last sequence considered sent (§7.3).
func (s *Server) startPosition(ch *channel, req *stanpb.SubscriptionRequest) uint64 {
	st := ch.store.Msgs.State()
	first, last := st.First, st.Last
	if st.Msgs == 0 {
		return last
	}
	switch req.StartPosition {
	case stanpb.StartPosition_LastReceived:
		return last - 1
	case stanpb.StartPosition_TimeDeltaStart:
		return ch.store.Msgs.SeqAtTime(s.clock.chanNow(&ch.clock)-req.StartTimeDelta) - 1
	case stanpb.StartPosition_SequenceStart:
		switch seq := req.StartSequence; {
		case seq == 0 || seq < first:
			return first - 1
		case seq > last:
			return last
		default:
			return seq - 1
		}
	case stanpb.StartPosition_First:
		return first - 1
	default:
		return last
	}
}

func (sub *subState) storeState() stores.SubState {
	return stores.SubState{ID: sub.id, ClientID: sub.clientID, QGroup: sub.qgroup, Inbox: sub.inbox,
		AckInbox: sub.ackInbox, DurableName: sub.durable, MaxInFlight: int32(sub.maxInFlight),
		AckWaitSecs: int32(sub.ackWait / time.Second), LastSent: sub.position(),
		IsDurable: sub.durable != "", IsClosed: sub.offline, User: sub.user}
}

// processUnsubscribe handles unsubscribe (remove for good) and subscription close (a
// durable stays, offline).
func (s *Server) processUnsubscribe(o *op, closeOnly bool) {
	req := &stanpb.UnsubscribeRequest{}
	if err := proto.Unmarshal(o.data, req); err != nil {
		s.log.Info("unsubscribe refused", "cause", "malformed request")
		s.subError(o.reply, errInvalidUnsubReq)
		return
	}
	refuse := func(text, why string) {
		s.log.Info("unsubscribe refused", "client_id", logID(req.ClientID), "channel", req.Subject, "cause", why)
		s.subError(o.reply, text)
	}
	ch := s.channels[req.Subject]
	if ch == nil {
		refuse(errUnknownChannel, "unknown channel")
		return
	}
	sub := s.byAck[req.Inbox]
	if sub == nil || sub.ch != ch {
		sub = s.findByInbox(ch, req.Inbox)
	}
	if sub == nil {
		refuse(errInvalidSub, "no such subscription")
		return
	}
	c := s.clients[req.ClientID]
	switch {
	case c == nil:
		refuse(errUnknownClient, "unknown client")
		return
	case sub.clientID != req.ClientID || sub.user != c.user:
		refuse(errUnknownClient, "subscription of another client")
		return
	}
	switch s.bind(c, o) {
	case bindHeld:
		return
	case bindRefused:
		refuse(errUnknownClient, s.bindRefusal(c, o.from))
		return
	}
	s.flushSentAcks()
	reply := o.reply
	s.await(s.removeSub(sub, !closeOnly), true, func(_ any, err error) {
		resp := &stanpb.SubscriptionResponse{}
		if err != nil {
			resp.Error = err.Error()
		}
		s.reply(reply, resp)
	})
}

func (s *Server) findByInbox(ch *channel, inbox string) *subState {
	for sub := range ch.subs {
		if sub.inbox == inbox {
			return sub
		}
	}
	for _, g := range ch.queues {
		for _, m := range g.members {
			if m.inbox == inbox {
				return m
			}
		}
	}
	return nil
}

// forgetSub undoes the in-memory side of a subscription that could not be stored
// (refused, say for max_subs). A new one is forgotten entirely, a durable's name included,
// as the reference's undo (ss.Remove(c, sub, true)) does: kept, it blocked that durable for
// good ("duplicate durable registration"). One resumed on kept state (resumed) goes back to
// what its record still says: a durable offline; a durable queue group's member back to
// being the group's shadow, or, when others joined meanwhile, handing them the pending
// messages it took over, as a leaving member does.
func (s *Server) forgetSub(sub *subState, resumed bool) {
	sub.gone = true
	delete(s.byAck, sub.ackInbox)
	delete(s.byAckID, sub.ack)
	if c := sub.owner; c != nil {
		delete(c.subs, sub)
	}
	sub.owner = nil
	delete(sub.ch.subs, sub)
	if g := sub.group; g != nil {
		g.members = removeMember(g.members, sub)
		switch {
		case !resumed && sub.heir && len(g.members) > 0:
			// Refused (max_subs) after members that left handed it their messages, their
			// records deleted: the messages go on to the others.
			s.reassign(sub, g)
		case !resumed && sub.heir && g.durable && g.shadow == nil:
			// ... and it is all that is left of the durable group: its record, refused,
			// is made again as the group's shadow (the leavers' went before it).
			sub.offline = true
			g.shadow = sub
			s.recordShadow(sub)
		case !resumed:
		case len(g.members) > 0:
			s.reassign(sub, g)
			ref := refOf(sub.ch)
			s.proposeLogged(&cmdDeleteSub{chanRef: ref, id: sub.id}, "removing a queue group's shadow", ref)
		case g.shadow == nil:
			sub.offline = true
			g.shadow = sub
		}
		if len(g.members) == 0 && g.shadow == nil {
			delete(sub.ch.queues, g.id)
		}
	} else if sub.durable != "" {
		if resumed {
			sub.offline = true
		} else if key := sub.durableID(); sub.ch.durables[key] == sub {
			delete(sub.ch.durables, key)
		}
	}
}

// recordShadow records sub, a refused member that became its durable queue group's shadow,
// with the messages it holds.
func (s *Server) recordShadow(sub *subState) {
	sub.stopTimer()
	ref := refOf(sub.ch)
	s.proposeLogged(&cmdSubscribe{chanRef: ref, state: sub.storeState()}, "recording a queue group's shadow", ref)
	for _, seq := range sortedPending(sub) {
		s.recordEvent(sub, stores.SubEvent{SubID: sub.id, Seq: seq})
	}
	s.flushSentAcks()
}

func removeMember(list []*subState, sub *subState) []*subState {
	for i, m := range list {
		if m == sub {
			return append(list[:i], list[i+1:]...)
		}
	}
	return list
}

// removeSub applies unsubscribe (forever) or close semantics (spec §9.2) and returns the
// proposal of its last record, which a reply waits for.
func (s *Server) removeSub(sub *subState, unsubscribe bool) raftlog.Future {
	ch := sub.ch
	s.touch(ch)
	sub.stopTimer()
	sub.ready, sub.gone = false, true
	delete(s.byAck, sub.ackInbox)
	delete(s.byAckID, sub.ack)
	if c := sub.owner; c != nil {
		delete(c.subs, sub)
	}
	sub.owner = nil
	ref := refOf(ch)
	del := func() raftlog.Future {
		return s.proposeLogged(&cmdDeleteSub{chanRef: ref, id: sub.id}, "removing a subscription", ref)
	}
	offline := func(st *subState) raftlog.Future {
		return s.proposeLogged(&cmdUpdateSub{chanRef: ref, state: st.storeState()}, "closing a subscription", ref)
	}
	if g := sub.group; g != nil {
		g.members = removeMember(g.members, sub)
		switch {
		case len(g.members) > 0:
			for _, m := range g.members {
				m.heir = m.heir || !m.ready // should its record be refused, forgetSub hands the group on
			}
			s.reassign(sub, g)
			return del()
		case g.durable && !unsubscribe:
			sub.offline = true
			g.shadow = sub
			return offline(sub)
		default:
			delete(ch.queues, g.id)
			return del()
		}
	}
	delete(ch.subs, sub)
	if sub.durable != "" && !unsubscribe {
		sub.offline = true
		return offline(sub)
	}
	if sub.durable != "" {
		delete(ch.durables, sub.durableID())
	}
	return del()
}

// reassign hands a leaving member's unacknowledged messages to the remaining members,
// round robin, due for redelivery reassignDelay later (flagged; processRedeliver sends each
// to the best member then). The transfer is recorded (a sent event per message for its
// new owner, and the group's cursor on one member) before the leaver's record is deleted,
// so a restart keeps every pending message of the group (audit finding 4).
//
// Not at once, as the reference (subStore.Remove: their timers fire in 100 ms): when a
// client closes several members of a group, the next one to go would be sent the first
// one's messages as it leaves, and they would count a redelivery more (RedeliveryCount 2
// for the member that takes over a durable group's shadow, instead of 1).
func (s *Server) reassign(from *subState, g *queueGroup) {
	at := s.clock.monoNow() + int64(reassignDelay)
	i := 0
	from.pending.Range(func(seq uint64, p pendingMsg) {
		to := g.members[i%len(g.members)]
		i++
		p.expiry = at
		to.pending.Set(seq, p)
		to.expPush(expiry{seq: seq, at: at})
		s.recordEvent(to, stores.SubEvent{SubID: to.id, Seq: seq})
	})
	for _, m := range g.members {
		s.armTimer(m)
	}
	from.pending.Clear()
	from.expReset()
	s.flushSentAcks()
	ref := refOf(from.ch)
	s.proposeLogged(&cmdUpdateSub{chanRef: ref, state: g.members[0].storeState()}, "recording a queue group's cursor", ref)
}
