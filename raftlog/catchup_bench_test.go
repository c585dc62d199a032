package raftlog_test

import (
	"context"
	"fmt"
	"path/filepath"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/raft"

	"github.com/starling-io/starling/raftlog"
	"github.com/starling-io/starling/raftlog/raftlogtest"
)

// BenchmarkNodeCatchUp: three nodes over TCP on loopback, segment logs fsynced; one follower
// is closed while the others commit catchUpBytes of entries, then restarted: the time until
// it has applied them all gives the catch-up rate, and the heap's peak meanwhile (all three
// nodes are in this process) what the AppendEntries of MaxAppendEntries entries cost;
// load-MiB/s is the rate at which the leader and one follower committed them. Run it with
// -benchtime=1x: every iteration is a whole cluster.
func BenchmarkNodeCatchUp(b *testing.B) {
	for _, entry := range []int{32000, 1 << 20} {
		for _, mae := range []int{1024, 512, 256, 64, 16} {
			b.Run(fmt.Sprintf("cmd=%d/mae=%d", entry, mae), func(b *testing.B) {
				for range b.N {
					catchUp(b, entry, mae)
				}
			})
		}
	}
}

const catchUpBytes = 256 << 20

func catchUp(b *testing.B, entry, mae int) {
	book := &addressBook{addrs: map[raft.ServerID]raft.ServerAddress{}}
	dir := b.TempDir()
	ids := []string{"a", "b", "c"}
	nodes := make([]*raftlog.Node, 3)
	sms := make([]*countSM, 3)
	start := func(i int) {
		trans, err := raftlog.NewTCPTransport(raftlog.TCPTransportConfig{
			Listen: "127.0.0.1:0", Resolve: raftlog.AddressFunc(book.resolve), Logger: discardLogger(), NoLog: true,
		})
		if err != nil {
			b.Fatal(err)
		}
		book.set(ids[i], trans.LocalAddr())
		sms[i] = &countSM{}
		nodes[i], err = raftlog.NewNode(raftlog.Config{
			Group: "g0", NodeID: ids[i], Peers: ids, Dir: filepath.Join(dir, ids[i]), Transport: trans,
			HeartbeatTimeout: time.Second, ElectionTimeout: time.Second, MaxAppendEntries: mae,
			SnapshotThreshold: 1 << 30, TrailingLogs: 1 << 30, SnapshotInterval: time.Hour,
			Logger: discardLogger(), NoRaftLog: true,
		}, sms[i])
		if err != nil {
			b.Fatal(err)
		}
	}
	for i := range ids {
		start(i)
	}
	defer func() {
		for _, n := range nodes {
			n.Close()
		}
	}()
	var leader *raftlog.Node
	raftlogtest.Eventually(b, 10*time.Second, "a leader", func() bool {
		for _, n := range nodes {
			if n.IsLeader() {
				leader = n
				return true
			}
		}
		return false
	})
	lag := 0
	for nodes[lag] == leader {
		lag++
	}
	nodes[lag].Close()

	// One command per entry: a message of entry bytes, or a full engine batch.
	cmd := []raftlog.Command{{Data: make([]byte, entry)}}
	ctx := context.Background()
	var inflight []raftlog.Future
	loadStart := time.Now()
	for range catchUpBytes / entry {
		if len(inflight) == 64 {
			if _, err := inflight[0].Wait(); err != nil {
				b.Fatal(err)
			}
			inflight = inflight[1:]
		}
		inflight = append(inflight, leader.ProposeBatch(ctx, cmd))
	}
	var want uint64
	for _, f := range inflight {
		idx, err := f.Wait()
		if err != nil {
			b.Fatal(err)
		}
		want = idx
	}
	load := time.Since(loadStart)

	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	base := ms.HeapInuse
	var peak uint64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		t := time.NewTicker(10 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-stop:
				return
			case <-t.C:
				var ms runtime.MemStats
				runtime.ReadMemStats(&ms)
				peak = max(peak, ms.HeapInuse)
			}
		}
	}()
	began := time.Now()
	b.ResetTimer()
	start(lag)
	raftlogtest.Eventually(b, 5*time.Minute, "the follower caught up", func() bool {
		return sms[lag].cmds.Load() >= want
	})
	took := time.Since(began)
	b.StopTimer()
	close(stop)
	wg.Wait()
	b.ReportMetric(float64(catchUpBytes)/(1<<20)/took.Seconds(), "MiB/s")
	b.ReportMetric(float64(catchUpBytes)/(1<<20)/load.Seconds(), "load-MiB/s")
	b.ReportMetric(float64(peak-min(peak, base))/(1<<20), "peak-heap-MiB")
}
