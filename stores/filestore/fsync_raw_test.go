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

// rawChannel opens a store with one channel for a test of the raw calls: two Ps, and no
// switch to the ordinary calls after a loaded machine's slow fsync.
func rawChannel(t *testing.T) (*stores.Channel, stores.SplitSyncer) {
	t.Helper()
	prevProcs := runtime.GOMAXPROCS(2)
	prevSlow := rawsync.SetSlow(time.Hour)
	t.Cleanup(func() { rawsync.SetSlow(prevSlow); runtime.GOMAXPROCS(prevProcs) })
	s, err := Open(t.TempDir(), Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	s.Init(stores.ServerInfo{ClusterID: "c"})
	ch, err := s.CreateChannel("foo", 1)
	if err != nil {
		t.Fatal(err)
	}
	return ch, ch.Msgs.(stores.SplitSyncer)
}

// A commit pass's fsync (SyncFlushed) keeps its goroutine's P: the goroutine is never seen
// in a system call the scheduler can take the P from ("[syscall" in a stack dump), which
// is what made the runtime's sysmon hand that P to another thread at every pass while the
// engine and a reader kept the other one busy (stores/rawsync). Before, f.Sync's ordinary
// call showed up there in most samples.
func TestCommitFsyncKeepsItsP(t *testing.T) {
	ch, msp := rawChannel(t)
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

// TestFlushWritesAreRaw: the write a Flush hands the OS is a raw write(2) (rawsync.Write):
// as an ordinary call it woke the runtime's sysmon before every commit pass of an idle
// server (fileWriter). Before, a Flush made no raw call.
func TestFlushWritesAreRaw(t *testing.T) {
	ch, msp := rawChannel(t)
	for seq := uint64(1); seq <= 3; seq++ {
		if err := ch.Msgs.Append([]stores.Msg{{Seq: seq, Time: int64(seq), Data: []byte("hello")}}); err != nil {
			t.Fatal(err)
		}
		before := rawsync.RawCalls()
		if err := msp.Flush(); err != nil {
			t.Fatal(err)
		}
		if got := rawsync.RawCalls() - before; got == 0 {
			t.Fatalf("message %d: Flush made no raw call", seq)
		}
		if err := msp.SyncFlushed(); err != nil {
			t.Fatal(err)
		}
	}
	var m stores.Msg
	if err := ch.Msgs.Load(3, &m); err != nil || string(m.Data) != "hello" {
		t.Fatalf("Load(3) = %q, %v", m.Data, err)
	}
}
