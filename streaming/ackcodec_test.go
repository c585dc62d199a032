package streaming

import (
	"bytes"
	"fmt"
	"reflect"
	"testing"

	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

	"github.com/starling-io/starling/proto/raftpb"
	"github.com/starling-io/starling/stores"
)

// TestSentAckCodecMatchesProto: the hand-written sent/ack codec writes exactly the bytes
// proto.Marshal writes for the same raftpb.Op and reads back what it wrote; what it does not
// read (an unpacked list, another op) takes the general path to the same command.
func TestSentAckCodecMatchesProto(t *testing.T) {
	cases := []*cmdSentAck{
		{chanRef: chanRef{"foo", 1}},
		{chanRef: chanRef{"orders.eu", 300}, events: []stores.SubEvent{{SubID: 1, Seq: 1}}},
		{chanRef: chanRef{"c", 2}, events: []stores.SubEvent{{SubID: 7, Seq: 1 << 40, Acked: true},
			{SubID: 1 << 33, Seq: 5}, {SubID: 7, Seq: 1<<40 + 1, Acked: true}}},
		{chanRef: chanRef{"", 0}, events: []stores.SubEvent{{SubID: 0, Seq: 0, Acked: false}}},
	}
	m := newStateMachine(nil)
	for i, c := range cases {
		t.Run(fmt.Sprint(i), func(t *testing.T) {
			got := appendSentAck(nil, c)
			op, err := commandOp(c)
			if err != nil {
				t.Fatal(err)
			}
			want, err := proto.MarshalOptions{Deterministic: true}.Marshal(op)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, want) {
				t.Fatalf("encoding differs from proto's:\n got %x\nwant %x", got, want)
			}
			back, ok := decodeSentAck(got, nil)
			if !ok {
				t.Fatal("the codec cannot read what it wrote")
			}
			if len(c.events) == 0 {
				c.events = []stores.SubEvent{}
			}
			if !reflect.DeepEqual(back, c) {
				t.Fatalf("read back %+v, want %+v", back, c)
			}
			cmd, err := m.Decode(got)
			if err != nil || !reflect.DeepEqual(cmd.Value, c) {
				t.Fatalf("Decode: %+v %v", cmd.Value, err)
			}
		})
	}
	// Unpacked lists (legal protobuf, never written here) take the general path.
	var body []byte
	body = protowire.AppendTag(body, saChannelField, protowire.BytesType)
	body = protowire.AppendString(body, "foo")
	body = protowire.AppendTag(body, saSubIDsField, protowire.VarintType)
	body = protowire.AppendVarint(body, 3)
	body = protowire.AppendTag(body, saSeqsField, protowire.VarintType)
	body = protowire.AppendVarint(body, 9)
	body = protowire.AppendTag(body, saAckedField, protowire.VarintType)
	body = protowire.AppendVarint(body, 1)
	data := protowire.AppendBytes(protowire.AppendTag(nil, opSentAndAckField, protowire.BytesType), body)
	if _, ok := decodeSentAck(data, nil); ok {
		t.Fatal("the codec read unpacked lists")
	}
	cmd, err := m.Decode(data)
	want := &cmdSentAck{chanRef: chanRef{"foo", 0}, events: []stores.SubEvent{{SubID: 3, Seq: 9, Acked: true}}}
	if err != nil || !reflect.DeepEqual(cmd.Value, want) {
		t.Fatalf("the general path read %+v %v", cmd.Value, err)
	}
	// Other ops and junk are not read as sent/ack commands.
	for _, b := range [][]byte{encodePublish(&cmdPublish{chanRef: chanRef{"foo", 1}}), {0x32, 0x01}, {0x32, 0x02, 0x10, 0x01}, nil} {
		if _, ok := decodeSentAck(b, nil); ok {
			t.Errorf("%x read as a sent/ack command", b)
		}
	}
}

// FuzzDecodeSentAck: any bytes are read without a panic, and a command read is written back
// to bytes that read the same.
func FuzzDecodeSentAck(f *testing.F) {
	f.Add(appendSentAck(nil, &cmdSentAck{chanRef: chanRef{"foo", 1}, events: []stores.SubEvent{{SubID: 1, Seq: 2, Acked: true}}}))
	f.Add([]byte{0x32, 0x00})
	f.Fuzz(func(t *testing.T, data []byte) {
		c, ok := decodeSentAck(data, nil)
		if !ok {
			return
		}
		again, ok := decodeSentAck(appendSentAck(nil, c), nil)
		if !ok || !reflect.DeepEqual(again, c) {
			t.Fatalf("%x: read %+v, written and read again %+v", data, c, again)
		}
	})
}

func BenchmarkSentAckCodec(b *testing.B) {
	c := &cmdSentAck{chanRef: chanRef{"orders", 1}}
	for i := range 100 {
		c.events = append(c.events, stores.SubEvent{SubID: 3, Seq: uint64(1000 + i), Acked: i%2 == 1})
	}
	b.Run("encode-append", func(b *testing.B) {
		b.ReportAllocs()
		var buf []byte
		for b.Loop() {
			buf = appendSentAck(buf[:0], c)
		}
	})
	b.Run("encode-proto", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			op, _ := commandOp(c)
			_, _ = proto.Marshal(op)
		}
	})
	data := appendSentAck(nil, c)
	b.Run("decode", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			_, _ = decodeSentAck(data, nil)
		}
	})
	b.Run("decode-proto", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			var op raftpb.Op
			_ = proto.Unmarshal(data, &op)
			_, _ = opCommand(&op)
		}
	})
}
