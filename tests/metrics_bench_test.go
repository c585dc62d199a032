package tests

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/stan.go"

	"github.com/starling-io/starling/cmd/starling/app"
)

// BenchmarkMetricsScrape publishes with and without a scraper GETting /metrics: the
// collectors read counters the server keeps anyway, so the publish path should cost the
// same. The server runs as the binary does, streaming on, with 10 channels each holding 10
// messages and one subscriber, so that a scrape does its full work (per-channel and
// per-subscription series). Two publish paths: nats.go publisher → server → nats.go
// subscriber over loopback (16 B), and core's in-process connection (the streaming layer's
// path) to one raw socket subscriber, flushed every 64 messages. allocs/op counts the whole
// process, the scraper's allocations included. scrape=10ms is a stress case, 100 times
// more often than a usual 1 s… 15 s scrape interval.
func BenchmarkMetricsScrape(b *testing.B) {
	for _, path := range []string{"natsgo", "inprocess"} {
		for _, every := range []time.Duration{0, time.Second, 10 * time.Millisecond} {
			name := "scrape=none"
			if every > 0 {
				name = "scrape=" + every.String()
			}
			b.Run(path+"/"+name, func(b *testing.B) {
				m := startMetricsServer(b)
				populateChannels(b, m, 10, 10)
				var publish func(i int)
				var finish func()
				switch path {
				case "natsgo":
					publish, finish = natsPublisher(b, m)
				case "inprocess":
					publish, finish = inProcessPublisher(b, m)
				}
				stop := scrapeEvery(b, m, every)
				b.SetBytes(16)
				b.ReportAllocs()
				b.ResetTimer()
				for i := range b.N {
					publish(i)
				}
				finish()
				b.StopTimer()
				if scrapes := stop(); every > 0 {
					b.ReportMetric(float64(scrapes), "scrapes")
				}
			})
		}
	}
}

// populateChannels creates channels ch.0… with msgs messages each and one subscriber.
func populateChannels(b *testing.B, m *app.Main, channels, msgs int) {
	sc, err := stan.Connect(metricsCluster, "bench-populate", stan.NatsURL(clientURL(m)))
	must(b, err)
	b.Cleanup(func() { _ = sc.Close() })
	for c := range channels {
		ch := fmt.Sprintf("ch.%d", c)
		for range msgs {
			must(b, sc.Publish(ch, []byte("0123456789abcdef")))
		}
		_, err := sc.Subscribe(ch, func(*stan.Msg) {}, stan.DeliverAllAvailable())
		must(b, err)
	}
}

// natsPublisher publishes with nats.go to a nats.go subscriber; finish waits until the
// subscriber has every message.
func natsPublisher(b *testing.B, m *app.Main) (publish func(int), finish func()) {
	var got atomic.Int64
	done := make(chan struct{})
	want := int64(b.N)
	sub := connect(b, m)
	_, err := sub.Subscribe("bench.metrics", func(*nats.Msg) {
		if got.Add(1) == want {
			close(done)
		}
	})
	must(b, err)
	must(b, sub.Flush())
	pub := connect(b, m)
	msg := make([]byte, 16)
	return func(int) {
			if err := pub.Publish("bench.metrics", msg); err != nil {
				b.Fatal(err)
			}
		}, func() {
			must(b, pub.Flush())
			select {
			case <-done:
			case <-time.After(60 * time.Second):
				b.Fatalf("received %d of %d", got.Load(), b.N)
			}
		}
}

// inProcessPublisher publishes on core's in-process connection to one raw socket
// subscriber that discards what it reads.
func inProcessPublisher(b *testing.B, m *app.Main) (publish func(int), finish func()) {
	nc, err := net.Dial("tcp", m.Server().Addr().String())
	must(b, err)
	b.Cleanup(func() { nc.Close() })
	r := bufio.NewReader(nc)
	_, err = r.ReadString('\n') // INFO
	must(b, err)
	fmt.Fprint(nc, "CONNECT {\"verbose\":false,\"pedantic\":false}\r\nSUB bench.metrics 1\r\nPING\r\n")
	if l, err := r.ReadString('\n'); err != nil || l != "PONG\r\n" {
		b.Fatalf("handshake: %q %v", l, err)
	}
	go func() { _, _ = io.Copy(io.Discard, r) }()
	conn, err := m.Server().Connect("bench")
	must(b, err)
	b.Cleanup(conn.Close)
	payload := make([]byte, 16)
	return func(i int) {
		if err := conn.Publish("bench.metrics", "", nil, payload); err != nil {
			b.Fatal(err)
		}
		if i%64 == 63 {
			conn.Flush()
		}
	}, conn.Flush
}

// scrapeEvery GETs /metrics every d (not at all when d is 0) until stop, which returns how
// many scrapes were made.
func scrapeEvery(b *testing.B, m *app.Main, d time.Duration) (stop func() int) {
	if d == 0 {
		return func() int { return 0 }
	}
	url := "http://" + m.MonitorAddr() + "/metrics"
	quit := make(chan struct{})
	var wg sync.WaitGroup
	var n int
	wg.Add(1)
	go func() {
		defer wg.Done()
		t := time.NewTicker(d)
		defer t.Stop()
		for {
			select {
			case <-quit:
				return
			case <-t.C:
			}
			resp, err := http.Get(url)
			if err != nil {
				b.Error(err)
				return
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			n++
		}
	}()
	return func() int {
		close(quit)
		wg.Wait()
		return n
	}
}

// BenchmarkMetricsGather is one scrape of /metrics over HTTP (what a Prometheus server
// costs Starling per scrape interval), with 10 and with 1,000 channels of one subscriber.
func BenchmarkMetricsGather(b *testing.B) {
	for _, channels := range []int{10, 1000} {
		b.Run(fmt.Sprintf("channels=%d", channels), func(b *testing.B) {
			m := startMetricsServer(b, "-mc", "0")
			populateChannels(b, m, channels, 1)
			url := "http://" + m.MonitorAddr() + "/metrics"
			b.ReportAllocs()
			b.ResetTimer()
			var size int64
			for range b.N {
				resp, err := http.Get(url)
				if err != nil {
					b.Fatal(err)
				}
				size, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
			}
			b.ReportMetric(float64(size), "bytes/scrape")
		})
	}
}
