package core

import "time"

// Retiring a route. Two servers that dial each other at once end up with two connections;
// both keep the one dialed by the server with the smaller id (keepNewRoute), but each
// decides when it has seen both, so for a moment each may be sending on the other one:
// a request forwarded there, or its reply. Closing the loser at once lost those frames
// (our queued output went unwritten; the peer's, unread, and the close turned into a reset
// that can discard what the peer had not read yet either). So the loser is retired instead:
//
//   - its interest leaves the index at once, so nothing new is routed to it, and what the
//     peer tells it (RS+, INFO) is ignored: the route that stays carries that;
//   - the writer writes what is queued, then shuts the write side: the peer reads EOF right
//     after our last frame, and it does the same once it decides;
//   - the reader goes on delivering the peer's frames until the peer's EOF (or dupWindow
//     passes) and only then is the connection closed, with nothing unread.

// retire starts the end of a route that lost the tie-break. It does not block.
func (c *client) retire() {
	if !c.route.retiring.CompareAndSwap(false, true) {
		return
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
	c.mu.Unlock()
	c.dropSubs(subs)
	_ = c.nc.SetReadDeadline(time.Now().Add(dupWindow))
	c.flushSignal() // the writer writes what is queued, then shuts (flushOut)
}

// shutDue reports whether a retired route's output is all written and its write side may
// be shut now; it marks it shut. c.mu held.
func (c *client) shutDue() bool {
	if c.route == nil || c.out.shut || c.out.flushing || len(c.out.buf) > 0 || !c.route.retiring.Load() {
		return false
	}
	c.out.shut = true
	return true
}

// shutWrite half-closes the socket: the peer reads EOF, and we can still read.
func (c *client) shutWrite() {
	if hc, ok := c.nc.(interface{ CloseWrite() error }); ok {
		_ = hc.CloseWrite()
	}
}

// dropShutOutput discards what was queued after the write side was shut (a PONG, a frame
// routed before the interest left the index). c.mu held.
func (c *client) dropShutOutput() {
	c.out.buf = c.out.buf[:0]
	if c.out.stall != nil {
		close(c.out.stall)
		c.out.stall = nil
	}
}
