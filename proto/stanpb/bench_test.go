package stanpb_test

import (
	"fmt"
	"testing"

	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

	"github.com/starling-io/starling/proto/stanpb"
)

// Payload sizes of the benchmarks (NSQ's matrix, trimmed).
var benchSizes = []int{16, 256, 4096, 65536}

func benchMsgProto(size int) *stanpb.MsgProto {
	return &stanpb.MsgProto{
		Sequence:  123456789,
		Subject:   "orders.eu-west",
		Data:      make([]byte, size),
		Timestamp: 1_700_000_000_123_456_789,
	}
}

func benchPubMsg(size int) *stanpb.PubMsg {
	return &stanpb.PubMsg{
		ClientID: "publisher-42",
		Guid:     "3sRLxKbfJnl1n5Of5Sw5Xm",
		Subject:  "orders.eu-west",
		Data:     make([]byte, size),
		ConnID:   []byte("dUK3vJ4hGkXq0C9L2mPzHL"),
	}
}

// benchMarshal: proto.Marshal (a fresh buffer per call) and MarshalAppend into a reused buffer —
// the delivery path's shape.
func benchMarshal(b *testing.B, m proto.Message, size int) {
	b.Run(fmt.Sprintf("Marshal/%d", size), func(b *testing.B) {
		b.ReportAllocs()
		b.SetBytes(int64(size))
		for b.Loop() {
			if _, err := proto.Marshal(m); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run(fmt.Sprintf("MarshalAppend/%d", size), func(b *testing.B) {
		b.ReportAllocs()
		b.SetBytes(int64(size))
		var opts proto.MarshalOptions
		buf := make([]byte, 0, size+256)
		for b.Loop() {
			var err error
			if buf, err = opts.MarshalAppend(buf[:0], m); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// benchUnmarshal decodes into one reused message; string and bytes fields are copied out of the
// input, so they allocate.
func benchUnmarshal(b *testing.B, m proto.Message, size int) {
	data, err := proto.Marshal(m)
	if err != nil {
		b.Fatal(err)
	}
	into := m.ProtoReflect().New().Interface()
	b.Run(fmt.Sprintf("Unmarshal/%d", size), func(b *testing.B) {
		b.ReportAllocs()
		b.SetBytes(int64(size))
		for b.Loop() {
			proto.Reset(into)
			if err := proto.Unmarshal(data, into); err != nil {
				b.Fatal(err)
			}
		}
	})
}

func BenchmarkMsgProto(b *testing.B) {
	for _, size := range benchSizes {
		benchMarshal(b, benchMsgProto(size), size)
		benchUnmarshal(b, benchMsgProto(size), size)
	}
}

// appendMsgProto is a hand-written encoder of the fields delivery sets, for comparison with
// MarshalAppend: what a dedicated append-style encoder on the hot path would cost.
func appendMsgProto(b []byte, m *stanpb.MsgProto) []byte {
	if m.Sequence != 0 {
		b = protowire.AppendVarint(append(b, 0x08), m.Sequence)
	}
	if m.Subject != "" {
		b = protowire.AppendString(append(b, 0x12), m.Subject)
	}
	if m.Reply != "" {
		b = protowire.AppendString(append(b, 0x1a), m.Reply)
	}
	if len(m.Data) != 0 {
		b = protowire.AppendBytes(append(b, 0x22), m.Data)
	}
	if m.Timestamp != 0 {
		b = protowire.AppendVarint(append(b, 0x28), uint64(m.Timestamp))
	}
	if m.Redelivered {
		b = append(b, 0x30, 0x01)
	}
	if m.RedeliveryCount != 0 {
		b = protowire.AppendVarint(append(b, 0x38), uint64(m.RedeliveryCount))
	}
	if m.CRC32 != 0 {
		b = protowire.AppendVarint(append(b, 0x50), uint64(m.CRC32))
	}
	return b
}

func TestAppendMsgProtoMatchesMarshal(t *testing.T) {
	m := benchMsgProto(300)
	m.Reply, m.Redelivered, m.RedeliveryCount, m.CRC32 = "r", true, 3, 9
	want, _ := proto.Marshal(m)
	if got := appendMsgProto(nil, m); string(got) != string(want) {
		t.Fatalf("got % x\nwant % x", got, want)
	}
}

func BenchmarkMsgProtoProtowireAppend(b *testing.B) {
	for _, size := range benchSizes {
		m := benchMsgProto(size)
		b.Run(fmt.Sprint(size), func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(size))
			buf := make([]byte, 0, size+256)
			for b.Loop() {
				buf = appendMsgProto(buf[:0], m)
			}
		})
	}
}

func BenchmarkPubMsg(b *testing.B) {
	for _, size := range benchSizes {
		benchMarshal(b, benchPubMsg(size), size)
		benchUnmarshal(b, benchPubMsg(size), size)
	}
}
