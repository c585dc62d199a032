package streaming

import (
	"sync"
	"sync/atomic"
	"unsafe"
)

// Publish copies. The handler copies every publish out of its connection's read buffer
// before queueing it, and the copy lives until the publish's commit group completes
// (its messages stored, delivered and acknowledged). A fresh allocation per publish
// cost more than the copy: the allocator, a collection every ~15,000 1 KiB publishes,
// and page faults on heap the scavenger had returned to the OS (82 % of the server's
// page faults at 1 KiB, ~12 µs each on this VM). The copies are carved instead from
// chunks that go back to a free list once every copy carved from them is released
// (committer.release), so steady publishing writes into the same few warm chunks.
//
// Only a completed group releases a copy. A copy that is never released — a refused
// publish, a publish held for binding and dropped — keeps its chunk off the free list,
// and the collector frees the chunk once nothing refers to it: a missed release costs an
// allocation, never a reuse of memory still in use.

const (
	pubChunkSize  = 64 << 10
	pubCopyMax    = 8 << 10 // larger copies are allocated on their own
	pubChunksKept = 64      // free chunks kept: 4 MiB
)

// pubChunk is a buffer copies are carved from. refs counts its unreleased copies, plus one
// while a carver carves from it.
type pubChunk struct {
	buf  []byte
	refs atomic.Int32
	pool *pubChunks
}

// release returns one reference; the last returns the chunk to its pool.
func (c *pubChunk) release() {
	if c.refs.Add(-1) == 0 {
		c.pool.put(c)
	}
}

// pubChunks is the free list, and the carvers the publishers' goroutines carve with: one
// per connection modulo pubCarvers, so a publisher finds its carver's chunk warm and
// carvers are rarely contended.
type pubChunks struct {
	mu      sync.Mutex
	free    []*pubChunk
	carvers [pubCarvers]pubCarver
	made    atomic.Int64 // chunks allocated, ever (tests)
}

const pubCarvers = 16

// pubCarver carves copies from the front of one chunk.
type pubCarver struct {
	mu  sync.Mutex
	c   *pubChunk
	off int
	_   [40]byte // a cache line each: carvers of different connections do not share one
}

// publishOp is a publish request as the engine queues it: reply and data copied into one
// buffer carved from the chunks, which the engine owns until the publish's commit group is
// released.
func (p *pubChunks) publishOp(reply, data []byte, from uint64) op {
	b, c := p.copyPub(from, reply, data)
	return op{kind: opPublish, from: from, chunk: c, data: b[len(reply):],
		reply: unsafe.String(unsafe.SliceData(b), len(reply))} // not written again until released
}

// copyPub returns reply and data copied back to back into one buffer, and the chunk to
// release once the copy is no longer used (nil: the copy has a buffer of its own). It is
// called concurrently from the publishers' goroutines; from is the publishing connection.
func (p *pubChunks) copyPub(from uint64, reply, data []byte) ([]byte, *pubChunk) {
	n := len(reply) + len(data)
	if n > pubCopyMax {
		b := make([]byte, n)
		copy(b, reply)
		copy(b[len(reply):], data)
		return b, nil
	}
	cv := &p.carvers[from%pubCarvers]
	cv.mu.Lock()
	if cv.c == nil || len(cv.c.buf)-cv.off < n {
		if cv.c != nil {
			cv.c.release() // the carver's own reference
		}
		cv.c, cv.off = p.get(), 0
	}
	c := cv.c
	b := c.buf[cv.off : cv.off+n : cv.off+n]
	cv.off += n
	c.refs.Add(1)
	cv.mu.Unlock()
	copy(b, reply)
	copy(b[len(reply):], data)
	return b, c
}

// get returns a chunk with the carver's reference taken.
func (p *pubChunks) get() *pubChunk {
	p.mu.Lock()
	var c *pubChunk
	if n := len(p.free); n > 0 {
		c = p.free[n-1]
		p.free[n-1] = nil
		p.free = p.free[:n-1]
	}
	p.mu.Unlock()
	if c == nil {
		c = &pubChunk{buf: make([]byte, pubChunkSize), pool: p}
		p.made.Add(1)
	}
	c.refs.Store(1)
	return c
}

// put takes back a chunk nothing refers to; the most recently used is reused first.
func (p *pubChunks) put(c *pubChunk) {
	p.mu.Lock()
	if len(p.free) < pubChunksKept {
		p.free = append(p.free, c)
	}
	p.mu.Unlock()
}
