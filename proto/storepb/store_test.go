package storepb_test

import (
	"bytes"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/starling-io/starling/proto/storepb"
)

// TestGolden pins record encodings written out by hand; these are on disk, so they may not drift.
func TestGolden(t *testing.T) {
	cases := []struct {
		name string
		msg  proto.Message
		want []byte
	}{
		{"ServerInfo: nodeID is 9, 8 stays free", &storepb.ServerInfo{ClusterID: "c", SubClose: "s", NodeID: "n"},
			[]byte{0x0a, 0x01, 'c', 0x3a, 0x01, 's', 0x4a, 0x01, 'n'}},
		{"ClientInfo", &storepb.ClientInfo{ID: "c1", HbInbox: "h", ConnID: []byte{0}, Protocol: 1, PingInterval: 5, PingMaxOut: 88},
			[]byte{0x0a, 0x02, 'c', '1', 0x12, 0x01, 'h', 0x1a, 0x01, 0x00, 0x20, 0x01, 0x28, 0x05, 0x30, 0x58}},
		{"ClientInfo user is 7", &storepb.ClientInfo{ID: "c", User: "u"}, []byte{0x0a, 0x01, 'c', 0x3a, 0x01, 'u'}},
		{"ClientDelete", &storepb.ClientDelete{ID: "c1"}, []byte{0x0a, 0x02, 'c', '1'}},
		{"SubState flags", &storepb.SubState{ID: 1, LastSent: 2, IsDurable: true, IsClosed: true},
			[]byte{0x08, 0x01, 0x48, 0x02, 0x50, 0x01, 0x58, 0x01}},
		{"SubState user is 12", &storepb.SubState{ID: 1, User: "u"}, []byte{0x08, 0x01, 0x62, 0x01, 'u'}},
		{"SubStateDelete", &storepb.SubStateDelete{ID: 300}, []byte{0x08, 0xac, 0x02}},
		{"SubStateUpdate", &storepb.SubStateUpdate{ID: 1, Seqno: 2}, []byte{0x08, 0x01, 0x10, 0x02}},
		{"ChannelInfo", &storepb.ChannelInfo{Name: "foo", ID: 7, CreatedUnixNs: 1},
			[]byte{0x0a, 0x03, 'f', 'o', 'o', 0x10, 0x07, 0x18, 0x01}},
	}
	for _, tc := range cases {
		got, err := proto.Marshal(tc.msg)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, tc.want) {
			t.Errorf("%s:\n got % x\nwant % x", tc.name, got, tc.want)
		}
		back := tc.msg.ProtoReflect().New().Interface()
		if err := proto.Unmarshal(got, back); err != nil || !proto.Equal(back, tc.msg) {
			t.Errorf("%s: round trip %v, %v", tc.name, back, err)
		}
	}
}

// TestSubStateEveryField round-trips a SubState with every field set.
func TestSubStateEveryField(t *testing.T) {
	s := &storepb.SubState{
		ID: 1 << 40, ClientID: "c1", QGroup: "q", Inbox: "_INBOX.d", AckInbox: "_INBOX.a",
		MaxInFlight: 1024, AckWaitInSecs: 30, DurableName: "dur", LastSent: 99, IsDurable: true, IsClosed: true,
	}
	b, _ := proto.Marshal(s)
	var back storepb.SubState
	if err := proto.Unmarshal(b, &back); err != nil || !proto.Equal(&back, s) {
		t.Fatalf("round trip %v, %v", &back, err)
	}
}
