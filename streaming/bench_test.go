package streaming

import (
	"fmt"
	"testing"

	"github.com/starling-io/starling/proto/stanpb"
)

// BenchmarkPublishDeliver is the engine's hot path for one message: copy the request (as the
// handler does), decode the PubMsg, store it (propose → Apply → memstore Append, Sync),
// PubAck, deliver to one subscriber, and its ack. Run: go test -run '^$' -bench PublishDeliver -benchmem ./streaming/
func BenchmarkPublishDeliver(b *testing.B) {
	for _, size := range []int{16, 1024} {
		b.Run(sizeName(size), func(b *testing.B) {
			s, bus := newEngine(b)
			s.step(op{kind: opConnect, reply: "r", data: marshal(&stanpb.ConnectRequest{ClientID: "c1", HeartbeatInbox: "hb", Protocol: 1, ConnID: []byte("conn")})})
			s.step(op{kind: opSubscribe, reply: "r", data: marshal(&stanpb.SubscriptionRequest{ClientID: "c1", Subject: "bench", Inbox: "in", MaxInFlight: 1 << 20, AckWaitInSecs: 30})})
			var ackID ackKey
			for id := range s.byAckID {
				ackID = id
			}
			pub := marshal(&stanpb.PubMsg{ClientID: "c1", Guid: "0123456789012345678901", Subject: "bench", Data: make([]byte, size), ConnID: []byte("conn")})
			reply := []byte("_STAN.acks.x")
			b.SetBytes(int64(size))
			b.ReportAllocs()
			b.ResetTimer()
			for i := range b.N {
				o := s.pubBufs.publishOp(reply, pub, 0) // the handler's copy
				s.queuePublish(&o)
				s.flushPublishes()
				a := op{kind: opAck, ack: ackID, seq: uint64(i + 1)}
				s.processAck(&a)
				if i%64 == 63 {
					s.flushSentAcks()
				}
			}
			b.StopTimer()
			if bus.published < b.N {
				b.Fatalf("published %d for %d messages", bus.published, b.N)
			}
		})
	}
}

func sizeName(n int) string {
	if n >= 1024 {
		return "1KiB"
	}
	return "16B"
}

// BenchmarkReplaySend is a replay's hot path per message: subscriptions from the first
// sequence are sent the stored messages of 128 B in one go each (load, encode MsgProto,
// publish to the inbox, record it pending): one publish per message on a bus without runs,
// runs of them on one that takes runs (core's in-process bus).
// Run: go test -run '^$' -bench ReplaySend -benchmem ./streaming/
func BenchmarkReplaySend(b *testing.B) {
	b.Run("publish", func(b *testing.B) { benchmarkReplaySend(b, &fakeBus{}) })
	b.Run("run", func(b *testing.B) { benchmarkReplaySend(b, &runCountBus{}) })
}

// runCountBus is fakeBus taking runs, counting their messages.
type runCountBus struct{ fakeBus }

func (b *runCountBus) PublishRun(_ string, _ []byte, ends []int) error {
	b.published += len(ends)
	return nil
}

// busCount is what a benchmark's bus published.
type busCount interface {
	Bus
	count() int
}

func (b *fakeBus) count() int { return b.published }

func benchmarkReplaySend(b *testing.B, bus busCount) {
	s := newEngineOn(b, bus)
	s.step(op{kind: opConnect, reply: "r", data: marshal(&stanpb.ConnectRequest{ClientID: "c1", HeartbeatInbox: "hb", Protocol: 1, ConnID: []byte("conn")})})
	pub := marshal(&stanpb.PubMsg{ClientID: "c1", Guid: "0123456789012345678901", Subject: "bench", Data: make([]byte, 128), ConnID: []byte("conn")})
	reply := []byte("_STAN.acks.x")
	stored := min(b.N, 100_000)
	for i := range stored {
		o := s.pubBufs.publishOp(reply, pub, 0)
		s.queuePublish(&o)
		if i%256 == 255 {
			s.flushPublishes()
		}
	}
	s.endBatch()
	before := bus.count()
	b.SetBytes(128)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; bus.count()-before < b.N; i++ {
		inbox := fmt.Sprintf("in.%d", i)
		s.step(op{kind: opSubscribe, reply: "r", data: marshal(&stanpb.SubscriptionRequest{ClientID: "c1", Subject: "bench",
			Inbox: inbox, MaxInFlight: int32(stored) + 1, AckWaitInSecs: 30, StartPosition: stanpb.StartPosition_First})})
		b.StopTimer() // its pending set goes with it: every round starts from the same state
		s.step(op{kind: opUnsubscribe, reply: "r", data: marshal(&stanpb.UnsubscribeRequest{ClientID: "c1", Subject: "bench", Inbox: inbox})})
		b.StartTimer()
	}
}
