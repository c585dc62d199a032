package streaming

import (
	"bytes"
	"fmt"
	"reflect"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/starling-io/starling/proto/raftpb"
	"github.com/starling-io/starling/stores"
)

// TestPublishCodecMatchesProto: the hand-written publish codec writes exactly the bytes
// proto.Marshal writes for the same raftpb.Op, reads back what it wrote and what proto
// writes (with fields the store does not keep), and leaves every other op to the general
// path.
func TestPublishCodecMatchesProto(t *testing.T) {
	cases := []*cmdPublish{
		{chanRef: chanRef{"foo", 1}},
		{chanRef: chanRef{"orders.eu", 300}, msgs: []stores.Msg{{Seq: 1, Time: 1_700_000_000_000_000_000, Data: []byte("x")}}},
		{chanRef: chanRef{"c", 2}, msgs: []stores.Msg{{Seq: 1 << 40, Time: 5, Reply: "_INBOX.r", Data: bytes.Repeat([]byte("d"), 300)},
			{Seq: 1<<40 + 1, Time: 6}, {Seq: 1<<40 + 2, Time: 6, Data: []byte{0}}}},
	}
	for i, c := range cases {
		t.Run(fmt.Sprint(i), func(t *testing.T) {
			got := encodePublish(c)
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
			back, ok := decodePublish(got, nil, nil)
			if !ok {
				t.Fatal("the codec cannot read what it wrote")
			}
			if len(c.msgs) == 0 {
				c.msgs = []stores.Msg{}
			}
			if !reflect.DeepEqual(back, c) {
				t.Fatalf("read back %+v, want %+v", back, c)
			}
		})
	}
	// Fields the store does not keep are skipped, as proto.Unmarshal skips unknown ones.
	op := &raftpb.Op{Op: &raftpb.Op_PublishBatch{PublishBatch: &raftpb.PublishBatch{Channel: "foo", ChannelID: 3,
		Msgs: []*raftpb.MsgProto{{Sequence: 9, Subject: "foo", Data: []byte("d"), Timestamp: 7, Redelivered: true, CRC32: 5}}}}}
	b, _ := proto.Marshal(op)
	back, ok := decodePublish(b, nil, nil)
	if !ok || back.channel != "foo" || back.chanID != 3 || len(back.msgs) != 1 || back.msgs[0].Seq != 9 || string(back.msgs[0].Data) != "d" || back.msgs[0].Time != 7 {
		t.Fatalf("proto's encoding read as %+v %v", back, ok)
	}
	// Anything else takes the general path.
	for _, other := range []proto.Message{
		&raftpb.Op{Op: &raftpb.Op_PublishBatch{PublishBatch: &raftpb.PublishBatch{Channel: "foo"}}, Ignorable: true},
		&raftpb.Op{Op: &raftpb.Op_Expire{Expire: &raftpb.Expire{Channel: "foo", ChannelID: 1, Now: 5}}},
	} {
		b, _ := proto.Marshal(other)
		if _, ok := decodePublish(b, nil, nil); ok {
			t.Fatalf("%v read as a publish batch", other)
		}
	}
	for _, junk := range [][]byte{nil, {0x0a}, {0x0a, 0x05, 0x1a, 0x09}, {0x0a, 0x02, 0x1a, 0x00, 0x00}} {
		if _, ok := decodePublish(junk, nil, nil); ok {
			t.Fatalf("%x read as a publish batch", junk)
		}
	}
}

func BenchmarkPublishCodec(b *testing.B) {
	c := &cmdPublish{chanRef: chanRef{"orders", 1}}
	for i := range 100 {
		c.msgs = append(c.msgs, stores.Msg{Seq: uint64(i + 1), Time: 1_700_000_000_000_000_000 + int64(i), Data: make([]byte, 128)})
	}
	b.Run("encode", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			_ = encodePublish(c)
		}
	})
	b.Run("encode-append", func(b *testing.B) { // into a reused buffer, as proposeGroup does
		b.ReportAllocs()
		var buf []byte
		for b.Loop() {
			buf = appendPublish(buf[:0], c, publishBody(c))
		}
	})
	b.Run("encode-proto", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			op, _ := commandOp(c)
			_, _ = proto.Marshal(op)
		}
	})
	data := encodePublish(c)
	b.Run("decode", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			_, _ = decodePublish(data, nil, nil)
		}
	})
	// As a replica decodes: into the state machine's arena, reused after each Apply.
	names := map[string]*stores.Channel{"orders": {Name: "orders", ID: 1}}
	var a pubArena
	b.Run("decode-arena", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			a.stale = true
			_, _ = decodePublish(data, &a, names)
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

// FuzzDecodePublish: any entry bytes are read without a panic, and a batch read is written
// back to bytes that read the same.
func FuzzDecodePublish(f *testing.F) {
	f.Add(encodePublish(&cmdPublish{chanRef: chanRef{"foo", 1}, msgs: []stores.Msg{{Seq: 1, Time: 2, Data: []byte("x"), Reply: "r"}}}))
	f.Add([]byte{0x0a, 0x02, 0x1a, 0x00})
	f.Fuzz(func(t *testing.T, data []byte) {
		c, ok := decodePublish(data, nil, nil)
		if !ok {
			return
		}
		again, ok := decodePublish(encodePublish(c), nil, nil)
		if !ok || !reflect.DeepEqual(again, c) {
			t.Fatalf("%x: read %+v, re-read %+v", data, c, again)
		}
	})
}

// TestPubArena: commands decoded into the arena stay intact until Apply marks them stale
// (a batch's commands are all decoded before any is applied); after that the next decode
// reuses the memory, without allocating, and takes a known channel's name without a copy.
func TestPubArena(t *testing.T) {
	batch := func(ch string, first uint64) []byte {
		c := &cmdPublish{chanRef: chanRef{ch, 1}}
		for i := range uint64(50) {
			c.msgs = append(c.msgs, stores.Msg{Seq: first + i, Time: 7, Data: []byte(fmt.Sprint(first + i))})
		}
		return encodePublish(c)
	}
	names := map[string]*stores.Channel{"known": {Name: "known", ID: 1}}
	var a pubArena
	b1, b2 := batch("known", 1), batch("other", 51)
	c1, ok1 := decodePublish(b1, &a, names)
	c2, ok2 := decodePublish(b2, &a, names)
	if !ok1 || !ok2 || len(c1.msgs) != 50 || len(c2.msgs) != 50 {
		t.Fatal("decoding failed")
	}
	for i := range 50 {
		if c1.msgs[i].Seq != uint64(1+i) || string(c1.msgs[i].Data) != fmt.Sprint(1+i) || c2.msgs[i].Seq != uint64(51+i) {
			t.Fatalf("message %d overwritten: %+v %+v", i, c1.msgs[i], c2.msgs[i])
		}
	}
	if c1.channel != "known" || c2.channel != "other" || c1.chanID != 1 {
		t.Fatalf("channels %q %q", c1.channel, c2.channel)
	}
	allocs := testing.AllocsPerRun(100, func() {
		a.stale = true
		if _, ok := decodePublish(b1, &a, names); !ok {
			t.Fatal("decoding failed")
		}
	})
	if allocs != 0 {
		t.Fatalf("a decode after Apply allocates %v times", allocs)
	}
}
