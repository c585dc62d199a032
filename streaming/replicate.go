package streaming

import (
	"fmt"

	"google.golang.org/protobuf/proto"

	"github.com/starling-io/starling/proto/raftpb"
	"github.com/starling-io/starling/raftlog"
	"github.com/starling-io/starling/stores"
)

// The replicated form of the commands (apply.go): each command is one raftpb.Op, which a
// replicated log carries as Command.Data and every replica turns back into the same command
// with Decode. Standalone, commands are never encoded.

// encodeCommand returns the encoded op of command v.
func encodeCommand(v any) ([]byte, error) {
	switch c := v.(type) {
	case *cmdPublish:
		return encodePublish(c), nil // the hot path (pubcodec.go)
	case *cmdSentAck:
		return appendSentAck(nil, c), nil // ackcodec.go
	}
	op, err := commandOp(v)
	if err != nil {
		return nil, err
	}
	return proto.Marshal(op)
}

func commandOp(v any) (*raftpb.Op, error) {
	switch c := v.(type) {
	case *cmdConnect:
		return &raftpb.Op{Op: &raftpb.Op_ClientConnect{ClientConnect: &raftpb.ClientConnect{Info: clientInfoPB(&c.info)}}}, nil
	case *cmdDisconnect:
		return &raftpb.Op{Op: &raftpb.Op_ClientDisconnect{ClientDisconnect: &raftpb.ClientDisconnect{ClientID: c.clientID}}}, nil
	case *cmdCreateChannel:
		return &raftpb.Op{Op: &raftpb.Op_CreateChannel{CreateChannel: &raftpb.CreateChannel{Channel: c.name, ChannelID: c.id}}}, nil
	case *cmdPublish:
		msgs := make([]*raftpb.MsgProto, len(c.msgs))
		for i := range c.msgs {
			m := &c.msgs[i]
			msgs[i] = &raftpb.MsgProto{Sequence: m.Seq, Timestamp: m.Time, Reply: m.Reply, Data: m.Data}
		}
		return &raftpb.Op{Op: &raftpb.Op_PublishBatch{PublishBatch: &raftpb.PublishBatch{
			Channel: c.channel, ChannelID: c.chanID, Msgs: msgs}}}, nil
	case *cmdSubscribe:
		return &raftpb.Op{Op: &raftpb.Op_Subscribe{Subscribe: &raftpb.Subscribe{
			Channel: c.channel, ChannelID: c.chanID, State: subStatePB(&c.state)}}}, nil
	case *cmdUpdateSub:
		return &raftpb.Op{Op: &raftpb.Op_UpdateSub{UpdateSub: &raftpb.UpdateSub{
			Channel: c.channel, ChannelID: c.chanID, State: subStatePB(&c.state)}}}, nil
	case *cmdDeleteSub:
		return &raftpb.Op{Op: &raftpb.Op_DeleteSub{DeleteSub: &raftpb.DeleteSub{
			Channel: c.channel, ChannelID: c.chanID, SubID: c.id}}}, nil
	case *cmdSentAck:
		sa := &raftpb.SentAndAck{Channel: c.channel, ChannelID: c.chanID,
			SubIDs: make([]uint64, len(c.events)), Seqs: make([]uint64, len(c.events)), Acked: make([]bool, len(c.events))}
		for i, e := range c.events {
			sa.SubIDs[i], sa.Seqs[i], sa.Acked[i] = e.SubID, e.Seq, e.Acked
		}
		return &raftpb.Op{Op: &raftpb.Op_SentAndAck{SentAndAck: sa}}, nil
	case *cmdExpire:
		return &raftpb.Op{Op: &raftpb.Op_Expire{Expire: &raftpb.Expire{
			Channel: c.channel, ChannelID: c.chanID, Now: c.now, Last: c.last}}}, nil
	case *cmdDeleteChannel:
		return &raftpb.Op{Op: &raftpb.Op_DeleteChannel{DeleteChannel: &raftpb.DeleteChannel{
			Channel: c.channel, ChannelID: c.chanID}}}, nil
	case *cmdSetLimits:
		// Ignorable: a node of an older version keeps its configured limits, as it did.
		return &raftpb.Op{Op: &raftpb.Op_SetLimits{SetLimits: limitsSetPB(c.limits)}, Ignorable: true}, nil
	}
	return nil, fmt.Errorf("%w: %T", errUnknownCommand, v)
}

// Decode implements raftlog.StateMachine: an encoded op back into its command. An op this
// version does not know stops the log (state must not diverge) unless its proposer marked
// it ignorable; a malformed one stops it too.
func (m *stateMachine) Decode(data []byte) (raftlog.Command, error) {
	// The hot path's two commands first (pubcodec.go, ackcodec.go).
	m.mu.Lock()
	var v any
	if c, ok := decodePublish(data, &m.pubs, m.chans); ok {
		v = c
	} else if c, ok := decodeSentAck(data, m.chans); ok {
		v = c
	}
	m.mu.Unlock()
	if v != nil {
		return raftlog.Command{Data: data, Value: v}, nil
	}
	var op raftpb.Op
	if err := proto.Unmarshal(data, &op); err != nil {
		return raftlog.Command{}, fmt.Errorf("%w: %v", raftlog.ErrUnknownOp, err)
	}
	v, err := opCommand(&op)
	if err != nil {
		return raftlog.Command{}, err
	}
	return raftlog.Command{Data: data, Value: v}, nil
}

func opCommand(op *raftpb.Op) (any, error) {
	switch o := op.Op.(type) {
	case *raftpb.Op_ClientConnect:
		if o.ClientConnect.Info == nil {
			break
		}
		return &cmdConnect{info: clientInfo(o.ClientConnect.Info)}, nil
	case *raftpb.Op_ClientDisconnect:
		return &cmdDisconnect{clientID: o.ClientDisconnect.ClientID}, nil
	case *raftpb.Op_CreateChannel:
		return &cmdCreateChannel{name: o.CreateChannel.Channel, id: o.CreateChannel.ChannelID}, nil
	case *raftpb.Op_PublishBatch:
		p := o.PublishBatch
		msgs := make([]stores.Msg, len(p.Msgs))
		for i, m := range p.Msgs {
			msgs[i] = stores.Msg{Seq: m.Sequence, Time: m.Timestamp, Reply: m.Reply, Data: m.Data}
		}
		return &cmdPublish{chanRef: chanRef{p.Channel, p.ChannelID}, msgs: msgs}, nil
	case *raftpb.Op_Subscribe:
		if o.Subscribe.State == nil {
			break
		}
		return &cmdSubscribe{chanRef: chanRef{o.Subscribe.Channel, o.Subscribe.ChannelID}, state: storeSubState(o.Subscribe.State)}, nil
	case *raftpb.Op_UpdateSub:
		if o.UpdateSub.State == nil {
			break
		}
		return &cmdUpdateSub{chanRef: chanRef{o.UpdateSub.Channel, o.UpdateSub.ChannelID}, state: storeSubState(o.UpdateSub.State)}, nil
	case *raftpb.Op_DeleteSub:
		d := o.DeleteSub
		return &cmdDeleteSub{chanRef: chanRef{d.Channel, d.ChannelID}, id: d.SubID}, nil
	case *raftpb.Op_SentAndAck:
		sa := o.SentAndAck
		if len(sa.Seqs) != len(sa.SubIDs) || len(sa.Acked) != len(sa.SubIDs) {
			break
		}
		events := make([]stores.SubEvent, len(sa.SubIDs))
		for i := range events {
			events[i] = stores.SubEvent{SubID: sa.SubIDs[i], Seq: sa.Seqs[i], Acked: sa.Acked[i]}
		}
		return &cmdSentAck{chanRef: chanRef{sa.Channel, sa.ChannelID}, events: events}, nil
	case *raftpb.Op_Expire:
		e := o.Expire
		return &cmdExpire{chanRef: chanRef{e.Channel, e.ChannelID}, now: e.Now, last: e.Last}, nil
	case *raftpb.Op_DeleteChannel:
		d := o.DeleteChannel
		return &cmdDeleteChannel{chanRef{d.Channel, d.ChannelID}}, nil
	case *raftpb.Op_SetLimits:
		ls, err := limitsSet(o.SetLimits)
		if err != nil {
			return nil, fmt.Errorf("%w: %v", raftlog.ErrUnknownOp, err)
		}
		return &cmdSetLimits{limits: ls}, nil
	case nil:
		if op.Ignorable {
			return nil, fmt.Errorf("%w: an op of a newer version", raftlog.ErrIgnorableOp)
		}
		return nil, fmt.Errorf("%w: an op of a newer version", raftlog.ErrUnknownOp)
	}
	return nil, fmt.Errorf("%w: malformed %T", raftlog.ErrUnknownOp, op.Op)
}

func clientInfoPB(c *stores.ClientInfo) *raftpb.ClientInfo {
	return &raftpb.ClientInfo{ID: c.ID, HbInbox: c.HbInbox, ConnID: c.ConnID, Protocol: c.Protocol,
		PingInterval: c.PingInterval, PingMaxOut: c.PingMaxOut, User: c.User}
}

func clientInfo(c *raftpb.ClientInfo) stores.ClientInfo {
	return stores.ClientInfo{ID: c.ID, HbInbox: c.HbInbox, ConnID: c.ConnID, Protocol: c.Protocol,
		PingInterval: c.PingInterval, PingMaxOut: c.PingMaxOut, User: c.User}
}

func subStatePB(s *stores.SubState) *raftpb.SubState {
	return &raftpb.SubState{ID: s.ID, ClientID: s.ClientID, QGroup: s.QGroup, Inbox: s.Inbox, AckInbox: s.AckInbox,
		DurableName: s.DurableName, MaxInFlight: s.MaxInFlight, AckWaitInSecs: s.AckWaitSecs, LastSent: s.LastSent,
		IsDurable: s.IsDurable, IsClosed: s.IsClosed, User: s.User}
}

func storeSubState(s *raftpb.SubState) stores.SubState {
	return stores.SubState{ID: s.ID, ClientID: s.ClientID, QGroup: s.QGroup, Inbox: s.Inbox, AckInbox: s.AckInbox,
		DurableName: s.DurableName, MaxInFlight: s.MaxInFlight, AckWaitSecs: s.AckWaitInSecs, LastSent: s.LastSent,
		IsDurable: s.IsDurable, IsClosed: s.IsClosed, User: s.User}
}
