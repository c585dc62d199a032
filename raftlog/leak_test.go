package raftlog_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/raft"

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

// openFDs counts this process's open file descriptors.
func openFDs(t *testing.T) int {
	es, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Skip("no /proc/self/fd:", err)
	}
	return len(es)
}

// TestTCPNodeRestartsLeakNothing: nodes of a TCP group closed and started again in the same
// process, over and over (leader and follower alike, on new ports, with the log compacted
// meanwhile), leave neither sockets nor connection goroutines behind once the group is
// closed: a closed transport closes the connections it accepted and the ones it pooled.
// Before, every restart left the closed transport's pooled connections and its handlers of
// accepted ones open, with their peers' ends.
func TestTCPNodeRestartsLeakNothing(t *testing.T) {
	count := func() (int, int) {
		runtime.GC()
		return runtime.NumGoroutine(), openFDs(t)
	}
	g0, f0 := count()
	tune := func(c *raftlog.Config) {
		c.LogSegmentBytes = 4 << 10
		c.TrailingLogs = 16
		c.SnapshotThreshold = 64
		c.NoSync = true
	}
	book, nodes, leader := startTCPGroup(t, tune)
	peers := []string{"a", "b", "c"}
	propose := func(n int) {
		for i := range n {
			for {
				if idx, _ := leader().node.Propose(context.Background(), raftlogtest.Put(fmt.Sprint("k", i))).Wait(); idx != 0 {
					break
				}
			}
		}
	}
	restart := func(n *tcpNode) {
		n.node.Close()
		startTCP(t, book, n, peers, tune)
	}
	for range 4 {
		propose(40)
		for _, n := range nodes {
			_ = n.node.Snapshot()
		}
		l := leader()
		for _, n := range nodes {
			if n != l {
				restart(n)
				break
			}
		}
		propose(20)
		restart(leader())
		propose(20)
	}
	for _, n := range nodes {
		n.node.Close()
	}
	var g, f int
	deadline := time.Now().Add(5 * time.Second)
	for {
		if g, f = count(); g <= g0 && f <= f0 || time.Now().After(deadline) {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if g > g0 || f > f0 {
		t.Fatalf("the group closed after 8 restarts: %d goroutines (%+d), %d fds (%+d)", g, g-g0, f, f-f0)
	}
}

// TestTCPPoolToAGoneAddress: a peer back on another port (as a node listening on port 0 is
// after each restart) leaves no connections behind in the pools of the transports that
// dialled it. raft pools connections by the address it dialled; when that was the resolved
// address, the connections pooled to the old one (dead, each with its socket and raft's
// 260 KB of buffers) stayed there for good, as nothing dials that address again: up to
// MaxPool per peer restart. The pools are now keyed by node ID, resolved at every dial.
func TestTCPPoolToAGoneAddress(t *testing.T) {
	discard := slog.New(slog.NewTextHandler(io.Discard, nil))
	book := &addressBook{addrs: map[raft.ServerID]raft.ServerAddress{}}
	newTrans := func(id string) *raft.NetworkTransport {
		tr, err := raftlog.NewTCPTransport(raftlog.TCPTransportConfig{
			Listen: "127.0.0.1:0", Resolve: raftlog.AddressFunc(book.resolve), Logger: discard, Timeout: 5 * time.Second,
		})
		if err != nil {
			t.Fatal(err)
		}
		book.set(id, tr.LocalAddr())
		return tr
	}
	a := newTrans("a")
	defer a.Close()
	// Each round: three RPCs at once from a to b (three connections, pooled once answered),
	// then b is closed and comes back on a new port.
	const conc = 3
	round := func() {
		b := newTrans("b")
		defer b.Close()
		served := make(chan struct{})
		go func() {
			defer close(served)
			var rpcs []raft.RPC
			for len(rpcs) < conc {
				rpcs = append(rpcs, <-b.Consumer())
			}
			for _, r := range rpcs {
				r.Respond(&raft.AppendEntriesResponse{Success: true}, nil)
			}
		}()
		var wg sync.WaitGroup
		for range conc {
			wg.Add(1)
			go func() {
				defer wg.Done()
				var resp raft.AppendEntriesResponse
				if err := a.AppendEntries("b", "b", &raft.AppendEntriesRequest{Term: 1}, &resp); err != nil {
					t.Error(err)
				}
			}()
		}
		wg.Wait()
		<-served
	}
	count := func() int {
		runtime.GC()
		return openFDs(t)
	}
	round()
	f0 := count()
	const rounds = 5
	for range rounds {
		round()
	}
	var f int
	deadline := time.Now().Add(3 * time.Second)
	for {
		if f = count(); f <= f0 || time.Now().After(deadline) {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if f > f0 {
		t.Fatalf("after %d peer restarts on new ports: %d fds (%+d)", rounds, f, f-f0)
	}
}
