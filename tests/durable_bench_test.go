package tests

import (
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/nats-io/stan.go"

	"github.com/starling-io/starling/core"
	"github.com/starling-io/starling/raftlog"
	"github.com/starling-io/starling/stores"
	"github.com/starling-io/starling/stores/boltstore"
	"github.com/starling-io/starling/stores/filestore"
	"github.com/starling-io/starling/streaming"
)

// These benchmarks build large stores directly through the store API (publishing ten
// million messages through a client would take minutes), then measure what a user sees.
// They are heavy: run them by name, once.
//
//	go test -run '^$' -bench 'StartAtTime10M|Startup1000x10000' -benchtime 1x ./tests/

type storeOpener func(dir string) (stores.Store, error)

var durableStores = map[string]storeOpener{
	"file": func(dir string) (stores.Store, error) { return filestore.Open(dir, filestore.Options{}) },
	"bolt": func(dir string) (stores.Store, error) {
		return boltstore.Open(filepath.Join(dir, "starling.db"), boltstore.Options{})
	},
}

// fill writes channels × msgs messages of 16 bytes, one millisecond of timestamp apart,
// and returns the time of the middle message of the first channel.
func fill(b *testing.B, open storeOpener, dir string, channels, msgs int) int64 {
	b.Helper()
	st, err := open(dir)
	must(b, err)
	limits := &stores.LimitsSet{Global: stores.DefaultLimits()}
	limits.Global.MaxChannels, limits.Global.MaxMsgs, limits.Global.MaxBytes = 0, 0, 0
	must(b, st.SetLimits(limits))
	must(b, st.Init(stores.ServerInfo{ClusterID: "test-cluster"}))
	base := time.Now().Add(-time.Duration(msgs) * time.Millisecond).UnixNano()
	batch := make([]stores.Msg, 0, 4096)
	payload := make([]byte, 16)
	for c := range channels {
		ch, err := st.CreateChannel(fmt.Sprintf("ch%d", c), uint64(c+1))
		must(b, err)
		for seq := 1; seq <= msgs; seq++ {
			batch = append(batch, stores.Msg{Seq: uint64(seq), Time: base + int64(seq)*int64(time.Millisecond), Data: payload})
			if len(batch) == cap(batch) || seq == msgs {
				must(b, ch.Msgs.Append(batch))
				batch = batch[:0]
			}
		}
		must(b, ch.Msgs.Sync())
	}
	must(b, st.Sync())
	must(b, st.Close())
	return base + int64(msgs/2)*int64(time.Millisecond)
}

// serve starts core + streaming over the store in dir and returns the client URL.
func serve(b *testing.B, open storeOpener, dir string) (string, func()) {
	b.Helper()
	cs, err := core.New(core.Options{Host: "127.0.0.1", Port: -1})
	must(b, err)
	must(b, cs.Start())
	conn, err := cs.Connect("_STARLING-bench")
	must(b, err)
	st, err := open(dir)
	must(b, err)
	limits := &stores.LimitsSet{Global: stores.DefaultLimits()}
	limits.Global.MaxChannels, limits.Global.MaxMsgs, limits.Global.MaxBytes = 0, 0, 0
	srv, err := streaming.New(streaming.InProcess(conn), st, raftlog.Standalone,
		streaming.Options{ClusterID: "test-cluster", Limits: limits})
	must(b, err)
	must(b, srv.Start())
	return cs.ClientURL(), func() { _ = srv.Shutdown(); _ = cs.Shutdown(b.Context()) }
}

// BenchmarkStartAtTime10M: a stan.go subscription with StartAtTime on a channel of
// 10,000,000 messages; reports the time to its first message (issue 5: < 10 ms).
func BenchmarkStartAtTime10M(b *testing.B) {
	for name, open := range durableStores {
		b.Run(name, func(b *testing.B) {
			dir := b.TempDir()
			mid := fill(b, open, dir, 1, 10_000_000)
			url, stop := serve(b, open, dir)
			defer stop()
			sc, err := stan.Connect("test-cluster", "reader", stan.NatsURL(url))
			must(b, err)
			defer sc.Close()
			b.ResetTimer()
			var worst time.Duration
			for range b.N {
				first := make(chan uint64, 1)
				start := time.Now()
				sub, err := sc.Subscribe("ch0", func(m *stan.Msg) {
					select {
					case first <- m.Sequence:
					default:
					}
				}, stan.StartAtTime(time.Unix(0, mid)))
				must(b, err)
				seq := <-first
				worst = max(worst, time.Since(start))
				// StartAtTime travels as a delta from the client's clock, so the start can
				// land a few microseconds later: the message at mid or the next one.
				if seq != 5_000_000 && seq != 5_000_001 {
					b.Fatalf("first message %d, want 5000000", seq)
				}
				_ = sub.Unsubscribe()
			}
			b.ReportMetric(float64(worst.Microseconds())/1000, "ms-to-first-msg")
		})
	}
}

// BenchmarkStartup1000x10000: recovery of 1,000 channels × 10,000 messages until clients
// can be served (issue 5: < 1 s).
func BenchmarkStartup1000x10000(b *testing.B) {
	for name, open := range durableStores {
		b.Run(name, func(b *testing.B) {
			dir := b.TempDir()
			fill(b, open, dir, 1000, 10_000)
			b.ResetTimer()
			var worst time.Duration
			for range b.N {
				start := time.Now()
				url, stop := serve(b, open, dir)
				sc, err := stan.Connect("test-cluster", "probe", stan.NatsURL(url))
				must(b, err)
				worst = max(worst, time.Since(start))
				_ = sc.Close()
				stop()
			}
			b.ReportMetric(float64(worst.Milliseconds()), "ms-to-serve")
		})
	}
}
