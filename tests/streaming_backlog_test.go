package tests

import (
	"testing"
	"time"

	"github.com/nats-io/stan.go"

	"github.com/starling-io/starling/core"
)

// A replay of messages that together exceed max_pending, to a stan.go subscriber with the
// default MaxInflight (1,024) that takes a moment per message: the server holds deliveries
// back while the subscriber's backlog is unread, and the subscriber gets every message in
// order. Before, the engine piled them all into core's output buffer for the subscriber,
// core cut it off as a slow consumer, and stan.go's Subscribe timed out.
func TestReplayOfLargeMessagesKeepsTheSubscriber(t *testing.T) {
	s := startHostile(t, func(o *core.Options) { o.MaxPending = 4 << 20 }, nil)
	const n, size = 48, 256 << 10 // 12 MiB: three times max_pending
	pub := stanConnectURL(t, s.url, "p")
	payload := make([]byte, size)
	for range n {
		must(t, pub.Publish("big", payload))
	}
	lost := make(chan error, 1)
	sub := stanConnectURL(t, s.url, "s", stan.SetConnectionLostHandler(func(_ stan.Conn, err error) { lost <- err }))
	got := make(chan uint64, n)
	_, err := sub.Subscribe("big", func(m *stan.Msg) {
		time.Sleep(2 * time.Millisecond)
		got <- m.Sequence
	}, stan.DeliverAllAvailable())
	must(t, err)
	for want := uint64(1); want <= n; want++ {
		select {
		case seq := <-got:
			if seq != want {
				t.Fatalf("got sequence %d, want %d", seq, want)
			}
		case err := <-lost:
			t.Fatalf("connection lost after %d of %d messages: %v", want-1, n, err)
		case <-time.After(20 * time.Second):
			t.Fatalf("received %d of %d messages", want-1, n)
		}
	}
	if v := s.core.Varz(); v.SlowConsumers != 0 {
		t.Fatalf("%d slow consumers", v.SlowConsumers)
	}
}
