package boltstore

import (
	"fmt"
	"slices"
	"sync"

	bolt "go.etcd.io/bbolt"

	"github.com/starling-io/starling/stores"
)

// committer is the store's one group commit. Every stores.SplitSyncer of the store —
// each channel's msgStore and subStore, and the Store's client records — hands what it
// flushed to the committer: a msgStore queues itself (its flushed messages stay in its
// pending buffer), a subStore or the clients stage a batch of encoded bucket operations.
// A SyncFlushed, of any of them, that finds its own flushes not yet durable commits
// everything queued store-wide in ONE bolt transaction (one fsync); the others' SyncFlushed
// then find their flushes durable and return without a transaction. So the engine's pass —
// SyncFlushed of every channel's messages and subscriptions it touched and of the clients —
// costs one fsync, not one per store (bolt fsyncs each transaction, and one file serializes
// them anyway). See DESIGN.md.
type committer struct {
	// mu serializes commits, so a later Sync never overtakes an earlier staged batch. Lock
	// order: Store.mu, then mu, then msgStore.mu or subStore.mu, then stageMu. A commit
	// holds mu across its transaction, but takes the channels' locks only to snapshot and
	// retire, and stageMu only to take the queue and to settle the stagers.
	mu     sync.Mutex
	closed bool // the store is closed: no more commits

	// Owned by the running commit (mu held).
	cchans []*msgStore
	cmetas []*batch
	clean  bool                 // write the clean mark (Close's final commit)
	txFn   func(*bolt.Tx) error // c.write, bound once: no closure per commit

	// stageMu guards the queue, the free batches, every stager and msgStore.queued. Leaf.
	stageMu sync.Mutex
	chans   []*msgStore // channels flushed since a commit last took the queue
	metas   []*batch    // staged metadata, in staging order
	seq     uint64      // last stager sequence handed out
	free    []*batch

	db    *bolt.DB
	hooks *Hooks
}

// stager is the commit state of one metadata owner: a channel's subscriptions or the
// clients. Guarded by committer.stageMu.
type stager struct {
	what    string // for errors: `channel "foo" subscriptions`, "clients"
	cur     *batch // its batch in the queue, not yet taken by a commit
	staged  uint64 // sequence of its last Flush that staged anything
	durable uint64 // everything it staged up to this sequence is durable
	lost    uint64 // a failed commit lost what it staged up to this sequence...
	err     error  // ...with this error, until something later is durable
	rewrite bool   // a failed commit lost its changes: the next Flush stages its whole state
}

func newCommitter(db *bolt.DB, hooks *Hooks) *committer {
	c := &committer{db: db, hooks: hooks}
	c.txFn = c.write
	return c
}

// batchFor returns st's batch in the queue, starting one if a commit took the last, and
// the sequence of this Flush. Caller holds stageMu and stages into the batch at once.
func (c *committer) batchFor(st *stager) *batch {
	b := st.cur
	if b == nil {
		if n := len(c.free); n > 0 {
			b = c.free[n-1]
			c.free = c.free[:n-1]
		} else {
			b = &batch{}
		}
		b.st = st
		st.cur = b
		c.metas = append(c.metas, b)
	}
	c.seq++
	b.seq, st.staged = c.seq, c.seq
	return b
}

// release returns a batch the queue no longer holds. Caller holds stageMu.
func (c *committer) release(b *batch) {
	b.reset()
	if cap(b.buf) > maxKeptBatch {
		return
	}
	c.free = append(c.free, b)
}

// queueChan queues a flushed channel for the next commit. Caller holds ms.mu.
func (c *committer) queueChan(ms *msgStore) {
	c.stageMu.Lock()
	if !ms.queued {
		ms.queued = true
		c.chans = append(c.chans, ms)
	}
	c.stageMu.Unlock()
}

// forget takes a channel's messages and subscriptions out of the queue (DeleteChannel,
// Rollback). Caller holds mu: no commit holds them.
func (c *committer) forget(ms *msgStore, st *stager) {
	c.stageMu.Lock()
	defer c.stageMu.Unlock()
	if ms != nil && ms.queued {
		ms.queued = false
		c.chans = slices.DeleteFunc(c.chans, func(x *msgStore) bool { return x == ms })
	}
	if st != nil && st.cur != nil {
		c.metas = slices.DeleteFunc(c.metas, func(b *batch) bool { return b == st.cur })
		c.release(st.cur)
		st.cur = nil
	}
}

// covered reports whether what a stager staged up to target is durable (true, nil), was
// lost by a failed commit and not staged again since (false, the failure), or still
// waits for a commit (false, nil).
func (c *committer) covered(st *stager, target uint64) (bool, error) {
	c.stageMu.Lock()
	defer c.stageMu.Unlock()
	switch {
	case st.durable >= target:
		return true, nil
	case st.lost >= target:
		return false, st.err
	}
	return false, nil
}

// stagedOf returns the sequence of st's last Flush: the target of a SyncFlushed.
func (c *committer) stagedOf(st *stager) uint64 {
	c.stageMu.Lock()
	defer c.stageMu.Unlock()
	return st.staged
}

// syncTo makes durable what covered reports still waiting, committing everything queued if
// need be: SyncFlushed of every SplitSyncer of the store.
func (c *committer) syncTo(covered func() (bool, error)) error {
	if ok, err := covered(); ok || err != nil {
		return err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return stores.ErrClosed
	}
	if ok, err := covered(); ok || err != nil {
		return err // committed (or failed) while this one waited for mu
	}
	cerr := c.commit(false)
	ok, err := covered()
	switch {
	case ok:
		return nil
	case err != nil:
		return err
	case cerr != nil:
		return cerr
	}
	// Unreachable: what was flushed before this call was queued before this commit.
	return fmt.Errorf("boltstore: commit left a flush behind")
}

// commit writes everything queued in one transaction — with the clean mark if clean —
// and settles every channel and stager it held. Caller holds mu.
func (c *committer) commit(clean bool) error {
	c.stageMu.Lock()
	c.cchans, c.chans = c.chans, c.cchans[:0]
	for _, ms := range c.cchans {
		ms.queued = false
	}
	c.cmetas, c.metas = c.metas, c.cmetas[:0]
	for _, b := range c.cmetas {
		b.st.cur = nil // the next Flush starts a new batch
	}
	c.stageMu.Unlock()

	work := clean || len(c.cmetas) > 0
	for _, ms := range c.cchans {
		if ms.snapshot() {
			work = true
		}
	}
	var err error
	if work {
		c.clean = clean
		err = c.db.Update(c.txFn)
		c.clean = false
	}
	for _, ms := range c.cchans {
		ms.retire(err)
	}
	c.stageMu.Lock()
	for _, b := range c.cmetas {
		if err == nil {
			b.st.durable = max(b.st.durable, b.seq)
		} else {
			c.lose(b.st, b.seq, err)
		}
		c.release(b)
	}
	c.stageMu.Unlock()
	clear(c.cchans)
	clear(c.cmetas)
	c.cchans, c.cmetas = c.cchans[:0], c.cmetas[:0]
	return err
}

// lose records that a failed commit lost what st staged up to seq. A batch st staged since
// builds on what was lost, so it goes too; st's next Flush stages its whole state, which
// memory still holds. Caller holds stageMu.
func (c *committer) lose(st *stager, seq uint64, err error) {
	if b := st.cur; b != nil {
		seq = max(seq, b.seq)
		c.metas = slices.DeleteFunc(c.metas, func(x *batch) bool { return x == b })
		c.release(b)
		st.cur = nil
	}
	st.lost = max(st.lost, seq)
	st.err = fmt.Errorf("boltstore: %s: commit failed: %w", st.what, err)
	st.rewrite = true
}

// write is the commit's transaction: the channels' messages, then the staged metadata in
// staging order, then the clean mark.
func (c *committer) write(tx *bolt.Tx) error {
	if h := c.hooks.FailCommit; h != nil {
		if err := h(false); err != nil {
			return err
		}
	}
	for _, ms := range c.cchans {
		if err := ms.write(tx); err != nil {
			return err
		}
	}
	for _, b := range c.cmetas {
		if err := b.apply(tx); err != nil {
			return fmt.Errorf("boltstore: %s: %w", b.st.what, err)
		}
	}
	if c.clean {
		if err := tx.Bucket([]byte(bktMeta)).Put([]byte(keyClean), []byte{1}); err != nil {
			return err
		}
	}
	if h := c.hooks.FailCommit; h != nil {
		return h(true)
	}
	return nil
}
