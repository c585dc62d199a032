package streaming

import (
	"slices"
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

// TestFetchTakeOrders: replies that continue the fetch, fill a gap, repeat what arrived or
// jump past messages expired elsewhere each hand got exactly the messages now consecutive,
// once each, and leave nothing kept once the gaps are filled.
func TestFetchTakeOrders(t *testing.T) {
	f := &fetchRun{s: fetchServer(&meshBus{}, nil), channel: "ch", id: 1, from: 1, to: 20,
		ahead: map[uint64]stores.Msg{}, unread: map[uint64][]string{}, names: map[string]string{}, batch: []stores.Msg{}}
	reply := func(node string, first uint64, seqs []uint64, unread ...uint64) *raftpb.FetchReply {
		rep := &raftpb.FetchReply{Node: node, First: first, Unread: unread}
		for _, seq := range seqs {
			rep.Msgs = append(rep.Msgs, &raftpb.MsgProto{Sequence: seq, Data: []byte{byte(seq)}})
		}
		return rep
	}
	steps := []struct {
		rep       *raftpb.FetchReply
		first     uint64   // got's first (0: got not called)
		got       []uint64 // what got is handed
		askNow    bool
		ahead, un int // kept after
	}{
		{reply("a", 1, []uint64{1, 2, 4, 5}, 3), 1, []uint64{1, 2}, true, 2, 1},
		{reply("b", 3, []uint64{3, 4, 5, 6}), 3, []uint64{3, 4, 5, 6}, true, 0, 0},
		{reply("a", 5, []uint64{5, 6, 7, 8}), 7, []uint64{7, 8}, true, 0, 0},
		{reply("a", 1, []uint64{1, 2}), 0, nil, false, 0, 0},
		{reply("a", 9, []uint64{10, 11}, 9), 0, nil, true, 2, 1},
		{reply("b", 10, []uint64{10}), 10, []uint64{10, 11}, true, 0, 0},
		{reply("b", 12, []uint64{12, 13, 14}), 12, []uint64{12, 13, 14}, true, 0, 0},
	}
	for i, st := range steps {
		var first uint64
		var seqs []uint64
		askNow, err := f.take(st.rep, func(fst uint64, msgs []stores.Msg) error {
			first = fst
			for _, m := range msgs {
				if len(m.Data) != 1 || uint64(m.Data[0]) != m.Seq {
					t.Errorf("step %d: message %d holds %v", i, m.Seq, m.Data)
				}
				seqs = append(seqs, m.Seq)
			}
			return nil
		})
		if err != nil {
			t.Fatalf("step %d: %v", i, err)
		}
		if first != st.first || !slices.Equal(seqs, st.got) || askNow != st.askNow || len(f.ahead) != st.ahead || len(f.unread) != st.un {
			t.Fatalf("step %d: got(%d, %v), ask now %v, %d ahead, %d unread; want got(%d, %v), %v, %d, %d",
				i, first, seqs, askNow, len(f.ahead), len(f.unread), st.first, st.got, st.askNow, st.ahead, st.un)
		}
	}
}
