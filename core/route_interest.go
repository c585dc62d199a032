package core

import (
	"math/rand/v2"
	"slices"
	"sync"

	"github.com/starling-io/starling/core/subject"
	"github.com/starling-io/starling/core/wire"
	"time"
)

// Interest propagation: every route learns, per subject and queue group, whether this
// server has local subscribers (RS+/RS-); it keeps what it learns as subscriptions of the
// route in the shared index, so one Match finds local subscribers and routes alike.

// interestKey is a subject, or a subject and queue group, of an account with local
// subscribers.
type interestKey struct{ acc, subject, queue string }

// subAdded counts a new local subscription and tells the routes when the interest is new
// (plain) or its weight changed (queue). Called after the index insert.
func (s *Server) subAdded(sub *subscription) {
	if s.interest == nil {
		return
	}
	s.rmu.Lock()
	defer s.rmu.Unlock()
	if sub.counted || sub.local || sub.closed.Load() {
		return
	}
	sub.counted = true
	k := interestKey{sub.acc.name, sub.subject, sub.queue}
	n := s.interest[k] + 1
	s.interest[k] = n
	if sub.queue == "" && n > 1 {
		return
	}
	s.toRoutes(func(b []byte) []byte { return wire.AppendRouteSub(b, k.acc, k.subject, k.queue, int(n)) })
}

// subRemoved uncounts a local subscription that left the index.
func (s *Server) subRemoved(sub *subscription) {
	if s.interest == nil {
		return
	}
	s.rmu.Lock()
	defer s.rmu.Unlock()
	if !sub.counted {
		return
	}
	sub.counted = false
	k := interestKey{sub.acc.name, sub.subject, sub.queue}
	n := s.interest[k] - 1
	if n <= 0 {
		delete(s.interest, k)
		s.toRoutes(func(b []byte) []byte { return wire.AppendRouteUnsub(b, k.acc, k.subject, k.queue) })
		return
	}
	s.interest[k] = n
	if sub.queue != "" {
		s.toRoutes(func(b []byte) []byte { return wire.AppendRouteSub(b, k.acc, k.subject, k.queue, int(n)) })
	}
}

// toRoutes appends a protocol line to every registered route; rmu held.
func (s *Server) toRoutes(add func([]byte) []byte) {
	for _, r := range s.routes {
		r.mu.Lock()
		if !r.closed {
			r.out.buf = add(r.out.buf)
			r.out.sealIfLarge() // interest churn toward a backlogged route
		}
		r.mu.Unlock()
		r.flushSignal()
	}
}

// RouteSub records the peer's interest as a subscription of the route, in the account it
// names; interest in an account we do not have is kept aside (limbo) for a reload that adds
// it, up to ClusterOptions.MaxLimboAccounts accounts, and past that dropped with a warning.
func (c *client) RouteSub(accName, subj, queue []byte, weight int) (err error) {
	if !c.routeReady() {
		return errRouteClose(wire.ErrAuthorization.Text, reasonRouteRejected)
	}
	c.inBatch.active = true
	acc := c.routeAccount(accName)
	key := routeSubKey(accName, subj, queue)
	dropped := false
	defer func() {
		if dropped {
			c.limboFull(accName)
		}
	}()
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return errRouteClosed
	}
	if c.route.retiring.Load() {
		return nil // its interest reaches us on the route that stays
	}
	if sub := c.subs[key]; sub != nil {
		sub.weight.Store(int32(max(weight, 1)))
		delete(c.route.carried, key) // announced again: it stays (route_carry.go)
		return nil
	}
	if acc != nil && c.srv.accountMap()[string(accName)] != acc {
		// Reloads removed it (and maybe added one back, moving the interest they found)
		// since routeAccount looked: what is in force now, or the limbo below.
		acc = c.srv.accountMap()[string(accName)]
	}
	if acc == nil && (c.route.limbo[string(accName)] != nil || len(c.route.limbo) < c.srv.maxLimbo()) {
		// Kept aside for an account of that name a reload may add: the peer announces its
		// interest once. A reload that added it since routeAccount looked may have moved
		// the limbo already (moveRouteInterest takes c.mu after the new set is in force):
		// look again.
		if acc = c.srv.accountMap()[string(accName)]; acc == nil {
			acc = c.route.limbo[string(accName)]
			if acc == nil {
				acc = &account{name: string(accName), subs: subject.NewIndex[*subscription]()}
				if c.route.limbo == nil {
					c.route.limbo = make(map[string]*account)
				}
				c.route.limbo[acc.name] = acc
			}
		}
	}
	if acc == nil {
		dropped = true // logged once c.mu is released
		return nil
	}
	sub := &subscription{client: c, acc: acc, subject: string(subj), queue: string(queue), sid: key}
	sub.weight.Store(int32(max(weight, 1)))
	if err := acc.subs.Insert(sub.subject, sub.queue, sub); err != nil {
		c.log.Warn("closing route", "cause", "invalid subject in RS+", "subject", sub.subject)
		return errRouteClose(wire.ErrInvalidSubject.Text, reasonProtocolViolation)
	}
	c.subs[key] = sub
	return nil
}

// DefaultMaxLimboAccounts bounds the accounts a route keeps the peer's interest in without
// this server having them. Loose on purpose: a rolling reload that adds accounts puts all of
// them there on the servers reloaded last, and interest dropped is lost until the peer's
// subscriptions change (the protocol has no way to ask for it again). The peer's own
// configuration bounds what it sends; this bounds a peer configured far apart.
const DefaultMaxLimboAccounts = 4096

// maxLimbo is ClusterOptions.MaxLimboAccounts or its default.
func (s *Server) maxLimbo() int {
	if c := s.opts.Load().Cluster; c != nil && c.MaxLimboAccounts > 0 {
		return c.MaxLimboAccounts
	}
	return DefaultMaxLimboAccounts
}

// limboFull warns that the peer's interest in an account this server lacks was dropped,
// limbo being full: once per account and route until the limbo has room again, naming at
// most maxDroppedLogged of them. On the read goroutine, c.mu not held (it logs).
func (c *client) limboFull(accName []byte) {
	st := c.route
	if st.droppedAccs[string(accName)] || len(st.droppedAccs) > maxDroppedLogged {
		return
	}
	if st.droppedAccs == nil {
		st.droppedAccs = make(map[string]bool)
	}
	st.droppedAccs[string(accName)] = true
	if len(st.droppedAccs) > maxDroppedLogged {
		c.log.Warn("route interest dropped in more accounts this server does not have; not naming them",
			"limit", c.srv.maxLimbo(), "remote", st.remoteName)
		return
	}
	c.log.Warn("route interest dropped: too many accounts this server does not have; a reload adding this one will not reach the peer's subscribers until they change",
		"account", string(accName), "limit", c.srv.maxLimbo(), "remote", st.remoteName)
}

// maxDroppedLogged bounds the accounts named by limboFull's warnings, per route.
const maxDroppedLogged = 64

// droppedRenamedEvery bounds how often limboFull's warnings start again, per route: a drop
// once the limbo had room again is news, but interest churning at the bound is not worth
// 65 lines each time.
const droppedRenamedEvery = time.Minute

// limboFreed: the limbo made room, so later drops are logged again (at most every
// droppedRenamedEvery). On the read goroutine, which owns droppedAccs.
func (st *routeState) limboFreed() {
	if len(st.droppedAccs) == 0 || time.Since(st.droppedReset) < droppedRenamedEvery {
		return
	}
	clear(st.droppedAccs)
	st.droppedReset = time.Now()
}

// RouteUnsub drops the peer's interest.
func (c *client) RouteUnsub(accName, subj, queue []byte) error {
	if !c.routeReady() {
		return errRouteClose(wire.ErrAuthorization.Text, reasonRouteRejected)
	}
	key := routeSubKey(accName, subj, queue)
	c.mu.Lock()
	sub := c.subs[key]
	delete(c.subs, key)
	delete(c.route.carried, key)
	c.mu.Unlock()
	if sub == nil && c.route.retiring.Load() {
		c.unsubCarried(key) // its interest moved to the route that stays
	}
	if sub != nil {
		sub.closed.Store(true)
		_ = sub.acc.subs.Remove(sub.subject, sub.queue, sub)
		c.mu.Lock()
		if a := c.route.limbo[sub.acc.name]; a == sub.acc && a.subs.Count() == 0 {
			delete(c.route.limbo, a.name) // no interest left to keep: room for another
			c.route.limboFreed()
		}
		c.mu.Unlock()
	}
	return nil
}

// RouteMsg delivers a message from another server to local subscribers only: to every plain
// match, and to one member of each queue group the sender chose us for.
func (c *client) RouteMsg(m *wire.RoutedMsg) error {
	if !c.routeReady() {
		return errRouteClose(wire.ErrAuthorization.Text, reasonRouteRejected)
	}
	c.inBatch.msgs++
	c.inBatch.bytes += int64(len(m.Msg))
	acc := c.routeAccount(m.Account)
	if acc == nil {
		return nil
	}
	// The route's L1 cache serves the global account; another account's index has its own
	// match cache.
	var r *subject.Result[*subscription]
	if acc == c.acc {
		r = c.match(m.Subject)
	} else {
		r = acc.subs.Match(m.Subject)
	}
	c.prod.queues = m.Queues
	c.prod.route(acc, r, m.Subject, m.Reply, m.HdrLen, m.Msg)
	c.prod.queues = nil
	return nil
}

// routeSubKey names a route's subscription in its subs map: "account subject [queue]".
func routeSubKey(acc, subj, queue []byte) string {
	key := string(acc) + " " + string(subj)
	if len(queue) > 0 {
		key += " " + string(queue)
	}
	return key
}

// routeAccount returns the account a route line names: the last one again without a lookup
// (a route's traffic is mostly one account), else from the server's map. An account this
// server does not have means the two account configurations differ: it is logged once per
// route and account, and the messages the peer sent for it are dropped (its interest is
// kept aside: RouteSub).
func (c *client) routeAccount(name []byte) *account {
	st := c.route
	set := c.srv.accountSet() // a reload that removes and adds an account back replaces it
	if st.lastAcc != nil && st.lastSet == set && string(name) == st.lastAcc.name {
		return st.lastAcc
	}
	acc := set.m[string(name)]
	if acc != nil {
		st.lastAcc, st.lastSet = acc, set
		return acc
	}
	if st.unknownAccs == nil {
		st.unknownAccs = make(map[string]bool)
	}
	if !st.unknownAccs[string(name)] && len(st.unknownAccs) < 64 {
		st.unknownAccs[string(name)] = true
		c.log.Warn("route names an account this server does not have: the servers' account configurations differ",
			"account", string(name), "remote", st.remoteName)
	}
	return nil
}

// routeReady: the route finished its handshake (its INFO registered it).
func (c *client) routeReady() bool {
	if c.ready {
		return true
	}
	c.srv.rmu.Lock()
	c.ready = c.route.registered || c.route.retiring.Load()
	c.srv.rmu.Unlock()
	return c.ready
}

// routeHit is one route a message must cross, with the queue groups chosen behind it.
type routeHit struct {
	c      *client
	queues []string
}

// hitBuf collects the routes one message crosses. A socket client's producer owns one; the
// shared producer of an in-process Conn borrows one per message from hitPool.
type hitBuf struct{ hits []routeHit }

var hitPool = sync.Pool{New: func() any { return new(hitBuf) }}

// add records that dst gets the message (once), for queue if not empty. A retired route's
// hit goes to the route that took its interest over (route_carry.go).
func (hb *hitBuf) add(dst *client, queue string) {
	if st := dst.route; st != nil && st.next.Load() != nil {
		dst = dst.successor()
	}
	for i := range hb.hits {
		if h := &hb.hits[i]; h.c == dst {
			if queue != "" {
				h.queues = append(h.queues, queue)
			}
			return
		}
	}
	n := len(hb.hits)
	if n < cap(hb.hits) {
		hb.hits = hb.hits[:n+1]
	} else {
		hb.hits = append(hb.hits, routeHit{})
	}
	h := &hb.hits[n]
	h.c = dst
	h.queues = h.queues[:0]
	if queue != "" {
		h.queues = append(h.queues, queue)
	}
}

// redirect handles hit i, on a route retired after the message was matched on interest
// that has moved since (add redirects what is matched later): it goes to the route that
// has that interest now, once: when that route is among the hits already, hit i's queue
// groups join its hit and hit i is dropped. Before any hit is sent; rare, so it may
// allocate.
func (hb *hitBuf) redirect(i int) {
	h := &hb.hits[i]
	succ := h.c.successor()
	for j := range hb.hits {
		if o := &hb.hits[j]; j != i && o.c == succ {
			for _, q := range h.queues {
				if !slices.Contains(o.queues, q) {
					o.queues = append(o.queues, q)
				}
			}
			succ = nil
			break
		}
	}
	h.c = succ
}

// listed reports whether a routed message named queue group q for this server.
func (p *producer) listed(q string) bool {
	for _, b := range p.queues {
		if string(b) == q {
			return true
		}
	}
	return false
}

// routeQueue delivers to one member of a queue group: a local one if any takes it, else one
// route chosen by weight (the number of members behind it), recorded in hb. It reports
// whether a local member got it: a route chosen counts when sendToRoutes writes to it.
func (p *producer) routeQueue(hb *hitBuf, qg *subject.QueueGroup[*subscription], subj, reply []byte, hdrLen int, msg []byte) bool {
	members := qg.Members
	// The publisher's own members never take a message it publishes with echo off: like
	// route entries, they are no candidates for the local pick.
	self := p.self
	if self.echo.Load() {
		self = nil
	}
	candidate := func(m *subscription) bool { return m.client.kind != kindRoute && m.client != self }
	// Start at a random candidate, not a random entry: skipping the others from a random
	// entry gave a member listed after a run of them all their turns. A few random draws
	// find one at once when candidates are common (accepting only candidates keeps the
	// pick uniform); else one counting pass picks among them.
	start, n := -1, len(members)
	for range 4 {
		if i := rand.IntN(n); candidate(members[i]) {
			start = i
			break
		}
	}
	if start < 0 {
		local := 0
		for _, m := range members {
			if candidate(m) {
				local++
			}
		}
		if local > 0 {
			skip := rand.IntN(local)
			for i, m := range members {
				if candidate(m) {
					if skip == 0 {
						start = i
						break
					}
					skip--
				}
			}
		}
	}
	if start >= 0 {
		for j := range members {
			m := members[(start+j)%n]
			if candidate(m) && p.deliver(m, subj, reply, hdrLen, msg) {
				return true
			}
		}
	}
	if p.self.kind == kindRoute {
		return false
	}
	weight := int64(0) // a sum of int32 weights a peer chose: never overflows
	for _, m := range members {
		if m.client.kind == kindRoute {
			weight += int64(m.weight.Load())
		}
	}
	if weight == 0 {
		return false
	}
	pick := rand.Int64N(weight)
	var last *subscription
	for _, m := range members {
		if m.client.kind != kindRoute {
			continue
		}
		last = m
		if pick -= int64(m.weight.Load()); pick < 0 {
			break
		}
	}
	// A weight lowered by an RS+ since the sum above can leave pick unspent: the message
	// must still go to a route with members, never to nobody.
	hb.add(last.client, qg.Name)
	return false
}

// sendToRoutes writes the message once to each route recorded in hb and returns to how many
// it was written: a route that closed since it was matched, or past max_pending, is skipped.
func (p *producer) sendToRoutes(hb *hitBuf, acc string, subj, reply []byte, hdrLen int, msg []byte) int {
	for i := range hb.hits {
		if st := hb.hits[i].c.route; st != nil && st.next.Load() != nil {
			hb.redirect(i)
		}
	}
	sent := 0
	for i := range hb.hits {
		h := &hb.hits[i]
		dst := h.c
		h.c = nil
		if dst == nil {
			continue // a retired route's hit, dropped by hb.redirect
		}
		frame := len(acc) + len(subj) + len(reply) + len(msg) + 48
		for _, q := range h.queues {
			frame += len(q) + 1
		}
		dst.mu.Lock()
		if dst.closed {
			dst.mu.Unlock()
			continue
		}
		if p.trace != nil && p.trace.only {
			dst.mu.Unlock()
			p.trace.addRouteEgress(dst) // would have taken it; not sent (no hop protocol)
			sent++
			continue
		}
		if dst.overPending(frame) {
			dst.mu.Unlock()
			dst.markSlowConsumer()
			continue
		}
		b := wire.AppendRouteMsg(dst.out.buf, acc, subj, reply, h.queues, hdrLen, len(msg))
		b = append(b, msg...)
		dst.out.buf = append(b, '\r', '\n')
		dst.out.sealIfLarge()
		if p.stall == nil && p.lock == nil && dst.stallMark(0) {
			p.stall = dst.stallChan()
		}
		dst.mu.Unlock()
		dst.stats.outMsgs.Add(1)
		dst.stats.outBytes.Add(int64(len(msg)))
		p.addPending(dst)
		sent++
		if p.trace != nil {
			p.trace.addRouteEgress(dst)
		}
	}
	hb.hits = hb.hits[:0]
	return sent
}
