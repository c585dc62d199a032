package raftlog

import (
	"sync"

	"github.com/hashicorp/raft"
)

// logCache keeps the most recent entries in memory, as raft.LogCache does, bounded by a
// byte budget as well as a count: raft's cache counts entries only, and an entry held one
// engine batch (up to MaxEntryBytes) or one message larger than that, so 512 entries of
// 1 MiB messages kept 512 MiB in memory on every node. (Large commands now go in fragments
// of MaxEntryBytes; the budget still bounds entries an earlier version wrote, and a large
// MaxEntryBytes.) The entries cached are the newest
// contiguous run (what raft appends and replicates next); any other write, and any
// DeleteRange, empties it, as raft's does (fsm.restored relies on that).
type logCache struct {
	raft.LogStore

	mu       sync.RWMutex
	ring     []*raft.Log // entry i at ring[i%len(ring)], for lo ≤ i ≤ hi
	lo, hi   uint64      // the cached run; empty when hi < lo
	bytes    int         // the cached entries' sizes (cost)
	maxBytes int
}

func newLogCache(store raft.LogStore, entries, maxBytes int) *logCache {
	return &logCache{LogStore: store, ring: make([]*raft.Log, entries), lo: 1, maxBytes: maxBytes}
}

// cost is what an entry keeps in memory, near enough: its bytes and its struct.
func cost(l *raft.Log) int { return len(l.Data) + len(l.Extensions) + 96 }

// IsMonotonic passes the store's answer through (raft.MonotonicLogStore).
func (c *logCache) IsMonotonic() bool {
	m, ok := c.LogStore.(raft.MonotonicLogStore)
	return ok && m.IsMonotonic()
}

func (c *logCache) GetLog(index uint64, l *raft.Log) error {
	c.mu.RLock()
	var cached *raft.Log
	if index >= c.lo && index <= c.hi {
		cached = c.ring[index%uint64(len(c.ring))]
	}
	c.mu.RUnlock()
	if cached != nil {
		*l = *cached
		return nil
	}
	return c.LogStore.GetLog(index, l)
}

func (c *logCache) StoreLog(l *raft.Log) error {
	one := [1]*raft.Log{l}
	return c.StoreLogs(one[:])
}

// StoreLogs caches ls only once the store has them.
func (c *logCache) StoreLogs(ls []*raft.Log) error {
	if err := c.LogStore.StoreLogs(ls); err != nil {
		return err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, l := range ls {
		if c.hi >= c.lo && l.Index != c.hi+1 {
			c.clear()
		}
		if c.hi < c.lo {
			c.lo, c.hi = l.Index, l.Index-1
		}
		for c.hi >= c.lo && c.hi-c.lo+1 >= uint64(len(c.ring)) { // full: free l's slot
			c.dropOldest()
		}
		c.hi = l.Index
		c.ring[l.Index%uint64(len(c.ring))] = l
		c.bytes += cost(l)
		for c.hi >= c.lo && c.bytes > c.maxBytes {
			c.dropOldest()
		}
	}
	return nil
}

func (c *logCache) DeleteRange(min, max uint64) error {
	c.mu.Lock()
	c.clear()
	c.mu.Unlock()
	return c.LogStore.DeleteRange(min, max)
}

// dropOldest evicts the entry at lo.
func (c *logCache) dropOldest() {
	slot := &c.ring[c.lo%uint64(len(c.ring))]
	if *slot != nil && (*slot).Index == c.lo {
		c.bytes -= cost(*slot)
		*slot = nil
	}
	c.lo++
}

func (c *logCache) clear() {
	clear(c.ring)
	c.lo, c.hi, c.bytes = 1, 0, 0
}
