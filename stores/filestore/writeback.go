package filestore

import (
	"os"
	"sync"
)

// Write-behind. A store whose caller does not sync each batch — a replica's, where the raft
// log is the write-ahead log and channel stores are synced at snapshots — would otherwise
// reach a segment's roll with the whole segment in dirty pages, and sealing it (seal's
// fsync) then wrote out 64 MiB on the writer's goroutine: a replica's Apply stalled 125-190
// ms at every roll, and every commit behind it. So once a tail holds writeBehindBytes more
// than its last fsync covered, the kernel is asked to start writing it back (not waited
// for), again after each further writeBehindBytes; the fsync at the roll, or at the next
// Sync, finds little left to write. A caller that syncs each batch never gets that far
// ahead, and NoSync never fsyncs, so neither pays for it.
//
// The request goes to a goroutine of the store's (writebacker), never made by the writer:
// on ext4 sync_file_range can wait for the journal, and under three nodes' bulk replication
// on one disk it held the writer's lock — and a replica's Apply — for seconds.
const writeBehindBytes = 1 << 20

// writeBehind starts the writeback of the tail if it is due. Caller holds mu.
func (ms *msgStore) writeBehind() {
	seg := ms.segs[len(ms.segs)-1]
	if ms.opts.wb == nil || seg.f == nil || seg.size-seg.synced < writeBehindBytes || seg.size-seg.wbMark < writeBehindBytes {
		return
	}
	if ms.opts.wb.ask(seg.f) { // busy: the next Append asks again
		seg.wbMark = seg.size
	}
}

// writebacker starts writebacks on a goroutine of its own, one at a time; requests that
// find it busy are dropped. Best effort: a failure is met again by the fsync that counts.
type writebacker struct {
	mu     sync.Mutex
	closed bool
	ch     chan *os.File
	done   chan struct{}
}

func newWritebacker() *writebacker {
	w := &writebacker{ch: make(chan *os.File, 4), done: make(chan struct{})}
	go func() {
		defer close(w.done)
		for f := range w.ch {
			startWriteback(f) // a file closed meanwhile (a sealed tail) is skipped
		}
	}()
	return w
}

// ask queues f's writeback unless the goroutine is busy or stopped; it never blocks.
func (w *writebacker) ask(f *os.File) bool {
	if w == nil {
		return false
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.closed {
		return false
	}
	select {
	case w.ch <- f:
		return true
	default:
		return false
	}
}

// stop ends the goroutine once its queue is done.
func (w *writebacker) stop() {
	if w == nil {
		return
	}
	w.mu.Lock()
	if !w.closed {
		w.closed = true
		close(w.ch)
	}
	w.mu.Unlock()
	<-w.done
}
