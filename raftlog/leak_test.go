package raftlog_test

import (
	"context"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/starling-io/starling/raftlog"
	"github.com/starling-io/starling/raftlog/raftlogtest"
	"github.com/starling-io/starling/raftlog/seglog"
)

// goroutinesIn counts the goroutines whose stack names fn.
func goroutinesIn(fn string) int {
	buf := make([]byte, 1<<20)
	buf = buf[:runtime.Stack(buf, true)]
	n := 0
	for _, g := range strings.Split(string(buf), "\n\n") {
		if strings.Contains(g, fn) {
			n++
		}
	}
	return n
}

// TestNodeLeaseLeaksNothingAtShutdown: Lease calls whose leadership check raft had not
// taken up yet when it shut down (its main loop held by a stalled log write) leave no
// goroutine behind once the node is closed.
func TestNodeLeaseLeaksNothingAtShutdown(t *testing.T) {
	var stallOn atomic.Int32 // member index + 1 whose log writes stall
	release, entered := make(chan struct{}), make(chan struct{})
	var once sync.Once
	c := raftlogtest.Start(t, raftlogtest.Options{Config: func(i int, cfg *raftlog.Config) {
		cfg.LogHook = func(op, path string, size int64, do func() error) error {
			if op == seglog.OpWrite && stallOn.Load() == int32(i+1) {
				once.Do(func() { close(entered) })
				<-release
			}
			return do()
		}
	}})
	l := c.Leader(wait)
	c.Propose(wait, raftlogtest.Put("before"))
	stallOn.Store(int32(l.I + 1))
	l.Node.Propose(context.Background(), raftlogtest.Put("stalled"))
	<-entered
	c.Isolate(l)
	time.Sleep(2 * raftlogtest.LeaseTimeout) // the lease lapses: Lease asks raft
	var wg sync.WaitGroup
	for range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, _ = l.Node.Lease(context.Background())
		}()
	}
	wg.Wait()
	closed := make(chan struct{})
	go func() {
		defer close(closed)
		c.Stop(l)
	}()
	// Released once raft's shutdown has begun (Close first waits 2 election timeouts for
	// the proposals in flight).
	time.Sleep(2*raftlogtest.ElectionTimeout + 300*time.Millisecond)
	close(release)
	<-closed
	raftlogtest.Eventually(t, 2*time.Second, "no Lease goroutine left", func() bool {
		return goroutinesIn("raftlog.(*Node).Lease") == 0
	})
}
