package raftpb_test

import (
	"bytes"
	"fmt"
	"testing"

	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"

	"github.com/starling-io/starling/proto/raftpb"
	"github.com/starling-io/starling/proto/stanpb"
	"github.com/starling-io/starling/proto/storepb"
)

// TestMirrorsMatch: the messages raftpb declares again must encode exactly like the originals in
// stanpb and storepb (same numbers, names, kinds, cardinality), so bytes move between them freely.
func TestMirrorsMatch(t *testing.T) {
	pairs := []struct{ mirror, orig proto.Message }{
		{&raftpb.MsgProto{}, &stanpb.MsgProto{}},
		{&raftpb.ConnectRequest{}, &stanpb.ConnectRequest{}},
		{&raftpb.SubscriptionRequest{}, &stanpb.SubscriptionRequest{}},
		{&raftpb.ClientInfo{}, &storepb.ClientInfo{}},
		{&raftpb.SubState{}, &storepb.SubState{}},
	}
	for _, p := range pairs {
		md, od := p.mirror.ProtoReflect().Descriptor(), p.orig.ProtoReflect().Descriptor()
		if md.Fields().Len() != od.Fields().Len() {
			t.Errorf("%s: %d fields, %s has %d", md.FullName(), md.Fields().Len(), od.FullName(), od.Fields().Len())
		}
		for i := 0; i < od.Fields().Len(); i++ {
			of := od.Fields().Get(i)
			mf := md.Fields().ByNumber(of.Number())
			if mf == nil || mf.Name() != of.Name() || mf.Kind() != of.Kind() || mf.Cardinality() != of.Cardinality() {
				t.Errorf("%s field %d: %v, want like %v", md.FullName(), of.Number(), mf, of)
			}
			if of.Kind() == protoreflect.EnumKind {
				ov, mv := of.Enum().Values(), mf.Enum().Values()
				for j := 0; j < ov.Len(); j++ {
					if v := mv.ByNumber(ov.Get(j).Number()); v == nil || v.Name() != ov.Get(j).Name() {
						t.Errorf("%s: enum value %v missing", mf.FullName(), ov.Get(j).Name())
					}
				}
				if mv.Len() != ov.Len() {
					t.Errorf("%s: %d enum values, want %d", mf.FullName(), mv.Len(), ov.Len())
				}
			}
		}
		for seed := 0; seed < 3; seed++ {
			fill(p.orig.ProtoReflect(), seed)
			b, _ := proto.Marshal(p.orig)
			if err := proto.Unmarshal(b, p.mirror); err != nil {
				t.Fatal(err)
			}
			if b2, _ := proto.Marshal(p.mirror); !bytes.Equal(b, b2) {
				t.Errorf("%s re-encodes %s's bytes differently\n % x\n % x", md.FullName(), od.FullName(), b2, b)
			}
			if u := p.mirror.ProtoReflect().GetUnknown(); len(u) != 0 {
				t.Errorf("%s: fields of %s not recognised: % x", md.FullName(), od.FullName(), u)
			}
		}
	}
}

func allOps() []*raftpb.Op {
	return []*raftpb.Op{
		{Op: &raftpb.Op_PublishBatch{PublishBatch: &raftpb.PublishBatch{Channel: "foo", ChannelID: 7, Msgs: []*raftpb.MsgProto{
			{Sequence: 1, Data: []byte("m1"), Timestamp: 1_700_000_000_000_000_000},
			{Sequence: 2, Data: []byte("m2"), Timestamp: 1_700_000_000_000_000_001, Reply: "r"},
		}}}},
		{Op: &raftpb.Op_ClientConnect{ClientConnect: &raftpb.ClientConnect{Info: &raftpb.ClientInfo{
			ID: "c1", HbInbox: "_INBOX.hb", Protocol: 1, ConnID: []byte("conn"), PingInterval: 5, PingMaxOut: 88, User: "alice",
		}}}},
		{Op: &raftpb.Op_ClientDisconnect{ClientDisconnect: &raftpb.ClientDisconnect{ClientID: "c1"}}},
		{Op: &raftpb.Op_CreateChannel{CreateChannel: &raftpb.CreateChannel{Channel: "foo"}}},
		{Op: &raftpb.Op_Subscribe{Subscribe: &raftpb.Subscribe{Channel: "foo", ChannelID: 7, State: &raftpb.SubState{
			ID: 3, ClientID: "c1", Inbox: "_INBOX.d", AckInbox: "_INBOX.ack", MaxInFlight: 1024, AckWaitInSecs: 30,
			DurableName: "dur", IsDurable: true, LastSent: 41, User: "alice",
		}}}},
		{Op: &raftpb.Op_UpdateSub{UpdateSub: &raftpb.UpdateSub{Channel: "foo", ChannelID: 7, State: &raftpb.SubState{ID: 3, IsClosed: true}}}},
		{Op: &raftpb.Op_DeleteSub{DeleteSub: &raftpb.DeleteSub{Channel: "foo", ChannelID: 7, SubID: 3}}},
		{Op: &raftpb.Op_SentAndAck{SentAndAck: &raftpb.SentAndAck{Channel: "foo", ChannelID: 7,
			SubIDs: []uint64{3, 3, 4}, Seqs: []uint64{1, 2, 300}, Acked: []bool{false, false, true}}}},
		{Op: &raftpb.Op_DeleteChannel{DeleteChannel: &raftpb.DeleteChannel{Channel: "foo", ChannelID: 7}}, Ignorable: true},
		{Op: &raftpb.Op_Expire{Expire: &raftpb.Expire{Channel: "foo", ChannelID: 7, Now: 1_700_000_000_000_000_000}}},
		{Op: &raftpb.Op_SetLimits{SetLimits: &raftpb.SetLimits{Global: &raftpb.Limits{MaxChannels: 100, MaxMsgs: 1_000_000, MaxAge: 3_600_000_000_000},
			Channels: []*raftpb.NamedLimits{{Pattern: "foo.>", Limits: &raftpb.Limits{MaxMsgs: 10, MaxInactivity: -1}}}}}, Ignorable: true},
	}
}

// TestBatchRoundTrip: every op kind, alone and together in one Batch.
func TestBatchRoundTrip(t *testing.T) {
	ops := allOps()
	if n := (&raftpb.Op{}).ProtoReflect().Descriptor().Oneofs().ByName("op").Fields().Len(); n != len(ops) {
		t.Fatalf("test covers %d op kinds, the oneof has %d", len(ops), n)
	}
	batch := &raftpb.Batch{Ops: ops}
	for _, m := range append([]proto.Message{batch}, opsAsMessages(ops)...) {
		b, err := proto.Marshal(m)
		if err != nil {
			t.Fatal(err)
		}
		back := m.ProtoReflect().New().Interface()
		if err := proto.Unmarshal(b, back); err != nil {
			t.Fatal(err)
		}
		if !proto.Equal(back, m) {
			t.Errorf("round trip\n got %v\nwant %v", back, m)
		}
	}
}

func opsAsMessages(ops []*raftpb.Op) []proto.Message {
	out := make([]proto.Message, len(ops))
	for i, op := range ops {
		out[i] = op
	}
	return out
}

// TestGoldenOps pins a few encodings by hand.
func TestGoldenOps(t *testing.T) {
	cases := []struct {
		name string
		msg  proto.Message
		want []byte
	}{
		{"SentAndAck lists are packed", &raftpb.SentAndAck{SubIDs: []uint64{1, 2}, Seqs: []uint64{1, 300}, Acked: []bool{false, true}},
			[]byte{0x32, 0x02, 0x01, 0x02, 0x3a, 0x03, 0x01, 0xac, 0x02, 0x42, 0x02, 0x00, 0x01}},
		{"ignorable is field 15", &raftpb.Op{Ignorable: true}, []byte{0x78, 0x01}},
		{"ClientDisconnect in Op is field 3", &raftpb.Op{Op: &raftpb.Op_ClientDisconnect{ClientDisconnect: &raftpb.ClientDisconnect{ClientID: "c"}}},
			[]byte{0x1a, 0x03, 0x0a, 0x01, 'c'}},
		{"Batch of one empty op", &raftpb.Batch{Ops: []*raftpb.Op{{}}}, []byte{0x0a, 0x00}},
		{"SubSnapshot pending is packed", &raftpb.SubSnapshot{Pending: []uint64{3, 4}}, []byte{0x12, 0x02, 0x03, 0x04}},
	}
	for _, tc := range cases {
		got, err := proto.Marshal(tc.msg)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, tc.want) {
			t.Errorf("%s:\n got % x\nwant % x", tc.name, got, tc.want)
		}
	}
}

// TestUnknownOp: an op added by a newer version decodes as an Op with no member set; Ignorable
// tells the applier whether it may skip it.
func TestUnknownOp(t *testing.T) {
	future := func(ignorable bool) []byte {
		var op []byte
		op = protowire.AppendTag(op, 14, protowire.BytesType) // an op kind this version lacks
		op = protowire.AppendBytes(op, []byte{0x0a, 0x01, 'x'})
		if ignorable {
			op = protowire.AppendTag(op, 15, protowire.VarintType)
			op = protowire.AppendVarint(op, 1)
		}
		return op
	}
	known, _ := proto.Marshal(allOps()[2]) // ClientDisconnect
	var batch []byte
	for _, op := range [][]byte{future(true), known, future(false)} {
		batch = protowire.AppendTag(batch, 1, protowire.BytesType)
		batch = protowire.AppendBytes(batch, op)
	}
	var b raftpb.Batch
	if err := proto.Unmarshal(batch, &b); err != nil {
		t.Fatal(err)
	}
	if len(b.Ops) != 3 {
		t.Fatalf("%d ops, want 3", len(b.Ops))
	}
	if b.Ops[0].Op != nil || !b.Ops[0].Ignorable {
		t.Errorf("future ignorable op decoded as %v", b.Ops[0])
	}
	if b.Ops[1].GetClientDisconnect().GetClientID() != "c1" {
		t.Errorf("known op decoded as %v", b.Ops[1])
	}
	if b.Ops[2].Op != nil || b.Ops[2].Ignorable {
		t.Errorf("future op decoded as %v", b.Ops[2])
	}
}

// TestSnapshotRoundTrip fills every field of a snapshot, nested lists included.
func TestSnapshotRoundTrip(t *testing.T) {
	s := &raftpb.Snapshot{}
	fill(s.ProtoReflect(), 0)
	if len(s.Channels) != 2 || len(s.Channels[0].Subs) != 2 || s.Channels[0].Subs[0].State.DurableName == "" {
		t.Fatalf("fill left the snapshot shallow: %v", s)
	}
	b, _ := proto.Marshal(s)
	var back raftpb.Snapshot
	if err := proto.Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}
	if !proto.Equal(&back, s) {
		t.Fatalf("round trip\n got %v\nwant %v", &back, s)
	}
}

// BenchmarkPublishBatch: one log entry of 64 messages of 256 bytes, the clustered publish path.
func BenchmarkPublishBatch(b *testing.B) {
	pb := &raftpb.PublishBatch{Channel: "orders.eu-west", ChannelID: 12345}
	for i := range 64 {
		pb.Msgs = append(pb.Msgs, &raftpb.MsgProto{Sequence: uint64(1e6 + i), Data: make([]byte, 256),
			Timestamp: 1_700_000_000_000_000_000 + int64(i)})
	}
	batch := &raftpb.Batch{Ops: []*raftpb.Op{{Op: &raftpb.Op_PublishBatch{PublishBatch: pb}}}}
	data, _ := proto.Marshal(batch)
	b.Run("MarshalAppend", func(b *testing.B) {
		b.ReportAllocs()
		b.SetBytes(int64(len(data)))
		buf := make([]byte, 0, len(data))
		var opts proto.MarshalOptions
		for b.Loop() {
			buf, _ = opts.MarshalAppend(buf[:0], batch)
		}
	})
	b.Run("Unmarshal", func(b *testing.B) {
		b.ReportAllocs()
		b.SetBytes(int64(len(data)))
		var into raftpb.Batch
		for b.Loop() {
			proto.Reset(&into)
			if err := proto.Unmarshal(data, &into); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// fill sets every non-oneof field of m to a non-zero value derived from its number and seed;
// lists get two elements. (A copy of stanpb's test helper: proto/* share no test package.)
func fill(m protoreflect.Message, seed int) {
	fields := m.Descriptor().Fields()
	for i := 0; i < fields.Len(); i++ {
		fd := fields.Get(i)
		if fd.ContainingOneof() != nil {
			continue
		}
		n := int(fd.Number()) + seed
		switch {
		case fd.IsList():
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
		case fd.Kind() == protoreflect.MessageKind:
			fill(m.Mutable(fd).Message(), n*10)
		default:
			m.Set(fd, scalar(fd, n))
		}
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
		return protoreflect.ValueOfString(fmt.Sprintf("%s-%d", fd.Name(), n))
	case protoreflect.BytesKind:
		return protoreflect.ValueOfBytes([]byte{byte(n), 0, 0xff})
	}
	panic(fmt.Sprintf("fill: unhandled kind %v of %s", fd.Kind(), fd.FullName()))
}
