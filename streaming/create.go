package streaming

import (
	"context"
	"errors"
	"fmt"
	"slices"

	"google.golang.org/protobuf/proto"

	"github.com/starling-io/starling/proto/stanpb"
	"github.com/starling-io/starling/raftlog"
	"github.com/starling-io/starling/stores"
)

// leading returns how many commands at the start of cmds are *C: a run of channel
// creations (cmdCreateChannel) or deletions (cmdDeleteChannel) applied together.
func leading[C any](cmds []raftlog.Command) int {
	n := 0
	for n < len(cmds) {
		if _, ok := cmds[n].Value.(*C); !ok {
			break
		}
		n++
	}
	return n
}

// newChannel is what the store is asked to create for c: the ID its proposer chose (or, from
// a version that let Apply choose, the next one), after the name's last deleted sequence.
func (m *stateMachine) newChannel(c *cmdCreateChannel) stores.NewChannel {
	id := c.id
	if id == 0 {
		id = m.nextChanID + 1
	}
	m.nextChanID = max(m.nextChanID, id)
	return stores.NewChannel{Name: c.name, ID: id, After: m.deleted[c.name]}
}

// created is the result of a creation the store answered with st or err.
func (m *stateMachine) created(nc stores.NewChannel, st *stores.Channel, err error) any {
	if ex := m.chans[nc.Name]; errors.Is(err, stores.ErrExists) && ex != nil && ex.ID == nc.ID {
		delete(m.deleted, nc.Name)
		return ex // replayed: the store kept it
	}
	if err != nil {
		return err
	}
	m.chans[st.Name] = st
	delete(m.deleted, st.Name)
	return st
}

// createRun applies a run of creations with one stores.CreateChannels: the store makes them
// durable together (the file store: two fsyncs, not two per channel). Each gets the result
// it would have had alone, in order: a name earlier in the run exists, and counts against
// MaxChannels. One difference: replicated, a failure of this replica's own (a full disk)
// stops the replica at that command while the store may hold the run's later channels; a
// restart replays them as it replays any creation the store kept.
func (m *stateMachine) createRun(cmds []raftlog.Command) []any {
	ncs := make([]stores.NewChannel, len(cmds))
	for i := range cmds {
		ncs[i] = m.newChannel(cmds[i].Value.(*cmdCreateChannel))
	}
	chans, errs := stores.CreateChannels(m.store, ncs)
	rs := make([]any, len(cmds))
	for i, nc := range ncs {
		rs[i] = m.created(nc, chans[i], errs[i])
	}
	return rs
}

// maxCreateAhead bounds the channels one creation makes for the ops ahead of it.
const maxCreateAhead = 1024

// lookupOrCreateChannel returns the channel or the error text for the requester. A name to
// create is created together with those the rest of the iteration's ops will ask for
// (createChannels): one proposal, one commit of the store, however many channels.
func (s *Server) lookupOrCreateChannel(name string) (*channel, string) {
	if ch := s.channels[name]; ch != nil {
		return ch, ""
	}
	if text, ok := s.createFailed[name]; ok {
		return nil, text
	}
	if text := s.nameClash(name); text != "" {
		return nil, text
	}
	s.createChannels(name)
	if ch := s.channels[name]; ch != nil {
		return ch, ""
	}
	return nil, s.createFailed[name]
}

// nameClash returns why name may not be created: a channel that differs from it only in
// case ("" if none).
func (s *Server) nameClash(name string) string {
	if other, ok := s.lowerNames[lowerName(name)]; ok && other != name {
		return fmt.Sprintf("rejecting channel %q because channel %q alreay exists (different cases not allowed)", name, other)
	}
	return ""
}

// createChannels creates name, and with it the channels that the ops ahead in the iteration
// will ask for (aheadNames), with one proposal: a run of creations that the state machine
// applies with one commit of the store. It waits for it, as a single creation did: every
// publish and subscription reads its channel's store. A channel created adds to the view; a
// failed creation is noted in createFailed, refusing the ops that needed it (and only them)
// with its error.
func (s *Server) createChannels(name string) {
	names := s.aheadNames(append(make([]string, 0, 8), name))
	first := s.sm.nextChannelID()
	cmds := make([]raftlog.Command, 0, len(names))
	vals := make([]cmdCreateChannel, len(names))
	for i, n := range names {
		vals[i] = cmdCreateChannel{name: n, id: first + uint64(i)}
		c, err := s.command(&vals[i])
		if err != nil { // a bug: refuse the lot
			for _, n := range names {
				s.createFailed[n] = err.Error()
			}
			return
		}
		cmds = append(cmds, c)
	}
	f := s.rlog.ProposeBatch(context.Background(), cmds)
	index, err := f.Wait()
	for i, n := range names {
		r := f.ResultAt(i)
		if index == 0 { // refused whole: not applied
			r = err
		}
		if st, ok := r.(*stores.Channel); ok && st != nil {
			s.addChannel(st)
			continue
		}
		cause, _ := r.(error)
		if cause == nil {
			cause = fmt.Errorf("streaming: channel %q not created", n) // not expected
		}
		s.log.Debug("cannot create channel", "channel", n, "err", cause)
		s.createFailed[n] = cause.Error()
		if index != 0 {
			s.buryRefusedChannel(chanRef{channel: n, chanID: vals[i].id}, cause)
		}
	}
}

// buryRefusedChannel proposes the deletion of a channel whose creation was refused for
// max_channels (applied: in the log), which every replica finds missing — except one that
// replays its log onto a store synced past it (a restart): the channels the store has from
// later creations count against max_channels early in the replay, so a channel that existed
// then may be refused and missing later, and the creation every replica refused finds room.
// Without the deletion that replica kept the channel for good
// (TestReplayRefusedChannelNotRevived). The chanRef names the refused incarnation only: no
// command of the log names it, and a channel created again with the name has another ID.
func (s *Server) buryRefusedChannel(ref chanRef, err error) {
	if !s.replicated || !errors.Is(err, stores.ErrTooManyChannels) {
		return
	}
	s.proposeThen(&cmdDeleteChannel{ref}, func(_ any, err error) {
		if err != nil && !errors.Is(err, errNoChannel) { // errNoChannel: refused here too
			s.log.Error("removing a channel refused for max_channels failed", "channel", ref.channel, "err", err)
		}
	})
}

// aheadNames appends to names the channels that the ops ahead will ask to create: the
// publishes and subscribes that pass the checks made before a channel is looked up, from
// the connection their client is bound to. It stops where it can no longer tell: at any op
// but a publish, subscribe, ack or ping (a close, a heartbeat tick, a connection check or a
// leadership change may drop or move a client, a connect add one), and at a request that
// must first be bound to its connection — so that a channel is never created for a request
// then refused, and channels are created in the order their requests came (MaxChannels
// refuses the same requests as one by one). A name in a case clash with a channel or with
// one before it is left to its own op, which is refused — or creates it, if the other's
// creation failed.
func (s *Server) aheadNames(names []string) []string {
	var pm pubMsgView
	lowers := map[string]bool{lowerName(names[0]): true} // the names' (no two alike)
	for i := range s.ahead {
		if len(names) >= maxCreateAhead {
			break
		}
		o := &s.ahead[i]
		var name string
		switch o.kind {
		case opAck, opPing:
			continue // creates nothing, changes no client
		case opPublish:
			if decodePubMsg(o.data, &pm) != nil || !pubValid(&pm) || s.channels[string(pm.subject)] != nil {
				continue
			}
			c := s.pubClient(&pm)
			if c == nil || msgProtoMax(len(pm.subject), len(pm.reply), len(pm.data)) > s.maxPayload {
				continue // refused
			}
			if c.nats != o.from {
				return names // to be bound first: its outcome is not known yet
			}
			name = string(pm.subject)
		case opSubscribe:
			if !s.leader {
				continue
			}
			req := &stanpb.SubscriptionRequest{}
			if proto.Unmarshal(o.data, req) != nil || s.channels[req.Subject] != nil {
				continue
			}
			if text, _ := s.subRefusal(req); text != "" {
				continue // refused
			}
			if s.clients[req.ClientID].nats != o.from {
				return names
			}
			name = req.Subject
		default:
			return names
		}
		lower := lowerName(name)
		if _, failed := s.createFailed[name]; failed || lowers[lower] || s.nameClash(name) != "" {
			continue
		}
		lowers[lower] = true
		names = append(names, name)
	}
	return names
}

// deleteRun applies a run of channel deletions with one stores.DeleteChannels (the file
// store: one fsync of meta.log), each with the result it would have alone: a channel this
// replica does not have under that ID — or deleted earlier in the run — is errNoChannel.
// (Alone, a deletion the store failed would leave its channel for a later one in the run to
// try again; the engine never proposes a channel's deletion twice.)
func (m *stateMachine) deleteRun(cmds []raftlog.Command) []any {
	rs := make([]any, len(cmds))
	var names []string
	var idx []int
	var chans []*stores.Channel
	var lasts []uint64
	for i := range cmds {
		ref := cmds[i].Value.(*cmdDeleteChannel).chanRef
		ch := m.chans[ref.channel]
		if ch == nil || ch.ID != ref.chanID || slices.Contains(chans, ch) {
			rs[i] = fmt.Errorf("%w: %q (ID %d)", errNoChannel, ref.channel, ref.chanID)
			continue
		}
		names, idx, chans = append(names, ch.Name), append(idx, i), append(chans, ch)
		lasts = append(lasts, ch.Msgs.State().Last)
	}
	if len(names) == 0 {
		return rs
	}
	for k, err := range stores.DeleteChannels(m.store, names) {
		if err = deletedAnyway(err); err != nil {
			rs[idx[k]] = err
			continue
		}
		m.dropped(chans[k], lasts[k])
	}
	return rs
}
