package streaming

import (
	"testing"

	"github.com/starling-io/starling/proto/raftpb"
	"github.com/starling-io/starling/stores"
)

// BenchmarkFetchTake is the fetching node's path for decoded replies that arrive without a
// gap (the usual catch-up): each op takes one reply of 64 consecutive messages and hands
// them to got. ns/msg is per message.
func BenchmarkFetchTake(b *testing.B) {
	const per = 64
	f := &fetchRun{s: fetchServer(&meshBus{}, nil), channel: "ch", id: 1, from: 1, to: 1 << 62,
		ahead: map[uint64]stores.Msg{}, unread: map[uint64][]string{}, names: map[string]string{}, batch: []stores.Msg{}}
	rep := &raftpb.FetchReply{Node: "p1", NodeName: "n1"}
	data := make([]byte, 100)
	for range per {
		rep.Msgs = append(rep.Msgs, &raftpb.MsgProto{Data: data, Timestamp: 1})
	}
	n := 0
	got := func(_ uint64, msgs []stores.Msg) error { n += len(msgs); return nil }
	b.ReportAllocs()
	for b.Loop() {
		rep.First = f.from
		for i, m := range rep.Msgs {
			m.Sequence = f.from + uint64(i)
		}
		if _, err := f.take(rep, got); err != nil {
			b.Fatal(err)
		}
	}
	if n > 0 {
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(n), "ns/msg")
	}
}
