package memstore

import (
	"unsafe"

	"github.com/starling-io/starling/stores"
)

// entry locates one message in its chunk's arena: Reply at buf[off:off+rlen], Data after
// it up to where the next message begins (the next entry's off, or len(buf) for the last).
type entry struct {
	time int64
	off  uint32
	rlen uint32
}

const entrySize = int(unsafe.Sizeof(entry{}))

// First-chunk geometry: a channel starts with one page and doubles from there.
const (
	firstEnts  = 64   // 1 KiB of entries
	firstBytes = 3072 // the rest of a 4 KiB page
)

// chunk is up to ChunkMsgs consecutive messages in one block from mapBytes: the entries
// at its start, the arena after them. Its capacities are fixed when the block is made
// (put never reallocates; growing makes a new block), and it holds no pointer but to its
// own block.
type chunk struct {
	first uint64  // sequence of ents[0]
	mem   []byte  // the block; nil for a chunk slot not in use
	ents  []entry // view of mem's start
	buf   []byte  // view of the rest of mem: Reply then Data of each message
}

// makeChunk returns an empty chunk for entsCap entries and at least bufCap arena bytes.
func makeChunk(entsCap, bufCap int) chunk {
	eb := entsCap * entrySize
	mem := mapBytes(eb + bufCap)
	return chunk{
		mem:  mem,
		ents: unsafe.Slice((*entry)(unsafe.Pointer(unsafe.SliceData(mem))), entsCap)[:0],
		buf:  mem[eb:eb:len(mem)],
	}
}

// free releases the block and empties the slot.
func (c *chunk) free() {
	if c.mem != nil {
		unmapBytes(c.mem)
	}
	*c = chunk{}
}

// fits reports whether one more message of need bytes fits without growing.
func (c *chunk) fits(need int) bool {
	return len(c.ents) < cap(c.ents) && cap(c.buf)-len(c.buf) >= need
}

// put copies m in; the caller made sure it fits (reslicing past capacity would panic
// rather than silently move the chunk to the Go heap, as append would).
func (c *chunk) put(m *stores.Msg) {
	off := len(c.buf)
	c.buf = c.buf[:off+len(m.Reply)+len(m.Data)]
	copy(c.buf[off:], m.Reply)
	copy(c.buf[off+len(m.Reply):], m.Data)
	i := len(c.ents)
	c.ents = c.ents[:i+1]
	c.ents[i] = entry{time: m.Time, off: uint32(off), rlen: uint32(len(m.Reply))}
}

// msg returns message i's Reply and Data, views of the arena.
func (c *chunk) msg(i int) (reply, data []byte) {
	e := &c.ents[i]
	end := uint32(len(c.buf))
	if i+1 < len(c.ents) {
		end = c.ents[i+1].off
	}
	d := e.off + e.rlen
	return c.buf[e.off:d:d], c.buf[d:end:end]
}

// grown returns a copy of c in a new block with room for one more message of need
// bytes: entries doubled (up to maxEnts) if full, the arena doubled (up to maxBytes, or
// to what need requires) if short. The caller frees c.
func (c *chunk) grown(need, maxEnts, maxBytes int) chunk {
	entsCap, bufCap := cap(c.ents), cap(c.buf)
	if len(c.ents) == entsCap {
		entsCap = min(2*entsCap, maxEnts)
	}
	if bufCap-len(c.buf) < need {
		bufCap = max(min(2*bufCap, maxBytes), len(c.buf)+need)
	}
	n := makeChunk(entsCap, bufCap)
	n.first = c.first
	n.ents = append(n.ents, c.ents...) // within capacity
	n.buf = append(n.buf, c.buf...)
	return n
}

// chunkQueue is a channel's chunks, oldest first, and one spare. The directory holding
// them is itself from makeDir. Every operation is amortised O(1).
type chunkQueue struct {
	dir   []chunk // dir[head:] are the live chunks, dir[:head] emptied slots
	head  int
	spare chunk // an emptied chunk kept for reuse (mem nil if none)
}

// live returns the live chunks, oldest first.
func (q *chunkQueue) live() []chunk { return q.dir[q.head:] }

// tail returns the newest chunk, or nil.
func (q *chunkQueue) tail() *chunk {
	if len(q.dir) == q.head {
		return nil
	}
	return &q.dir[len(q.dir)-1]
}

// push appends c as the newest chunk and returns it in place.
func (q *chunkQueue) push(c chunk) *chunk {
	if len(q.dir) == cap(q.dir) {
		n := len(q.dir) - q.head
		if q.head == 0 || q.head < n { // less than half free: grow, else slide down
			d := makeDir(max(2*cap(q.dir), 4))[:n]
			copy(d, q.live())
			q.freeDir()
			q.dir = d
		} else {
			copy(q.dir, q.live())
			clear(q.dir[n:])
			q.dir = q.dir[:n]
		}
		q.head = 0
	}
	q.dir = append(q.dir, c) // within capacity
	return &q.dir[len(q.dir)-1]
}

// popFront removes the oldest chunk, making it the spare (freeing the previous spare).
func (q *chunkQueue) popFront() {
	q.spare.free()
	q.spare = q.dir[q.head]
	q.dir[q.head] = chunk{}
	q.head++
	if q.head == len(q.dir) {
		q.dir, q.head = q.dir[:0], 0
	}
}

// takeSpare returns the spare, emptied, if it can hold entsCap entries and bufCap bytes
// and its arena is no bigger than max(2*bufCap, maxBytes) (a block made for one huge
// message is not kept for small ones); else it frees it and returns a new chunk.
func (q *chunkQueue) takeSpare(entsCap, bufCap, maxBytes int) chunk {
	s := q.spare
	q.spare = chunk{}
	if s.mem != nil && cap(s.ents) >= entsCap && cap(s.buf) >= bufCap && cap(s.buf) <= max(2*bufCap, maxBytes) {
		s.ents, s.buf = s.ents[:0], s.buf[:0]
		return s
	}
	s.free()
	return makeChunk(entsCap, bufCap)
}

// release frees every chunk and the directory.
func (q *chunkQueue) release() {
	for i := range q.live() {
		q.dir[q.head+i].free()
	}
	q.spare.free()
	q.freeDir()
	q.dir, q.head = nil, 0
}

func (q *chunkQueue) freeDir() {
	if q.dir != nil {
		freeDir(q.dir[:cap(q.dir)])
	}
}
