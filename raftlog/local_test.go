package raftlog_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/starling-io/starling/raftlog"
)

// applied is one command as the state machine saw it.
type applied struct {
	index uint64
	value any
}

// recordSM records every command applied and fails the test's invariants loudly: it notes any
// Apply that overlaps another. result, when set, gives each command's result.
type recordSM struct {
	result func(v any) any

	inApply atomic.Int32
	overlap atomic.Bool
	calls   int       // Apply calls; guarded by the Log's serialisation
	applied []applied // likewise
}

func (s *recordSM) Decode([]byte) (raftlog.Command, error) {
	return raftlog.Command{}, errors.New("recordSM: Decode is not used by Local")
}

func (s *recordSM) Apply(index uint64, cmds []raftlog.Command) []any {
	if s.inApply.Add(1) != 1 {
		s.overlap.Store(true)
	}
	defer s.inApply.Add(-1)
	s.calls++
	var res []any
	if s.result != nil {
		res = make([]any, len(cmds))
	}
	for i, c := range cmds {
		s.applied = append(s.applied, applied{index + uint64(i), c.Value})
		if s.result != nil {
			res[i] = s.result(c.Value)
		}
	}
	return res
}

func (s *recordSM) Snapshot() (raftlog.Snapshot, error) {
	return nil, errors.New("recordSM: no snapshots")
}
func (s *recordSM) Restore(io.Reader) error { return errors.New("recordSM: no snapshots") }

func cmd(v any) raftlog.Command { return raftlog.Command{Value: v} }

func isDone(f raftlog.Future) bool {
	select {
	case <-f.Done():
		return true
	default:
		return false
	}
}

func TestLocalAppliesInOrderBeforeReturning(t *testing.T) {
	sm := &recordSM{}
	var lg raftlog.Log = raftlog.NewLocal(sm)
	ctx := context.Background()
	for i := 1; i <= 5; i++ {
		f := lg.Propose(ctx, cmd(i))
		if !isDone(f) {
			t.Fatalf("proposal %d: future not resolved when Propose returned", i)
		}
		if len(sm.applied) != i {
			t.Fatalf("proposal %d: %d commands applied when Propose returned, want %d", i, len(sm.applied), i)
		}
		idx, err := f.Wait()
		if err != nil || idx != uint64(i) {
			t.Fatalf("proposal %d: Wait = (%d, %v), want (%d, nil)", i, idx, err, i)
		}
	}
	for i, a := range sm.applied {
		if a.index != uint64(i+1) || a.value != i+1 {
			t.Fatalf("applied[%d] = %+v, want {%d %d}", i, a, i+1, i+1)
		}
	}
	if sm.calls != 5 {
		t.Fatalf("Apply called %d times, want 5", sm.calls)
	}
}

var errOdd = errors.New("odd value")

// evenTimesTen rejects odd values and returns ten times an even one.
func evenTimesTen(v any) any {
	n := v.(int)
	if n%2 == 1 {
		return fmt.Errorf("value %d: %w", n, errOdd)
	}
	return n * 10
}

func TestLocalResultsReachFutures(t *testing.T) {
	sm := &recordSM{result: evenTimesTen}
	lg := raftlog.NewLocal(sm)
	ctx := context.Background()

	f := lg.Propose(ctx, cmd(2))
	if idx, err := f.Wait(); idx != 1 || err != nil {
		t.Fatalf("Propose(2): Wait = (%d, %v), want (1, nil)", idx, err)
	}
	if r := f.Result(); r != 20 {
		t.Fatalf("Propose(2): Result = %v, want 20", r)
	}

	// A rejected command is still applied (it has an index); its error is Wait's.
	f = lg.Propose(ctx, cmd(3))
	idx, err := f.Wait()
	if idx != 2 || !errors.Is(err, errOdd) {
		t.Fatalf("Propose(3): Wait = (%d, %v), want (2, %v)", idx, err, errOdd)
	}
	if r, ok := f.Result().(error); !ok || !errors.Is(r, errOdd) {
		t.Fatalf("Propose(3): Result = %v, want the error", f.Result())
	}
	if r := f.ResultAt(1); r != nil {
		t.Fatalf("Propose(3): ResultAt(1) = %v, want nil", r)
	}
}

func TestLocalBatchResults(t *testing.T) {
	sm := &recordSM{result: evenTimesTen}
	lg := raftlog.NewLocal(sm)
	ctx := context.Background()
	lg.Propose(ctx, cmd(0)) // index 1

	f := lg.ProposeBatch(ctx, []raftlog.Command{cmd(2), cmd(3), cmd(4), cmd(5)})
	idx, err := f.Wait()
	if idx != 2 {
		t.Fatalf("batch index = %d, want 2 (its first command)", idx)
	}
	if !errors.Is(err, errOdd) || !strings.Contains(err.Error(), "value 3") {
		t.Fatalf("batch error = %v, want the first rejection (value 3)", err)
	}
	want := []any{20, "value 3", 40, "value 5"}
	for i, w := range want {
		r := f.ResultAt(i)
		if e, ok := r.(error); ok {
			if !strings.Contains(e.Error(), w.(string)) {
				t.Fatalf("ResultAt(%d) = %v, want an error about %q", i, r, w)
			}
		} else if r != w {
			t.Fatalf("ResultAt(%d) = %v, want %v", i, r, w)
		}
	}
	if f.Result() != 20 {
		t.Fatalf("Result = %v, want ResultAt(0) = 20", f.Result())
	}
	for _, i := range []int{-1, 4, 100} {
		if r := f.ResultAt(i); r != nil {
			t.Fatalf("ResultAt(%d) = %v, want nil", i, r)
		}
	}
	if sm.calls != 2 {
		t.Fatalf("Apply called %d times, want 2: a batch is one Apply", sm.calls)
	}
	for i, a := range sm.applied[1:] {
		if a.index != uint64(i+2) {
			t.Fatalf("batch command %d applied at index %d, want %d", i, a.index, i+2)
		}
	}
	if idx, _ := lg.Propose(ctx, cmd(6)).Wait(); idx != 6 {
		t.Fatalf("after a batch of 4 at index 2, next index = %d, want 6", idx)
	}

	// Apply may return nil for "all nil".
	sm.result = nil
	f = lg.ProposeBatch(ctx, []raftlog.Command{cmd(1), cmd(2)})
	if idx, err := f.Wait(); idx != 7 || err != nil {
		t.Fatalf("nil-result batch: Wait = (%d, %v), want (7, nil)", idx, err)
	}
	if f.Result() != nil || f.ResultAt(1) != nil {
		t.Fatalf("nil-result batch: results %v %v, want nil", f.Result(), f.ResultAt(1))
	}
}

// reuseSM returns its results in one buffer it reuses, as Apply is allowed to.
type reuseSM struct {
	recordSM
	buf []any
}

func (s *reuseSM) Apply(index uint64, cmds []raftlog.Command) []any {
	s.buf = s.buf[:0]
	for _, c := range cmds {
		s.buf = append(s.buf, c.Value)
	}
	return s.buf
}

func TestLocalBatchResultsOutliveTheNextApply(t *testing.T) {
	lg := raftlog.NewLocal(&reuseSM{})
	ctx := context.Background()
	f := lg.ProposeBatch(ctx, []raftlog.Command{cmd("a"), cmd("b")})
	g := lg.Propose(ctx, cmd("c"))
	lg.ProposeBatch(ctx, []raftlog.Command{cmd("x"), cmd("y")})
	if f.ResultAt(0) != "a" || f.ResultAt(1) != "b" || g.Result() != "c" {
		t.Fatalf("results changed by later Applies: %v %v %v", f.ResultAt(0), f.ResultAt(1), g.Result())
	}
}

func TestLocalEmptyBatch(t *testing.T) {
	sm := &recordSM{}
	lg := raftlog.NewLocal(sm)
	f := lg.ProposeBatch(context.Background(), nil)
	if idx, err := f.Wait(); idx != 0 || err != nil || !isDone(f) {
		t.Fatalf("empty batch: Wait = (%d, %v), want (0, nil), resolved", idx, err)
	}
	if sm.calls != 0 {
		t.Fatalf("empty batch called Apply")
	}
}

func TestLocalApplyResultLengthMismatchPanics(t *testing.T) {
	sm := &recordSM{result: func(any) any { return nil }}
	lg := raftlog.NewLocal(&badSM{sm})
	defer func() {
		r := recover()
		if s, _ := r.(string); !strings.Contains(s, "2 results for 1 commands") {
			t.Fatalf("recovered %v, want a panic naming the mismatch", r)
		}
	}()
	lg.Propose(context.Background(), cmd(1))
	t.Fatal("Propose returned")
}

type badSM struct{ *recordSM }

func (s *badSM) Apply(uint64, []raftlog.Command) []any { return []any{nil, nil} }

// TestLocalConcurrentProposers checks that proposals from many goroutines form one total
// order: indexes contiguous from 1, each proposer's commands in its program order, every
// future's index the one its command was applied at, and no two Applies at once.
func TestLocalConcurrentProposers(t *testing.T) {
	const proposers, perProposer = 8, 300
	type op struct{ g, i int }
	sm := &recordSM{}
	lg := raftlog.NewLocal(sm)
	ctx := context.Background()

	got := make([]map[op]uint64, proposers) // each proposer's view: op → index from its future
	var wg sync.WaitGroup
	for g := range proposers {
		got[g] = make(map[op]uint64)
		wg.Go(func() {
			for i := 0; i < perProposer; {
				if i%5 == 0 && i+3 <= perProposer { // a batch of three
					f := lg.ProposeBatch(ctx, []raftlog.Command{cmd(op{g, i}), cmd(op{g, i + 1}), cmd(op{g, i + 2})})
					idx, err := f.Wait()
					if err != nil {
						t.Errorf("ProposeBatch: %v", err)
						return
					}
					for k := range 3 {
						got[g][op{g, i + k}] = idx + uint64(k)
					}
					i += 3
					continue
				}
				idx, err := lg.Propose(ctx, cmd(op{g, i})).Wait()
				if err != nil {
					t.Errorf("Propose: %v", err)
					return
				}
				got[g][op{g, i}] = idx
				i++
			}
		})
	}
	wg.Wait()
	if sm.overlap.Load() {
		t.Fatal("two Applies ran at once")
	}
	if len(sm.applied) != proposers*perProposer {
		t.Fatalf("%d commands applied, want %d", len(sm.applied), proposers*perProposer)
	}
	next := make([]int, proposers)
	for k, a := range sm.applied {
		if a.index != uint64(k+1) {
			t.Fatalf("applied[%d] at index %d, want %d", k, a.index, k+1)
		}
		o := a.value.(op)
		if o.i != next[o.g] {
			t.Fatalf("proposer %d: command %d applied before command %d", o.g, o.i, next[o.g])
		}
		next[o.g]++
		if idx := got[o.g][o]; idx != a.index {
			t.Fatalf("%+v: future says index %d, applied at %d", o, idx, a.index)
		}
	}
}

func TestLocalClose(t *testing.T) {
	sm := &recordSM{}
	lg := raftlog.NewLocal(sm)
	ctx := context.Background()
	lg.Propose(ctx, cmd(1))
	if err := lg.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	for name, f := range map[string]raftlog.Future{
		"Propose":      lg.Propose(ctx, cmd(2)),
		"ProposeBatch": lg.ProposeBatch(ctx, []raftlog.Command{cmd(3)}),
	} {
		if idx, err := f.Wait(); idx != 0 || !errors.Is(err, raftlog.ErrClosed) || !isDone(f) {
			t.Fatalf("%s after Close: Wait = (%d, %v), want (0, ErrClosed)", name, idx, err)
		}
		if f.Result() != nil {
			t.Fatalf("%s after Close: Result = %v, want nil", name, f.Result())
		}
	}
	if sm.calls != 1 {
		t.Fatalf("Apply called %d times, want 1: nothing after Close", sm.calls)
	}
	if err := lg.Barrier(ctx); !errors.Is(err, raftlog.ErrClosed) {
		t.Fatalf("Barrier after Close = %v, want ErrClosed", err)
	}
	if err := lg.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
}

func TestLocalContextDoneBeforeApply(t *testing.T) {
	sm := &recordSM{}
	lg := raftlog.NewLocal(sm)
	cancelled, cancel := context.WithCancel(context.Background())
	cancel()
	expired, cancel2 := context.WithTimeout(context.Background(), 0)
	defer cancel2()

	for name, tc := range map[string]struct {
		ctx  context.Context
		want error
	}{"cancelled": {cancelled, context.Canceled}, "expired": {expired, context.DeadlineExceeded}} {
		for kind, f := range map[string]raftlog.Future{
			"Propose":      lg.Propose(tc.ctx, cmd(1)),
			"ProposeBatch": lg.ProposeBatch(tc.ctx, []raftlog.Command{cmd(1), cmd(2)}),
		} {
			if idx, err := f.Wait(); idx != 0 || !errors.Is(err, tc.want) {
				t.Fatalf("%s %s: Wait = (%d, %v), want (0, %v)", name, kind, idx, err, tc.want)
			}
		}
	}
	if sm.calls != 0 {
		t.Fatalf("Apply called %d times with a done context", sm.calls)
	}
	if idx, err := lg.Propose(context.Background(), cmd(1)).Wait(); idx != 1 || err != nil {
		t.Fatalf("after refused proposals: Wait = (%d, %v), want (1, nil): no index is used up", idx, err)
	}
}

func TestLocalLeadership(t *testing.T) {
	lg := raftlog.NewLocal(&recordSM{})
	if !lg.IsLeader() {
		t.Fatal("IsLeader = false")
	}
	ch := lg.Leadership()
	if ch != lg.Leadership() {
		t.Fatal("Leadership returned different channels")
	}
	select {
	case v := <-ch:
		if !v {
			t.Fatal("Leadership delivered false")
		}
	default:
		t.Fatal("Leadership has no value")
	}
	select {
	case v := <-ch:
		t.Fatalf("Leadership delivered a second value %v", v)
	default:
	}
	if err := lg.Barrier(context.Background()); err != nil {
		t.Fatalf("Barrier: %v", err)
	}
	lg.Close()
	if !lg.IsLeader() {
		t.Fatal("IsLeader = false after Close")
	}
}

// TestLocalProposeDoesNotAllocate keeps BenchmarkLocalPropose's 0 allocs/op a test failure,
// not just a number.
func TestLocalProposeDoesNotAllocate(t *testing.T) {
	var lg raftlog.Log = raftlog.NewLocal(&nopSM{res: make([]any, 1)})
	ctx := context.Background()
	c := cmd(&struct{ n int }{1})
	allocs := testing.AllocsPerRun(1000, func() {
		if _, err := lg.Propose(ctx, c).Wait(); err != nil {
			t.Fatal(err)
		}
	})
	if allocs != 0 {
		t.Fatalf("Propose allocates %.1f times per call, want 0", allocs)
	}
	batch := []raftlog.Command{c, c, c, c}
	allocs = testing.AllocsPerRun(1000, func() {
		if _, err := lg.ProposeBatch(ctx, batch).Wait(); err != nil {
			t.Fatal(err)
		}
	})
	if allocs != 0 {
		t.Fatalf("ProposeBatch allocates %.1f times per call, want 0", allocs)
	}
}
