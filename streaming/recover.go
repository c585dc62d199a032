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
func (s *Server) restore(st *stores.RecoveredState) error {
	if st.Info.NodeID != "" {
		s.setID(st.Info.NodeID)
	}
	for _, ci := range st.Clients {
		c := &client{id: ci.ID, hbInbox: ci.HbInbox, connID: ci.ConnID, protocol: ci.Protocol,
			pingInterval: ci.PingInterval, pingMaxOut: ci.PingMaxOut, subs: map[*subState]struct{}{}}
		s.clients[c.id] = c
		if len(c.connID) > 0 {
			s.byConnID[string(c.connID)] = c
		}
	}
	for _, rc := range st.Channels {
		ch := s.addChannel(rc.Channel)
		ch.lastTime = time.Now().UnixNano()
		if state := ch.store.Msgs.State(); state.Msgs > 0 {
			var last stores.Msg
			if ch.store.Msgs.Load(state.Last, &last) == nil {
				ch.lastTime = last.Time
			}
		}
		for i := range rc.Subs {
			s.restoreSub(ch, &rc.Subs[i])
		}
	}
	return nil
}

func (s *Server) restoreSub(ch *channel, rs *stores.RecoveredSub) {
	st := rs.State
	sub := &subState{id: st.ID, ch: ch, clientID: st.ClientID, inbox: st.Inbox, ackInbox: st.AckInbox,
		durable: st.DurableName, qgroup: st.QGroup, maxInFlight: max(int(st.MaxInFlight), 1),
		ackWait: max(time.Duration(st.AckWaitSecs)*time.Second, time.Second), lastSent: st.LastSent,
		offline: st.IsClosed, pending: make(map[uint64]pendingMsg, len(rs.Pending))}
	ch.nextSubID = max(ch.nextSubID, st.ID)
	c := s.clients[st.ClientID]
	if c == nil && !sub.offline {
		if sub.durable == "" {
			// A plain subscription of a client that is gone: nothing to keep.
			s.propose(&cmdDeleteSub{id: sub.id, ch: ch})
			return
		}
		sub.offline = true
	}
	if id, ok := ackID([]byte(sub.ackInbox)); ok && strings.HasPrefix(sub.ackInbox, s.ackPrefix+".") {
		s.nextAck = max(s.nextAck, id) // never hand out a recovered ack inbox again
	}
	var m stores.Msg
	for _, seq := range rs.Pending {
		at := time.Now().UnixNano()
		if ch.store.Msgs.Load(seq, &m) == nil {
			at = m.Time + int64(sub.ackWait)
		}
		sub.pending[seq] = pendingMsg{expiry: at}
		sub.expPush(expiry{seq: seq, at: at})
	}
	switch {
	case st.QGroup != "":
		key := st.QGroup
		if st.DurableName != "" {
			key = st.DurableName + ":" + st.QGroup
		}
		g := ch.queues[key]
		if g == nil {
			g = &queueGroup{key: key, durable: st.DurableName != ""}
			ch.queues[key] = g
		}
		g.lastSent = max(g.lastSent, st.LastSent)
		if sub.offline {
			g.shadow = sub
			return
		}
		sub.group = g
		g.members = append(g.members, sub)
	case st.DurableName != "":
		ch.durables[durableKey(st.ClientID, ch.name, st.DurableName)] = sub
		if sub.offline {
			return
		}
		ch.subs[sub] = struct{}{}
	default:
		ch.subs[sub] = struct{}{}
	}
	if strings.HasPrefix(sub.ackInbox, s.ackPrefix+".") {
		if id, ok := ackID([]byte(sub.ackInbox)); ok {
			sub.ackID = id
			s.byAckID[id] = sub
			s.nextAck = max(s.nextAck, id)
		}
	}
	s.byAck[sub.ackInbox] = sub
	c.subs[sub] = struct{}{}
	sub.ready = true
	s.armTimer(sub)
}
