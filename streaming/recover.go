package streaming

import (
	"strings"
	"time"

	"github.com/starling-io/starling/stores"
)

// restore rebuilds the engine's state from a durable store after a restart: clients,
// channels, and every subscription with its position and pending set (spec §13). Pending
// messages get the deadline "stored time + ack wait", so what is older than that is
// redelivered as soon as the engine runs, the rest when due (§8.3).
//
// After a crash (the store was not closed), a subscription may have been sent messages
// whose "sent" records were not yet synced: they are durable no later than the group
// commit after the delivery. Such a message comes back as a first delivery after the
// restart, so every message of the channel past the subscription's recovered position
// is flagged redelivered when first sent (subState.uncertain). Some of them were never
// sent; the flag only says "maybe", which is what at-least-once needs.
func (s *Server) restore(st *stores.RecoveredState) error {
	for _, ci := range st.Clients {
		s.addClientView(ci)
	}
	var due []*channel
	for _, rc := range st.Channels {
		ch := s.addChannel(rc.Channel)
		state := ch.store.Msgs.State()
		if state.Msgs > 0 {
			var last stores.Msg
			if ch.store.Msgs.Load(state.Last, &last) == nil {
				// Its time is not known: taken as now, the channel's clock is at least
				// its newest timestamp, whatever the clock that stamped it.
				ch.clock = chanClock{last.Time, s.clock.monoNow()}
			}
		}
		// Messages that aged while the server was down, or that lowered limits drop (or a
		// store imported from nss), go before anything is sent (expireNow); the rest when
		// due: the age timer is otherwise armed only by a publish.
		if s.dueAtStart(ch, state) {
			due = append(due, ch)
		}
		uncertain := uint64(0)
		if !st.Clean {
			uncertain = state.Last
		}
		for i := range rc.Subs {
			s.restoreSub(ch, &rc.Subs[i], uncertain)
		}
		s.settleGroups(ch)
	}
	s.expireNow(due)
	// What restoring changed (subscriptions of clients that are gone, merged groups) is
	// durable before the first request is served.
	return s.syncMeta()
}

func (s *Server) restoreSub(ch *channel, rs *stores.RecoveredSub, uncertain uint64) {
	st := rs.State
	sub := &subState{id: st.ID, ch: ch, clientID: st.ClientID, user: st.User, inbox: st.Inbox, ackInbox: st.AckInbox,
		durable: st.DurableName, qgroup: st.QGroup, maxInFlight: max(int(st.MaxInFlight), 1),
		ackWait: max(time.Duration(st.AckWaitSecs)*time.Second, time.Second), lastSent: st.LastSent,
		offline: st.IsClosed, uncertain: uncertain}
	ch.nextSubID = max(ch.nextSubID, st.ID)
	c := s.clients[st.ClientID]
	if c != nil && c.user != st.User {
		c = nil // the client ID now belongs to another user's client
	}
	var m stores.Msg
	now, wall := s.clock.monoNow(), s.clock.chanNow(&ch.clock)
	for _, seq := range rs.Pending {
		at := now
		if ch.store.Msgs.Load(seq, &m) == nil {
			at += m.Time + int64(sub.ackWait) - wall // due when its timestamp says
		}
		sub.pending.Set(seq, pendingMsg{expiry: at})
		sub.expPush(expiry{seq: seq, at: at})
	}
	switch {
	case st.QGroup != "":
		qid := queueID{user: st.User, key: queueKey(st.QGroup, st.DurableName)}
		g := ch.queues[qid]
		if g == nil {
			g = &queueGroup{id: qid, key: qid.key, durable: st.DurableName != "", uncertain: uncertain}
			ch.queues[qid] = g
		}
		g.lastSent = max(g.lastSent, st.LastSent)
		if sub.offline || c == nil {
			g.orphans = append(g.orphans, sub) // settleGroups decides
			return
		}
		sub.group = g
		g.members = append(g.members, sub)
	case st.DurableName != "":
		ch.durables[sub.durableID()] = sub
		if c == nil {
			sub.offline = true
		}
		if sub.offline {
			return
		}
		ch.subs[sub] = struct{}{}
	default:
		if c == nil {
			// A plain subscription of a client that is gone: nothing to keep.
			s.proposeLogged(&cmdDeleteSub{chanRef: refOf(ch), id: sub.id}, "removing a subscription of a client that is gone", refOf(ch))
			return
		}
		ch.subs[sub] = struct{}{}
	}
	s.activate(sub, c)
}

// activate makes a restored subscription of client c live: its ack inbox answers and its
// pending messages are due.
func (s *Server) activate(sub *subState, c *client) {
	if key, ok := parseAckKey([]byte(sub.ackInbox)); ok {
		sub.ack = key
		s.byAckID[key] = sub
		// Handed out by another server: its acks arrive there, so serve subscribes to it too
		// — to the prefix of another Starling ("_INBOX.<server id>": the leader before a
		// failover), or to the inbox itself when the prefix is a single token (an inbox
		// nats-streaming-server gave, "_INBOX.<nuid>", in a migrated store: "_INBOX.*"
		// would take in every single-token inbox, deliveries included).
		if p := sub.ackInbox[:max(strings.LastIndexByte(sub.ackInbox, '.'), 0)]; p != s.ackPrefix {
			if strings.Contains(p, ".") {
				s.otherAckPrefixes[p+".*"] = struct{}{}
			} else {
				s.otherAckPrefixes[sub.ackInbox] = struct{}{}
			}
		}
	}
	s.byAck[sub.ackInbox] = sub
	sub.owner = c
	c.subs[sub] = struct{}{}
	sub.ready = true
	// The first redelivery of what was already due goes to this member, not to the best
	// one: after a restart or a takeover the reference's first pass (isStartup) keeps a
	// queue message on the member that had it, lest it reach several members.
	sub.restoredDue = s.clock.monoNow() + int64(redeliverSlack)
	s.armTimer(sub)
}

// settleGroups decides, after a restore, what becomes of the queue members whose client is
// gone (or that were stored offline): their pending messages go to the group's live
// members when it has some; a durable group with none keeps one offline shadow holding
// every such member's pending messages (not only the last one's); a plain group with none
// is gone. Every move is recorded, so no pending message of a group is lost.
func (s *Server) settleGroups(ch *channel) {
	ref := refOf(ch)
	del := func(sub *subState) {
		s.proposeLogged(&cmdDeleteSub{chanRef: ref, id: sub.id}, "removing a queue member of a client that is gone", ref)
	}
	update := func(sub *subState) {
		s.proposeLogged(&cmdUpdateSub{chanRef: ref, state: sub.storeState()}, "recording a queue group's cursor", ref)
	}
	for qid, g := range ch.queues {
		orphans := g.orphans
		g.orphans = nil
		if len(orphans) == 0 {
			continue
		}
		switch {
		case len(g.members) > 0:
			for _, o := range orphans {
				s.movePending(o, g.members)
				s.flushSentAcks()
				del(o)
			}
			update(g.members[0])
			for _, m := range g.members {
				s.armTimer(m)
			}
		case g.durable:
			sh := orphans[0]
			for _, o := range orphans[1:] {
				s.movePending(o, []*subState{sh})
				s.flushSentAcks()
				del(o)
			}
			sh.offline, sh.lastSent = true, g.lastSent
			g.shadow = sh
			update(sh)
		default:
			for _, o := range orphans {
				del(o)
			}
			delete(ch.queues, qid)
		}
	}
}

// movePending moves from's pending messages to the subscriptions to, round robin, keeping
// their deadlines, and records each as sent to its new owner.
func (s *Server) movePending(from *subState, to []*subState) {
	i := 0
	for _, seq := range sortedPending(from) {
		t := to[i%len(to)]
		i++
		p, _ := from.pending.Get(seq)
		t.pending.Set(seq, p)
		t.expPush(expiry{seq: seq, at: p.expiry})
		s.recordEvent(t, stores.SubEvent{SubID: t.id, Seq: seq})
	}
	from.pending.Clear()
	from.expReset()
}

// sortedPending returns sub's pending sequences in order.
func sortedPending(sub *subState) []uint64 {
	seqs := make([]uint64, 0, sub.pending.Len())
	sub.pending.Range(func(seq uint64, _ pendingMsg) { seqs = append(seqs, seq) })
	sortSeqs(seqs)
	return seqs
}
