package filestore

import (
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"os"
	"sync"
	"sync/atomic"

	"github.com/starling-io/starling/stores"
)

// readAheadBlock is how much a sequential Load reads at once; records larger than half of
// it are read alone.
const readAheadBlock = 64 << 10

// readAhead holds the last block read for sequential Loads. Its lock is a leaf, taken
// under msgStore.mu (read): flushed bytes of a segment never change, so a block stays
// valid for as long as its segment is in the store.
type readAhead struct {
	next atomic.Uint64 // the sequence a sequential reader asks for next
	mu   sync.Mutex
	seg  *segment // the block: bytes [off, off+len(buf)) of seg
	off  int64
	buf  []byte
}

// reset drops the block (the segments are being rebuilt).
func (ra *readAhead) reset() {
	ra.mu.Lock()
	ra.seg, ra.buf = nil, ra.buf[:0]
	ra.mu.Unlock()
}

// forget drops the block if it belongs to seg (being deleted), so that it does not keep
// the segment's index in memory.
func (ra *readAhead) forget(seg *segment) {
	ra.mu.Lock()
	if ra.seg == seg {
		ra.seg, ra.buf = nil, ra.buf[:0]
	}
	ra.mu.Unlock()
}

// load copies record e (sequence seq) of seg into into from the block, reading the block
// that starts at the record when it is not there. ok false: not a sequential read (or the
// record is large); the caller reads the record alone.
func (ra *readAhead) load(ms *msgStore, seg *segment, e *entry, seq uint64, into *stores.Msg) (ok bool, err error) {
	if ra.next.Swap(seq+1) != seq || e.blen > readAheadBlock/2 {
		return false, nil // random access (no lock taken) or a large record
	}
	ra.mu.Lock()
	defer ra.mu.Unlock()
	end := int64(e.off) + hdrSize + int64(e.blen)
	if ra.seg != seg || int64(e.off) < ra.off || end > ra.off+int64(len(ra.buf)) {
		n := min(int64(readAheadBlock), seg.flushed-int64(e.off))
		if cap(ra.buf) < readAheadBlock {
			ra.buf = make([]byte, readAheadBlock)
		}
		ra.seg, ra.off, ra.buf = nil, int64(e.off), ra.buf[:n]
		var f *os.File
		if seg.w != nil {
			f = seg.f
		} else if f, err = ms.fds.acquire(seg); err != nil {
			return true, err
		}
		_, err = f.ReadAt(ra.buf, ra.off)
		if seg.w == nil {
			ms.fds.release(seg)
		}
		if err != nil {
			return true, fmt.Errorf("filestore: read: %w", err)
		}
		ra.seg = seg
	}
	rec := ra.buf[int64(e.off)-ra.off : end-ra.off]
	n := int(e.blen)
	if cap(into.Data) < hdrSize+n {
		into.Data = make([]byte, hdrSize+n)
	}
	buf := into.Data[:hdrSize+n]
	copy(buf, rec)
	if !checkRecord(buf, e, seq, into) {
		return true, recordDamage(seg.base+".seg", e, seq)
	}
	return true, nil
}

// Load implements stores.MsgStore: one ReadAt into into.Data.
func (ms *msgStore) Load(seq uint64, into *stores.Msg) error {
	ms.mu.RLock()
	for {
		if err := ms.usable(); err != nil {
			ms.mu.RUnlock()
			return err
		}
		if seq < ms.first || seq > ms.last || ms.msgs == 0 {
			ms.mu.RUnlock()
			return stores.ErrNotFound
		}
		seg := ms.find(seq)
		e := *seg.ents.At(int(seq - seg.first))
		if int64(e.off)+hdrSize+int64(e.blen) <= seg.flushed {
			ok, err := ms.ra.load(ms, seg, &e, seq, into)
			switch {
			case ok:
			case seg.w != nil:
				err = readMsg(seg.f, &e, seq, into)
			default:
				var f *os.File
				if f, err = ms.fds.acquire(seg); err == nil {
					err = readMsg(f, &e, seq, into)
					ms.fds.release(seg)
				}
			}
			ms.mu.RUnlock()
			if err != nil {
				if de, ok := err.(*DamageError); ok {
					de.Channel = ms.name
				}
				return err
			}
			into.Seq, into.Time = seq, e.time
			return nil
		}
		// Still in the write buffer: flush it under the write lock, then retry.
		ms.mu.RUnlock()
		ms.mu.Lock()
		var err error
		if ms.usable() == nil && len(ms.segs) > 0 {
			if err = ms.flush(ms.segs[len(ms.segs)-1]); err != nil {
				err = ms.fail(err)
			}
		}
		ms.unlock()
		if err != nil {
			return err
		}
		ms.mu.RLock()
	}
}

func readMsg(f *os.File, e *entry, seq uint64, into *stores.Msg) error {
	n := int(e.blen)
	if cap(into.Data) < hdrSize+n {
		into.Data = make([]byte, hdrSize+n)
	}
	buf := into.Data[:hdrSize+n]
	if _, err := f.ReadAt(buf, int64(e.off)); err != nil {
		return fmt.Errorf("filestore: read: %w", err)
	}
	if !checkRecord(buf, e, seq, into) {
		return recordDamage(f.Name(), e, seq)
	}
	return nil
}

func recordDamage(file string, e *entry, seq uint64) error {
	return &DamageError{File: file, Offset: int64(e.off), Reason: fmt.Sprintf("record of sequence %d fails its checks", seq)}
}

// checkRecord checks the record read into buf (header and body, in into.Data's memory)
// against its own CRC and sequence — damage a trusted index did not reveal is an error,
// never wrong data — and moves its reply and data into into.
func checkRecord(buf []byte, e *entry, seq uint64, into *stores.Msg) bool {
	n := int(e.blen)
	if binary.LittleEndian.Uint32(buf[0:]) != e.blen || binary.LittleEndian.Uint64(buf[8:]) != seq ||
		crc32.Checksum(buf[8:], crcTable) != binary.LittleEndian.Uint32(buf[4:]) {
		return false
	}
	reply := buf[hdrSize : hdrSize+int(e.rlen)]
	if into.Reply != string(reply) {
		into.Reply = string(reply)
	}
	copy(buf, buf[hdrSize+int(e.rlen):])
	into.Data = buf[:n-int(e.rlen)]
	return true
}
