package auth

import (
	"slices"
	"sync"
	"time"
)

// DefaultPubCacheSize is the PubCache bound NewPubCache uses for max <= 0.
// It is per connection, so it stays small: a publisher uses few subjects.
const DefaultPubCacheSize = 128

// PubCache remembers a Checker's publish decisions for one connection, so
// that an authorised publish costs one comparison with the last subject
// allowed, or else one map lookup, with no allocation. It is owned by the
// connection's reading goroutine and is not safe for concurrent use. A nil
// *PubCache allows everything.
type PubCache struct {
	c   *Checker
	m   map[string]pubDecision
	max int
	all bool // the checker has no publish rules: no map at all
	// last is the last subject allowed (valid when hasLast), the map's own copy: a
	// publisher usually repeats its subject, and comparing it costs a fraction of
	// hashing it for the map (the lookup was ~16 % of the CPU samples of a pub-only
	// server with 20 rules, `nats bench pub`; ~3 % now).
	last    string
	hasLast bool
}

// pubDecision is a PubCache entry: the decision, and the key it is stored under
// (so that PubCache.last can point at it without copying the subject).
type pubDecision struct {
	subj string
	ok   bool
}

// NewPubCache returns a cache in front of c holding at most max decisions
// (DefaultPubCacheSize if max <= 0). For a checker without publish rules the
// cache keeps nothing and always answers true.
func NewPubCache(c *Checker, max int) *PubCache {
	if max <= 0 {
		max = DefaultPubCacheSize
	}
	pc := &PubCache{c: c, max: max}
	if !c.restrictsPublish() {
		pc.all = true
		return pc
	}
	pc.m = make(map[string]pubDecision, min(max, 16))
	return pc
}

// CanPublish is Checker.CanPublish, remembered. The subject last allowed is
// answered without the map, in a call small enough to be inlined. A hit does
// not allocate; a miss copies subj into the map. When the map is full about a
// quarter of it, chosen at random, is dropped first.
func (pc *PubCache) CanPublish(subj []byte) bool {
	if pc == nil || pc.all || (pc.hasLast && string(subj) == pc.last) {
		return true
	}
	return pc.lookup(subj)
}

// lookup is CanPublish for a subject other than the last one allowed.
func (pc *PubCache) lookup(subj []byte) bool {
	d, hit := pc.m[string(subj)]
	if !hit {
		d = pubDecision{subj: string(subj), ok: pc.c.CanPublish(subj)}
		if len(pc.m) >= pc.max {
			pc.evict()
		}
		pc.m[d.subj] = d
	}
	if d.ok {
		pc.last, pc.hasLast = d.subj, true
	}
	return d.ok
}

// evict deletes a quarter of the entries (at least one). Map iteration starts
// at a random position, so the victims are random.
func (pc *PubCache) evict() {
	n := max(len(pc.m)/4, 1)
	for k := range pc.m {
		delete(pc.m, k)
		if n--; n == 0 {
			return
		}
	}
}

// Len returns the number of cached decisions.
func (pc *PubCache) Len() int {
	if pc == nil {
		return 0
	}
	return len(pc.m)
}

// MaxResponses bounds the reply subjects one connection's Responses keeps.
// Beyond it the oldest are forgotten.
const MaxResponses = 64 << 10

// minResponsePrune is the size below which Responses never scans for expired
// entries.
const minResponsePrune = 256

// Responses tracks, for one connection whose user has allow_responses, the
// reply subjects of messages delivered to it and how often each may still be
// published to (spec §14.4). Deliveries happen on other goroutines than the
// connection's own publishes, so it is guarded by its own mutex; no method
// calls out while holding it. A nil *Responses records nothing and allows
// nothing.
type Responses struct {
	maxMsgs int           // uses per reply; < 0 unlimited
	expires time.Duration // lifetime of a reply; < 0 never
	limit   int           // most entries kept

	mu        sync.Mutex
	m         map[string]*response
	nextPrune int // scan for expired entries when len(m) reaches this
}

type response struct {
	at   time.Time // delivery
	left int       // uses left; < 0 unlimited; never 0 (entry deleted)
}

// NewResponses returns the tracker for p (normally Checker.AllowResponses()),
// or nil when p is nil. Zero fields of p get the Default* values, as in
// Compile.
func NewResponses(p *ResponsePermission) *Responses {
	if p == nil {
		return nil
	}
	r := &Responses{
		maxMsgs:   p.MaxMsgs,
		expires:   p.Expires,
		limit:     MaxResponses,
		m:         make(map[string]*response),
		nextPrune: minResponsePrune,
	}
	if r.maxMsgs == 0 {
		r.maxMsgs = DefaultResponseMaxMsgs
	}
	if r.expires == 0 {
		r.expires = DefaultResponseExpires
	}
	return r
}

// Record notes that a message with reply subject reply was delivered to the
// connection at now: the connection may publish to reply up to MaxMsgs times
// until now+Expires. Recording a reply again renews it. Only a new reply
// subject allocates.
func (r *Responses) Record(reply []byte, now time.Time) {
	if r == nil || len(reply) == 0 {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if e := r.m[string(reply)]; e != nil {
		e.at, e.left = now, r.maxMsgs
		return
	}
	if len(r.m) >= r.nextPrune {
		r.prune(now)
	}
	r.m[string(reply)] = &response{at: now, left: r.maxMsgs}
}

// Use reports whether subj is a recorded reply subject that has neither expired
// nor been used up, and counts one use. Expired and used-up entries are
// forgotten. It does not allocate.
func (r *Responses) Use(subj []byte, now time.Time) bool {
	if r == nil {
		return false
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	e := r.m[string(subj)]
	if e == nil {
		return false
	}
	if r.expires >= 0 && now.Sub(e.at) > r.expires {
		delete(r.m, string(subj))
		return false
	}
	if e.left > 0 {
		if e.left--; e.left == 0 {
			delete(r.m, string(subj))
		}
	}
	return true
}

// Applies reports whether r enforces exactly p (as returned by
// Checker.AllowResponses, defaults applied); false for a nil r or p.
func (r *Responses) Applies(p *ResponsePermission) bool {
	return r != nil && p != nil && r.maxMsgs == p.MaxMsgs && r.expires == p.Expires
}

// Len returns the number of reply subjects currently tracked.
func (r *Responses) Len() int {
	if r == nil {
		return 0
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.m)
}

// prune drops expired entries and, if the map is still at its limit, the
// oldest entries down to three quarters of it; then sets the next size at which
// to prune (twice the survivors, so the cost is amortised). Called with mu
// held.
func (r *Responses) prune(now time.Time) {
	if r.expires >= 0 {
		for k, e := range r.m {
			if now.Sub(e.at) > r.expires {
				delete(r.m, k)
			}
		}
	}
	if len(r.m) >= r.limit {
		r.dropOldest(len(r.m) - r.limit*3/4)
	}
	r.nextPrune = min(max(2*len(r.m), minResponsePrune), r.limit)
}

// dropOldest deletes the n oldest entries (a few more on equal times). It
// allocates a slice of all the times: it runs only at the limit, once per
// limit/4 new replies.
func (r *Responses) dropOldest(n int) {
	if n <= 0 {
		return
	}
	ts := make([]int64, 0, len(r.m))
	for _, e := range r.m {
		ts = append(ts, e.at.UnixNano())
	}
	slices.Sort(ts)
	cutoff := ts[n-1]
	for k, e := range r.m {
		if e.at.UnixNano() <= cutoff {
			delete(r.m, k)
		}
	}
}
