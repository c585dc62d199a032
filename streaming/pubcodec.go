package streaming

import (
	"slices"

	"google.golang.org/protobuf/encoding/protowire"

	"github.com/starling-io/starling/stores"
)

// The publish batch is the one command of the hot path: every replica encodes or decodes
// one per channel per engine iteration. It is written and read here with protowire, field by
// field, to the same bytes proto.Marshal writes for the raftpb.Op (TestPublishCodecMatchesProto):
// one allocation per batch each way instead of one message object per published message, and
// the decoded messages' data aliases the entry instead of being copied (the store copies it
// when it appends).

// Field numbers of raftpb.Op.publishBatch, raftpb.PublishBatch and raftpb.MsgProto.
const (
	opPublishBatchField = 1
	pbChannelField      = 1
	pbChannelIDField    = 2
	pbMsgsField         = 3
	msgSeqField         = 1
	msgReplyField       = 3
	msgDataField        = 4
	msgTimeField        = 5
)

// msgSize is the encoded size of m as a raftpb.MsgProto.
func msgSize(m *stores.Msg) int {
	n := 0
	if m.Seq != 0 {
		n += 1 + protowire.SizeVarint(m.Seq)
	}
	if m.Reply != "" {
		n += 1 + protowire.SizeBytes(len(m.Reply))
	}
	if len(m.Data) > 0 {
		n += 1 + protowire.SizeBytes(len(m.Data))
	}
	if m.Time != 0 {
		n += 1 + protowire.SizeVarint(uint64(m.Time))
	}
	return n
}

// pubArena is where decodePublish puts the commands it decodes and their messages. A
// decoded command lives only until its Apply (raftlog.StateMachine), so once Apply has run
// the next decode starts over on the same memory: a follower decodes every batch into
// memory that is already warm, where allocating a fresh message slice per batch cost 7 %
// of its CPU (first writes to new memory).
type pubArena struct {
	cmds  []cmdPublish
	msgs  []stores.Msg
	stale bool // Apply ran since the last decode: start over
}

// command returns an empty command whose msgs has room for n messages.
func (a *pubArena) command(n int) *cmdPublish {
	if a == nil {
		return &cmdPublish{msgs: make([]stores.Msg, 0, n)}
	}
	if a.stale {
		clear(a.cmds) // drop the old entries' references
		clear(a.msgs)
		a.cmds, a.msgs, a.stale = a.cmds[:0], a.msgs[:0], false
	}
	// Growing moves later commands to a new array; the ones already handed out keep theirs.
	a.cmds = append(a.cmds, cmdPublish{})
	c := &a.cmds[len(a.cmds)-1]
	start := len(a.msgs)
	a.msgs = slices.Grow(a.msgs, n)[:start+n]
	c.msgs = a.msgs[start : start : start+n]
	return c
}

// refSize is the encoded size of a command's channel name and ID (one-byte tags; proto3
// writes each only when set).
func refSize(r *chanRef) int {
	n := 0
	if r.channel != "" {
		n += 1 + protowire.SizeBytes(len(r.channel))
	}
	if r.chanID != 0 {
		n += 1 + protowire.SizeVarint(r.chanID)
	}
	return n
}

// appendOp appends the op's tag and body length, then the channel name and ID as fields
// nameField and idField: the start of the hand-written commands.
func appendOp(b []byte, opField protowire.Number, size int, r *chanRef, nameField, idField protowire.Number) []byte {
	b = slices.Grow(b, 1+protowire.SizeBytes(size))
	b = protowire.AppendTag(b, opField, protowire.BytesType)
	b = protowire.AppendVarint(b, uint64(size))
	if r.channel != "" {
		b = protowire.AppendTag(b, nameField, protowire.BytesType)
		b = protowire.AppendString(b, r.channel)
	}
	if r.chanID != 0 {
		b = protowire.AppendTag(b, idField, protowire.VarintType)
		b = protowire.AppendVarint(b, r.chanID)
	}
	return b
}

// channelName is a decoded channel name: a known channel's own string, else a copy.
func channelName(names map[string]*stores.Channel, name []byte) string {
	if ch := names[string(name)]; ch != nil {
		return ch.Name
	}
	return string(name)
}

// encodePublish returns c as an encoded raftpb.Op{PublishBatch}.
func encodePublish(c *cmdPublish) []byte { return appendPublish(nil, c, publishBody(c)) }

// publishBody is the size of c's encoded PublishBatch; the whole op adds its tag and length
// (publishSize).
func publishBody(c *cmdPublish) int {
	batch := refSize(&c.chanRef)
	for i := range c.msgs {
		batch += 1 + protowire.SizeBytes(msgSize(&c.msgs[i]))
	}
	return batch
}

// publishSize is the size of the op appendPublish writes for a body of that size.
func publishSize(body int) int { return 1 + protowire.SizeBytes(body) }

// appendPublish appends c, encoded as a raftpb.Op{PublishBatch} whose body is batch bytes
// long (publishBody), to b.
func appendPublish(b []byte, c *cmdPublish, batch int) []byte {
	b = appendOp(b, opPublishBatchField, batch, &c.chanRef, pbChannelField, pbChannelIDField)
	for i := range c.msgs {
		m := &c.msgs[i]
		b = protowire.AppendTag(b, pbMsgsField, protowire.BytesType)
		b = protowire.AppendVarint(b, uint64(msgSize(m)))
		if m.Seq != 0 {
			b = protowire.AppendTag(b, msgSeqField, protowire.VarintType)
			b = protowire.AppendVarint(b, m.Seq)
		}
		if m.Reply != "" {
			b = protowire.AppendTag(b, msgReplyField, protowire.BytesType)
			b = protowire.AppendString(b, m.Reply)
		}
		if len(m.Data) > 0 {
			b = protowire.AppendTag(b, msgDataField, protowire.BytesType)
			b = protowire.AppendBytes(b, m.Data)
		}
		if m.Time != 0 {
			b = protowire.AppendTag(b, msgTimeField, protowire.VarintType)
			b = protowire.AppendVarint(b, uint64(m.Time))
		}
	}
	return b
}

// decodePublish reads an encoded op that is exactly a publish batch (the form encodePublish
// writes, with any other MsgProto fields skipped). ok is false for anything else — another
// op, the ignorable flag, an unknown field of the batch, a malformed encoding — which then
// takes the general path.
func decodePublish(data []byte, a *pubArena, names map[string]*stores.Channel) (c *cmdPublish, ok bool) {
	num, typ, n := protowire.ConsumeTag(data)
	if n < 0 || num != opPublishBatchField || typ != protowire.BytesType {
		return nil, false
	}
	batch, m := protowire.ConsumeBytes(data[n:])
	if m < 0 || n+m != len(data) {
		return nil, false
	}
	var channel []byte
	var chanID uint64
	count := 0
	for b := batch; len(b) > 0; { // first pass: the fields, and how many messages
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return nil, false
		}
		b = b[n:]
		switch {
		case num == pbChannelField && typ == protowire.BytesType:
			v, n := protowire.ConsumeBytes(b)
			if n < 0 {
				return nil, false
			}
			channel, b = v, b[n:]
		case num == pbChannelIDField && typ == protowire.VarintType:
			v, n := protowire.ConsumeVarint(b)
			if n < 0 {
				return nil, false
			}
			chanID, b = v, b[n:]
		case num == pbMsgsField && typ == protowire.BytesType:
			_, n := protowire.ConsumeBytes(b)
			if n < 0 {
				return nil, false
			}
			count, b = count+1, b[n:]
		default:
			return nil, false
		}
	}
	c = a.command(count)
	c.chanID, c.channel = chanID, channelName(names, channel)
	for b := batch; len(b) > 0; { // second pass: the messages (the first checked the framing)
		num, typ, n := protowire.ConsumeTag(b)
		b = b[n:]
		n = protowire.ConsumeFieldValue(num, typ, b)
		if num == pbMsgsField {
			v, _ := protowire.ConsumeBytes(b)
			msg, ok := decodeMsg(v)
			if !ok {
				return nil, false
			}
			c.msgs = append(c.msgs, msg)
		}
		b = b[n:]
	}
	return c, true
}

// decodeMsg reads a raftpb.MsgProto; Data aliases b.
func decodeMsg(b []byte) (stores.Msg, bool) {
	var m stores.Msg
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return m, false
		}
		b = b[n:]
		switch {
		case num == msgSeqField && typ == protowire.VarintType:
			v, n := protowire.ConsumeVarint(b)
			if n < 0 {
				return m, false
			}
			m.Seq, b = v, b[n:]
		case num == msgReplyField && typ == protowire.BytesType:
			v, n := protowire.ConsumeBytes(b)
			if n < 0 {
				return m, false
			}
			m.Reply, b = string(v), b[n:]
		case num == msgDataField && typ == protowire.BytesType:
			v, n := protowire.ConsumeBytes(b)
			if n < 0 {
				return m, false
			}
			if len(v) > 0 { // an empty field reads as no data, as it is written
				m.Data = v
			}
			b = b[n:]
		case num == msgTimeField && typ == protowire.VarintType:
			v, n := protowire.ConsumeVarint(b)
			if n < 0 {
				return m, false
			}
			m.Time, b = int64(v), b[n:]
		default: // a field the store does not keep (subject, flags): skipped, as Unmarshal would
			n := protowire.ConsumeFieldValue(num, typ, b)
			if n < 0 {
				return m, false
			}
			b = b[n:]
		}
	}
	return m, true
}
