package streaming

// pendingSet is a subscription's unacknowledged messages by sequence. Delivery adds
// sequences in increasing order and acks mostly remove the oldest, so the set is a window:
// a ring of slots indexed by sequence from base, grown by doubling. A sequence the window
// cannot hold goes to a map beside it: one below base (pending moved in from a queue member
// that left), or one so far past it that the ring would grow sparse — more than
// maxSparseness slots per pending message (one old message never acked while the rest flow,
// or a member of a large queue group, which gets every n-th sequence) — or past maxRing.
// So the ring costs at most maxSparseness slots of 16 bytes per pending message.
//
// It replaces a map[uint64]pendingMsg, whose sliding window of inserts and deletes left
// the swiss table's groups full of tombstones: in a replay of a million messages a third
// of the server's CPU went to probing them.
type pendingSet struct {
	ring   []pendingSlot // len 0 or a power of two; slot of seq s is (s-base+head) & mask
	head   int           // slot of base
	base   uint64        // lowest sequence the ring covers; slots before the first used one are empty
	inRing int
	spill  map[uint64]pendingMsg
}

type pendingSlot struct {
	pendingMsg
	used bool
}

const (
	minRing       = 64
	maxRing       = 1 << 20
	maxSparseness = 8
)

// Len is the number of pending messages.
func (p *pendingSet) Len() int { return p.inRing + len(p.spill) }

func (p *pendingSet) slot(seq uint64) (int, bool) {
	if len(p.ring) == 0 || seq < p.base || seq-p.base >= uint64(len(p.ring)) {
		return 0, false
	}
	return (p.head + int(seq-p.base)) & (len(p.ring) - 1), true
}

// Get returns seq's entry and whether it is pending.
func (p *pendingSet) Get(seq uint64) (pendingMsg, bool) {
	if i, ok := p.slot(seq); ok && p.ring[i].used {
		return p.ring[i].pendingMsg, true
	}
	if len(p.spill) > 0 { // a spilled sequence stays spilled, even once the ring covers it
		m, ok := p.spill[seq]
		return m, ok
	}
	return pendingMsg{}, false
}

// Has reports whether seq is pending.
func (p *pendingSet) Has(seq uint64) bool {
	_, ok := p.Get(seq)
	return ok
}

// Set adds or replaces seq's entry.
func (p *pendingSet) Set(seq uint64, m pendingMsg) {
	if len(p.spill) > 0 {
		if _, ok := p.spill[seq]; ok {
			p.spill[seq] = m
			return
		}
	}
	if p.inRing == 0 {
		if len(p.ring) == 0 {
			p.ring = make([]pendingSlot, minRing)
		}
		p.base, p.head = seq, 0 // an empty window starts at seq
	}
	if seq >= p.base && seq-p.base >= uint64(len(p.ring)) {
		p.grow(seq - p.base + 1)
	}
	if i, ok := p.slot(seq); ok {
		s := &p.ring[i]
		if !s.used {
			p.inRing++
		}
		*s = pendingSlot{pendingMsg: m, used: true}
		return
	}
	if p.spill == nil {
		p.spill = make(map[uint64]pendingMsg)
	}
	p.spill[seq] = m
}

// grow doubles the ring until it spans n sequences from base, unless that passes maxRing.
func (p *pendingSet) grow(n uint64) {
	size := len(p.ring)
	for uint64(size) < n {
		size *= 2
	}
	if size > maxRing || size > maxSparseness*(p.inRing+1) {
		return // seq spills
	}
	r := make([]pendingSlot, size)
	for i := range p.ring {
		r[i] = p.ring[(p.head+i)&(len(p.ring)-1)]
	}
	p.ring, p.head = r, 0
}

// Delete removes seq; it reports whether seq was pending.
func (p *pendingSet) Delete(seq uint64) bool {
	if i, ok := p.slot(seq); ok && p.ring[i].used {
		p.ring[i] = pendingSlot{}
		p.inRing--
		if seq == p.base {
			p.advance()
		}
		return true
	}
	if _, ok := p.spill[seq]; ok {
		delete(p.spill, seq)
		return true
	}
	return false
}

// advance moves base past empty slots to the oldest pending sequence in the ring.
func (p *pendingSet) advance() {
	if p.inRing == 0 {
		p.head = 0
		return
	}
	mask := len(p.ring) - 1
	for !p.ring[p.head].used {
		p.head = (p.head + 1) & mask
		p.base++
	}
}

// Range calls f for every pending message, in no particular order.
func (p *pendingSet) Range(f func(seq uint64, m pendingMsg)) {
	if p.inRing > 0 {
		mask := len(p.ring) - 1
		for i := range p.ring {
			if s := &p.ring[(p.head+i)&mask]; s.used {
				f(p.base+uint64(i), s.pendingMsg)
			}
		}
	}
	for seq, m := range p.spill {
		f(seq, m)
	}
}

// Clear removes everything; the ring is kept for reuse.
func (p *pendingSet) Clear() {
	if p.inRing > 0 {
		clear(p.ring)
	}
	p.inRing, p.head = 0, 0
	p.spill = nil
}
