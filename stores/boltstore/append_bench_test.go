package boltstore

import (
	"fmt"
	"path/filepath"
	"syscall"
	"testing"

	"github.com/starling-io/starling/stores"
)

// cpuNow is the process's CPU time (user and system) in ns: unlike wall time, barely moved
// by other processes on a loaded machine.
func cpuNow() int64 {
	var r syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &r)
	return r.Utime.Nano() + r.Stime.Nano()
}

// BenchmarkAppendOnly is Append alone — validate, encode into the pending buffer (with
// each record's checksum), index — without the commit's fsync, whose noise hides it in
// BenchmarkStore/Append. One op is a batch of 64; a commit (NoSync, outside the timer and
// the CPU count) every 64 batches keeps the pending buffer bounded.
func BenchmarkAppendOnly(b *testing.B) {
	for _, size := range []int{16, 1024} {
		b.Run(fmt.Sprintf("size=%d", size), func(b *testing.B) {
			s, err := Open(filepath.Join(b.TempDir(), "db"), Options{NoSync: true, Limits: &stores.LimitsSet{}})
			if err != nil {
				b.Fatal(err)
			}
			defer s.Close()
			ch, err := s.CreateChannel("foo", 1)
			if err != nil {
				b.Fatal(err)
			}
			data := make([]byte, size)
			batch := make([]stores.Msg, 64)
			seq := uint64(1)
			b.SetBytes(int64(size * len(batch)))
			b.ReportAllocs()
			var cpu int64
			b.ResetTimer()
			c0 := cpuNow()
			for i := range b.N {
				for j := range batch {
					batch[j] = stores.Msg{Seq: seq, Time: int64(seq), Data: data}
					seq++
				}
				if err := ch.Msgs.Append(batch); err != nil {
					b.Fatal(err)
				}
				if i%64 == 63 {
					b.StopTimer()
					cpu += cpuNow() - c0
					if err := ch.Msgs.Sync(); err != nil {
						b.Fatal(err)
					}
					c0 = cpuNow()
					b.StartTimer()
				}
			}
			cpu += cpuNow() - c0
			b.ReportMetric(float64(cpu)/float64(b.N), "cpu-ns/op")
		})
	}
}

// BenchmarkLoadCommitted loads committed messages (a read transaction, the block's record,
// its checksum, the copy) in a stride over 4,096 of them; cpu-ns/op is the process's CPU.
func BenchmarkLoadCommitted(b *testing.B) {
	for _, size := range []int{128, 64 << 10} {
		b.Run(fmt.Sprintf("size=%d", size), func(b *testing.B) {
			s, err := Open(filepath.Join(b.TempDir(), "db"), Options{NoSync: true, Limits: &stores.LimitsSet{}})
			if err != nil {
				b.Fatal(err)
			}
			defer s.Close()
			ch, err := s.CreateChannel("foo", 1)
			if err != nil {
				b.Fatal(err)
			}
			const n = 4096
			data := make([]byte, size)
			for q := uint64(1); q <= n; q++ {
				if err := ch.Msgs.Append([]stores.Msg{{Seq: q, Time: int64(q), Data: data}}); err != nil {
					b.Fatal(err)
				}
			}
			if err := ch.Msgs.Sync(); err != nil {
				b.Fatal(err)
			}
			var m stores.Msg
			seq := uint64(1)
			b.SetBytes(int64(size))
			b.ReportAllocs()
			b.ResetTimer()
			c0 := cpuNow()
			for b.Loop() {
				seq = (seq+7919-1)%n + 1
				if err := ch.Msgs.Load(seq, &m); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(cpuNow()-c0)/float64(b.N), "cpu-ns/op")
		})
	}
}
