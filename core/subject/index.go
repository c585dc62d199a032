package subject

import (
	"hash/maphash"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
)

// QueueGroup is the members of one queue group among the subscriptions that
// match a subject. Members may come from different patterns.
type QueueGroup[T comparable] struct {
	Name    string
	Members []T
}

// Result is the outcome of a match: every matching plain subscription (a value
// appears once per matching subscription) and one QueueGroup per queue name.
// Results are shared with the match cache: callers MUST NOT modify them.
type Result[T comparable] struct {
	Plain  []T
	Queues []QueueGroup[T]
}

// Stats is a snapshot of an Index's counters. Fanout is per cached subject:
// plain subscribers plus queue groups.
type Stats struct {
	NumSubs, NumCache, NumInserts, NumRemoves, NumMatches uint64
	CacheHitRate                                          float64
	MaxFanout                                             uint32
	AvgFanout                                             float64
}

// cacheLinePad keeps fields written on every Match off the cache lines that
// every Match only reads.
type cacheLinePad [64]byte

// Index maps subscription subjects (with wildcards) to values of type T, for
// example a client's subscription. It is safe for concurrent use; a Match that
// hits the cache takes no lock. The zero value is not usable: use NewIndex.
type Index[T comparable] struct {
	// Read by every Match; written only by Insert/Remove.
	seed  maphash.Seed
	gen   atomic.Uint64 // bumped after every successful Insert/Remove
	empty Result[T]     // shared result for subjects that cannot match
	cache matchCache[T]

	_       cacheLinePad
	matches atomic.Uint64 // every Match call
	_       cacheLinePad
	misses  atomic.Uint64 // Match calls that missed the cache

	mu      sync.RWMutex // guards the trie and the fields below
	root    node[T]
	count   int // subscriptions
	nodes   int // trie nodes, root excluded
	inserts uint64
	removes uint64
}

// node is one trie level: children by literal token plus the '*' and '>'
// children, and the subscriptions whose pattern ends here.
type node[T comparable] struct {
	lit    map[string]*node[T]
	pwc    *node[T]
	fwc    *node[T] // never has children: '>' is always last
	plain  []T
	queues []queueSubs[T] // distinct names; few per node, so a slice
}

type queueSubs[T comparable] struct {
	name    string
	members []T
}

func (n *node[T]) hasSubs() bool { return len(n.plain) > 0 || len(n.queues) > 0 }

func (n *node[T]) isEmpty() bool {
	return !n.hasSubs() && len(n.lit) == 0 && n.pwc == nil && n.fwc == nil
}

// NewIndex returns an empty index.
func NewIndex[T comparable]() *Index[T] {
	return &Index[T]{seed: maphash.MakeSeed()}
}

// Insert adds a subscription of v to subject, in queue group queue ("" for a
// plain subscription). The same value may be inserted several times, under the
// same or different subjects: each insert is one subscription. Insert does not
// validate queue (see ValidQueue). It returns ErrInvalidSubject when
// !ValidSubject(subject).
func (x *Index[T]) Insert(subject, queue string, v T) error {
	if !ValidSubject(subject) {
		return ErrInvalidSubject
	}
	x.mu.Lock()
	defer x.mu.Unlock()
	n := &x.root
	for rest, more := subject, true; more; {
		var tok string
		tok, rest, more = strings.Cut(rest, ".")
		n = x.child(n, tok)
	}
	n.add(queue, v)
	x.count++
	x.inserts++
	x.changed(subject)
	return nil
}

// child returns n's child for tok, creating it.
func (x *Index[T]) child(n *node[T], tok string) *node[T] {
	var p **node[T]
	switch tok {
	case "*":
		p = &n.pwc
	case ">":
		p = &n.fwc
	default:
		if c := n.lit[tok]; c != nil {
			return c
		}
		if n.lit == nil {
			n.lit = make(map[string]*node[T])
		}
		c := new(node[T])
		n.lit[strings.Clone(tok)] = c // tok may pin a caller's larger string
		x.nodes++
		return c
	}
	if *p == nil {
		*p = new(node[T])
		x.nodes++
	}
	return *p
}

func (n *node[T]) add(queue string, v T) {
	if queue == "" {
		n.plain = append(n.plain, v)
		return
	}
	for i := range n.queues {
		if n.queues[i].name == queue {
			n.queues[i].members = append(n.queues[i].members, v)
			return
		}
	}
	n.queues = append(n.queues, queueSubs[T]{name: strings.Clone(queue), members: []T{v}})
}

// step records how Remove descended, for pruning on the way back up.
type step[T comparable] struct {
	parent *node[T]
	tok    string
}

// Remove deletes one subscription of v (compared with ==) to subject in queue
// group queue. Trie nodes left without subscriptions or children are pruned.
// It returns ErrNotFound when there is no such subscription and
// ErrInvalidSubject when !ValidSubject(subject) (none can exist).
func (x *Index[T]) Remove(subject, queue string, v T) error {
	if !ValidSubject(subject) {
		return ErrInvalidSubject
	}
	x.mu.Lock()
	defer x.mu.Unlock()
	var pb [maxStackTokens]step[T]
	path := pb[:0]
	n := &x.root
	for rest, more := subject, true; more; {
		var tok string
		tok, rest, more = strings.Cut(rest, ".")
		var c *node[T]
		switch tok {
		case "*":
			c = n.pwc
		case ">":
			c = n.fwc
		default:
			c = n.lit[tok]
		}
		if c == nil {
			return ErrNotFound
		}
		path = append(path, step[T]{parent: n, tok: tok})
		n = c
	}
	if !n.remove(queue, v) {
		return ErrNotFound
	}
	for i := len(path) - 1; i >= 0 && n.isEmpty(); i-- {
		p := path[i].parent
		switch tok := path[i].tok; tok {
		case "*":
			p.pwc = nil
		case ">":
			p.fwc = nil
		default:
			delete(p.lit, tok)
			if len(p.lit) == 0 {
				p.lit = nil // maps never shrink; drop the empty one
			}
		}
		x.nodes--
		n = p
	}
	x.count--
	x.removes++
	x.changed(subject)
	return nil
}

func (n *node[T]) remove(queue string, v T) bool {
	if queue == "" {
		var ok bool
		n.plain, ok = removeValue(n.plain, v)
		return ok
	}
	for i := range n.queues {
		g := &n.queues[i]
		if g.name != queue {
			continue
		}
		var ok bool
		if g.members, ok = removeValue(g.members, v); ok && len(g.members) == 0 {
			last := len(n.queues) - 1
			n.queues[i] = n.queues[last]
			n.queues[last] = queueSubs[T]{}
			n.queues = n.queues[:last]
			if last == 0 {
				n.queues = nil
			}
		}
		return ok
	}
	return false
}

// removeValue removes one v from s, searching from the end (recent
// subscriptions are the likeliest to go), and shrinks s after a burst.
func removeValue[T comparable](s []T, v T) ([]T, bool) {
	i := len(s) - 1
	for i >= 0 && s[i] != v {
		i--
	}
	if i < 0 {
		return s, false
	}
	last := len(s) - 1
	s[i] = s[last]
	var zero T
	s[last] = zero
	s = s[:last]
	switch {
	case last == 0:
		return nil, true
	case cap(s) > 64 && last < cap(s)/4:
		return slices.Clone(s), true
	}
	return s, true
}

// changed invalidates the cached subjects pattern matches and publishes the
// new generation. Called with the write lock held, after the trie change: a
// reader that observes the new generation also observes the invalidation.
func (x *Index[T]) changed(pattern string) {
	if IsLiteral(pattern) {
		x.cache.invalidateLiteral(maphash.String(x.seed, pattern), pattern)
	} else {
		x.cache.invalidateMatching(pattern)
	}
	x.gen.Add(1)
}

// Generation returns a number that changes on every successful Insert and
// Remove. It is an atomic load. A caller caching results itself reads
// Generation before Match and keeps the result only while Generation still
// returns the same number.
func (x *Index[T]) Generation() uint64 { return x.gen.Load() }

// Count returns the number of subscriptions.
func (x *Index[T]) Count() int {
	x.mu.RLock()
	defer x.mu.RUnlock()
	return x.count
}

// numNodes returns the number of trie nodes besides the root (for tests).
func (x *Index[T]) numNodes() int {
	x.mu.RLock()
	defer x.mu.RUnlock()
	return x.nodes
}

type subEntry[T comparable] struct {
	subject, queue string
	v              T
}

// All calls fn for every subscription, in no particular order, until fn
// returns false. It iterates over a snapshot taken under the read lock, so fn
// may call back into the index.
func (x *Index[T]) All(fn func(subject, queue string, v T) bool) {
	x.mu.RLock()
	subs := appendSubs(make([]subEntry[T], 0, x.count), &x.root, nil)
	x.mu.RUnlock()
	for _, s := range subs {
		if !fn(s.subject, s.queue, s.v) {
			return
		}
	}
}

func appendSubs[T comparable](out []subEntry[T], n *node[T], path []byte) []subEntry[T] {
	if n.hasSubs() {
		subject := string(path)
		for _, v := range n.plain {
			out = append(out, subEntry[T]{subject: subject, v: v})
		}
		for _, g := range n.queues {
			for _, v := range g.members {
				out = append(out, subEntry[T]{subject: subject, queue: g.name, v: v})
			}
		}
	}
	for tok, c := range n.lit {
		out = appendSubs(out, c, appendToken(path, tok))
	}
	if n.pwc != nil {
		out = appendSubs(out, n.pwc, appendToken(path, "*"))
	}
	if n.fwc != nil {
		out = appendSubs(out, n.fwc, appendToken(path, ">"))
	}
	return out
}

func appendToken(path []byte, tok string) []byte {
	if len(path) > 0 {
		path = append(path, tsep)
	}
	return append(path, tok...)
}

// Stats returns a snapshot of the index counters. Fanout figures are computed
// over the subjects currently cached.
func (x *Index[T]) Stats() Stats {
	x.mu.RLock()
	st := Stats{NumSubs: uint64(x.count), NumInserts: x.inserts, NumRemoves: x.removes}
	x.mu.RUnlock()
	misses := x.misses.Load()
	st.NumMatches = x.matches.Load()
	if st.NumMatches > 0 {
		st.CacheHitRate = float64(st.NumMatches-min(misses, st.NumMatches)) / float64(st.NumMatches)
	}
	var total uint64
	st.NumCache, st.MaxFanout, total = x.cache.stats()
	if st.NumCache > 0 {
		st.AvgFanout = float64(total) / float64(st.NumCache)
	}
	return st
}
