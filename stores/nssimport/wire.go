package nssimport

import (
	"fmt"

	"google.golang.org/protobuf/encoding/protowire"
)

// The protobuf payloads nss stores, decoded by field number (proto3; nats-streaming-server
// v0.25 spb/protocol.proto and stan.go pb/protocol.proto): unknown fields are skipped, the
// last occurrence of a field wins, and a known field with the wrong wire type is an error.

// nssMsg is a pb.MsgProto: 1 sequence, 2 subject, 3 reply, 4 data, 5 timestamp (the rest,
// redelivery flags and an optional CRC, is not stored state). Reply and Data alias the
// record's payload.
type nssMsg struct {
	Seq     uint64
	Subject []byte
	Reply   []byte
	Data    []byte
	Time    int64
}

// nssSub is an spb.SubState.
type nssSub struct {
	ID          uint64 // 1
	ClientID    string // 2
	QGroup      string // 3
	Inbox       string // 4
	AckInbox    string // 5
	MaxInFlight int32  // 6
	AckWaitSecs int32  // 7
	DurableName string // 8
	LastSent    uint64 // 9
	IsDurable   bool   // 10
	IsClosed    bool   // 11
}

// nssClient is an spb.ClientInfo: 1 ID, 2 HbInbox, 3 ConnID, 4 Protocol, 5 PingInterval,
// 6 PingMaxOut.
type nssClient struct {
	ID           string
	HbInbox      string
	ConnID       []byte
	Protocol     int32
	PingInterval int32
	PingMaxOut   int32
}

// nssServerInfo is an spb.ServerInfo: fields 1 to 9, all strings.
type nssServerInfo struct {
	ClusterID, Discovery, Publish, Subscribe, Unsubscribe, Close, SubClose, AcksSubs, NodeID string
}

// field is one decoded field: v for varints, b for length-delimited values.
type field struct {
	num protowire.Number
	typ protowire.Type
	v   uint64
	b   []byte
}

// eachField calls fn for every field of a message, in order.
func eachField(msg []byte, fn func(f field) error) error {
	for len(msg) > 0 {
		num, typ, n := protowire.ConsumeTag(msg)
		if n < 0 {
			return fmt.Errorf("bad field tag: %w", protowire.ParseError(n))
		}
		msg = msg[n:]
		f := field{num: num, typ: typ}
		switch typ {
		case protowire.VarintType:
			f.v, n = protowire.ConsumeVarint(msg)
		case protowire.BytesType:
			f.b, n = protowire.ConsumeBytes(msg)
		default:
			n = protowire.ConsumeFieldValue(num, typ, msg)
		}
		if n < 0 {
			return fmt.Errorf("field %d: %w", num, protowire.ParseError(n))
		}
		msg = msg[n:]
		if err := fn(f); err != nil {
			return err
		}
	}
	return nil
}

// want checks a known field's wire type.
func (f field) want(t protowire.Type) error {
	if f.typ != t {
		return fmt.Errorf("field %d has wire type %d, want %d", f.num, f.typ, t)
	}
	return nil
}

func (f field) str(dst *string) error {
	if err := f.want(protowire.BytesType); err != nil {
		return err
	}
	*dst = string(f.b)
	return nil
}

func (f field) uint(dst *uint64) error {
	if err := f.want(protowire.VarintType); err != nil {
		return err
	}
	*dst = f.v
	return nil
}

func (f field) int32(dst *int32) error {
	if err := f.want(protowire.VarintType); err != nil {
		return err
	}
	*dst = int32(f.v)
	return nil
}

func (f field) bool(dst *bool) error {
	if err := f.want(protowire.VarintType); err != nil {
		return err
	}
	*dst = f.v != 0
	return nil
}

// decodeMsg decodes a MsgProto into m (slices alias b).
func decodeMsg(b []byte, m *nssMsg) error {
	*m = nssMsg{}
	return eachField(b, func(f field) error {
		switch f.num {
		case 1:
			return f.uint(&m.Seq)
		case 2, 3, 4:
			if err := f.want(protowire.BytesType); err != nil {
				return err
			}
			switch f.num {
			case 2:
				m.Subject = f.b
			case 3:
				m.Reply = f.b
			default:
				m.Data = f.b
			}
		case 5:
			if err := f.want(protowire.VarintType); err != nil {
				return err
			}
			m.Time = int64(f.v)
		}
		return nil
	})
}

// decodeSub decodes a SubState.
func decodeSub(b []byte) (nssSub, error) {
	var s nssSub
	err := eachField(b, func(f field) error {
		switch f.num {
		case 1:
			return f.uint(&s.ID)
		case 2:
			return f.str(&s.ClientID)
		case 3:
			return f.str(&s.QGroup)
		case 4:
			return f.str(&s.Inbox)
		case 5:
			return f.str(&s.AckInbox)
		case 6:
			return f.int32(&s.MaxInFlight)
		case 7:
			return f.int32(&s.AckWaitSecs)
		case 8:
			return f.str(&s.DurableName)
		case 9:
			return f.uint(&s.LastSent)
		case 10:
			return f.bool(&s.IsDurable)
		case 11:
			return f.bool(&s.IsClosed)
		}
		return nil
	})
	return s, err
}

// decodeIDSeq decodes a SubStateUpdate (1 ID, 2 seqno) or a SubStateDelete (1 ID).
func decodeIDSeq(b []byte) (id, seq uint64, err error) {
	err = eachField(b, func(f field) error {
		switch f.num {
		case 1:
			return f.uint(&id)
		case 2:
			return f.uint(&seq)
		}
		return nil
	})
	return id, seq, err
}

// decodeClient decodes a ClientInfo.
func decodeClient(b []byte) (nssClient, error) {
	var c nssClient
	err := eachField(b, func(f field) error {
		switch f.num {
		case 1:
			return f.str(&c.ID)
		case 2:
			return f.str(&c.HbInbox)
		case 3:
			if err := f.want(protowire.BytesType); err != nil {
				return err
			}
			c.ConnID = append([]byte(nil), f.b...)
		case 4:
			return f.int32(&c.Protocol)
		case 5:
			return f.int32(&c.PingInterval)
		case 6:
			return f.int32(&c.PingMaxOut)
		}
		return nil
	})
	return c, err
}

// decodeClientDelete decodes a ClientDelete (1 ID).
func decodeClientDelete(b []byte) (string, error) {
	var id string
	err := eachField(b, func(f field) error {
		if f.num == 1 {
			return f.str(&id)
		}
		return nil
	})
	return id, err
}

// decodeServerInfo decodes a ServerInfo.
func decodeServerInfo(b []byte) (nssServerInfo, error) {
	var i nssServerInfo
	dst := []*string{&i.ClusterID, &i.Discovery, &i.Publish, &i.Subscribe, &i.Unsubscribe, &i.Close,
		&i.SubClose, &i.AcksSubs, &i.NodeID}
	err := eachField(b, func(f field) error {
		if f.num >= 1 && int(f.num) <= len(dst) {
			return f.str(dst[f.num-1])
		}
		return nil
	})
	return i, err
}
