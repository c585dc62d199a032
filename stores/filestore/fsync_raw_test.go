//go:build linux && (amd64 || arm64)

package filestore

import (
	"bytes"
	"runtime"
	"testing"
	"time"

	"github.com/starling-io/starling/stores"
	"github.com/starling-io/starling/stores/rawsync"
)

// A commit pass's fsync (SyncFlushed) keeps its goroutine's P: the goroutine is never seen
// in a system call the scheduler can take the P from ("[syscall" in a stack dump), which
// is what made the runtime's sysmon hand that P to another thread at every pass while the
// engine and a reader kept the other one busy (stores/rawsync). Before, f.Sync's ordinary
// call showed up there in most samples.
func TestCommitFsyncKeepsItsP(t *testing.T) {
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(2))
	// A loaded machine's slow fsync must not switch to the ordinary call here.
	defer rawsync.SetSlow(rawsync.SetSlow(time.Hour))
	s, err := Open(t.TempDir(), Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	s.Init(stores.ServerInfo{ClusterID: "c"})
	ch, err := s.CreateChannel("foo", 1)
	if err != nil {
		t.Fatal(err)
	}
	msp := ch.Msgs.(stores.SplitSyncer)
	batch := make([]stores.Msg, 64)
	for i := range batch {
		batch[i].Data = make([]byte, 1024)
	}
	stop, done := make(chan struct{}), make(chan int)
	go func() {
		passes, seq := 0, uint64(1)
		for {
			select {
			case <-stop:
				done <- passes
				return
			default:
			}
			for i := range batch {
				batch[i].Seq, batch[i].Time = seq, int64(seq)
				seq++
			}
			if err := ch.Msgs.Append(batch); err != nil {
				t.Error(err)
			}
			if err := msp.Flush(); err != nil {
				t.Error(err)
			}
			if err := msp.SyncFlushed(); err != nil {
				t.Error(err)
			}
			passes++
		}
	}()
	buf := make([]byte, 1<<20)
	seen, inSyscall, example := 0, 0, ""
	deadline := time.Now().Add(2 * time.Second)
	for time.Now().Before(deadline) && seen < 200 {
		n := runtime.Stack(buf, true)
		for g := range bytes.SplitSeq(buf[:n], []byte("\n\n")) {
			// syncDir: a new tail's directory entry, once a segment, keeps the ordinary call.
			if !bytes.Contains(g, []byte("syncPoint")) || bytes.Contains(g, []byte("syncDir")) {
				continue
			}
			seen++
			if bytes.Contains(g, []byte("[syscall")) {
				inSyscall++
				example = string(g)
			}
		}
		time.Sleep(200 * time.Microsecond)
	}
	close(stop)
	passes := <-done
	if seen < 10 {
		t.Skipf("caught the pass in syncPoint only %d times in %d passes", seen, passes)
	}
	if inSyscall > 0 {
		t.Fatalf("the commit's fsync was in a system call that lends its P away in %d of %d samples (%d passes), as:\n%s", inSyscall, seen, passes, example)
	}
	t.Logf("%d samples in syncPoint, %d passes", seen, passes)
}
