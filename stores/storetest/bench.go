package storetest

import (
	"fmt"
	"testing"

	"github.com/starling-io/starling/stores"
)

// Bench runs the store benchmarks as sub-benchmarks of b:
//
//   - Append/batch=N/size=S: Append of N messages of S bytes then Sync (one group commit
//     per batch), in steady state — the channel is first filled to its limits (64 MiB or
//     500,000 messages), so every Append also removes as many old messages. SetBytes
//     counts payload bytes; msgs/s is reported.
//   - Fill/size=S: Append of batches of 64 then Sync into a channel without limits, from
//     empty: the store grows for the whole run (fresh memory, a file that keeps
//     extending), as under a benchmark's publisher or a channel filling up.
//   - Load/size=S: Load of a random stored sequence into a reused Msg.
//   - LoadSequential/size=128: Load of every sequence in order (a subscriber replaying).
//   - SeqAtTime: over 100,000 messages.
//   - Record: a batch of 64 sent and 64 acked events (a sliding window of 1024 pending),
//     then Sync.
//   - RecordSplit: the same, then Flush and SyncFlushed (stores.SplitSyncer) as a pipelined
//     commit does, on one goroutine; skipped if the SubStore does not split its Sync.
func Bench(b *testing.B, open OpenFunc) {
	for _, batch := range []int{1, 64, 1024} {
		for _, size := range []int{16, 128, 1024, 64 << 10} {
			b.Run(fmt.Sprintf("Append/batch=%d/size=%d", batch, size), func(b *testing.B) {
				benchAppend(b, open, batch, size)
			})
		}
	}
	for _, size := range []int{128, 1024} {
		b.Run(fmt.Sprintf("Fill/size=%d", size), func(b *testing.B) { benchFill(b, open, size) })
	}
	for _, size := range []int{128, 64 << 10} {
		b.Run(fmt.Sprintf("Load/size=%d", size), func(b *testing.B) { benchLoad(b, open, size) })
	}
	b.Run("LoadSequential/size=128", func(b *testing.B) { benchLoadStep(b, open, 128, 1) })
	b.Run("SeqAtTime", func(b *testing.B) { benchSeqAtTime(b, open) })
	b.Run("Record", func(b *testing.B) { benchRecord(b, open, false) })
	b.Run("RecordSplit", func(b *testing.B) { benchRecord(b, open, true) })
}

const (
	benchMaxBytes = 64 << 20
	benchMaxMsgs  = 500_000
)

func benchStore(b *testing.B, open OpenFunc, ls *stores.LimitsSet) (stores.Store, *stores.Channel) {
	b.Helper()
	st := open(b, b.TempDir())
	b.Cleanup(func() { st.Close() })
	if err := st.Init(stores.ServerInfo{ClusterID: "bench"}); err != nil {
		b.Fatal(err)
	}
	if ls != nil {
		if err := st.SetLimits(ls); err != nil {
			b.Fatal(err)
		}
	}
	ch, err := st.CreateChannel("bench.channel", 1)
	if err != nil {
		b.Fatal(err)
	}
	return st, ch
}

// appender appends batches of consecutive messages sharing one payload.
type appender struct {
	ms    stores.MsgStore
	data  []byte
	batch []stores.Msg
	next  uint64
}

func newAppender(ms stores.MsgStore, n, size int) *appender {
	data := make([]byte, size)
	for i := range data {
		data[i] = byte(i)
	}
	a := &appender{ms: ms, data: data, batch: make([]stores.Msg, n), next: 1}
	for i := range a.batch {
		a.batch[i].Data = data
	}
	return a
}

func (a *appender) fillBatch(batch []stores.Msg) {
	for i := range batch {
		batch[i].Seq = a.next
		batch[i].Time = t0 + int64(a.next)
		a.next++
	}
}

// add appends one batch and syncs it: one group commit.
func (a *appender) add(b *testing.B) {
	a.fillBatch(a.batch)
	if err := a.ms.Append(a.batch); err != nil {
		b.Fatal(err)
	}
	if err := a.ms.Sync(); err != nil {
		b.Fatal(err)
	}
}

// prefill appends n messages in batches of up to 1024 and syncs once.
func (a *appender) prefill(b *testing.B, n int) {
	batch := make([]stores.Msg, 1024)
	for i := range batch {
		batch[i].Data = a.data
	}
	for n > 0 {
		k := min(n, len(batch))
		a.fillBatch(batch[:k])
		if err := a.ms.Append(batch[:k]); err != nil {
			b.Fatal(err)
		}
		n -= k
	}
	if err := a.ms.Sync(); err != nil {
		b.Fatal(err)
	}
}

func benchAppend(b *testing.B, open OpenFunc, batch, size int) {
	lim := stores.Limits{MaxMsgs: benchMaxMsgs, MaxBytes: benchMaxBytes}
	_, ch := benchStore(b, open, &stores.LimitsSet{Global: lim})
	a := newAppender(ch.Msgs, batch, size)
	// Fill to the limits, plus a margin, so the timed part is steady state.
	per := stores.MsgSize("bench.channel", &a.batch[0])
	a.prefill(b, min(benchMaxMsgs, benchMaxBytes/int(per))+4096)
	b.SetBytes(int64(batch * size))
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		a.add(b)
	}
	b.ReportMetric(float64(b.N*batch)/b.Elapsed().Seconds(), "msgs/s")
}

func benchFill(b *testing.B, open OpenFunc, size int) {
	_, ch := benchStore(b, open, &stores.LimitsSet{})
	a := newAppender(ch.Msgs, 64, size)
	b.SetBytes(int64(64 * size))
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		a.add(b)
	}
	b.ReportMetric(float64(b.N*64)/b.Elapsed().Seconds(), "msgs/s")
}

func benchLoad(b *testing.B, open OpenFunc, size int) { benchLoadStep(b, open, size, 7920) }

// benchLoadStep loads every step-th message, cycling: 7920 is random access, 1 a replay.
func benchLoadStep(b *testing.B, open OpenFunc, size int, step uint64) {
	_, ch := benchStore(b, open, &stores.LimitsSet{})
	n := min(100_000, (128<<20)/size)
	a := newAppender(ch.Msgs, 1, size)
	a.prefill(b, n)
	last := a.next - 1
	var m stores.Msg
	seq := uint64(1)
	b.SetBytes(int64(size))
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		seq = (seq+step-1)%last + 1
		if err := ch.Msgs.Load(seq, &m); err != nil {
			b.Fatal(err)
		}
	}
}

func benchSeqAtTime(b *testing.B, open OpenFunc) {
	_, ch := benchStore(b, open, &stores.LimitsSet{})
	newAppender(ch.Msgs, 1, 16).prefill(b, 100_000)
	var x uint64
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		x = (x + 7919) % 100_000
		if got := ch.Msgs.SeqAtTime(t0 + int64(x) + 1); got != x+1 {
			b.Fatalf("SeqAtTime = %d, want %d", got, x+1)
		}
	}
}

func benchRecord(b *testing.B, open OpenFunc, split bool) {
	_, ch := benchStore(b, open, &stores.LimitsSet{})
	sync := ch.Subs.Sync
	if split {
		sp, ok := ch.Subs.(stores.SplitSyncer)
		if !ok {
			b.Skip("SubStore does not split its Sync")
		}
		sync = func() error {
			if err := sp.Flush(); err != nil {
				return err
			}
			return sp.SyncFlushed()
		}
	}
	if err := ch.Subs.CreateSub(&stores.SubState{ID: 1, ClientID: "c", MaxInFlight: 1024}); err != nil {
		b.Fatal(err)
	}
	events := make([]stores.SubEvent, 128)
	next := uint64(1)
	record := func() {
		for i := 0; i < 64; i++ {
			events[2*i] = stores.SubEvent{SubID: 1, Seq: next}
			events[2*i+1] = stores.SubEvent{SubID: 1, Seq: next - min(next, 1024), Acked: true}
			next++
		}
		if err := ch.Subs.Record(events); err != nil {
			b.Fatal(err)
		}
		if err := sync(); err != nil {
			b.Fatal(err)
		}
	}
	for next < 4096 {
		record()
	}
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		record()
	}
}
