package streaming

import (
	"maps"
	"slices"

	"github.com/starling-io/starling/stores"
)

// A follower's engine holds no view of the state (leader.go), so its monitoring is read
// from the replicated state itself: the channels and clients of the state machine, each
// channel's messages and subscriptions as its store holds them. A user who asks a
// follower what it holds then sees what it would serve if it led.

// monitorView describes the replicated state for monitoring (subs: with subscriptions).
// Only the maps are read under the state machine's lock: copying every subscription with
// its pending set under it would hold up the follower's Apply and Decode for as long as the
// copy takes. The stores guard themselves, so the channels are read after it, and a view
// that straddles a command is as good for monitoring as one taken between two.
func (m *stateMachine) monitorView(subs bool) ([]*Channelz, []*Clientz) {
	m.mu.Lock()
	byID := make(map[string]*Clientz, len(m.clients))
	clients := make([]*Clientz, 0, len(m.clients))
	for id, ci := range m.clients {
		cz := &Clientz{ID: id, HBInbox: ci.HbInbox}
		byID[id] = cz
		clients = append(clients, cz)
	}
	held := slices.Collect(maps.Values(m.chans))
	m.mu.Unlock()
	chans := make([]*Channelz, 0, len(held))
	for _, ch := range held {
		name := ch.Name
		cz := channelz(name, ch.Msgs.State())
		stored, err := ch.Subs.Subs()
		if err != nil {
			stored = nil // a store that failed: its channel is shown without subscriptions
		}
		groups := map[queueID]uint64{} // a queue group's last sent: its members' highest (recover.go)
		for i := range stored {
			if st := &stored[i].State; st.QGroup != "" {
				qid := queueID{user: st.User, key: queueKey(st.QGroup, st.DurableName)}
				groups[qid] = max(groups[qid], st.LastSent)
			}
		}
		for i := range stored {
			st := &stored[i].State
			z := storedSubz(&stored[i])
			if st.QGroup != "" {
				z.LastSent = groups[queueID{user: st.User, key: z.QueueName}]
			}
			cz.SubsCount++
			if subs {
				cz.Subscriptions = append(cz.Subscriptions, z)
			}
			// Offline durables and durable queue shadows belong to no client.
			if c := byID[st.ClientID]; c != nil && !st.IsClosed {
				c.SubsCount++
				if subs {
					if c.Subscriptions == nil {
						c.Subscriptions = map[string][]*Subscriptionz{}
					}
					c.Subscriptions[name] = append(c.Subscriptions[name], z)
				}
			}
		}
		chans = append(chans, cz)
	}
	return chans, clients
}

// channelz describes a channel's messages; an empty channel's first sequence is the next
// one (0 when it never held any), as the reference shows it.
func channelz(name string, st stores.ChannelState) *Channelz {
	cz := &Channelz{Name: name, Msgs: int(st.Msgs), Bytes: st.Bytes, FirstSeq: st.First, LastSeq: st.Last}
	if st.Msgs == 0 {
		cz.FirstSeq = 0
		if st.Last > 0 {
			cz.FirstSeq = st.Last + 1
		}
	}
	return cz
}

// storedSubz describes a stored subscription as subState.monitor describes a live one.
func storedSubz(rs *stores.RecoveredSub) *Subscriptionz {
	st := &rs.State
	z := &Subscriptionz{ClientID: st.ClientID, Inbox: st.Inbox, AckInbox: st.AckInbox,
		IsDurable: st.IsDurable, IsOffline: st.IsClosed, MaxInflight: int(st.MaxInFlight),
		AckWait: int(st.AckWaitSecs), LastSent: st.LastSent, PendingCount: len(rs.Pending),
		IsStalled: st.MaxInFlight > 0 && len(rs.Pending) >= int(st.MaxInFlight)}
	if st.QGroup != "" {
		z.QueueName = queueKey(st.QGroup, st.DurableName)
	} else {
		z.DurableName = st.DurableName
	}
	return z
}
