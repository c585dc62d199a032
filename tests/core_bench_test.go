package tests

import (
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
)

// BenchmarkCorePubSub is nats.go publisher → server → nats.go subscriber over loopback, in
// one process (profile with -cpuprofile to see the server's share). With cluster, the
// publisher is on one server and the subscriber on another, across a route.
func BenchmarkCorePubSub(b *testing.B) {
	for _, clustered := range []bool{false, true} {
		for _, size := range []int{16, 1024} {
			name := fmt.Sprintf("%dB", size)
			if clustered {
				name = "route/" + name
			}
			b.Run(name, func(b *testing.B) {
				pubSrv := startServer(b)
				subSrv := pubSrv
				if clustered {
					pubSrv = startServer(b, "--cluster", "nats://127.0.0.1:-1")
					subSrv = startServer(b, "--cluster", "nats://127.0.0.1:-1", "--routes", "nats://"+pubSrv.Server().ClusterAddr().String())
				}
				var got atomic.Int64
				done := make(chan struct{})
				want := int64(b.N)
				sub := connect(b, subSrv)
				_, err := sub.Subscribe("bench", func(*nats.Msg) {
					if got.Add(1) == want {
						close(done)
					}
				})
				must(b, err)
				must(b, sub.Flush())
				if clustered {
					waitFor(b, 5*time.Second, func() error {
						if numClientSubs(pubSrv) == 0 {
							return fmt.Errorf("no interest yet")
						}
						return nil
					})
				}
				pub := connect(b, pubSrv)
				msg := make([]byte, size)
				b.SetBytes(int64(size))
				b.ReportAllocs()
				b.ResetTimer()
				for range b.N {
					if err := pub.Publish("bench", msg); err != nil {
						b.Fatal(err)
					}
				}
				must(b, pub.Flush())
				select {
				case <-done:
				case <-time.After(60 * time.Second):
					b.Fatalf("received %d of %d", got.Load(), b.N)
				}
				b.StopTimer()
				b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
			})
		}
	}
}
