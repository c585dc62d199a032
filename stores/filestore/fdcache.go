package filestore

import (
	"container/list"
	"os"
	"sync"
)

// DefaultMaxOpenSegments bounds the read handles of sealed segments kept open per store.
const DefaultMaxOpenSegments = 256

// fdCache keeps an LRU of read handles of sealed segments, shared by every channel of a
// store, so open descriptors stay bounded however many segments exist (each channel also
// keeps its tail segment and subs.log open). A sealed segment's f is only touched under
// fdCache.mu; a handle in use (refs > 0) is never closed.
type fdCache struct {
	mu  sync.Mutex // leaf lock, taken under a msgStore's mu
	max int
	lru list.List // of *segment, most recent first
}

// acquire returns the open read handle of a sealed segment; release it after use.
func (c *fdCache) acquire(seg *segment) (*os.File, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if seg.f == nil {
		f, err := os.Open(seg.base + ".seg")
		if err != nil {
			return nil, err
		}
		seg.f = f
		seg.elem = c.lru.PushFront(seg)
		seg.refs++ // before evict: the handle just opened must not be the one closed
		c.evict()
		return f, nil
	}
	if seg.elem != nil {
		c.lru.MoveToFront(seg.elem)
	}
	seg.refs++
	return seg.f, nil
}

func (c *fdCache) release(seg *segment) {
	c.mu.Lock()
	seg.refs--
	c.mu.Unlock()
}

// evict closes the least recently used idle handles beyond max. Caller holds mu.
func (c *fdCache) evict() {
	for e := c.lru.Back(); e != nil && c.lru.Len() > c.max; {
		prev := e.Prev()
		if seg := e.Value.(*segment); seg.refs == 0 {
			seg.f.Close()
			seg.f, seg.elem = nil, nil
			c.lru.Remove(e)
		}
		e = prev
	}
}

// forget closes a sealed segment's handle (the segment is being deleted or its channel
// closed; its msgStore's write lock excludes readers).
func (c *fdCache) forget(seg *segment) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if seg.elem != nil {
		c.lru.Remove(seg.elem)
		seg.elem = nil
	}
	if seg.f != nil {
		seg.f.Close()
		seg.f = nil
	}
}
