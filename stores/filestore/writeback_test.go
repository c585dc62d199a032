package filestore

import (
	"testing"

	"github.com/starling-io/starling/stores"
)

// kibMsgs returns n messages of 1 KiB from sequence first.
func kibMsgs(first uint64, n int) []stores.Msg {
	b := make([]stores.Msg, n)
	for i := range b {
		seq := first + uint64(i)
		b[i] = stores.Msg{Seq: seq, Time: int64(seq), Data: make([]byte, 1024)}
	}
	return b
}

// tailWriteBehind returns the tail's size and where its writeback was last started.
func tailWriteBehind(ch *stores.Channel) (size, mark int64) {
	ms := ch.Msgs.(*msgStore)
	ms.mu.RLock()
	defer ms.mu.RUnlock()
	seg := ms.segs[len(ms.segs)-1]
	return seg.size, seg.wbMark
}

// A tail written without Sync (a replica's) has its writeback started every
// writeBehindBytes, so the fsync at its roll finds little to write; a caller that syncs
// each batch, or NoSync, never starts one. (The stall this removes is measured in
// docs/benchmarks.md, not here: it is a property of the disk.)
func TestWriteBehindOnlyWhenUnsyncedDataPilesUp(t *testing.T) {
	const batches, per = 40, 100 // 4,000 KiB in 40 batches
	for _, tc := range []struct {
		name   string
		opts   Options
		sync   bool
		starts bool
	}{
		{"unsynced", Options{}, false, true},
		{"synced each batch", Options{}, true, false},
		{"NoSync", Options{NoSync: true}, false, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, ch := openWithFoo(t, t.TempDir(), tc.opts)
			defer s.Close()
			for i := range batches {
				if err := ch.Msgs.Append(kibMsgs(uint64(i*per+1), per)); err != nil {
					t.Fatal(err)
				}
				if tc.sync {
					if err := ch.Msgs.Sync(); err != nil {
						t.Fatal(err)
					}
				}
			}
			size, mark := tailWriteBehind(ch)
			switch {
			case tc.starts && (mark == 0 || size-mark >= writeBehindBytes):
				t.Fatalf("tail of %d bytes, writeback last started at %d: want within %d of the end", size, mark, writeBehindBytes)
			case !tc.starts && mark != 0:
				t.Fatalf("writeback started at %d of %d bytes: want none", mark, size)
			}
		})
	}
}
