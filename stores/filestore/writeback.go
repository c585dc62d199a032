package filestore

// Write-behind. A store whose caller does not sync each batch — a replica's, where the raft
// log is the write-ahead log and channel stores are synced at snapshots — would otherwise
// reach a segment's roll with the whole segment in dirty pages, and sealing it (seal's
// fsync) then wrote out 64 MiB on the writer's goroutine: a replica's Apply stalled 125-190
// ms at every roll, and every commit behind it. So once a tail holds writeBehindBytes more
// than its last fsync covered, the kernel is asked to start writing it back (not waited
// for), again after each further writeBehindBytes; the fsync at the roll, or at the next
// Sync, finds little left to write. A caller that syncs each batch never gets that far
// ahead, and NoSync never fsyncs, so neither pays for it.
const writeBehindBytes = 1 << 20

// writeBehind starts the writeback of the tail if it is due. Caller holds mu.
func (ms *msgStore) writeBehind() {
	seg := ms.segs[len(ms.segs)-1]
	if ms.opts.NoSync || seg.f == nil || seg.size-seg.synced < writeBehindBytes || seg.size-seg.wbMark < writeBehindBytes {
		return
	}
	seg.wbMark = seg.size
	startWriteback(seg.f) // best effort: a failure here is met again by the fsync that counts
}
