package streaming

import (
	"bytes"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/starling-io/starling/proto/stanpb"
)

func TestCodecsMatchStanpb(t *testing.T) {
	for _, m := range []*stanpb.MsgProto{
		{},
		{Sequence: 1, Subject: "foo", Data: []byte("hi"), Timestamp: 1700000000000000000},
		{Sequence: 1 << 40, Subject: "a.b", Reply: "r", Data: make([]byte, 300), Timestamp: -5, Redelivered: true, RedeliveryCount: 7},
	} {
		want, _ := proto.Marshal(m)
		got := appendMsgProto(nil, m.Sequence, m.Subject, m.Reply, m.Data, m.Timestamp, m.Redelivered, m.RedeliveryCount)
		if !bytes.Equal(got, want) {
			t.Errorf("MsgProto %v: got %x want %x", m, got, want)
		}
	}
	for _, a := range []*stanpb.PubAck{{}, {Guid: "g1"}, {Guid: "g2", Error: "stan: invalid publish request"}} {
		want, _ := proto.Marshal(a)
		if got := appendPubAck(nil, []byte(a.Guid), a.Error); !bytes.Equal(got, want) {
			t.Errorf("PubAck %v: got %x want %x", a, got, want)
		}
	}
	pm := &stanpb.PubMsg{ClientID: "c", Guid: "g", Subject: "s", Reply: "r", Data: []byte("d"), ConnID: []byte("x"), Sha256: []byte("ignored")}
	b, _ := proto.Marshal(pm)
	var v pubMsgView
	if err := decodePubMsg(b, &v); err != nil || string(v.clientID) != "c" || string(v.guid) != "g" || string(v.subject) != "s" ||
		string(v.reply) != "r" || string(v.data) != "d" || string(v.connID) != "x" {
		t.Fatalf("PubMsg view %+v %v", v, err)
	}
	ab, _ := proto.Marshal(&stanpb.Ack{Subject: "foo", Sequence: 42})
	if subj, seq, err := decodeAck(ab); err != nil || string(subj) != "foo" || seq != 42 {
		t.Fatalf("Ack %q %d %v", subj, seq, err)
	}
	for _, bad := range [][]byte{{0x0a, 0x05, 'a'}, {0xff}, {0x10}} {
		if err := decodePubMsg(bad, &v); err == nil {
			t.Errorf("decoded malformed %x", bad)
		}
	}
}

func FuzzDecodePubMsg(f *testing.F) {
	b, _ := proto.Marshal(&stanpb.PubMsg{ClientID: "c", Guid: "g", Subject: "s", Data: []byte("d")})
	f.Add(b)
	f.Fuzz(func(t *testing.T, in []byte) {
		var v pubMsgView
		err := decodePubMsg(in, &v)
		var ref stanpb.PubMsg
		refErr := proto.Unmarshal(in, &ref)
		// protobuf also refuses invalid UTF-8 in string fields, which we pass through: only
		// what it accepts must decode identically.
		if refErr != nil {
			return
		}
		if err != nil {
			t.Fatalf("we refused what protobuf accepts: %v", err)
		}
		if string(v.guid) != ref.Guid || string(v.subject) != ref.Subject || !bytes.Equal(v.data, ref.Data) {
			t.Fatalf("field disagreement: %+v vs %v", v, &ref)
		}
	})
}
