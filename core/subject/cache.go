package subject

import (
	"math/rand/v2"
	"sync/atomic"
)

// The match cache is a set-associative table of immutable entries behind
// atomic pointers: a hit is a hash, up to cacheWays pointer loads and string
// compares — no lock, no shared write, no allocation. Its size is fixed, so it
// is bounded by construction; a full set evicts a random way.
const (
	cacheWays  = 4
	cacheSets  = 256 // power of two
	cacheSlots = cacheWays * cacheSets
)

// cacheEntry is immutable once published in a slot. The Result is embedded so
// a miss allocates it together with the entry.
type cacheEntry[T comparable] struct {
	subject string
	res     Result[T]
}

type matchCache[T comparable] struct {
	slots [cacheSlots]atomic.Pointer[cacheEntry[T]]
}

// set returns the ways of the set for hash h.
func (c *matchCache[T]) set(h uint64) []atomic.Pointer[cacheEntry[T]] {
	base := (h & (cacheSets - 1)) * cacheWays
	return c.slots[base : base+cacheWays : base+cacheWays]
}

// cacheGet returns the cached result for s (hash h) or nil. Lock-free.
func cacheGet[T comparable, S text](c *matchCache[T], h uint64, s S) *Result[T] {
	set := c.set(h)
	for i := range set {
		if e := set[i].Load(); e != nil && e.subject == string(s) {
			return &e.res
		}
	}
	return nil
}

// put publishes e. Callers hold the index read lock, which excludes the
// writers that invalidate; concurrent puts race benignly (each result was
// computed from the same trie state).
func (c *matchCache[T]) put(h uint64, e *cacheEntry[T]) {
	set := c.set(h)
	for i := range set {
		old := set[i].Load()
		if old == nil {
			if set[i].CompareAndSwap(nil, e) {
				return
			}
		} else if old.subject == e.subject {
			set[i].CompareAndSwap(old, e)
			return
		}
	}
	set[rand.Uint32()%cacheWays].Store(e)
}

// invalidateLiteral drops the entry for subject, the only cached subject a
// literal pattern can match. Callers hold the index write lock.
func (c *matchCache[T]) invalidateLiteral(h uint64, subject string) {
	set := c.set(h)
	for i := range set {
		if e := set[i].Load(); e != nil && e.subject == subject {
			set[i].Store(nil)
		}
	}
}

// invalidateMatching drops every entry whose subject pattern matches. Callers
// hold the index write lock.
func (c *matchCache[T]) invalidateMatching(pattern string) {
	for i := range c.slots {
		if e := c.slots[i].Load(); e != nil && Matches(pattern, e.subject) {
			c.slots[i].Store(nil)
		}
	}
}

// stats returns the number of cached entries, the largest fanout and the sum
// of fanouts (plain subscribers + queue groups: deliveries per message).
func (c *matchCache[T]) stats() (n uint64, maxFanout uint32, total uint64) {
	for i := range c.slots {
		e := c.slots[i].Load()
		if e == nil {
			continue
		}
		n++
		f := uint32(len(e.res.Plain) + len(e.res.Queues))
		total += uint64(f)
		maxFanout = max(maxFanout, f)
	}
	return n, maxFanout, total
}
