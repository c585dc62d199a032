package tests

import (
	"strings"
	"testing"

	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

	"github.com/starling-io/starling/proto/stanpb"
)

// A publish whose channel or reply is not UTF-8 is refused. Both travel in protobuf string
// fields (MsgProto to subscribers; clustered, the raft snapshot and the catch-up fetch's
// messages), which Marshal refuses when they are not UTF-8: accepted, such a channel could
// not be subscribed to, and one such message failed every later fetch of the channel in a
// cluster. The publish decoder reads the bytes without checking them.
func TestPublishOfNonUTF8IsRefused(t *testing.T) {
	s := startHostile(t, nil, nil)
	nc := natsDial(t, s.url)
	r := rawRegister(t, nc, s.discover, "utf8")
	send := func(channel, reply string) string {
		t.Helper()
		// Marshal refuses what is not UTF-8 in a string field: those go in by hand.
		b, err := proto.Marshal(&stanpb.PubMsg{ClientID: r.id, Guid: "g", Data: []byte("x"), ConnID: r.connID})
		must(t, err)
		b = protowire.AppendString(protowire.AppendTag(b, 3, protowire.BytesType), channel)
		if reply != "" {
			b = protowire.AppendString(protowire.AppendTag(b, 4, protowire.BytesType), reply)
		}
		m, err := nc.Request(stanPubPrefix+"."+strings.ToValidUTF8(channel, "x"), b, hostileWait)
		must(t, err)
		ack := &stanpb.PubAck{}
		must(t, proto.Unmarshal(m.Data, ack))
		return ack.Error
	}
	if e := send("bad\xffname", ""); e != "stan: invalid publish request" {
		t.Errorf("a channel that is not UTF-8: %q", e)
	}
	if e := send("good", "r\xfe"); e != "stan: invalid publish request" {
		t.Errorf("a reply that is not UTF-8: %q", e)
	}
	if e := send("good", "r.é"); e != "" {
		t.Errorf("UTF-8 is fine: %q", e)
	}
	if e := send("bon.été", ""); e != "" {
		t.Errorf("a UTF-8 channel: %q", e)
	}
}
