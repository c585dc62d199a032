package tests

import (
	"testing"

	"github.com/nats-io/stan.go"
)

// BenchmarkStanPublishAsync: stan.go async publishes of 16 B against the in-process server,
// optionally with one subscriber; ops are messages (all acked, all received).
// Run: go test -run '^$' -bench StanPublishAsync -benchmem ./tests/
func BenchmarkStanPublishAsync(b *testing.B) {
	for _, subs := range []int{0, 1} {
		name := "subs=0"
		if subs == 1 {
			name = "subs=1"
		}
		b.Run(name, func(b *testing.B) {
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
			payload := make([]byte, 16)
			b.SetBytes(16)
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
