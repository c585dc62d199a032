package core

import (
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/starling-io/starling/core/subject"
	"github.com/starling-io/starling/core/wire"
)

// subscription is one entry in the index: a socket client's SUB, or an in-process
// handler.
type subscription struct {
	client  *client
	acc     *account // the index it is in: the client's account, or an exporter's for a shadow
	subject string
	queue   string
	sid     string
	handler MsgHandler             // set for in-process subscriptions
	end     func(idle func() bool) // optional, with handler: called at the end of a client's read buffer (SubscribeBatch)
	filter  atomic.Bool            // the owner's subscribe denies must be checked per message (§14.3)

	max       atomic.Int64 // auto-unsubscribe limit; 0 = none
	delivered atomic.Int64
	closed    atomic.Bool

	weight  atomic.Int32 // a route's queue interest: members behind it
	counted bool         // in the server's route interest counts; guarded by Server.rmu
	local   bool         // never announced to routes (service imports)

	imp     *importRef      // set for shadows and import subscriptions (imports.go)
	shadows []*subscription // this subscription's shadows in exporters; guarded by client.mu
}

// producer is the publishing side of a connection: it remembers which destinations got
// frames since the last flush so each is woken once per read buffer. A socket client's
// producer is used only by its read goroutine; an in-process Conn's is shared by its
// callers, so it carries a lock.
type producer struct {
	self    *client
	lock    *sync.Mutex // nil when single-goroutine
	pending map[*client]struct{}
	last    *client       // fast path for runs of messages to one destination
	stall   chan struct{} // a route past its stall mark: wait for it at the flush
	timer   *time.Timer   // reused for stall waits
	stalled time.Duration // spent waiting for destinations in this read buffer (at most maxStall)

	hits   hitBuf   // routes the current message crosses (single-goroutine producers)
	queues [][]byte // a routed message: the queue groups chosen for this server

	depth   int                        // nesting of deliveries across accounts (imports.go)
	scratch [maxImportDepth + 1][]byte // mapped subjects of stream imports, per depth

	trace *msgTrace // while a client's read goroutine routes a traced message (msgtrace.go)

	batches bool            // a client's read goroutine: it calls the ends at the end of a read buffer
	ends    []*subscription // subscriptions with an end delivered to since the last flush
	idle    func() bool     // self.inputIdle, bound once: what the ends are given
}

// Back-pressure: a producer whose destination is past 3/4 of max_pending waits for it to
// drain, at most maxStall per read buffer. A healthy but briefly slower reader is given
// time instead of being cut off; a reader that stopped still hits max_pending and is closed.
const maxStall = 10 * time.Millisecond

func (p *producer) init(self *client) {
	p.self = self
	p.pending = make(map[*client]struct{})
}

func (p *producer) addPending(c *client) {
	if p.lock != nil {
		p.lock.Lock()
		if c != p.last {
			p.last = c
			p.pending[c] = struct{}{}
		}
		p.lock.Unlock()
		return
	}
	if c == p.last {
		return
	}
	p.last = c
	p.pending[c] = struct{}{}
}

// flushPending is the end of a read buffer: flush our own output in place (our own socket
// may block us — that is natural back-pressure) and wake every other destination once.
func (p *producer) flushPending() { p.flush(p.lock == nil, false) }

// flush is flushPending; inPlace lets it write a few destinations' small outputs itself (up
// to inPlaceMax each), and bulk (with inPlace) their bulk output too, short of a sealed
// backlog: see Conn.FlushInPlace.
func (p *producer) flush(inPlace, bulk bool) {
	if len(p.ends) > 0 {
		p.runEnds()
	}
	if p.lock != nil {
		p.lock.Lock()
		defer p.lock.Unlock()
	}
	self := false
	inPlace = inPlace && len(p.pending) <= 4
	limit := inPlaceMax
	if bulk {
		limit = sealAt
	}
	for c := range p.pending {
		if c == p.self {
			self = true
			continue
		}
		if inPlace {
			c.tryFlushInPlace(limit)
		} else {
			c.flushSignal()
		}
	}
	clear(p.pending)
	p.last = nil
	if self && p.self.nc != nil {
		if p.self.flushOut() {
			p.self.flushSignal()
		}
	}
	if p.stall != nil {
		ch := p.stall
		p.stall = nil
		p.waitStall(ch)
	}
	p.stalled = 0
}

// runEnds calls the end function of every batching subscription the read buffer
// delivered to, first, so that what they send joins this flush.
func (p *producer) runEnds() {
	for i, sub := range p.ends {
		p.ends[i] = nil
		sub.end(p.idle)
	}
	p.ends = p.ends[:0]
}

// addEnd records that sub's end is due at this read buffer's end.
func (p *producer) addEnd(sub *subscription) {
	for _, s := range p.ends {
		if s == sub {
			return
		}
	}
	p.ends = append(p.ends, sub)
}

// waitStall waits for a destination to drain below its stall mark (ch closes), within
// what is left of this read buffer's maxStall.
func (p *producer) waitStall(ch chan struct{}) {
	left := maxStall - p.stalled
	if left <= 0 {
		return
	}
	if p.timer == nil {
		p.timer = time.NewTimer(left)
	} else {
		p.timer.Reset(left)
	}
	start := time.Now()
	select {
	case <-ch:
		p.timer.Stop()
	case <-p.timer.C:
	}
	p.stalled += time.Since(start)
}

// match looks the subject up in the per-client L1 cache (no lock), falling back to the
// shared index. The L1 is dropped whenever the index generation moves; the generation is
// read before the index is matched, so an entry is never older than the generation it is
// kept under. The subject matched last is answered by one comparison, before any hashing:
// a publisher usually repeats its subject, and the map lookup (hash and compare) was ~17 %
// of a pub-only server's CPU samples (`nats bench pub`, 16 B). It is an L1 entry like the
// others (l1last holds the map's key: no copy), under the same generation check, and is
// forgotten with the rest of the L1 (resetL1).
func (c *client) match(subj []byte) *subject.Result[*subscription] {
	if e := &c.l1last; string(subj) == e.subj && e.r != nil && c.acc.subs.Generation() == c.l1gen {
		return e.r
	}
	return c.matchL1(subj)
}

// matchL1 is match for a subject other than the last one, or after the index changed.
func (c *client) matchL1(subj []byte) *subject.Result[*subscription] {
	idx := c.acc.subs
	if g := idx.Generation(); g != c.l1gen {
		c.resetL1(g)
	}
	if e, ok := c.l1[string(subj)]; ok {
		c.l1last = e
		return e.r
	}
	r := idx.Match(subj)
	if c.l1 == nil {
		c.l1 = make(map[string]l1Entry, l1Max)
	}
	if len(c.l1) < l1Max {
		e := l1Entry{subj: string(subj), r: r}
		c.l1[e.subj] = e
		c.l1last = e
	}
	return r
}

// resetL1 empties the L1 cache, the last subject included, for generation g of the index
// (0 for another account's index: bindAccount).
func (c *client) resetL1(g uint64) {
	clear(c.l1)
	c.l1gen = g
	c.l1last = l1Entry{}
}

// route delivers one message, published in account acc, to every plain match and to one
// member of each queue group, and returns how many local subscriptions and routes took it
// (0: nobody, the no-responders case). A route counts once it was written to, not when it
// was chosen: one that closed meanwhile, or is past max_pending, took nothing. msg is header
// block + payload with the first hdrLen bytes the header (hdrLen 0 = no header).
func (p *producer) route(acc *account, r *subject.Result[*subscription], subj, reply []byte, hdrLen int, msg []byte) int {
	n := 0
	fromRoute := p.self.kind == kindRoute
	listedOnly := fromRoute && p.depth == 0 // a nested delivery is to another account's groups
	hb := &p.hits
	if p.lock != nil || p.depth > 0 {
		hb = hitPool.Get().(*hitBuf)
		defer hitPool.Put(hb)
	}
	for _, sub := range r.Plain {
		if sub.client.kind == kindRoute {
			// Another server wants it: once per route, and never a second hop.
			if !fromRoute {
				hb.add(sub.client, "")
			}
			continue
		}
		if p.deliver(sub, subj, reply, hdrLen, msg) {
			n++
		}
	}
	for i := range r.Queues {
		qg := &r.Queues[i]
		if len(qg.Members) == 0 || (listedOnly && !p.listed(qg.Name)) {
			continue
		}
		if p.routeQueue(hb, qg, subj, reply, hdrLen, msg) {
			n++
		}
	}
	if len(hb.hits) > 0 {
		n += p.sendToRoutes(hb, acc.name, subj, reply, hdrLen, msg)
	}
	return n
}

// deliver hands one message to one subscription; false means it could not take it (closed,
// echo suppressed, auto-unsubscribed) and a queue group should try another member.
func (p *producer) deliver(sub *subscription, subj, reply []byte, hdrLen int, msg []byte) bool {
	dst := sub.client
	if sub.closed.Load() || (dst == p.self && !dst.echo.Load()) {
		return false
	}
	if sub.imp != nil {
		return p.deliverImport(sub, subj, reply, hdrLen, msg)
	}
	if sub.filter.Load() && dst.perms.Load().DenySubscribeDelivery(subj, bytesOf(sub.queue)) {
		return false
	}
	if p.trace != nil && p.trace.only {
		p.trace.addEgress(sub) // would have taken it
		return true
	}
	max := sub.max.Load()
	n := sub.delivered.Add(1)
	if max > 0 && n > max {
		// Past the limit without a delivery having reached it (deliveries that did not
		// see the limit yet, racing the UNSUB that set it): remove it now.
		dst.removeSub(sub)
		return false
	}
	if sub.handler != nil {
		m := Msg{Subject: subj, Reply: reply, Data: msg[hdrLen:], Sub: (*Subscription)(sub), From: p.self.cid}
		if hdrLen > 0 {
			m.Header = msg[:hdrLen]
		}
		if sub.end != nil && p.batches {
			m.Batched = true
			p.addEnd(sub)
		}
		sub.handler(m)
	} else if !p.deliverFrame(dst, sub, subj, reply, hdrLen, msg) {
		return false
	}
	if p.trace != nil {
		p.trace.addEgress(sub)
	}
	if len(reply) > 0 {
		if r := dst.responses.Load(); r != nil {
			r.Record(reply, time.Now())
		}
	}
	dst.stats.outMsgs.Add(1)
	dst.stats.outBytes.Add(int64(len(msg)))
	if max > 0 && n == max {
		dst.removeSub(sub)
	}
	return true
}

// deliverFrame appends MSG or HMSG to dst's outbound buffer. Headers are stripped for a
// connection that did not negotiate them.
func (p *producer) deliverFrame(dst *client, sub *subscription, subj, reply []byte, hdrLen int, msg []byte) bool {
	withHdr := hdrLen > 0 && dst.headers.Load()
	if hdrLen > 0 && !withHdr {
		msg = msg[hdrLen:]
	}
	frame := len(subj) + len(reply) + len(sub.sid) + len(msg) + 32
	dst.mu.Lock()
	if dst.closed {
		dst.mu.Unlock()
		return false
	}
	if dst.overPending(frame) {
		dst.mu.Unlock()
		dst.markSlowConsumer()
		return false
	}
	b := dst.out.buf
	if withHdr {
		b = wire.AppendHMsg(b, subj, sub.sid, reply, hdrLen, len(msg))
	} else {
		b = wire.AppendMsg(b, subj, sub.sid, reply, len(msg))
	}
	b = append(b, msg...)
	dst.out.buf = append(b, '\r', '\n')
	dst.out.sealIfLarge()
	// A route's reader never waits for one slow subscriber: it carries every publisher of
	// the other server (nats-server stalls only clients). A client's waits right here, as
	// nats-server's does, with the destination's writer woken now rather than at the end
	// of the read buffer: otherwise one read buffer's messages could pass a small
	// max_pending before the writer even started, cutting off a reader that keeps up.
	var stall chan struct{}
	if p.lock == nil && p.stalled < maxStall && dst != p.self && p.self.kind != kindRoute && dst.stallMark(0) {
		stall = dst.stallChan()
	}
	dst.mu.Unlock()
	p.addPending(dst)
	if stall != nil {
		p.wakePending() // the others' writers work while we wait, as when waiting at the flush
		p.waitStall(stall)
	}
	return true
}

// wakePending wakes the writer of every destination this read buffer delivered to so far
// but the producer's own (written at the flush). Only on the stall path.
func (p *producer) wakePending() {
	for c := range p.pending {
		if c != p.self {
			c.flushSignal()
		}
	}
}

// noResponders answers a request nobody received with a 503 status message on the
// publisher's own plain subscription that matches the reply subject (how nats.go's
// Request fails fast). The account's index finds the subscriptions matching the reply, as
// for a delivery, rather than a scan of all of the publisher's; of several, the most
// specific takes it: nats.go's request inbox ("_INBOX.<id>.*", or the reply itself for an
// old-style request) rather than a wider wildcard the application subscribed to.
func (c *client) noResponders(subj, reply []byte) {
	var target *subscription
	c.acc.subs.EachPlain(reply, func(sub *subscription) bool {
		if sub.client == c && !sub.closed.Load() && (target == nil || moreSpecific(sub.subject, target.subject)) {
			target = sub
		}
		return true
	})
	if target == nil {
		return
	}
	// The status counts toward an auto-unsubscribe limit like any message (the client counts
	// it too): an old-style request's inbox (UNSUB sid 1) is used up by it, and the client,
	// which forgets the subscription on receiving it, sends no UNSUB.
	if max, n := target.max.Load(), target.delivered.Add(1); max > 0 && n >= max {
		defer c.removeSub(target)
	}
	// NATS/1.0 503\r\nNats-Subject: <subj>\r\n\r\n
	hdr := make([]byte, 0, 32+len(subj))
	hdr = append(hdr, "NATS/1.0 503\r\nNats-Subject: "...)
	hdr = append(hdr, subj...)
	hdr = append(hdr, "\r\n\r\n"...)
	if target.handler != nil {
		target.handler(Msg{Subject: reply, Header: hdr, Sub: (*Subscription)(target)})
		return
	}
	c.mu.Lock()
	if !c.closed {
		c.out.buf = wire.AppendHMsg(c.out.buf, reply, target.sid, nil, len(hdr), len(hdr))
		c.out.buf = append(c.out.buf, hdr...)
		c.out.buf = append(c.out.buf, '\r', '\n')
	}
	c.mu.Unlock()
	c.prod.addPending(c)
}

// moreSpecific reports whether pattern a is more specific than pattern b, two patterns that
// match the same subject: at the first token where they differ, a literal beats '*' and '*'
// beats '>'.
func moreSpecific(a, b string) bool {
	for {
		at, arest, amore := strings.Cut(a, ".")
		bt, brest, bmore := strings.Cut(b, ".")
		if at != bt {
			return tokenRank(at) > tokenRank(bt)
		}
		if !amore || !bmore {
			return false
		}
		a, b = arest, brest
	}
}

// tokenRank orders the tokens of patterns matching one subject token by specificity.
func tokenRank(tok string) int {
	switch tok {
	case ">":
		return 0
	case "*":
		return 1
	}
	return 2
}
