package core

import "time"

// Retiring a route. Two servers that dial each other at once end up with two connections;
// both keep the one dialed by the server with the smaller id (keepNewRoute), but each
// decides when it has seen both, so for a moment each may be sending on the other one:
// a request forwarded there, or its reply. Closing the loser at once lost those frames
// (our queued output went unwritten; the peer's, unread, and the close turned into a reset
// that can discard what the peer had not read yet either). So the loser is retired instead:
//
//   - its interest moves to the route that stays (carryTo, route_carry.go), so nothing new
//     is routed to it; what the peer tells it (RS+, INFO) is ignored, the route that stays
//     carries that, but for an RS- (the peer may have sent it before it decided);
//   - the writer writes what is queued, then shuts the write side: the peer reads EOF right
//     after our last frame, and it does the same once it decides;
//   - the reader goes on delivering the peer's frames until the peer's EOF (or dupWindow
//     passes) and only then is the connection closed, with nothing unread.

// retire starts the end of a route that lost the tie-break to next, which takes its
// interest over (carryTo). next is nil when c lost at its own registration: it never took
// the peer's interest then. Given next, it runs on next's read goroutine, in next's
// registration. It does not block.
func (c *client) retire(next *client) {
	if !c.route.retiring.CompareAndSwap(false, true) {
		return
	}
	if next != nil {
		c.route.next.Store(next) // before its interest leaves the index
	}
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return
	}
	if c.pingTimer != nil {
		c.pingTimer.Stop()
	}
	subs := make([]*subscription, 0, len(c.subs))
	for k, sub := range c.subs {
		subs = append(subs, sub)
		delete(c.subs, k)
	}
	if next != nil {
		// Under c.mu, which an RS- on c takes: it finds the entry here or carried on next.
		c.carryTo(next, subs, c.route.carried, c.route.limbo)
	}
	c.route.carried, c.route.limbo = nil, nil
	c.mu.Unlock()
	c.dropSubs(subs) // after their copies on next are in the index: no gap
	_ = c.nc.SetReadDeadline(time.Now().Add(dupWindow))
	c.flushSignal() // the writer writes what is queued, then shuts (flushOut)
}

// shutDue reports whether a retired route's output (retiring) is all written and its write
// side may be shut now; it marks it shut. The client's mu held.
func (o *outbound) shutDue(retiring bool) bool {
	if !retiring || o.shut || o.flushing || len(o.buf) > 0 || len(o.full) > 0 {
		return false
	}
	o.shut = true
	return true
}

// dropShut discards what was queued after the write side was shut (a PONG, a frame routed
// before the interest left the index). The client's mu held.
func (o *outbound) dropShut() {
	o.buf = o.buf[:0]
	clear(o.full)
	o.full, o.fullLen = o.full[:0], 0
	if o.stall != nil {
		close(o.stall)
		o.stall = nil
	}
}
