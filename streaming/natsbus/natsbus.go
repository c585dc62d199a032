// Package natsbus carries the streaming layer over a NATS client connection (nats.go) to
// an external NATS server, as nats-streaming-server's -ns does, instead of the in-process
// connection to Starling's own router.
//
// What the in-process bus knows and a client connection cannot: which connection a request
// came from and its user. Every request then counts as coming from one connection of no
// user, so clients are bound to no connection — as in nats-streaming-server, which binds
// none — and subject permissions on the external server are what protect them.
package natsbus

import (
	"fmt"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/starling-io/starling/core"
	"github.com/starling-io/starling/streaming"
)

// pendingLimit bounds what a subscription buffers in the client before nats.go reports it
// a slow consumer; the streaming engine's own queue, bounded by bytes, is the real bound.
const (
	pendingMsgs  = 1 << 20
	pendingBytes = 256 << 20
)

// Bus is a streaming.Bus over a nats.go connection.
type Bus struct{ nc *nats.Conn }

var _ streaming.Bus = (*Bus)(nil)

// New returns the bus over nc, which stays the caller's to close.
func New(nc *nats.Conn) *Bus { return &Bus{nc: nc} }

// noResponders stands for the status header nats.go gives a request nobody answered: the
// engine reads any header on an empty heartbeat answer as "no one listens".
var noResponders = []byte("NATS/1.0 503\r\n\r\n")

// Subscribe subscribes h to subject (in queue group queue unless ""); h runs on the
// subscription's own goroutine, one message at a time.
func (b *Bus) Subscribe(subject, queue string, h core.MsgHandler) (streaming.Subscription, error) {
	sub, err := b.nc.QueueSubscribe(subject, queue, func(m *nats.Msg) {
		cm := core.Msg{Subject: []byte(m.Subject), Reply: []byte(m.Reply), Data: m.Data}
		if len(m.Header) > 0 {
			cm.Header = noResponders
		}
		h(cm)
	})
	if err != nil {
		return nil, fmt.Errorf("natsbus: subscribe %s: %w", subject, err)
	}
	if err := sub.SetPendingLimits(pendingMsgs, pendingBytes); err != nil {
		_ = sub.Unsubscribe()
		return nil, fmt.Errorf("natsbus: subscribe %s: %w", subject, err)
	}
	return sub, nil
}

// Publish sends data to subject; the streaming layer never sends headers.
func (b *Bus) Publish(subject, reply string, hdr, data []byte) error {
	if len(hdr) > 0 {
		return fmt.Errorf("natsbus: headers are not carried")
	}
	return b.nc.PublishMsg(&nats.Msg{Subject: subject, Reply: reply, Data: data})
}

// Flush does nothing: nats.go's own flusher sends what is buffered at once, and a Flush of
// the connection would wait for a round trip to the server.
func (b *Bus) Flush() {}

// subscriptionsTimeout bounds FlushSubscriptions' round trip.
const subscriptionsTimeout = 5 * time.Second

// FlushSubscriptions returns once the external server has processed the subscriptions made
// so far (a PING round trip): nats.go sends them asynchronously, and a client connecting
// to that server meanwhile found nobody on the discover subject ("connect request
// timeout").
func (b *Bus) FlushSubscriptions() error { return b.nc.FlushTimeout(subscriptionsTimeout) }

// IsConnected reports every connection open: a client connection cannot tell.
func (b *Bus) IsConnected(uint64) bool { return true }

// ConnUser reports no user: a client connection cannot tell.
func (b *Bus) ConnUser(uint64) (string, bool) { return "", true }

// HasInterest reports interest everywhere: a client connection cannot tell, and a message
// nobody receives is redelivered after its ack wait as with the in-process bus.
func (b *Bus) HasInterest(string) bool { return true }

// Backlogged reports no backlog: a client connection cannot see the subscribers' (the
// external server and its own flow control handle them).
func (b *Bus) Backlogged(string) bool { return false }

// MaxPayload is the external server's.
func (b *Bus) MaxPayload() int { return int(b.nc.MaxPayload()) }
