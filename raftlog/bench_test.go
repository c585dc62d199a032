package raftlog_test

import (
	"context"
	"errors"
	"io"
	"strconv"
	"testing"

	"github.com/starling-io/starling/raftlog"
)

// nopSM applies nothing and returns its reused result buffer, as a state machine on the hot
// path may. When result is set every command's result is result.
type nopSM struct {
	res    []any
	result any
	n      uint64
}

func (s *nopSM) Decode([]byte) (raftlog.Command, error) { return raftlog.Command{}, nil }

func (s *nopSM) Apply(index uint64, cmds []raftlog.Command) []any {
	s.n += uint64(len(cmds))
	s.res = s.res[:0]
	for range cmds {
		s.res = append(s.res, s.result)
	}
	return s.res
}

func (s *nopSM) Snapshot() (raftlog.Snapshot, error) { return nil, errors.New("nopSM: no snapshots") }
func (s *nopSM) Restore(io.Reader) error             { return errors.New("nopSM: no snapshots") }

// BenchmarkLocalPropose is the standalone cost of the seam per state change: one command
// proposed through the Log interface, applied, its future waited on.
func BenchmarkLocalPropose(b *testing.B) {
	var lg raftlog.Log = raftlog.NewLocal(&nopSM{})
	ctx := context.Background()
	c := raftlog.Command{Value: &struct{ n int }{1}}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := lg.Propose(ctx, c).Wait(); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkLocalProposeResult is Propose when Apply returns a value (a pointer) for the
// proposer, read back through Result.
func BenchmarkLocalProposeResult(b *testing.B) {
	var lg raftlog.Log = raftlog.NewLocal(&nopSM{result: &struct{ seq uint64 }{7}})
	ctx := context.Background()
	c := raftlog.Command{Value: &struct{ n int }{1}}
	b.ReportAllocs()
	for b.Loop() {
		f := lg.Propose(ctx, c)
		if _, err := f.Wait(); err != nil || f.Result() == nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkLocalProposeBatch proposes batches as the publish path does; ns/op is per command.
func BenchmarkLocalProposeBatch(b *testing.B) {
	for _, n := range []int{1, 16, 256} {
		b.Run("batch="+strconv.Itoa(n), func(b *testing.B) {
			var lg raftlog.Log = raftlog.NewLocal(&nopSM{})
			ctx := context.Background()
			batch := make([]raftlog.Command, n)
			for i := range batch {
				batch[i].Value = &struct{ n int }{i}
			}
			b.ReportAllocs()
			for i := 0; i < b.N; i += n {
				if _, err := lg.ProposeBatch(ctx, batch).Wait(); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkLocalProposeParallel has proposers on all Ps contending for the one apply lock.
func BenchmarkLocalProposeParallel(b *testing.B) {
	var lg raftlog.Log = raftlog.NewLocal(&nopSM{})
	ctx := context.Background()
	c := raftlog.Command{Value: &struct{ n int }{1}}
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := lg.Propose(ctx, c).Wait(); err != nil {
				b.Error(err)
				return
			}
		}
	})
}
