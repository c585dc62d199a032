package stanpb_test

import (
	"bytes"
	"fmt"
	"testing"

	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"

	"github.com/starling-io/starling/proto/stanpb"
)

// cat concatenates byte slices: golden encodings are written field by field.
func cat(parts ...[]byte) []byte { return bytes.Join(parts, nil) }

// str is a length-delimited payload: its length as a one-byte varint, then the bytes.
func str(s string) []byte { return append([]byte{byte(len(s))}, s...) }

// TestGoldenEncodings pins encodings written out by hand from the protobuf wire format: tag byte =
// field<<3 | wire type (0 varint, 1 fixed64, 2 length-delimited, 5 fixed32).
func TestGoldenEncodings(t *testing.T) {
	guid := "3sRLxKbfJnl1n5Of5Sw5Xm" // 22 chars, like a NUID
	cases := []struct {
		name string
		msg  proto.Message
		want []byte
	}{
		{"PubAck guid only", &stanpb.PubAck{Guid: guid}, cat([]byte{0x0a}, str(guid))},
		{"PubAck with error", &stanpb.PubAck{Guid: "g", Error: "stan: invalid publish request"},
			cat([]byte{0x0a}, str("g"), []byte{0x12}, str("stan: invalid publish request"))},
		{"CloseResponse ok", &stanpb.CloseResponse{}, nil},
		{"PingResponse ok", &stanpb.PingResponse{}, nil},
		{"SubscriptionResponse unsubscribe ok", &stanpb.SubscriptionResponse{}, nil},
		{"SubscriptionResponse ackInbox is field 2", &stanpb.SubscriptionResponse{AckInbox: "_INBOX.a"},
			cat([]byte{0x12}, str("_INBOX.a"))},
		{"CloseRequest", &stanpb.CloseRequest{ClientID: "c1"}, cat([]byte{0x0a}, str("c1"))},
		{"Ack", &stanpb.Ack{Subject: "foo", Sequence: 1}, cat([]byte{0x0a}, str("foo"), []byte{0x10, 0x01})},
		{"MsgProto every field", &stanpb.MsgProto{
			Sequence:        300,
			Subject:         "foo",
			Reply:           "r",
			Data:            []byte("m1"),
			Timestamp:       1,
			Redelivered:     true,
			RedeliveryCount: 2,
			CRC32:           7,
		}, cat(
			[]byte{0x08, 0xac, 0x02}, // 1 sequence varint 300
			[]byte{0x12}, str("foo"), // 2 subject
			[]byte{0x1a}, str("r"), // 3 reply
			[]byte{0x22}, str("m1"), // 4 data
			[]byte{0x28, 0x01}, // 5 timestamp varint
			[]byte{0x30, 0x01}, // 6 redelivered varint
			[]byte{0x38, 0x02}, // 7 redeliveryCount varint
			[]byte{0x50, 0x07}, // 10 CRC32 varint
		)},
		{"MsgProto redelivered=false omitted", &stanpb.MsgProto{Sequence: 1, Subject: "foo"},
			cat([]byte{0x08, 0x01, 0x12}, str("foo"))},
		{"SubscriptionRequest First", &stanpb.SubscriptionRequest{StartPosition: stanpb.StartPosition_First},
			[]byte{0x50, 0x04}},
		{"SubscriptionRequest start fields", &stanpb.SubscriptionRequest{
			MaxInFlight:    1024,
			AckWaitInSecs:  30,
			StartPosition:  stanpb.StartPosition_SequenceStart,
			StartSequence:  5,
			StartTimeDelta: -1,
		}, cat(
			[]byte{0x28, 0x80, 0x08}, // 5 maxInFlight 1024
			[]byte{0x30, 0x1e},       // 6 ackWaitInSecs 30
			[]byte{0x50, 0x03},       // 10 startPosition
			[]byte{0x58, 0x05},       // 11 startSequence
			// 12 startTimeDelta: int64, not zigzag, so -1 is a ten-byte varint
			[]byte{0x60, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01},
		)},
		{"ConnectRequest", &stanpb.ConnectRequest{
			ClientID: "c1", HeartbeatInbox: "_INBOX.hb", Protocol: 1, ConnID: []byte{0, 1},
			PingInterval: 5, PingMaxOut: 88,
		}, cat(
			[]byte{0x0a}, str("c1"), []byte{0x12}, str("_INBOX.hb"), []byte{0x18, 0x01},
			[]byte{0x22, 0x02, 0x00, 0x01}, []byte{0x28, 0x05}, []byte{0x30, 0x58},
		)},
		{"ConnectResponse publicKey is field 100", &stanpb.ConnectResponse{Protocol: 1, PublicKey: "k"},
			cat([]byte{0x50, 0x01}, []byte{0xa2, 0x06}, str("k"))},
		{"PubMsg sha256 is field 10", &stanpb.PubMsg{Guid: "g", Subject: "foo", Data: []byte{9}, ConnID: []byte("c"), Sha256: []byte{1}},
			cat([]byte{0x12}, str("g"), []byte{0x1a}, str("foo"), []byte{0x2a, 0x01, 0x09}, []byte{0x32}, str("c"), []byte{0x52, 0x01, 0x01})},
		{"Ping", &stanpb.Ping{ConnID: []byte("x")}, cat([]byte{0x0a}, str("x"))},
		{"UnsubscribeRequest", &stanpb.UnsubscribeRequest{ClientID: "c", Subject: "s", Inbox: "i", DurableName: "d"},
			cat([]byte{0x0a}, str("c"), []byte{0x12}, str("s"), []byte{0x1a}, str("i"), []byte{0x22}, str("d"))},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, err := proto.Marshal(tc.msg)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, tc.want) {
				t.Fatalf("encoding\n got % x\nwant % x", got, tc.want)
			}
			back := tc.msg.ProtoReflect().New().Interface()
			if err := proto.Unmarshal(tc.want, back); err != nil {
				t.Fatal(err)
			}
			if !proto.Equal(back, tc.msg) {
				t.Fatalf("decoded %v, want %v", back, tc.msg)
			}
		})
	}
}

// TestEmptyPayloadIsDefaults: the reference sends success responses and heartbeats as zero bytes.
func TestEmptyPayloadIsDefaults(t *testing.T) {
	for _, m := range allMessages(t) {
		if err := proto.Unmarshal(nil, m); err != nil {
			t.Errorf("%s: empty payload: %v", m.ProtoReflect().Descriptor().Name(), err)
		}
	}
}

// TestStartPositionValues pins the enum (spec §3.9).
func TestStartPositionValues(t *testing.T) {
	want := map[stanpb.StartPosition]string{
		0: "NewOnly", 1: "LastReceived", 2: "TimeDeltaStart", 3: "SequenceStart", 4: "First",
	}
	vals := stanpb.StartPosition(0).Descriptor().Values()
	if vals.Len() != len(want) {
		t.Fatalf("%d values, want %d", vals.Len(), len(want))
	}
	for v, name := range want {
		if got := v.String(); got != name {
			t.Errorf("StartPosition(%d) = %s, want %s", v, got, name)
		}
	}
}

// TestFullNames: the proto package is "pb", as in the reference.
func TestFullNames(t *testing.T) {
	for _, m := range allMessages(t) {
		name := m.ProtoReflect().Descriptor().FullName()
		if name.Parent() != "pb" {
			t.Errorf("%s: want package pb", name)
		}
	}
}

// TestRoundTripEveryField fills every field of every message with a non-zero value and checks
// encode → decode gives it back.
func TestRoundTripEveryField(t *testing.T) {
	for _, m := range allMessages(t) {
		fill(m.ProtoReflect(), 0)
		b, err := proto.Marshal(m)
		if err != nil {
			t.Fatal(err)
		}
		back := m.ProtoReflect().New().Interface()
		if err := proto.Unmarshal(b, back); err != nil {
			t.Fatal(err)
		}
		if !proto.Equal(back, m) {
			t.Errorf("%s: round trip\n got %v\nwant %v", m.ProtoReflect().Descriptor().Name(), back, m)
		}
	}
}

// TestUnknownFieldsSkipped: a newer peer may add fields of any wire type; decoding skips them.
func TestUnknownFieldsSkipped(t *testing.T) {
	known, _ := proto.Marshal(&stanpb.MsgProto{Sequence: 7, Subject: "foo", Data: []byte("x")})
	var unknown []byte
	unknown = protowire.AppendTag(unknown, 8, protowire.VarintType) // between known numbers
	unknown = protowire.AppendVarint(unknown, 1<<40)
	unknown = protowire.AppendTag(unknown, 99, protowire.Fixed64Type)
	unknown = protowire.AppendFixed64(unknown, 42)
	unknown = protowire.AppendTag(unknown, 100, protowire.BytesType)
	unknown = protowire.AppendBytes(unknown, []byte("some newer field"))
	unknown = protowire.AppendTag(unknown, 101, protowire.Fixed32Type)
	unknown = protowire.AppendFixed32(unknown, 3)
	unknown = protowire.AppendTag(unknown, 102, protowire.StartGroupType)
	unknown = protowire.AppendTag(unknown, 1, protowire.VarintType)
	unknown = protowire.AppendVarint(unknown, 5)
	unknown = protowire.AppendTag(unknown, 102, protowire.EndGroupType)
	// Unknown fields before, between (field 8 sorts inside the known range) and after known ones.
	for _, b := range [][]byte{cat(unknown, known), cat(known, unknown), cat(known[:2], unknown, known[2:])} {
		var m stanpb.MsgProto
		if err := proto.Unmarshal(b, &m); err != nil {
			t.Fatalf("% x: %v", b, err)
		}
		if m.Sequence != 7 || m.Subject != "foo" || string(m.Data) != "x" {
			t.Fatalf("decoded %v", &m)
		}
		var d stanpb.MsgProto
		if err := (proto.UnmarshalOptions{DiscardUnknown: true}).Unmarshal(b, &d); err != nil {
			t.Fatal(err)
		}
		if out, _ := proto.Marshal(&d); !bytes.Equal(out, known) {
			t.Fatalf("with unknown fields discarded, re-encoding gives % x, want % x", out, known)
		}
	}
}

// TestTruncatedInputErrors: malformed client bytes give an error, never a panic.
func TestTruncatedInputErrors(t *testing.T) {
	full, _ := proto.Marshal(&stanpb.PubMsg{ClientID: "c", Guid: "g", Subject: "foo", Data: []byte("data")})
	for i := 1; i < len(full); i++ {
		var m stanpb.PubMsg
		_ = proto.Unmarshal(full[:i], &m) // may or may not be an error; must not panic
	}
	var m stanpb.PubMsg
	if err := proto.Unmarshal(full[:len(full)-1], &m); err == nil {
		t.Fatal("a cut length-delimited field decoded without error")
	}
}

// allMessages returns a new value of every message type in stan.proto.
func allMessages(t *testing.T) []proto.Message {
	t.Helper()
	var out []proto.Message
	msgs := stanpb.File_proto_stanpb_stan_proto.Messages()
	for i := 0; i < msgs.Len(); i++ {
		mt, err := protoregistry.GlobalTypes.FindMessageByName(msgs.Get(i).FullName())
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, mt.New().Interface())
	}
	if len(out) != 13 {
		t.Fatalf("%d message types in stan.proto, want 13", len(out))
	}
	return out
}

// fill sets every field of m to a non-zero value derived from its number and seed; lists get two
// elements. Negative signed values exercise ten-byte varints.
func fill(m protoreflect.Message, seed int) {
	fields := m.Descriptor().Fields()
	for i := 0; i < fields.Len(); i++ {
		fd := fields.Get(i)
		if fd.ContainingOneof() != nil {
			continue
		}
		n := int(fd.Number()) + seed
		if fd.IsList() {
			l := m.Mutable(fd).List()
			for j := 0; j < 2; j++ {
				if fd.Kind() == protoreflect.MessageKind {
					e := l.NewElement()
					fill(e.Message(), n*10+j)
					l.Append(e)
				} else {
					l.Append(scalar(fd, n*10+j))
				}
			}
			continue
		}
		if fd.Kind() == protoreflect.MessageKind {
			fill(m.Mutable(fd).Message(), n*10)
			continue
		}
		m.Set(fd, scalar(fd, n))
	}
}

func scalar(fd protoreflect.FieldDescriptor, n int) protoreflect.Value {
	switch fd.Kind() {
	case protoreflect.BoolKind:
		return protoreflect.ValueOfBool(true)
	case protoreflect.EnumKind:
		vals := fd.Enum().Values()
		return protoreflect.ValueOfEnum(vals.Get(vals.Len() - 1).Number())
	case protoreflect.Int32Kind:
		return protoreflect.ValueOfInt32(-int32(n))
	case protoreflect.Int64Kind:
		return protoreflect.ValueOfInt64(-int64(n) * 1_000_000_000_000)
	case protoreflect.Uint32Kind:
		return protoreflect.ValueOfUint32(uint32(n) << 24)
	case protoreflect.Uint64Kind:
		return protoreflect.ValueOfUint64(uint64(n) << 50)
	case protoreflect.StringKind:
		return protoreflect.ValueOfString(fmt.Sprintf("%s-%d-é", fd.Name(), n))
	case protoreflect.BytesKind:
		return protoreflect.ValueOfBytes([]byte{byte(n), 0, 0xff, byte(n >> 8)})
	}
	panic(fmt.Sprintf("fill: unhandled kind %v of %s", fd.Kind(), fd.FullName()))
}
