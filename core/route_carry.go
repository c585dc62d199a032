package core

import "github.com/starling-io/starling/core/wire"

// Carrying a retired route's interest over. When a simultaneous dial's tie-break retires a
// route that had the peer's interest, the route that stays learns that interest only once
// the peer has registered it too and sent its RS+ set there: a round trip later at worst.
// Dropping the retired route's interest at once lost whatever was published here for the
// peer's subscribers in between. So the interest moves to the route that stays, each entry
// marked carried (with the route it came from):
//
//   - the peer's RS+ on the route that stays confirms an entry (it stays, with the new
//     weight); its RS- removes it, on that route or on the retired one (which the peer may
//     have sent it on before it decided), so an UNSUB always wins;
//   - a PING goes out on the route that stays right behind our INFO there. The peer answers
//     it only after reading that INFO, by which time it has registered the route and queued
//     its whole interest on it, ahead of the PONG: what is still carried when the PONG comes
//     is interest the peer no longer has, and leaves the index;
//   - a message matched on the retired route's entries (a match made before they moved)
//     goes to the route that stays (hitBuf.add, sendToRoutes), so the peer gets it once:
//     never over both routes.
//
// nats-server instead closes the connection that registers second; when the two servers
// registered different ones first, both close and they dial again, the interest gone
// meanwhile. It sends a message over one route only, as here.

// carryTo puts copies of the retired route c's subscriptions (taken out of c.subs, still in
// the index) on next, carried, with c's limbo accounts, and queues the PING whose PONG ends
// the wait. On next's read goroutine in its registration: next has no interest of its own
// yet. carried is c's own carried set (c may have taken it over from a route retired
// before): those entries keep the route they came from. c.mu held, then next.mu taken: a
// chain of retirements locks from the older route to the newer, never the other way.
func (c *client) carryTo(next *client, subs []*subscription, carried map[string]*client, limbo map[string]*account) {
	if len(subs) == 0 {
		return
	}
	next.mu.Lock()
	defer next.mu.Unlock()
	if next.closed {
		return // its subscriptions are gone with it: c's leave the index too
	}
	accs := next.srv.accountMap() // under next.mu: a reload moving route interest waits for it
	moved := 0
	for _, sub := range subs {
		if next.subs[sub.sid] != nil {
			continue
		}
		acc := sub.acc
		if cur := accs[acc.name]; cur != nil && cur != acc {
			acc = cur // a reload added the account since (moveRouteInterest's rule)
		} else if cur == nil && limbo[acc.name] == acc {
			if l := next.route.limbo[acc.name]; l != nil {
				acc = l
			} else {
				if next.route.limbo == nil {
					next.route.limbo = make(map[string]*account)
				}
				next.route.limbo[acc.name] = acc
			}
		}
		ns := &subscription{client: next, acc: acc, subject: sub.subject, queue: sub.queue, sid: sub.sid}
		ns.weight.Store(sub.weight.Load())
		if acc.subs.Insert(ns.subject, ns.queue, ns) != nil {
			continue
		}
		next.subs[ns.sid] = ns
		from := c
		if o := carried[sub.sid]; o != nil {
			from = o
		}
		if next.route.carried == nil {
			next.route.carried = make(map[string]*client)
		}
		next.route.carried[ns.sid] = from
		moved++
	}
	if moved > 0 {
		next.out.buf = append(next.out.buf, wire.PingLine...) // flushed by the registration
	}
}

// dropCarried: the peer's PONG has come, so its whole interest was announced before it;
// the carried entries it did not confirm go. On c's read goroutine.
func (c *client) dropCarried() {
	c.mu.Lock()
	if len(c.route.carried) == 0 {
		c.mu.Unlock()
		return
	}
	subs := make([]*subscription, 0, len(c.route.carried))
	for key := range c.route.carried {
		if sub := c.subs[key]; sub != nil {
			subs = append(subs, sub)
			delete(c.subs, key)
		}
	}
	c.route.carried = nil
	c.mu.Unlock()
	c.dropSubs(subs)
	freed := false
	c.mu.Lock()
	for name, a := range c.route.limbo {
		if a.subs.Count() == 0 {
			delete(c.route.limbo, name) // no interest left to keep: room for another
			freed = true
		}
	}
	c.mu.Unlock()
	if freed {
		c.route.limboFreed()
	}
}

// unsubCarried applies an RS- that reached the retired route c after its interest moved:
// the entry carried from c goes, unless the peer announced it again on the route that has
// it now (then that is newer). On c's read goroutine.
func (c *client) unsubCarried(key string) {
	end := c.successor()
	if end == nil {
		return
	}
	end.mu.Lock()
	sub := end.subs[key]
	if sub == nil || end.route.carried[key] != c {
		end.mu.Unlock()
		return
	}
	delete(end.subs, key)
	delete(end.route.carried, key)
	end.mu.Unlock()
	sub.closed.Store(true)
	_ = sub.acc.subs.Remove(sub.subject, sub.queue, sub)
	end.mu.Lock()
	if a := end.route.limbo[sub.acc.name]; a == sub.acc && a.subs.Count() == 0 {
		delete(end.route.limbo, a.name)
	}
	end.mu.Unlock()
}

// successor is the route that took over the retired route c's interest (the last of a
// chain of them), or nil.
func (c *client) successor() *client {
	var end *client
	for n := c.route.next.Load(); n != nil; n = n.route.next.Load() {
		end = n
	}
	return end
}
