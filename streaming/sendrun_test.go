package streaming

import (
	"fmt"
	"slices"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/starling-io/starling/proto/stanpb"
)

// runRecBus is fakeBus taking runs (runBus), recording for one inbox the sequences sent
// and how many messages each call carried (1 for a Publish).
type runRecBus struct {
	fakeBus
	inbox string
	seqs  []uint64
	calls []int
	order []string // every call's subject
}

func (b *runRecBus) Publish(subject, reply string, hdr, data []byte) error {
	b.order = append(b.order, subject)
	if subject == b.inbox {
		b.record(data)
		b.calls = append(b.calls, 1)
	}
	return b.fakeBus.Publish(subject, reply, hdr, data)
}

func (b *runRecBus) PublishRun(subject string, data []byte, ends []int) error {
	b.order = append(b.order, subject)
	prev := 0
	for _, e := range ends {
		b.published++
		if subject == b.inbox {
			b.record(data[prev:e])
		}
		prev = e
	}
	if subject == b.inbox {
		b.calls = append(b.calls, len(ends))
	}
	return nil
}

func (b *runRecBus) record(data []byte) {
	if b.inbox == "" {
		return
	}
	var m stanpb.MsgProto
	if err := proto.Unmarshal(data, &m); err == nil {
		b.seqs = append(b.seqs, m.Sequence)
	}
}

// A subscriber at its max in flight acks by the hundred per read buffer. The slots a run of
// acks frees are sent after the run, in one call to the bus, in sequence order: not one
// sendAvailable and one publish per ack. The first sends of a new subscription are one run
// too.
func TestRunOfAcksSendsTheFreedSlotsAsOneRun(t *testing.T) {
	bus := &runRecBus{inbox: "in"}
	s := newEngineOn(t, bus)
	s.step(connectReq("c1", "hb", 1, "r"))
	for i := range 10 {
		o := publishReq("c1", "ch", fmt.Sprintf("g%d", i), 1, "r")
		s.queuePublish(&o)
	}
	s.endBatch()
	sub := subscribeReq("c1", "ch", "", "in", 1, "r")
	sub.data = marshal(&stanpb.SubscriptionRequest{ClientID: "c1", Subject: "ch", Inbox: "in", MaxInFlight: 4,
		AckWaitInSecs: 30, StartPosition: stanpb.StartPosition_First})
	s.step(sub)
	if want := []uint64{1, 2, 3, 4}; !slices.Equal(bus.seqs, want) || !slices.Equal(bus.calls, []int{4}) {
		t.Fatalf("first sends: sequences %v in calls %v, want %v in one", bus.seqs, bus.calls, want)
	}
	var key ackKey
	for k := range s.byAckID {
		key = k
	}
	acks := func(seqs ...uint64) []op {
		var b []op
		for _, q := range seqs {
			b = append(b, op{kind: opAck, ack: key, seq: q, from: 1})
		}
		return b
	}
	s.iterate(acks(1, 2, 3))
	if want := []uint64{1, 2, 3, 4, 5, 6, 7}; !slices.Equal(bus.seqs, want) || !slices.Equal(bus.calls, []int{4, 3}) {
		t.Fatalf("after 3 acks: sequences %v in calls %v, want %v, the last 3 in one call", bus.seqs, bus.calls, want)
	}
	// Another op after the acks: the freed slots go out before it is handled.
	b := append(acks(4, 5), subscribeReq("c1", "other", "", "in2", 1, "r2"))
	bus.order = nil
	s.iterate(b)
	if !slices.Equal(bus.order, []string{"in", "r2"}) {
		t.Fatalf("after 2 acks and a subscribe: published to %q, want the inbox's run, then the response", bus.order)
	}
	if want := []uint64{1, 2, 3, 4, 5, 6, 7, 8, 9}; !slices.Equal(bus.seqs, want) || !slices.Equal(bus.calls, []int{4, 3, 2}) {
		t.Fatalf("after 2 more acks: sequences %v in calls %v, want %v, the last 2 in one call", bus.seqs, bus.calls, want)
	}
}
