package filestore

import (
	"fmt"
	"syscall"
	"testing"
	"time"

	"github.com/starling-io/starling/stores"
)

// BenchmarkCommitPass is one group commit of the streaming engine on a channel with one
// subscriber: append a batch of 16-byte messages, Flush the MsgStore, record a sent and an
// ack event per message, Flush the SubStore, then SyncFlushed on both (as the committer
// does). It reports the process's CPU time per pass (user and system, from getrusage: fsync
// costs CPU, not only wall time) and the fsyncs per pass.
func BenchmarkCommitPass(b *testing.B) {
	for _, n := range []int{1, 200} {
		b.Run(fmt.Sprint("msgs=", n), func(b *testing.B) {
			var fsyncs int
			s, err := Open(b.TempDir(), Options{Hooks: Hooks{BeforeSync: func(string) error { fsyncs++; return nil }}})
			if err != nil {
				b.Fatal(err)
			}
			defer s.Close()
			s.Init(stores.ServerInfo{ClusterID: "c"})
			ch, err := s.CreateChannel("foo", 1)
			if err != nil {
				b.Fatal(err)
			}
			if err := ch.Subs.CreateSub(&stores.SubState{ID: 1, ClientID: "c", Inbox: "in", MaxInFlight: 1 << 20}); err != nil {
				b.Fatal(err)
			}
			if err := ch.Subs.Sync(); err != nil {
				b.Fatal(err)
			}
			msp, ssp := ch.Msgs.(stores.SplitSyncer), ch.Subs.(stores.SplitSyncer)
			batch := make([]stores.Msg, n)
			for i := range batch {
				batch[i].Data = make([]byte, 16)
			}
			events := make([]stores.SubEvent, 0, 2*n)
			seq := uint64(1)
			pass := func() {
				for i := range batch {
					batch[i].Seq, batch[i].Time = seq+uint64(i), int64(seq)
				}
				if err := ch.Msgs.Append(batch); err != nil {
					b.Fatal(err)
				}
				if err := msp.Flush(); err != nil {
					b.Fatal(err)
				}
				events = events[:0]
				for i := range batch { // sent now, acked (the previous pass's) now
					events = append(events, stores.SubEvent{SubID: 1, Seq: seq + uint64(i)})
					if seq > uint64(n) {
						events = append(events, stores.SubEvent{SubID: 1, Seq: seq + uint64(i) - uint64(n), Acked: true})
					}
				}
				if err := ch.Subs.Record(events); err != nil {
					b.Fatal(err)
				}
				if err := ssp.Flush(); err != nil {
					b.Fatal(err)
				}
				if err := msp.SyncFlushed(); err != nil {
					b.Fatal(err)
				}
				if err := ssp.SyncFlushed(); err != nil {
					b.Fatal(err)
				}
				seq += uint64(n)
			}
			for range 10 {
				pass()
			}
			fsyncs = 0
			var r0, r1 syscall.Rusage
			syscall.Getrusage(syscall.RUSAGE_SELF, &r0)
			b.ResetTimer()
			for range b.N {
				pass()
			}
			b.StopTimer()
			syscall.Getrusage(syscall.RUSAGE_SELF, &r1)
			ns := func(t syscall.Timeval) float64 { return float64(time.Duration(t.Nano())) }
			b.ReportMetric((ns(r1.Utime)-ns(r0.Utime))/float64(b.N), "user-ns/op")
			b.ReportMetric((ns(r1.Stime)-ns(r0.Stime))/float64(b.N), "sys-ns/op")
			b.ReportMetric(float64(fsyncs)/float64(b.N), "fsyncs/op")
		})
	}
}
