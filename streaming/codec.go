package streaming

import (
	"errors"

	"google.golang.org/protobuf/encoding/protowire"
)

// Hand-written codecs for the four messages on the per-message path (PubMsg in, PubAck
// and MsgProto out, Ack in). They read in place — every field is a sub-slice of the
// request, which the engine owns — and append into reused buffers, so the hot path does
// not allocate; proto.Marshal/Unmarshal stay for everything else. Field numbers are
// proto/stanpb's, whose compatibility with stan.go is tested there; codec_test.go checks
// these against stanpb byte for byte.

var errMalformed = errors.New("streaming: malformed protobuf")

// pubMsgView is a PubMsg whose fields alias the encoded bytes.
type pubMsgView struct {
	clientID, guid, subject, reply, data, connID []byte
}

func decodePubMsg(b []byte, m *pubMsgView) error {
	*m = pubMsgView{}
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return errMalformed
		}
		b = b[n:]
		if typ == protowire.BytesType && num >= 1 && num <= 6 {
			v, n := protowire.ConsumeBytes(b)
			if n < 0 {
				return errMalformed
			}
			b = b[n:]
			switch num {
			case 1:
				m.clientID = v
			case 2:
				m.guid = v
			case 3:
				m.subject = v
			case 4:
				m.reply = v
			case 5:
				m.data = v
			case 6:
				m.connID = v
			}
			continue
		}
		n = protowire.ConsumeFieldValue(num, typ, b)
		if n < 0 {
			return errMalformed
		}
		b = b[n:]
	}
	return nil
}

// decodeAck reads Ack{subject=1, sequence=2}.
func decodeAck(b []byte) (subject []byte, seq uint64, err error) {
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return nil, 0, errMalformed
		}
		b = b[n:]
		switch {
		case num == 1 && typ == protowire.BytesType:
			subject, n = protowire.ConsumeBytes(b)
		case num == 2 && typ == protowire.VarintType:
			seq, n = protowire.ConsumeVarint(b)
		default:
			n = protowire.ConsumeFieldValue(num, typ, b)
		}
		if n < 0 {
			return nil, 0, errMalformed
		}
		b = b[n:]
	}
	return subject, seq, nil
}

// appendPubAck encodes PubAck{guid=1, error=2}.
func appendPubAck(dst, guid []byte, errText string) []byte {
	if len(guid) > 0 {
		dst = protowire.AppendTag(dst, 1, protowire.BytesType)
		dst = protowire.AppendBytes(dst, guid)
	}
	if errText != "" {
		dst = protowire.AppendTag(dst, 2, protowire.BytesType)
		dst = protowire.AppendString(dst, errText)
	}
	return dst
}

// appendMsgProto encodes MsgProto{sequence=1, subject=2, reply=3, data=4, timestamp=5,
// redelivered=6, redeliveryCount=7}, zero fields omitted as proto3 does.
func appendMsgProto(dst []byte, seq uint64, subject, reply string, data []byte, ts int64, redelivered bool, count uint32) []byte {
	if seq != 0 {
		dst = protowire.AppendTag(dst, 1, protowire.VarintType)
		dst = protowire.AppendVarint(dst, seq)
	}
	if subject != "" {
		dst = protowire.AppendTag(dst, 2, protowire.BytesType)
		dst = protowire.AppendString(dst, subject)
	}
	if reply != "" {
		dst = protowire.AppendTag(dst, 3, protowire.BytesType)
		dst = protowire.AppendString(dst, reply)
	}
	if len(data) > 0 {
		dst = protowire.AppendTag(dst, 4, protowire.BytesType)
		dst = protowire.AppendBytes(dst, data)
	}
	if ts != 0 {
		dst = protowire.AppendTag(dst, 5, protowire.VarintType)
		dst = protowire.AppendVarint(dst, uint64(ts))
	}
	if redelivered {
		dst = protowire.AppendTag(dst, 6, protowire.VarintType)
		dst = protowire.AppendVarint(dst, 1)
	}
	if count != 0 {
		dst = protowire.AppendTag(dst, 7, protowire.VarintType)
		dst = protowire.AppendVarint(dst, uint64(count))
	}
	return dst
}

// msgProtoMax is the largest encoding appendMsgProto can produce for a message of this
// channel, reply and data: a 10-byte sequence and timestamp, the redelivered flag and a
// 5-byte redelivery count.
func msgProtoMax(subject, reply, data int) int {
	n := 1 + 10 + 1 + 10 + 1 + 1 + 1 + 5 // tags and varints of sequence, timestamp, flag, count
	for _, l := range [...]int{subject, reply, data} {
		n += 1 + protowire.SizeVarint(uint64(l)) + l
	}
	return n
}
