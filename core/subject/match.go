package subject

import (
	"hash/maphash"
	"strings"
)

// Match returns the subscriptions matching the publish subject. It never
// returns nil: a subject with no match, an empty subject or an empty token gives
// an empty Result. A '*' or '>' token in subject is matched as a literal token,
// so it reaches only subscriptions with a wildcard in that position. On a
// cache hit Match takes no lock and does not allocate; a miss allocates only the
// Result it caches. The Result must not be modified.
func (x *Index[T]) Match(subject []byte) *Result[T] {
	x.matches.Add(1)
	h := maphash.Bytes(x.seed, subject)
	if r := cacheGet(&x.cache, h, subject); r != nil {
		return r
	}
	return matchSlow(x, h, subject, false)
}

// MatchString is Match for a string subject.
func (x *Index[T]) MatchString(subject string) *Result[T] {
	x.matches.Add(1)
	h := maphash.String(x.seed, subject)
	if r := cacheGet(&x.cache, h, subject); r != nil {
		return r
	}
	return matchSlow(x, h, subject, true)
}

// matchSlow walks the trie under the read lock and caches the result. The
// cache is written while the read lock is held, so no Insert/Remove can slip in
// between computing a result and publishing it. isString says s is a string
// that must be copied for the cache key (it may pin a larger string); a []byte
// is copied by the conversion anyway.
func matchSlow[T comparable, S text](x *Index[T], h uint64, s S, isString bool) *Result[T] {
	x.misses.Add(1)
	var tb [maxStackTokens]S
	toks, ok := tokenize(s, tb[:0])
	if !ok {
		return &x.empty
	}
	x.mu.RLock()
	defer x.mu.RUnlock()
	if r := cacheGet(&x.cache, h, s); r != nil { // filled while we waited
		return r
	}
	var nb [16]*node[T]
	nodes := collect(&x.root, toks, nb[:0])
	key := string(s)
	if isString {
		key = strings.Clone(key)
	}
	e := &cacheEntry[T]{subject: key}
	fillResult(&e.res, nodes)
	x.cache.put(h, e)
	return &e.res
}

// collect appends to out every node holding subscriptions that match toks.
// Literal children are looked up by exact token, so a literal "*" in a publish
// subject only meets the '*' and '>' children.
func collect[T comparable, S text](n *node[T], toks []S, out []*node[T]) []*node[T] {
	for {
		if len(toks) == 0 {
			if n.hasSubs() {
				out = append(out, n)
			}
			return out
		}
		if f := n.fwc; f != nil && f.hasSubs() {
			out = append(out, f)
		}
		if n.pwc != nil {
			out = collect(n.pwc, toks[1:], out)
		}
		c := n.lit[string(toks[0])]
		if c == nil {
			return out
		}
		n, toks = c, toks[1:]
	}
}

// hasInterest is collect stopping at the first match.
func hasInterest[T comparable, S text](n *node[T], toks []S) bool {
	for {
		if len(toks) == 0 {
			return n.hasSubs()
		}
		if f := n.fwc; f != nil && f.hasSubs() {
			return true
		}
		if n.pwc != nil && hasInterest(n.pwc, toks[1:]) {
			return true
		}
		c := n.lit[string(toks[0])]
		if c == nil {
			return false
		}
		n, toks = c, toks[1:]
	}
}

// HasInterest reports whether any subscription matches subject. It consults the
// cache but never fills it, and does not allocate (up to 32 tokens).
func (x *Index[T]) HasInterest(subject []byte) bool {
	h := maphash.Bytes(x.seed, subject)
	if r := cacheGet(&x.cache, h, subject); r != nil {
		return len(r.Plain) > 0 || len(r.Queues) > 0
	}
	var tb [maxStackTokens][]byte
	toks, ok := tokenize(subject, tb[:0])
	if !ok {
		return false
	}
	x.mu.RLock()
	defer x.mu.RUnlock()
	return hasInterest(&x.root, toks)
}

// EachPlain calls fn with every plain (non-queue) subscription matching the publish subject,
// until fn returns false. Unlike Match it neither consults nor fills the match cache: it is
// for subjects seen once, such as a request's reply subject, which would only evict the
// entries of subjects published to again. fn runs under the index's read lock and must not
// call into the index. EachPlain does not allocate (up to 32 tokens and 16 matching nodes).
func (x *Index[T]) EachPlain(subject []byte, fn func(T) bool) {
	var tb [maxStackTokens][]byte
	toks, ok := tokenize(subject, tb[:0])
	if !ok {
		return
	}
	x.mu.RLock()
	defer x.mu.RUnlock()
	var nb [16]*node[T]
	for _, n := range collect(&x.root, toks, nb[:0]) {
		for _, v := range n.plain {
			if !fn(v) {
				return
			}
		}
	}
}

// fillResult copies the subscriptions of nodes into r: one backing array for
// all values, one for the queue groups, merged by name across nodes.
func fillResult[T comparable](r *Result[T], nodes []*node[T]) {
	np, nq, ng, qnodes := 0, 0, 0, 0
	for _, n := range nodes {
		np += len(n.plain)
		if len(n.queues) > 0 {
			qnodes++
			ng += len(n.queues)
			for _, g := range n.queues {
				nq += len(g.members)
			}
		}
	}
	if np+nq == 0 {
		return
	}
	flat := make([]T, 0, np+nq)
	for _, n := range nodes {
		flat = append(flat, n.plain...)
	}
	if np > 0 {
		r.Plain = flat[:np:np]
	}
	if ng == 0 {
		return
	}
	r.Queues = make([]QueueGroup[T], 0, ng)
	if qnodes == 1 { // names within a node are distinct: no merging
		for _, n := range nodes {
			for _, g := range n.queues {
				start := len(flat)
				flat = append(flat, g.members...)
				r.Queues = append(r.Queues, QueueGroup[T]{Name: g.name, Members: flat[start:len(flat):len(flat)]})
			}
		}
		return
	}
	mergeQueues(r, nodes, flat[np:np:np+nq])
}

// mergeQueues groups the queue subscriptions of several nodes by name into
// r.Queues, carving members out of mem (capacity exactly the total).
func mergeQueues[T comparable](r *Result[T], nodes []*node[T], mem []T) {
	var cb [16]int
	counts := cb[:0]
	var byName map[string]int // only when there are many groups
	find := func(name string) int {
		if byName != nil {
			if i, ok := byName[name]; ok {
				return i
			}
			return -1
		}
		for i := range r.Queues {
			if r.Queues[i].Name == name {
				return i
			}
		}
		return -1
	}
	for _, n := range nodes {
		for _, g := range n.queues {
			i := find(g.name)
			if i < 0 {
				i = len(r.Queues)
				r.Queues = append(r.Queues, QueueGroup[T]{Name: g.name})
				counts = append(counts, 0)
				if byName != nil {
					byName[g.name] = i
				} else if len(r.Queues) > 16 {
					byName = make(map[string]int, cap(r.Queues))
					for j := range r.Queues {
						byName[r.Queues[j].Name] = j
					}
				}
			}
			counts[i] += len(g.members)
		}
	}
	off := 0
	for i := range r.Queues {
		r.Queues[i].Members = mem[off : off : off+counts[i]]
		off += counts[i]
	}
	for _, n := range nodes {
		for _, g := range n.queues {
			i := find(g.name)
			r.Queues[i].Members = append(r.Queues[i].Members, g.members...)
		}
	}
}
