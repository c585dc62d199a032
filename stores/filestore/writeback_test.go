package filestore

import (
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

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

// Deleting a dropped segment's files happens after the channel's lock is released: on a
// busy disk the unlink of a large segment took seconds, and State (monitoring) waited.
func TestDroppedSegmentIsDeletedOutsideTheLock(t *testing.T) {
	entered, release := make(chan string, 4), make(chan struct{})
	var blocking atomic.Bool
	opts := Options{SegmentMsgs: 10, Limits: &stores.LimitsSet{Global: stores.Limits{MaxMsgs: 10}}}
	opts.Hooks.Change = func(op, path string, size int64, do func() error) error {
		if op == ChangeRemove && strings.HasSuffix(path, ".seg") && blocking.Load() {
			entered <- path
			<-release
		}
		return do()
	}
	s, ch := openWithFoo(t, t.TempDir(), opts)
	defer s.Close()
	var once sync.Once
	unblock := func() { blocking.Store(false); once.Do(func() { close(release) }) }
	defer unblock() // before Close, even when the test fails
	if err := ch.Msgs.Append(genMsgs(1, 35)); err != nil {
		t.Fatal(err)
	}
	blocking.Store(true)
	synced := make(chan error, 1)
	go func() { synced <- ch.Msgs.Sync() }() // the durable First lets the old segments go
	var doomed string
	select {
	case doomed = <-entered:
	case <-time.After(5 * time.Second):
		t.Fatal("no segment was deleted")
	}
	stated := make(chan stores.ChannelState, 1)
	go func() { stated <- ch.Msgs.State() }()
	select {
	case st := <-stated:
		if st.Msgs != 10 || st.Last != 35 {
			t.Fatalf("state %+v", st)
		}
	case <-time.After(2 * time.Second):
		t.Fatalf("State waits while %s is deleted", doomed)
	}
	unblock()
	if err := <-synced; err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(doomed); !os.IsNotExist(err) {
		t.Fatalf("%s still exists: %v", doomed, err)
	}
}
