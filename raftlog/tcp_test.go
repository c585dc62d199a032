package raftlog_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"
	"github.com/starling-io/starling/raftlog"
	"github.com/starling-io/starling/raftlog/raftlogtest"
)

// addressBook is the route mesh's part in tests: node ID → raft address, learned late and
// changing when a node restarts on another port.
type addressBook struct {
	mu    sync.Mutex
	addrs map[raft.ServerID]raft.ServerAddress
}

func (b *addressBook) set(id string, a raft.ServerAddress) {
	b.mu.Lock()
	b.addrs[raft.ServerID(id)] = a
	b.mu.Unlock()
}

func (b *addressBook) resolve(id raft.ServerID) (raft.ServerAddress, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if a, ok := b.addrs[id]; ok {
		return a, nil
	}
	return "", fmt.Errorf("no address for %s yet", id)
}

type tcpNode struct {
	id   string
	dir  string
	sm   *raftlogtest.SM
	node *raftlog.Node
	// restoreDelay, when set, makes the first restore after the next start that much longer.
	restoreDelay time.Duration
}

// startTCP starts node n over TCP with the test timings, adjusted by tune if given.
// startTCPGroup starts nodes a, b and c over TCP (closed when the test ends), with tune
// applied to their configs, and returns them with a function that waits for their leader.
func startTCPGroup(t *testing.T, tune ...func(*raftlog.Config)) (*addressBook, []*tcpNode, func() *tcpNode) {
	t.Helper()
	book := &addressBook{addrs: map[raft.ServerID]raft.ServerAddress{}}
	dir := t.TempDir()
	peers := []string{"a", "b", "c"}
	nodes := make([]*tcpNode, len(peers))
	for i, id := range peers {
		nodes[i] = &tcpNode{id: id, dir: filepath.Join(dir, id)}
		startTCP(t, book, nodes[i], peers, tune...)
	}
	t.Cleanup(func() {
		for _, n := range nodes {
			n.node.Close()
		}
	})
	leader := func() *tcpNode {
		var l *tcpNode
		raftlogtest.Eventually(t, wait, "a leader", func() bool {
			l = nil
			for _, n := range nodes {
				if n.node.IsLeader() {
					l = n
				}
			}
			return l != nil
		})
		return l
	}
	return book, nodes, leader
}

func startTCP(t *testing.T, book *addressBook, n *tcpNode, peers []string, tune ...func(*raftlog.Config)) {
	t.Helper()
	discard := slog.New(slog.NewTextHandler(io.Discard, nil))
	trans, err := raftlog.NewTCPTransport(raftlog.TCPTransportConfig{
		Listen: "127.0.0.1:0", Resolve: raftlog.AddressFunc(book.resolve), Logger: discard,
	})
	if err != nil {
		t.Fatal(err)
	}
	book.set(n.id, trans.LocalAddr())
	n.sm = &raftlogtest.SM{}
	n.sm.DelayNextRestore(n.restoreDelay)
	cfg := raftlog.Config{
		Group: "g0", NodeID: n.id, Peers: peers, Dir: n.dir, Transport: trans,
		HeartbeatTimeout: raftlogtest.HeartbeatTimeout, ElectionTimeout: raftlogtest.ElectionTimeout,
		LeaderLeaseTimeout: raftlogtest.LeaseTimeout, CommitTimeout: raftlogtest.CommitTimeout,
		Logger: discard, // NoSync unset: every write is fsynced, as in production
	}
	for _, f := range tune {
		f(&cfg)
	}
	n.node, err = raftlog.NewNode(cfg, n.sm)
	if err != nil {
		t.Fatal(err)
	}
}

// followerOf returns a node of nodes other than l.
func followerOf(nodes []*tcpNode, l *tcpNode) *tcpNode {
	for _, n := range nodes {
		if n != l {
			return n
		}
	}
	return nil
}

// proposeRetry proposes cs to the node that leads, again when leadership moved meanwhile
// (a loaded machine can miss a heartbeat). A proposal may then be applied twice: the tests
// that use it compare the replicas with each other.
func proposeRetry(t *testing.T, leader func() *tcpNode, cs ...raftlog.Command) uint64 {
	t.Helper()
	for {
		idx, err := leader().node.ProposeBatch(context.Background(), cs).Wait()
		if idx != 0 {
			return idx
		}
		if !errors.Is(err, raftlog.ErrNotLeader) && !errors.Is(err, raftlog.ErrLeadershipLost) {
			t.Fatal(err)
		}
	}
}

// TestNodeTCP: three nodes over raft's TCP transport on loopback, with raft-boltdb files
// fsynced under t.TempDir(); addresses are resolved by node ID when dialling, so a node may
// come back on another port.
func TestNodeTCP(t *testing.T) {
	book, nodes, leader := startTCPGroup(t)
	peers := []string{"a", "b", "c"}
	converged := func(index uint64) {
		raftlogtest.Eventually(t, wait, fmt.Sprintf("all at command %d", index), func() bool {
			h0, _ := nodes[0].sm.Hash()
			for _, n := range nodes {
				if h, _ := n.sm.Hash(); n.node.Stats().CommandIndex != index || h != h0 {
					return false
				}
			}
			return true
		})
	}

	propose := func(cs ...raftlog.Command) uint64 { return proposeRetry(t, leader, cs...) }
	var last uint64
	for i := range 20 {
		last = propose(puts(fmt.Sprint(i), 5)...) + 4
	}
	converged(last)
	l := leader()
	if _, err := os.Stat(filepath.Join(nodes[0].dir, "g0", "raft.db")); err != nil {
		t.Fatalf("the raft store is not under Dir/Group: %v", err)
	}

	for _, n := range nodes {
		if n == l {
			continue
		}
		_, err := n.node.Propose(context.Background(), raftlogtest.Put("no")).Wait()
		var nl *raftlog.NotLeaderError
		if !errors.As(err, &nl) || nl.LeaderID != l.id {
			t.Fatalf("%s: %v, want a NotLeaderError naming %s", n.id, err, l.id)
		}
		if want, _ := book.resolve(raft.ServerID(l.id)); nl.LeaderAddr != string(want) {
			t.Fatalf("%s: leader address %q, want %q", n.id, nl.LeaderAddr, want)
		}
		if _, _, err := net.SplitHostPort(nl.LeaderAddr); err != nil {
			t.Fatalf("leader address %q: %v", nl.LeaderAddr, err)
		}
	}

	// A follower restarts on another port; the others find it by its ID.
	f := followerOf(nodes, l)
	if err := f.node.Close(); err != nil {
		t.Fatal(err)
	}
	startTCP(t, book, f, peers)
	converged(propose(raftlogtest.Put("after")))
}

// TestTCPTransportHeartbeatBypassesBulk: a heartbeat is answered while the receiver's raft
// loop is stuck in a large AppendEntries — it took the request and is, say, still storing it
// — because it travels on a pooled connection of its own, not behind the pipeline's, and the
// receiver answers it on the transport's heartbeat fast path, outside the raft loop. So
// heartbeats never wait behind bulk replication (TestStanClusterHeartbeatsUnderBulk measures
// it across three processes).
func TestTCPTransportHeartbeatBypassesBulk(t *testing.T) {
	discard := slog.New(slog.NewTextHandler(io.Discard, nil))
	newTrans := func() *raft.NetworkTransport {
		tr, err := raftlog.NewTCPTransport(raftlog.TCPTransportConfig{Listen: "127.0.0.1:0", Logger: discard, NoLog: true})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = tr.Close() })
		return tr
	}
	leader, follower := newTrans(), newTrans()
	beats := make(chan struct{}, 1)
	follower.SetHeartbeatHandler(func(rpc raft.RPC) {
		rpc.Respond(&raft.AppendEntriesResponse{Term: 1, Success: true}, nil)
		beats <- struct{}{}
	})
	header := raft.RPCHeader{ProtocolVersion: raft.ProtocolVersionMax, ID: []byte("leader"), Addr: []byte(leader.LocalAddr())}

	// 16 MiB of entries down the pipeline; the follower's raft loop takes them and stalls.
	pipe, err := leader.AppendEntriesPipeline("follower", follower.LocalAddr())
	if err != nil {
		t.Fatal(err)
	}
	defer pipe.Close()
	bulk := &raft.AppendEntriesRequest{RPCHeader: header, Term: 1, PrevLogEntry: 1, PrevLogTerm: 1, LeaderCommitIndex: 1}
	for i := range 16 {
		bulk.Entries = append(bulk.Entries, &raft.Log{Index: uint64(i + 2), Term: 1, Type: raft.LogCommand, Data: make([]byte, 1<<20)})
	}
	if _, err := pipe.AppendEntries(bulk, &raft.AppendEntriesResponse{}); err != nil {
		t.Fatal(err)
	}
	var stuck raft.RPC
	select {
	case stuck = <-follower.Consumer():
	case <-time.After(10 * time.Second):
		t.Fatal("the bulk AppendEntries never reached the follower's raft loop")
	}
	defer stuck.Respond(&raft.AppendEntriesResponse{Term: 1, Success: true}, nil)

	hb := &raft.AppendEntriesRequest{RPCHeader: header, Term: 1}
	var resp raft.AppendEntriesResponse
	done := make(chan error, 1)
	start := time.Now()
	go func() { done <- leader.AppendEntries("follower", follower.LocalAddr(), hb, &resp) }()
	select {
	case err := <-done:
		if err != nil || !resp.Success {
			t.Fatalf("heartbeat: %v, success %v", err, resp.Success)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the heartbeat waited behind the bulk AppendEntries")
	}
	select {
	case <-beats:
	default:
		t.Fatal("the heartbeat was not answered on the fast path")
	}
	select {
	case rpc := <-follower.Consumer():
		t.Fatalf("the heartbeat also went to the raft loop: %T", rpc.Command)
	default:
	}
	t.Logf("heartbeat answered in %v while 16 MiB of entries held the follower's raft loop", time.Since(start))
}

// answerVotes grants every vote request trans receives until it closes.
func answerVotes(trans *raft.NetworkTransport) {
	go func() {
		for rpc := range trans.Consumer() {
			rpc.Respond(&raft.RequestVoteResponse{Term: 1, Granted: true}, nil)
		}
	}()
}

// A peer killed and restarted on the same address leaves raft's pooled connections to it
// dead; the next RPC must still reach the new process (redialConn), not fail with EOF — a
// failed vote request costs an election a whole election timeout.
func TestTCPTransportRedialsAfterPeerRestart(t *testing.T) {
	discard := slog.New(slog.NewTextHandler(io.Discard, nil))
	a, err := raftlog.NewTCPTransport(raftlog.TCPTransportConfig{Listen: "127.0.0.1:0", Logger: discard})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	killable := &killableStream{Listener: ln}
	b := raft.NewNetworkTransportWithConfig(&raft.NetworkTransportConfig{Stream: killable, MaxPool: 3, Timeout: 5 * time.Second,
		Logger: hclog.NewNullLogger()})
	answerVotes(b)
	addr := b.LocalAddr()
	vote := func() error {
		var resp raft.RequestVoteResponse
		return a.RequestVote("b", addr, &raft.RequestVoteRequest{RPCHeader: raft.RPCHeader{ID: []byte("a"), Addr: []byte(a.LocalAddr())}, Term: 1}, &resp)
	}
	// Several at once, so that the pool holds more than one connection.
	var wg sync.WaitGroup
	for range 3 {
		wg.Go(func() {
			if err := vote(); err != nil {
				t.Errorf("vote before the restart: %v", err)
			}
		})
	}
	wg.Wait()
	killable.kill() // as the kernel does for a killed process: every socket closed
	b2, err := raftlog.NewTCPTransport(raftlog.TCPTransportConfig{Listen: string(addr), Logger: discard})
	if err != nil {
		t.Fatal(err)
	}
	defer b2.Close()
	answerVotes(b2)
	for i := range 5 {
		if err := vote(); err != nil {
			t.Fatalf("vote %d after the peer restarted: %v", i+1, err)
		}
	}
}

// killableStream is a raft StreamLayer whose kill closes the listener and every connection
// it accepted, as a SIGKILL would.
type killableStream struct {
	net.Listener
	mu    sync.Mutex
	conns []net.Conn
}

func (k *killableStream) Accept() (net.Conn, error) {
	c, err := k.Listener.Accept()
	if err == nil {
		k.mu.Lock()
		k.conns = append(k.conns, c)
		k.mu.Unlock()
	}
	return c, err
}

func (k *killableStream) Dial(addr raft.ServerAddress, timeout time.Duration) (net.Conn, error) {
	return net.DialTimeout("tcp", string(addr), timeout)
}

func (k *killableStream) kill() {
	_ = k.Listener.Close()
	k.mu.Lock()
	defer k.mu.Unlock()
	for _, c := range k.conns {
		_ = c.Close()
	}
}

// throttle forwards connections on a listener of its own to target, the way to target at
// rate bytes a second (the way back at once): a slow network between two nodes.
func throttle(t *testing.T, target string, rate int) string {
	t.Helper()
	const chunk = 32 << 10
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			d, err := net.Dial("tcp", target)
			if err != nil {
				_ = c.Close()
				continue
			}
			t.Cleanup(func() { _ = c.Close(); _ = d.Close() })
			_ = c.(*net.TCPConn).SetReadBuffer(chunk) // little in flight beyond the rate
			go func() { _, _ = io.Copy(c, d) }()
			go func() {
				buf := make([]byte, chunk)
				for {
					n, err := c.Read(buf)
					if n > 0 {
						if _, err := d.Write(buf[:n]); err != nil {
							return
						}
						time.Sleep(time.Duration(n) * time.Second / time.Duration(rate))
					}
					if err != nil {
						return
					}
				}
			}()
		}
	}()
	return ln.Addr().String()
}

// TestTCPTransportLargeRPCOnASlowLink: an AppendEntries of 24 MiB over a link of 8 MiB/s
// takes three seconds, three times the transport's timeout (1 s here, 10 s by default), and
// succeeds all the same: the timeout bounds a wait without progress, not a whole RPC. Before,
// it bounded the whole RPC: a follower behind by MaxAppendEntries (256) entries of large
// messages (7 MB each: 1.8 GB, 15 s on a 1 Gbit/s link) failed every AppendEntries, the
// same one again at every retry, and never caught up from the log.
func TestTCPTransportLargeRPCOnASlowLink(t *testing.T) {
	discard := slog.New(slog.NewTextHandler(io.Discard, nil))
	follower, err := raftlog.NewTCPTransport(raftlog.TCPTransportConfig{Listen: "127.0.0.1:0", Logger: discard, NoLog: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = follower.Close() })
	go func() {
		for rpc := range follower.Consumer() {
			rpc.Respond(&raft.AppendEntriesResponse{Term: 1, Success: true}, nil)
		}
	}()
	leader, err := raftlog.NewTCPTransport(raftlog.TCPTransportConfig{Listen: "127.0.0.1:0", Logger: discard, NoLog: true,
		Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = leader.Close() })
	slow := throttle(t, string(follower.LocalAddr()), 8<<20)

	header := raft.RPCHeader{ProtocolVersion: raft.ProtocolVersionMax, ID: []byte("leader"), Addr: []byte(leader.LocalAddr())}
	req := &raft.AppendEntriesRequest{RPCHeader: header, Term: 1, PrevLogEntry: 1, PrevLogTerm: 1, LeaderCommitIndex: 1}
	for i := range 24 {
		req.Entries = append(req.Entries, &raft.Log{Index: uint64(i + 2), Term: 1, Type: raft.LogCommand, Data: make([]byte, 1<<20)})
	}
	start := time.Now()
	var resp raft.AppendEntriesResponse
	if err := leader.AppendEntries("follower", raft.ServerAddress(slow), req, &resp); err != nil || !resp.Success {
		t.Fatalf("AppendEntries of 24 MiB at 8 MiB/s after %v: %v (success %v)", time.Since(start), err, resp.Success)
	}
	t.Logf("24 MiB at 8 MiB/s in %v", time.Since(start))
}
