package streaming

import (
	"strconv"
	"strings"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/starling-io/starling/proto/stanpb"
	"github.com/starling-io/starling/stores"
)

func (s *Server) subError(reply, text string) {
	s.reply(reply, &stanpb.SubscriptionResponse{Error: text})
}

// processSubscribe follows the reference's validation order (spec §7.2).
func (s *Server) processSubscribe(o *op) {
	req := &stanpb.SubscriptionRequest{}
	var errText string
	switch err := proto.Unmarshal(o.data, req); {
	case err != nil:
		errText = errInvalidSubReq
	case req.ClientID == "":
		errText = errMissingClient
	case req.AckWaitInSecs <= 0:
		errText = errInvalidAckWait
	case req.MaxInFlight <= 0:
		errText = errInvalidMaxInflight
	case req.StartPosition < stanpb.StartPosition_NewOnly || req.StartPosition > stanpb.StartPosition_First:
		errText = errInvalidStart
	case !validChannel(req.Subject):
		errText = errInvalidSubject
	case s.clients[req.ClientID] == nil:
		errText = errUnknownClient
	case req.QGroup != "" && req.DurableName != "" && strings.Contains(req.DurableName, ":"):
		errText = errDurableQueueColon
	}
	if errText != "" {
		s.log.Debug("subscription refused", "client_id", req.ClientID, "channel", req.Subject, "error", errText)
		s.subError(o.reply, errText)
		return
	}
	ch, chErr := s.lookupOrCreateChannel(req.Subject)
	if ch == nil {
		s.subError(o.reply, chErr)
		return
	}
	c := s.clients[req.ClientID]
	sub := &subState{ch: ch, clientID: req.ClientID, inbox: req.Inbox, durable: req.DurableName,
		qgroup: req.QGroup, maxInFlight: int(req.MaxInFlight), ackWait: time.Duration(req.AckWaitInSecs) * time.Second,
		pending: map[uint64]pendingMsg{}}
	resume := false
	switch {
	case req.QGroup != "":
		key := req.QGroup
		if req.DurableName != "" {
			key = req.DurableName + ":" + req.QGroup
		}
		g := ch.queues[key]
		if g == nil {
			g = &queueGroup{key: key, durable: req.DurableName != "", lastSent: s.startPosition(ch, req)}
			ch.queues[key] = g
		}
		if g.shadow != nil { // a durable group coming back: take over its last member's state
			sub.pending, sub.expiries, sub.expHead, sub.id = g.shadow.pending, g.shadow.expiries, g.shadow.expHead, g.shadow.id
			g.shadow = nil
			resume = true
		}
		sub.group = g
		g.members = append(g.members, sub)
	case req.DurableName != "":
		key := durableKey(req.ClientID, ch.name, req.DurableName)
		if d := ch.durables[key]; d != nil {
			if !d.offline {
				if !s.opts.ReplaceDurable {
					s.subError(o.reply, errDuplicateDurable)
					return
				}
				s.removeSub(d, false)
			}
			// Resume: position and pending kept; inbox, limits and ack inbox renewed.
			d.inbox, d.maxInFlight, d.ackWait, d.offline, d.clientID = sub.inbox, sub.maxInFlight, sub.ackWait, false, req.ClientID
			sub = d
			resume = true
		} else {
			sub.lastSent = s.startPosition(ch, req)
			ch.durables[key] = sub
		}
		ch.subs[sub] = struct{}{}
	default:
		sub.lastSent = s.startPosition(ch, req)
		ch.subs[sub] = struct{}{}
	}
	if sub.id == 0 {
		ch.nextSubID++
		sub.id = ch.nextSubID
	}
	s.nextAck++
	if sub.ackInbox != "" { // a durable resuming gets a new ack inbox
		delete(s.byAck, sub.ackInbox)
		delete(s.byAckID, sub.ackID)
		delete(s.byAckID, sub.ackID)
	}
	sub.ackID = s.nextAck
	sub.ackInbox = s.ackPrefix + "." + strconv.FormatUint(s.nextAck, 36)
	s.byAck[sub.ackInbox] = sub
	s.byAckID[sub.ackID] = sub
	c.subs[sub] = struct{}{}
	cmd := any(&cmdSubscribe{state: sub.storeState(), ch: ch})
	if resume {
		cmd = &cmdUpdateSub{state: sub.storeState(), ch: ch}
	}
	if _, err := s.propose(cmd); err != nil {
		s.log.Debug("storing subscription failed", "err", err)
		s.forgetSub(sub)
		s.subError(o.reply, err.Error())
		return
	}
	s.touch(ch)
	s.reply(o.reply, &stanpb.SubscriptionResponse{AckInbox: sub.ackInbox})
	// Only now, after the response, may messages flow (spec §7.2 step 13).
	sub.ready = true
	if resume {
		s.redeliverAll(sub)
	}
	if sub.group != nil {
		s.sendGroup(sub.group)
	} else {
		s.sendAvailable(sub)
	}
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
		return ch.store.Msgs.SeqAtTime(time.Now().UnixNano()-req.StartTimeDelta) - 1
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
		IsDurable: sub.durable != "", IsClosed: sub.offline}
}

// processUnsubscribe handles unsubscribe (remove for good) and subscription close (a
// durable stays, offline).
func (s *Server) processUnsubscribe(o *op, closeOnly bool) {
	req := &stanpb.UnsubscribeRequest{}
	if err := proto.Unmarshal(o.data, req); err != nil {
		s.subError(o.reply, errInvalidUnsubReq)
		return
	}
	ch := s.channels[req.Subject]
	if ch == nil {
		s.subError(o.reply, errUnknownChannel)
		return
	}
	sub := s.byAck[req.Inbox]
	if sub == nil || sub.ch != ch {
		sub = s.findByInbox(ch, req.Inbox)
	}
	if sub == nil {
		s.subError(o.reply, errInvalidSub)
		return
	}
	if sub.clientID != req.ClientID || s.clients[req.ClientID] == nil {
		s.subError(o.reply, errUnknownClient)
		return
	}
	s.flushSentAcks()
	s.removeSub(sub, !closeOnly)
	s.reply(o.reply, &stanpb.SubscriptionResponse{})
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

// forgetSub undoes the in-memory side of a subscription that could not be stored.
func (s *Server) forgetSub(sub *subState) {
	delete(s.byAck, sub.ackInbox)
	delete(s.byAckID, sub.ackID)
	if c := s.clients[sub.clientID]; c != nil {
		delete(c.subs, sub)
	}
	delete(sub.ch.subs, sub)
	if g := sub.group; g != nil {
		g.members = removeMember(g.members, sub)
		if len(g.members) == 0 && g.shadow == nil {
			delete(sub.ch.queues, g.key)
		}
	} else if sub.durable != "" && sub.lastSent == 0 && len(sub.pending) == 0 {
		delete(sub.ch.durables, durableKey(sub.clientID, sub.ch.name, sub.durable))
	}
}

func removeMember(list []*subState, sub *subState) []*subState {
	for i, m := range list {
		if m == sub {
			return append(list[:i], list[i+1:]...)
		}
	}
	return list
}

// removeSub applies unsubscribe (forever) or close semantics (spec §9.2).
func (s *Server) removeSub(sub *subState, unsubscribe bool) {
	ch := sub.ch
	s.touch(ch)
	if sub.timer != nil {
		sub.timer.Stop()
	}
	sub.ready = false
	delete(s.byAck, sub.ackInbox)
	delete(s.byAckID, sub.ackID)
	if c := s.clients[sub.clientID]; c != nil {
		delete(c.subs, sub)
	}
	if g := sub.group; g != nil {
		g.members = removeMember(g.members, sub)
		switch {
		case len(g.members) > 0:
			s.reassign(sub, g)
			s.propose(&cmdDeleteSub{id: sub.id, ch: ch})
		case g.durable && !unsubscribe:
			sub.offline = true
			g.shadow = sub
			s.propose(&cmdUpdateSub{state: sub.storeState(), ch: ch})
		default:
			delete(ch.queues, g.key)
			s.propose(&cmdDeleteSub{id: sub.id, ch: ch})
		}
		return
	}
	delete(ch.subs, sub)
	if sub.durable != "" && !unsubscribe {
		sub.offline = true
		s.propose(&cmdUpdateSub{state: sub.storeState(), ch: ch})
		return
	}
	if sub.durable != "" {
		delete(ch.durables, durableKey(sub.clientID, ch.name, sub.durable))
	}
	s.propose(&cmdDeleteSub{id: sub.id, ch: ch})
}

// reassign hands a leaving member's unacknowledged messages to the remaining members,
// round robin, redelivered at once and flagged.
func (s *Server) reassign(from *subState, g *queueGroup) {
	i := 0
	for seq, p := range from.pending {
		to := g.members[i%len(g.members)]
		i++
		to.pending[seq] = p
		s.redeliver(to, seq)
	}
	clear(from.pending)
	from.expReset()
}
