package core

import (
	"math/rand/v2"
	"strconv"
	"sync"
	"time"

	"github.com/starling-io/starling/core/subject"
)

// How messages cross accounts, as nats-server does it:
//
//   - Stream import: every subscription of the importer that overlaps an import gets a
//     shadow subscription in the exporter's index (same queue group), on the exporter's
//     subject. A message published in the exporter finds the shadow like any subscriber
//     and is delivered to the importer's client under the mapped subject. Routes see the
//     shadow as interest of the exporting account, so the exporter's messages reach the
//     server of each importing subscriber once, wherever they are published.
//   - Service import: a subscription of the importer's own on the import's local subject
//     (never announced to routes: every server serves its own clients' requests) takes a
//     request, maps its subject, and publishes it in the exporter with a fresh reply
//     subject "_R_.<prefix>.<random token>" remembered in the exporter's reply map. The
//     exporter's subscription on "_R_.<prefix>.>" (announced, so responders anywhere
//     reach it) takes the reply and publishes it in the importer on the requester's reply
//     subject.

// maxImportDepth bounds nested deliveries (service → service → …); configuration refuses
// cycles, this only guards against surprises.
const maxImportDepth = 4

var subjPool = sync.Pool{New: func() any { return new([]byte) }}

// importRef marks a subscription that does more than deliver: exactly one field is set.
type importRef struct {
	parent *subscription  // a shadow: deliver to this subscription of the importer
	stream *streamImport  // the shadow's import
	filter bool           // the shadow is broader than its parent: check each mapped subject
	svc    *serviceImport // a service import's subscription in the importer
	resp   *responses     // an exporter's reply subscription
}

// responses is a service exporter's reply map: reply subject in the exporter → where the
// reply goes in the importer.
type responses struct {
	prefix string // "_R_.<random>."
	sub    *subscription

	mu        sync.Mutex
	m         map[string]respTarget
	nextSweep time.Time
}

type respTarget struct {
	acc      *account
	reply    string
	multi    bool
	deadline time.Time
}

func newResponses() *responses {
	return &responses{prefix: "_R_." + nuid()[:10] + ".", m: make(map[string]respTarget)}
}

// add remembers where a reply goes and returns the reply subject to use in the exporter,
// or nil when t's account was removed: its client's reader may still be going through a
// buffer read before the reload closed it, after forget ran.
func (r *responses) add(t respTarget, threshold time.Duration) []byte {
	now := time.Now()
	t.deadline = now.Add(threshold)
	r.mu.Lock()
	defer r.mu.Unlock()
	if t.acc.removed.Load() { // set before forget takes r.mu
		return nil
	}
	if now.After(r.nextSweep) {
		// Forgotten requests (nobody answered) are dropped in one pass every few seconds,
		// rather than a timer per request.
		for k, v := range r.m {
			if now.After(v.deadline) {
				delete(r.m, k)
			}
		}
		r.nextSweep = now.Add(5 * time.Second)
	}
	// A random token, as nats-server's: a client of the exporter that saw one reply
	// subject cannot answer another importer's request on the next. The top-level
	// math/rand/v2 source is ChaCha8 (unpredictable) and takes no lock.
	reply := make([]byte, len(r.prefix), len(r.prefix)+13)
	copy(reply, r.prefix)
	for {
		reply = strconv.AppendUint(reply[:len(r.prefix)], rand.Uint64(), 36)
		if _, taken := r.m[string(reply)]; !taken {
			break
		}
	}
	r.m[string(reply)] = t
	return reply
}

// remove forgets the reply subject subj.
func (r *responses) remove(subj []byte) {
	r.mu.Lock()
	delete(r.m, string(subj))
	r.mu.Unlock()
}

// forget drops the entries whose reply goes into one of the accounts gone: no reply can
// reach them, and each entry would keep its whole account alive until swept.
func (r *responses) forget(gone map[*account]bool) {
	r.mu.Lock()
	for k, t := range r.m {
		if gone[t.acc] {
			delete(r.m, k)
		}
	}
	r.mu.Unlock()
}

// take returns where the reply on subj goes; a single-response entry is used up unless
// keep (a trace-only reply, which is not delivered).
func (r *responses) take(subj []byte, keep bool) (respTarget, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	t, ok := r.m[string(subj)]
	if !ok {
		return t, false
	}
	if !keep && (!t.multi || time.Now().After(t.deadline)) {
		delete(r.m, string(subj))
	}
	return t, time.Now().Before(t.deadline)
}

// deliverImport delivers to a subscription with an importRef.
func (p *producer) deliverImport(sub *subscription, subj, reply []byte, hdrLen int, msg []byte) bool {
	ir := sub.imp
	switch {
	case ir.parent != nil:
		// The mapped subject goes into a buffer of the producer's, one per nesting level; a
		// shared producer (an in-process Conn) borrows one from a pool instead.
		var bp *[]byte
		if p.lock == nil {
			bp = &p.scratch[p.depth]
		} else {
			bp = subjPool.Get().(*[]byte)
			defer subjPool.Put(bp)
		}
		mapped, ok := ir.stream.toLocal.Apply(*bp, subj)
		*bp = mapped
		if !ok || (ir.filter && !subject.Matches(ir.parent.subject, string(mapped))) {
			return false
		}
		return p.deliver(ir.parent, mapped, reply, hdrLen, msg)
	case ir.svc != nil:
		return p.serviceRequest(ir.svc, subj, reply, hdrLen, msg)
	case ir.resp != nil:
		t, ok := ir.resp.take(subj, p.traceOnly()) // a trace-only reply leaves the real one its way back
		if !ok {
			return false
		}
		return p.routeNested(t.acc, []byte(t.reply), reply, hdrLen, msg) > 0
	}
	return false
}

// serviceRequest forwards a request from the importer to the exporter. Requests that came
// over a route were served by their own server's import.
func (p *producer) serviceRequest(si *serviceImport, subj, reply []byte, hdrLen int, msg []byte) bool {
	if p.self.kind == kindRoute || p.depth >= maxImportDepth {
		return false
	}
	mapped, ok := si.toExport.Apply(nil, subj)
	if !ok {
		return false
	}
	var rreply []byte
	if len(reply) > 0 && !p.traceOnly() { // no reply can come to a message not delivered
		if rreply = si.to.resp.add(respTarget{acc: si.from, reply: string(reply), multi: si.multi}, si.threshold); rreply == nil {
			return false // the importer is gone
		}
	}
	if p.routeNested(si.to, mapped, rreply, hdrLen, msg) > 0 {
		return true
	}
	if rreply != nil {
		// Nobody in the exporter (nor behind a route) took the request: no reply can come,
		// so its entry goes now rather than after the response threshold, as nats-server
		// removes a response import that delivered nothing.
		si.to.resp.remove(rreply)
	}
	return false
}

// routeNested routes a message in another account from inside a delivery. The outer
// message's route bookkeeping (hits, queue list) is set aside; a message that came from a
// route is delivered to local subscribers only, as always.
func (p *producer) routeNested(a *account, subj, reply []byte, hdrLen int, msg []byte) int {
	if p.depth >= maxImportDepth {
		return 0
	}
	queues := p.queues
	p.queues = nil
	p.depth++
	n := p.route(a, a.subs.Match(subj), subj, reply, hdrLen, msg)
	p.depth--
	p.queues = queues
	return n
}

// addShadows gives a new subscription of an importing account its shadows in the
// exporters' indexes.
func (s *Server) addShadows(sub *subscription) {
	a := sub.acc
	if len(a.streams) == 0 {
		return
	}
	var shadows []*subscription
	for _, si := range a.streams {
		if !subject.Overlap(sub.subject, si.local) {
			continue
		}
		subj, filter := si.subject, false
		switch {
		case subject.SubsetOf(sub.subject, si.local):
			subj, _ = si.toExport.ApplyString(sub.subject)
		case !subject.SubsetOf(si.local, sub.subject):
			filter = true
		}
		sh := &subscription{client: sub.client, acc: si.from, subject: subj, queue: sub.queue, sid: sub.sid,
			imp: &importRef{parent: sub, stream: si, filter: filter}}
		if si.from.subs.Insert(sh.subject, sh.queue, sh) != nil {
			continue
		}
		s.subAdded(sh)
		shadows = append(shadows, sh)
	}
	c := sub.client
	c.mu.Lock()
	if !sub.closed.Load() {
		sub.shadows = shadows
		shadows = nil
	}
	c.mu.Unlock()
	s.dropShadows(shadows) // the subscription went away meanwhile
}

// removeShadows drops a removed subscription's shadows.
func (s *Server) removeShadows(sub *subscription) {
	c := sub.client
	c.mu.Lock()
	shadows := sub.shadows
	sub.shadows = nil
	c.mu.Unlock()
	s.dropShadows(shadows)
}

func (s *Server) dropShadows(shadows []*subscription) {
	for _, sh := range shadows {
		sh.closed.Store(true)
		_ = sh.acc.subs.Remove(sh.subject, sh.queue, sh)
		s.subRemoved(sh)
	}
}
