package tests

import (
	"context"
	"fmt"
	"io/fs"
	"log/slog"
	"math/rand/v2"
	"net/url"
	"os"
	"path/filepath"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/hashicorp/raft"

	"github.com/starling-io/starling/core"
	"github.com/starling-io/starling/raftlog"
	"github.com/starling-io/starling/raftlog/seglog"
	"github.com/starling-io/starling/stores/filestore"
	"github.com/starling-io/starling/stores/filestore/crashtest"
	"github.com/starling-io/starling/streaming"
)

// §4.8, lost unfsynced writes, clustered. The power-loss file layer (crashtest) hooks into
// filestore.Options, which only an in-process server can set: these tests run the three
// nodes in the test process — core routed together, streaming over raftlog.Node on TCP,
// each channel store a filestore on a crashtest.Disk — wired as cmd/starling wires them
// (the default configuration: the raft log fsynced at every commit, the channel stores
// synced at snapshots). A power cut freezes a node's disk, stops it, cuts every file of its
// channel store and of its raft log (raftlog/seglog's segments, which reach the same
// crashtest.Disk through Config.LogHook) back to its last fsync with the unsynced rest
// torn, and starts it again on the same directories and ports. Not modelled: raft.db (the
// term and the vote: bbolt, which fsyncs every change before it returns) and raft's
// snapshot files, which are kept as the process left them.

// powerNode is one in-process node.
type powerNode struct {
	id           string
	port, cport  int // client, route
	rport        int // raft
	dir, raftDir string
	disk         *crashtest.Disk
	srv          *streaming.Server
	log          *raftlog.Node
	stop         func()
	fake         *node // carries the client port for the load's helpers
	raftAddrOf   map[string]string
	full         atomic.Bool // the raft log's disk is full (logHook)
	noTakeOver   atomic.Bool // its engine cannot take over (powerCluster.wrapLog, failingTakeoverLog)
	logs         syncBuffer  // warnings and errors, raft's own included
}

// logHook is the raft log's view of the node's disk: the power-cut layer, and while full is
// set a full disk — writes and allocations fail with ENOSPC.
func (n *powerNode) logHook(op, path string, size int64, do func() error) error {
	if n.full.Load() && (op == seglog.OpWrite || op == seglog.OpAllocate) {
		return &os.PathError{Op: op, Path: path, Err: syscall.ENOSPC}
	}
	return n.disk.Do(op, path, size, do)
}

type powerCluster struct {
	t     *testing.T
	nodes []*powerNode
	rng   *rand.Rand
	// wrapLog, when set, is the log a node's engine sees over its raft node.
	wrapLog func(n *powerNode, rn *raftlog.Node) raftlog.Log
}

func startPowerCluster(t *testing.T, seed uint64) *powerCluster {
	t.Helper()
	return startPowerClusterWith(t, seed, nil)
}

// startPowerClusterWith is startPowerCluster with pc.wrapLog set to wrapLog.
func startPowerClusterWith(t *testing.T, seed uint64, wrapLog func(n *powerNode, rn *raftlog.Node) raftlog.Log) *powerCluster {
	t.Helper()
	pc := &powerCluster{t: t, rng: rand.New(rand.NewPCG(seed, 0x5eed)), wrapLog: wrapLog}
	addrs := map[string]string{}
	for _, id := range []string{"n1", "n2", "n3"} {
		p := nodePorts(t)
		n := &powerNode{id: id, port: p[0], cport: p[1], rport: p[2], dir: t.TempDir(), raftDir: t.TempDir(),
			disk: crashtest.New(), raftAddrOf: addrs}
		n.fake = &node{t: t, name: id, port: n.port}
		addrs[id] = fmt.Sprintf("127.0.0.1:%d", n.rport)
		pc.nodes = append(pc.nodes, n)
	}
	for _, n := range pc.nodes {
		pc.start(n)
	}
	pc.leader()
	return pc
}

// start runs node n: core with routes to every node, its file store on its disk, raft.
func (pc *powerCluster) start(n *powerNode) {
	t := pc.t
	t.Helper()
	var routes []*url.URL
	for _, o := range pc.nodes {
		routes = append(routes, &url.URL{Scheme: "nats", Host: fmt.Sprintf("127.0.0.1:%d", o.cport)})
	}
	cs, err := core.New(core.Options{Host: "127.0.0.1", Port: n.port,
		Cluster: &core.ClusterOptions{Host: "127.0.0.1", Port: n.cport, Name: "stan", Routes: routes}})
	must(t, err)
	must(t, cs.Start())
	conn, err := cs.Connect("_STARLING-test-cluster")
	must(t, err)
	opts := filestore.Options{}
	n.disk.Install(&opts)
	store, err := filestore.Open(n.dir, opts)
	if err != nil {
		t.Fatalf("%s: open the store after the power cut: %v", n.id, err)
	}
	resolve := raftlog.AddressFunc(func(id raft.ServerID) (raft.ServerAddress, error) {
		return raft.ServerAddress(n.raftAddrOf[string(id)]), nil
	})
	trans, err := raftlog.NewTCPTransport(raftlog.TCPTransportConfig{Listen: n.raftAddrOf[n.id], Resolve: resolve, NoLog: true})
	must(t, err)
	cfg := raftlog.Config{Group: "test-cluster", NodeID: n.id, Peers: []string{"n1", "n2", "n3"},
		Dir: filepath.Join(n.raftDir, "raft"), Transport: trans, Resolve: resolve,
		// Snapshots and compaction during the run: the stores must hold what they name.
		SnapshotInterval: 500 * time.Millisecond, SnapshotThreshold: 512, TrailingLogs: 64,
		RaftLogLevel: slog.LevelError, LogHook: n.logHook}
	quiet := slog.New(slog.DiscardHandler)
	cfg.Logger = slog.New(slog.NewTextHandler(&n.logs, &slog.HandlerOptions{Level: slog.LevelWarn}))
	srv, err := streaming.New(streaming.InProcess(conn), store, func(sm raftlog.StateMachine) (raftlog.Log, error) {
		rn, err := raftlog.NewNode(cfg, sm)
		n.log = rn
		if err == nil && pc.wrapLog != nil {
			return pc.wrapLog(n, rn), nil
		}
		return rn, err
	}, streaming.Options{ClusterID: "test-cluster", Logger: quiet})
	if err == nil {
		err = srv.Start()
	}
	if err != nil {
		t.Fatalf("%s: streaming after the power cut: %v", n.id, err)
	}
	n.srv = srv
	stopped := false
	n.stop = func() {
		if stopped {
			return
		}
		stopped = true
		_ = srv.Shutdown()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = cs.Shutdown(ctx)
	}
	t.Cleanup(n.stop)
}

// powerCut cuts the power of the given nodes at once: their disks freeze and raft stops
// (no leadership handed over), then the rest shuts down and the store files lose their
// unsynced tails.
func (pc *powerCluster) powerCut(nodes ...*powerNode) {
	pc.t.Helper()
	for _, n := range nodes {
		n.disk.Freeze()
		_ = n.log.Close()
	}
	for _, n := range nodes {
		n.stop()
		logDir := filepath.Join(n.raftDir, "raft", "test-cluster", "log")
		before, logBefore := dirBytes(pc.t, n.dir), dirBytes(pc.t, logDir)
		must(pc.t, n.disk.PowerLoss(n.dir, pc.rng))
		must(pc.t, n.disk.PowerLoss(logDir, pc.rng))
		n.disk.Thaw()
		pc.t.Logf("power cut of %s: its store lost %d of %d bytes, its raft log %d of %d (preallocated space included)",
			n.id, before-dirBytes(pc.t, n.dir), before, logBefore-dirBytes(pc.t, logDir), logBefore)
	}
}

// TestPowerLayerOpNames: the segment log names its file operations as the filestore and
// crashtest do, so that one crashtest.Disk serves both.
func TestPowerLayerOpNames(t *testing.T) {
	for _, p := range [][2]string{
		{seglog.OpCreate, filestore.ChangeCreate}, {seglog.OpAllocate, filestore.ChangeAllocate},
		{seglog.OpTruncate, filestore.ChangeTruncate}, {seglog.OpRemove, filestore.ChangeRemove},
		{seglog.OpWrite, crashtest.OpWrite}, {seglog.OpSync, crashtest.OpSync},
	} {
		if p[0] != p[1] {
			t.Errorf("seglog's %q is %q for the power-cut layer", p[0], p[1])
		}
	}
}

// dirBytes is the size of the files under dir.
func dirBytes(t *testing.T, dir string) int64 {
	var total int64
	must(t, filepath.WalkDir(dir, func(_ string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		fi, err := d.Info()
		if err == nil {
			total += fi.Size()
		}
		return err
	}))
	return total
}

// leader waits for a node whose engine leads.
func (pc *powerCluster) leader() *powerNode {
	pc.t.Helper()
	var lead *powerNode
	waitFor(pc.t, 10*time.Second, func() error {
		for _, n := range pc.nodes {
			if n.srv.Serverz().Role == "Leader" {
				lead = n
				return nil
			}
		}
		return fmt.Errorf("no leader")
	})
	return lead
}

// converged waits for equal state digests.
func (pc *powerCluster) converged() {
	pc.t.Helper()
	waitFor(pc.t, 30*time.Second, func() error {
		var ds []string
		for _, n := range pc.nodes {
			d, err := n.srv.StateDigest()
			if err != nil {
				return err
			}
			ds = append(ds, d)
		}
		if ds[0] != ds[1] || ds[0] != ds[2] {
			return fmt.Errorf("state digests differ: %v", ds)
		}
		return nil
	})
}

func (pc *powerCluster) fakes() []*node {
	var out []*node
	for _, n := range pc.nodes {
		out = append(out, n.fake)
	}
	return out
}

// check is checkLoad over the in-process cluster.
func (pc *powerCluster) check(l *stanLoad) loadTally {
	pc.t.Helper()
	return l.checkWith(pc.converged, func() []string {
		lead := pc.leader()
		var last uint64
		for _, ch := range lead.srv.Channels(false) {
			if ch.Name == l.channel {
				last = ch.LastSeq
			}
		}
		return storedFrom(pc.t, lead.fake, l.channel, 1, last)
	})
}

// TestStanClusterPowerLoss: under load, power cuts — the leader alone, a follower alone,
// all three at once, then the leader between a raft-log write and its fsync — each node's
// store and raft-log files cut back to their last fsync: nothing acknowledged is lost, the
// durable cursors hold, and the three converge.
func TestStanClusterPowerLoss(t *testing.T) {
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed)
	pc := startPowerCluster(t, seed)
	l := newStanLoad(t, pc.fakes(), "power", 300)
	defer l.close() // before the cleanups of nodes restarted since, which run first
	l.waitAcked(300, 20*time.Second)
	for _, step := range []struct {
		name string
		cut  func() []*powerNode
	}{
		{"the leader", func() []*powerNode { return []*powerNode{pc.leader()} }},
		{"a follower", func() []*powerNode {
			lead := pc.leader()
			for _, n := range pc.nodes {
				if n != lead {
					return []*powerNode{n}
				}
			}
			return nil
		}},
		{"all three", func() []*powerNode { return pc.nodes }},
		{"the leader between a raft write and its fsync", func() []*powerNode {
			lead := pc.leader()
			lead.disk.FreezeAtSync()
			waitFor(t, 10*time.Second, func() error {
				if !lead.disk.Frozen() {
					return fmt.Errorf("%s's raft log made no fsync", lead.id)
				}
				return nil
			})
			return []*powerNode{lead}
		}},
	} {
		nodes := step.cut()
		start := time.Now()
		end := l.fault(start)
		pc.powerCut(nodes...)
		for _, n := range nodes {
			pc.start(n)
		}
		pc.leader()
		l.waitAcked(300, 30*time.Second)
		end()
		t.Logf("power cut of %s: service back after %v; %v", step.name, time.Since(start), pc.check(l))
		if t.Failed() {
			return
		}
	}
}
