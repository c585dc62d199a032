package streaming

import (
	"google.golang.org/protobuf/encoding/protowire"

	"github.com/starling-io/starling/stores"
)

// The sent-and-ack command is the hot path's other command: with subscribers, a proposal
// carries one per channel, an event per message sent and per ack. Like the publish batch
// (pubcodec.go) it is written and read here field by field, to the bytes proto.Marshal
// writes for the raftpb.Op (TestSentAckCodecMatchesProto), without proto's intermediate
// objects; anything else the reader meets (another field, unpacked lists, the ignorable
// flag) takes the general path.

// Field numbers of raftpb.Op.sentAndAck and raftpb.SentAndAck.
const (
	opSentAndAckField = 6
	saChannelField    = 1
	saChannelIDField  = 5
	saSubIDsField     = 6
	saSeqsField       = 7
	saAckedField      = 8
)

// appendSentAck appends c, encoded as a raftpb.Op{SentAndAck}, to b.
func appendSentAck(b []byte, c *cmdSentAck) []byte {
	ids, seqs := 0, 0
	for i := range c.events {
		ids += protowire.SizeVarint(c.events[i].SubID)
		seqs += protowire.SizeVarint(c.events[i].Seq)
	}
	n := len(c.events)
	size := refSize(&c.chanRef)
	if n > 0 {
		size += 3 + protowire.SizeBytes(ids) + protowire.SizeBytes(seqs) + protowire.SizeBytes(n)
	}
	b = appendOp(b, opSentAndAckField, size, &c.chanRef, saChannelField, saChannelIDField)
	if n == 0 {
		return b
	}
	b = protowire.AppendTag(b, saSubIDsField, protowire.BytesType)
	b = protowire.AppendVarint(b, uint64(ids))
	for i := range c.events {
		b = protowire.AppendVarint(b, c.events[i].SubID)
	}
	b = protowire.AppendTag(b, saSeqsField, protowire.BytesType)
	b = protowire.AppendVarint(b, uint64(seqs))
	for i := range c.events {
		b = protowire.AppendVarint(b, c.events[i].Seq)
	}
	b = protowire.AppendTag(b, saAckedField, protowire.BytesType)
	b = protowire.AppendVarint(b, uint64(n))
	for i := range c.events {
		b = protowire.AppendVarint(b, protowire.EncodeBool(c.events[i].Acked))
	}
	return b
}

// decodeSentAck reads what appendSentAck writes; a known channel's name (names) is taken
// without a copy. ok is false for anything else, which then takes the general path.
func decodeSentAck(data []byte, names map[string]*stores.Channel) (c *cmdSentAck, ok bool) {
	num, typ, n := protowire.ConsumeTag(data)
	if n < 0 || num != opSentAndAckField || typ != protowire.BytesType {
		return nil, false
	}
	body, m := protowire.ConsumeBytes(data[n:])
	if m < 0 || n+m != len(data) {
		return nil, false
	}
	var channel, ids, seqs, acked []byte
	var chanID uint64
	var seen [saAckedField + 1]bool
	for b := body; len(b) > 0; {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 || num > saAckedField || seen[num] {
			return nil, false
		}
		seen[num] = true
		b = b[n:]
		switch {
		case num == saChannelIDField && typ == protowire.VarintType:
			v, n := protowire.ConsumeVarint(b)
			if n < 0 {
				return nil, false
			}
			chanID, b = v, b[n:]
		case typ == protowire.BytesType && (num == saChannelField || num >= saSubIDsField):
			v, n := protowire.ConsumeBytes(b)
			if n < 0 {
				return nil, false
			}
			switch num {
			case saChannelField:
				channel = v
			case saSubIDsField:
				ids = v
			case saSeqsField:
				seqs = v
			default:
				acked = v
			}
			b = b[n:]
		default:
			return nil, false
		}
	}
	count := len(acked) // one byte per bool as appendSentAck writes it
	events := make([]stores.SubEvent, count)
	for i := range events {
		id, n := protowire.ConsumeVarint(ids)
		seq, k := protowire.ConsumeVarint(seqs)
		if n < 0 || k < 0 || acked[i] > 1 {
			return nil, false
		}
		events[i] = stores.SubEvent{SubID: id, Seq: seq, Acked: acked[i] == 1}
		ids, seqs = ids[n:], seqs[k:]
	}
	if len(ids) != 0 || len(seqs) != 0 {
		return nil, false // the lists' lengths differ
	}
	return &cmdSentAck{chanRef: chanRef{channelName(names, channel), chanID}, events: events}, true
}
