package core

import (
	"math/rand/v2"
	"time"

	"github.com/starling-io/starling/core/wire"
)

// setPingTimer (re)arms the keepalive timer with up to 20% jitter so thousands of
// connections do not tick together. One timer per connection, never per message.
func (c *client) setPingTimer(d time.Duration) {
	if c.kind == kindInternal || d <= 0 {
		return
	}
	d += time.Duration(rand.Int64N(int64(d)/5 + 1))
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return
	}
	if c.pingTimer == nil {
		c.pingTimer = time.AfterFunc(d, c.processPingTimer)
		return
	}
	c.pingTimer.Reset(d)
}

// rttMaxAge is how old an RTT may get before a tick measures it again, even for an active
// connection (nats-server's DEFAULT_RTT_MEASUREMENT_INTERVAL).
const rttMaxAge = time.Hour

// processPingTimer: skip the PING when the client was recently active and its RTT is
// known (estimated at CONNECT, measured by the first PING); close it as stale after
// ping_max unanswered PINGs.
func (c *client) processPingTimer() {
	interval := c.srv.o().PingInterval
	if c.kind == kindRoute {
		interval = min(interval, routePingMax)
	}
	now := time.Now()
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return
	}
	// An idle connection should not hold on to large buffers: neither the spare nor the
	// empty one a backlog's turns left in place.
	if c.out.pending() == 0 {
		if cap(c.out.spare) > 4096 {
			c.out.spare = nil
		}
		if cap(c.out.buf) > 4096 {
			c.out.buf = nil
		}
	}
	needRTT := c.rtt == 0 || now.Sub(c.rttStart) > rttMaxAge
	recent := now.Sub(time.Unix(0, c.lastIn.Load())) < interval && !needRTT
	if !recent {
		if c.pingsOut+1 > c.srv.o().PingMax {
			c.out.buf = wire.AppendErr(c.out.buf, wire.ErrStale.Text)
			c.out.flushOnClose = true
			c.mu.Unlock()
			c.srv.stale.Add(1)
			c.log.Debug("closing stale connection", "pings_out", c.pingsOut)
			c.closeConnection(reasonStale)
			return
		}
		c.pingsOut++
		c.rttStart = now
		if c.pingSent.IsZero() {
			c.pingSent = now
		}
		c.out.buf = append(c.out.buf, wire.PingLine...)
	}
	c.pingTimer.Reset(interval)
	c.mu.Unlock()
	c.flushSignal()
}
