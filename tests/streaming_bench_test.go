package tests

import (
	"fmt"
	"testing"

	"github.com/nats-io/stan.go"
)

// BenchmarkStanPublishAsync: stan.go async publishes of 16 B against the in-process server,
// optionally with one subscriber; ops are messages (all acked, all received).
// Run: go test -run '^$' -bench StanPublishAsync -benchmem ./tests/
func BenchmarkStanPublishAsync(b *testing.B) {
	for _, tc := range []struct{ subs, size int }{{0, 16}, {1, 16}, {0, 1024}, {1, 1024}} {
		subs, size := tc.subs, tc.size
		b.Run(fmt.Sprintf("subs=%d/size=%d", subs, size), func(b *testing.B) {
			s := startStan(b, nil, nil)
			sc := stanConnect(b, s, "bench")
			done := make(chan struct{})
			if subs == 1 {
				n := 0
				_, err := sc.Subscribe("bench", func(*stan.Msg) {
					if n++; n == b.N {
						close(done)
					}
				}, stan.MaxInflight(1<<16))
				must(b, err)
			}
			acks := make(chan struct{}, 1)
			acked := 0
			payload := make([]byte, size)
			b.SetBytes(int64(size))
			b.ReportAllocs()
			b.ResetTimer()
			for range b.N {
				_, err := sc.PublishAsync("bench", payload, func(string, error) {
					if acked++; acked == b.N {
						acks <- struct{}{}
					}
				})
				must(b, err)
			}
			<-acks
			if subs == 1 {
				<-done
			}
			b.StopTimer()
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
		})
	}
}
