package filestore

// Preallocated tails. A tail segment's file is grown ahead of its writes with zero-filled
// blocks (fallocate), so that the fsync after each group of records — one per synchronous
// publish at low rates — finds neither blocks to allocate nor a new file size to journal:
// on ext4 here a 1 KiB write + fsync costs 122–125 µs into preallocated blocks against
// 156–192 µs appending (docs/benchmarks.md). The file is then longer than its records: a
// sealed segment and a cleanly closed tail are cut back to their records; after a crash,
// recovery finds zeros after the last record and cuts them, as it cuts a torn tail
// (recovery.go), without a warning when they are all zeros.

const (
	// preallocMin and preallocMax bound each growth: a tail grows by what it holds (its
	// allocation at most doubles what was written), so that thousands of small channels
	// reserve little disk and a busy one allocates rarely.
	preallocMin = 64 << 10
	preallocMax = 4 << 20
)

// preallocate grows the tail's file ahead of seg.size (fallocate; an error where the file
// system cannot, or the disk is full).
func (seg *segment) preallocate(opts *Options) error {
	grow := min(max(seg.size, preallocMin), preallocMax)
	alloc := (seg.size + grow + preallocMin - 1) / preallocMin * preallocMin
	if err := allocateFile(seg.f, seg.path, alloc, opts); err != nil {
		return err
	}
	seg.alloc = alloc
	return nil
}

// trim cuts a preallocated tail back to the records it has flushed (before sealing or
// closing it). The cut needs no fsync of its own: zeros left by a crash are cut again at the
// next open.
func (seg *segment) trim(opts *Options) error {
	if seg.alloc <= seg.flushed {
		return nil
	}
	seg.alloc = 0
	return truncateFile(seg.f, seg.path, seg.flushed, opts)
}
