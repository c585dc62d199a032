package raftlog_test

import (
	"context"
	"encoding/binary"
	"io"
	"log/slog"
	"path/filepath"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/raft"
	"github.com/starling-io/starling/raftlog"
	"github.com/starling-io/starling/raftlog/raftlogtest"
)

// countSM counts what it applies and keeps nothing else, so that a benchmark measures the
// log, not the state machine.
type countSM struct {
	cmds, bytes atomic.Uint64
}

func (s *countSM) Decode(d []byte) (raftlog.Command, error) { return raftlog.Command{Data: d}, nil }

func (s *countSM) Apply(_ uint64, cmds []raftlog.Command) []any {
	n := 0
	for _, c := range cmds {
		n += len(c.Data)
	}
	s.cmds.Add(uint64(len(cmds)))
	s.bytes.Add(uint64(n))
	return nil
}

type countSnap [16]byte

func (s countSnap) Persist(w io.Writer) error { _, err := w.Write(s[:]); return err }
func (countSnap) Release()                    {}

func (s *countSM) Snapshot() (raftlog.Snapshot, error) {
	var b countSnap
	binary.BigEndian.PutUint64(b[:8], s.cmds.Load())
	binary.BigEndian.PutUint64(b[8:], s.bytes.Load())
	return b, nil
}

func (s *countSM) Restore(r io.Reader) error {
	var b countSnap
	if _, err := io.ReadFull(r, b[:]); err != nil {
		return err
	}
	s.cmds.Store(binary.BigEndian.Uint64(b[:8]))
	s.bytes.Store(binary.BigEndian.Uint64(b[8:]))
	return nil
}

const (
	benchBatch = 64  // commands per entry, as an engine iteration would propose
	benchSize  = 256 // bytes per command
)

// proposeLoop proposes b.N entries of benchBatch commands on leader, keeping up to window of
// them in flight, and reports entries/s and commands/s; allocs/op are per entry.
func proposeLoop(b *testing.B, leader *raftlog.Node, window int) {
	batch := make([]raftlog.Command, benchBatch)
	for i := range batch {
		batch[i].Data = make([]byte, benchSize)
	}
	ctx := context.Background()
	inflight := make([]raftlog.Future, 0, window)
	wait := func(f raftlog.Future) {
		if _, err := f.Wait(); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportAllocs()
	b.ResetTimer()
	start := time.Now()
	for range b.N {
		if len(inflight) == window {
			wait(inflight[0])
			inflight = append(inflight[:0], inflight[1:]...)
		}
		inflight = append(inflight, leader.ProposeBatch(ctx, batch))
	}
	for _, f := range inflight {
		wait(f)
	}
	secs := time.Since(start).Seconds()
	b.ReportMetric(float64(b.N)/secs, "entries/s")
	b.ReportMetric(float64(b.N*benchBatch)/secs, "commands/s")
}

func discardLogger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// BenchmarkNodePropose: three nodes over raft's in-memory transport, raft-boltdb without
// fsync, entries of 64 commands of 256 B, stop-and-wait (window=1) and pipelined.
func BenchmarkNodePropose(b *testing.B) {
	for _, window := range []int{1, 16} {
		b.Run("window="+strconv.Itoa(window), func(b *testing.B) {
			dir := b.TempDir()
			ids := []string{"n1", "n2", "n3"}
			trans := map[string]*raft.InmemTransport{}
			for _, id := range ids {
				_, trans[id] = raft.NewInmemTransport(raft.ServerAddress(id))
			}
			for _, a := range ids {
				for _, o := range ids {
					if a != o {
						trans[a].Connect(raft.ServerAddress(o), trans[o])
					}
				}
			}
			var nodes []*raftlog.Node
			for _, id := range ids {
				n, err := raftlog.NewNode(raftlog.Config{
					Group: "g0", NodeID: id, Peers: ids, Dir: filepath.Join(dir, id), Transport: trans[id],
					HeartbeatTimeout: raftlogtest.HeartbeatTimeout, ElectionTimeout: raftlogtest.ElectionTimeout,
					LeaderLeaseTimeout: raftlogtest.LeaseTimeout, NoSync: true, Logger: discardLogger(),
				}, &countSM{})
				if err != nil {
					b.Fatal(err)
				}
				nodes = append(nodes, n)
				defer n.Close()
			}
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
			proposeLoop(b, leader, window)
		})
	}
}

// BenchmarkNodeProposeTCP: one node on a TCP transport with raft-boltdb fsynced on every
// write — the cost of the disk, with no peer.
func BenchmarkNodeProposeTCP(b *testing.B) {
	for _, window := range []int{1, 16} {
		b.Run("window="+strconv.Itoa(window), func(b *testing.B) {
			trans, err := raftlog.NewTCPTransport(raftlog.TCPTransportConfig{Listen: "127.0.0.1:0", Logger: discardLogger()})
			if err != nil {
				b.Fatal(err)
			}
			n, err := raftlog.NewNode(raftlog.Config{
				Group: "g0", NodeID: "n1", Dir: b.TempDir(), Transport: trans,
				HeartbeatTimeout: raftlogtest.HeartbeatTimeout, ElectionTimeout: raftlogtest.ElectionTimeout,
				LeaderLeaseTimeout: raftlogtest.LeaseTimeout, Logger: discardLogger(),
			}, &countSM{})
			if err != nil {
				b.Fatal(err)
			}
			defer n.Close()
			raftlogtest.Eventually(b, 10*time.Second, "leadership", n.IsLeader)
			proposeLoop(b, n, window)
		})
	}
}
