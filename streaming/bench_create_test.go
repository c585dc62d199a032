package streaming

import (
	"fmt"
	"testing"
	"time"

	"github.com/starling-io/starling/proto/stanpb"
	"github.com/starling-io/starling/raftlog"
	"github.com/starling-io/starling/stores"
	"github.com/starling-io/starling/stores/filestore"
)

// BenchmarkNewChannelBurst: bursts of 64 publishes, each to a new channel, reach the engine
// as one iteration (one batch of ops), on the file store; each op is one burst, its
// channels created and their messages durable and acknowledged. channels/s is the rate of
// creations. Run: go test -run '^$' -bench NewChannelBurst ./streaming/
func BenchmarkNewChannelBurst(b *testing.B) {
	const burst = 64
	l := stores.DefaultLimits()
	l.MaxChannels = 0 // unlimited
	limits := &stores.LimitsSet{Global: l}
	fs, err := filestore.Open(b.TempDir(), filestore.Options{Limits: limits})
	if err != nil {
		b.Fatal(err)
	}
	bus := &fakeBus{alive: true}
	s, err := New(bus, fs, raftlog.Standalone, Options{Limits: limits})
	if err != nil {
		b.Fatal(err)
	}
	if err := s.recover(); err != nil {
		b.Fatal(err)
	}
	s.started = true
	b.Cleanup(func() { s.drainCommits(); _ = fs.Close() })
	s.step(op{kind: opConnect, reply: "r", data: marshal(&stanpb.ConnectRequest{ClientID: "c1", HeartbeatInbox: "hb", Protocol: 1, ConnID: []byte("conn")})})
	s.waitCommits(0)
	n := 0
	batch := make([]op, burst)
	b.ResetTimer()
	start := time.Now()
	for range b.N {
		for i := range batch {
			n++
			batch[i] = op{kind: opPublish, reply: "ack", data: marshal(&stanpb.PubMsg{ClientID: "c1", Guid: fmt.Sprint("g", n),
				Subject: fmt.Sprint("burst.", n), Data: []byte("x"), ConnID: []byte("conn")})}
		}
		s.runMu.Lock()
		s.iterate(batch)
		s.runMu.Unlock()
		s.waitCommits(0)
	}
	elapsed := time.Since(start)
	b.StopTimer()
	if len(s.channels) != n {
		b.Fatalf("%d channels for %d publishes", len(s.channels), n)
	}
	b.ReportMetric(float64(n)/elapsed.Seconds(), "channels/s")
}
