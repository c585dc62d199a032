package core

import "github.com/starling-io/starling/core/wire"

// Carrying a retired route's interest over. The route that stays learns the peer's interest
// only once the peer has registered it too and sent its RS+ set, at least a round trip after
// we retired the other: dropping the retired route's interest at once lost whatever was
// published here for the peer's subscribers in between. So the interest moves to the route
// that stays, marked carried; the peer's RS+ on it confirm each entry, and the PONG to a PING
// sent after our INFO ends the wait: the peer had read our INFO, and so queued its whole
// interest before that PONG. What it did not announce again is gone there, and leaves here.
// Meanwhile a message matched on the retired route's entries goes to the one that stays
// (hitBuf.add), so the peer gets it once.

// carryTo moves the retired route c's subscriptions (taken out of c.subs) and its limbo to
// next, and returns those next had already (to drop). On next's read goroutine, which owns
// next.route.carried; next has just registered, so it had no interest of its own yet.
func (c *client) carryTo(next *client, subs []*subscription, limbo map[string]*account) []*subscription {
	var drop []*subscription
	var moved []*subscription
	next.mu.Lock()
	if next.closed {
		next.mu.Unlock()
		return subs
	}
	for name, acc := range limbo {
		if next.route.limbo == nil {
			next.route.limbo = make(map[string]*account)
		}
		if next.route.limbo[name] == nil {
			next.route.limbo[name] = acc
		}
	}
	for _, sub := range subs {
		if next.subs[sub.sid] != nil || (sub.acc.name != "" && limbo[sub.acc.name] == sub.acc && next.route.limbo[sub.acc.name] != sub.acc) {
			drop = append(drop, sub)
			continue
		}
		ns := &subscription{client: next, acc: sub.acc, subject: sub.subject, queue: sub.queue, sid: sub.sid}
		ns.weight.Store(sub.weight.Load())
		if err := ns.acc.subs.Insert(ns.subject, ns.queue, ns); err != nil {
			drop = append(drop, sub)
			continue
		}
		next.subs[ns.sid] = ns
		if next.route.carried == nil {
			next.route.carried = make(map[string]struct{})
		}
		next.route.carried[ns.sid] = struct{}{}
		moved = append(moved, sub)
	}
	if len(moved) > 0 && !next.closed {
		next.out.buf = append(next.out.buf, wire.PingLine...)
	}
	next.mu.Unlock()
	next.flushSignal()
	return append(drop, moved...) // the old entries leave the index after the new are in
}

// dropCarried takes the carried entries the peer did not announce again out of the index: it
// sent its whole interest before this PONG. On c's read goroutine.
func (c *client) dropCarried() {
	if len(c.route.carried) == 0 {
		return
	}
	var subs []*subscription
	c.mu.Lock()
	for key := range c.route.carried {
		if sub := c.subs[key]; sub != nil {
			subs = append(subs, sub)
			delete(c.subs, key)
		}
	}
	c.route.carried = nil
	c.mu.Unlock()
	c.dropSubs(subs)
	c.mu.Lock()
	for name, a := range c.route.limbo {
		if a.subs.Count() == 0 {
			delete(c.route.limbo, name) // no interest left to keep: room for another
		}
	}
	c.mu.Unlock()
}
