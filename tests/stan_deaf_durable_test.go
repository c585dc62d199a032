package tests

import (
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"google.golang.org/protobuf/proto"

	"github.com/starling-io/starling/proto/stanpb"
)

// A durable still online whose inbox nobody listens on any more — its subscribe reply was
// lost in a leader change or came too late, and stan.go dropped the inbox — is resumed by
// the same client's next subscribe. It was refused as a duplicate for as long as the client
// stayed connected: the application could not get its durable back without reconnecting.
// A durable whose inbox is listened on is still a duplicate.
func TestDurableWithADeafInboxResumes(t *testing.T) {
	s := startHostile(t, nil, nil)
	nc := natsDial(t, s.url)
	r := rawRegister(t, nc, s.discover, "deaf")
	resp := r.subscribe(&stanpb.SubscriptionRequest{Subject: "orders", Inbox: nats.NewInbox(), DurableName: "d",
		StartPosition: stanpb.StartPosition_First})
	if resp.Error != "" {
		t.Fatalf("subscribe: %s", resp.Error)
	}
	if e := r.publish("orders", []byte("one")); e != "" {
		t.Fatalf("publish: %s", e)
	}

	inbox := nats.NewInbox()
	msgs := make(chan *nats.Msg, 16)
	_, err := nc.ChanSubscribe(inbox, msgs)
	must(t, err)
	must(t, nc.Flush())
	resp = r.subscribe(&stanpb.SubscriptionRequest{Subject: "orders", Inbox: inbox, DurableName: "d",
		StartPosition: stanpb.StartPosition_First})
	if resp.Error != "" {
		t.Fatalf("subscribe again on a new inbox, the first one deaf: %s", resp.Error)
	}
	select {
	case m := <-msgs:
		pm := &stanpb.MsgProto{}
		must(t, proto.Unmarshal(m.Data, pm))
		if string(pm.Data) != "one" || pm.Sequence != 1 {
			t.Fatalf("resumed durable got %q at %d", pm.Data, pm.Sequence)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the resumed durable got nothing")
	}

	other := nats.NewInbox()
	_, err = nc.Subscribe(other, func(*nats.Msg) {})
	must(t, err)
	must(t, nc.Flush())
	resp = r.subscribe(&stanpb.SubscriptionRequest{Subject: "orders", Inbox: other, DurableName: "d",
		StartPosition: stanpb.StartPosition_First})
	if resp.Error != "stan: duplicate durable registration" {
		t.Fatalf("a third subscribe while the durable listens: %q, want a duplicate", resp.Error)
	}
}
