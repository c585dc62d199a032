package boltstore

// index is a channel's index in memory: one ent per message, first to last. It grows in
// chunks of entChunk, so that a growing channel never copies what it holds: as one
// doubling slice it was copied again and again into memory the process had never
// touched (8.7 % of the server's CPU publishing 16-byte messages, in growslice and its
// page faults). Limits remove from the front; a chunk emptied that way is reused at the
// back.
type index struct {
	chunks [][]ent // all full but the last; the first may hold removed entries before head
	head   int     // entries removed from the front of chunks[0]
	n      int     // entries held
	spare  []ent   // an emptied chunk, reused for the next one
}

const (
	entShift = 12
	entChunk = 1 << entShift // 4,096 entries, 64 KiB
)

func (x *index) len() int { return x.n }

// at returns entry i (of the entries held), which must be below len.
func (x *index) at(i int) *ent {
	i += x.head
	return &x.chunks[i>>entShift][i&(entChunk-1)]
}

// add appends e.
func (x *index) add(e ent) {
	c := (x.head + x.n) >> entShift
	if c == len(x.chunks) {
		var chunk []ent // the first chunk grows as a slice: a small channel stays small
		switch {
		case x.spare != nil:
			chunk, x.spare = x.spare, nil
		case c > 0:
			chunk = make([]ent, 0, entChunk)
		}
		x.chunks = append(x.chunks, chunk)
	}
	x.chunks[c] = append(x.chunks[c], e)
	x.n++
}

// removeFirst removes the first entry; there must be one.
func (x *index) removeFirst() {
	x.head++
	x.n--
	if x.n == 0 {
		x.reset()
		return
	}
	if x.head == entChunk { // the first chunk is all removed
		if cap(x.chunks[0]) >= entChunk {
			x.spare = x.chunks[0][:0:entChunk]
		}
		n := copy(x.chunks, x.chunks[1:])
		x.chunks[n] = nil
		x.chunks, x.head = x.chunks[:n], 0
	}
}

// reset empties x, keeping its first chunk's memory.
func (x *index) reset() {
	if len(x.chunks) > 0 {
		clear(x.chunks[1:])
		x.chunks = append(x.chunks[:0], x.chunks[0][:0])
	}
	x.head, x.n = 0, 0
}

// search returns the smallest i in [0, len) for which f(at(i)) is true, or len if none,
// f being false then true along the index (sort.Search).
func (x *index) search(f func(*ent) bool) int {
	lo, hi := 0, x.n
	for lo < hi {
		mid := int(uint(lo+hi) >> 1)
		if !f(x.at(mid)) {
			lo = mid + 1
		} else {
			hi = mid
		}
	}
	return lo
}
