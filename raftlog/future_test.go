package raftlog

import (
	"errors"
	"testing"
	"time"
)

// TestPendingFuture covers the Future the replicated log will hand out: unresolved until its
// apply loop resolves it, then the same outcome through every copy.
func TestPendingFuture(t *testing.T) {
	p := newPending()
	f := p.future()
	copied := f
	select {
	case <-f.Done():
		t.Fatal("Done closed before resolve")
	default:
	}

	type waited struct {
		idx    uint64
		err    error
		result any
	}
	got := make(chan waited, 1)
	go func() {
		idx, err := copied.Wait()
		got <- waited{idx, err, copied.Result()}
	}()
	select {
	case w := <-got:
		t.Fatalf("Wait returned %+v before resolve", w)
	case <-time.After(10 * time.Millisecond): // only to show Wait is blocked; no sync relies on it
	}

	errRejected := errors.New("rejected")
	p.resolve(applied(7, 2, []any{"ok", errRejected}))
	w := <-got
	if w.idx != 7 || w.err != errRejected || w.result != "ok" {
		t.Fatalf("after resolve: %+v, want {7 rejected ok}", w)
	}
	<-f.Done()
	if f.ResultAt(1) != errRejected || f.ResultAt(2) != nil {
		t.Fatalf("ResultAt(1), ResultAt(2) = %v, %v", f.ResultAt(1), f.ResultAt(2))
	}
}

func TestOutcome(t *testing.T) {
	errA, errB := errors.New("a"), errors.New("b")
	for _, tc := range []struct {
		name    string
		o       outcome
		index   uint64
		err     error
		results []any // ResultAt(0), ResultAt(1), …; one past the end is checked to be nil
		batch   bool  // results were copied
	}{
		{"refused", refused(errA), 0, errA, nil, false},
		{"empty batch", outcome{}, 0, nil, nil, false},
		{"nil results", applied(5, 3, nil), 5, nil, []any{nil, nil, nil}, false},
		{"all nil batch", applied(5, 3, []any{nil, nil, nil}), 5, nil, []any{nil, nil, nil}, false},
		{"one value", applied(5, 1, []any{"v"}), 5, nil, []any{"v"}, false},
		{"one error", applied(5, 1, []any{errA}), 5, errA, []any{errA}, false},
		{"first error wins", applied(5, 3, []any{1, errB, errA}), 5, errB, []any{1, errB, errA}, true},
		{"values only", applied(5, 2, []any{nil, "v"}), 5, nil, []any{nil, "v"}, true},
	} {
		f := resolvedFuture(nil, tc.o)
		if idx, err := f.Wait(); idx != tc.index || err != tc.err {
			t.Errorf("%s: Wait = (%d, %v), want (%d, %v)", tc.name, idx, err, tc.index, tc.err)
		}
		for i, want := range append(tc.results, nil) {
			if got := f.ResultAt(i); got != want {
				t.Errorf("%s: ResultAt(%d) = %v, want %v", tc.name, i, got, want)
			}
		}
		if f.ResultAt(-1) != nil {
			t.Errorf("%s: ResultAt(-1) = %v", tc.name, f.ResultAt(-1))
		}
		if _, batch := tc.o.v.(*batchResults); batch != tc.batch {
			t.Errorf("%s: results copied = %v, want %v", tc.name, batch, tc.batch)
		}
	}
	buf := []any{nil, nil, nil, nil}
	if a := testing.AllocsPerRun(100, func() { applied(1, 4, buf) }); a != 0 {
		t.Errorf("an all-nil batch outcome allocates %.0f times", a)
	}
}

func TestZeroFutureNeverResolves(t *testing.T) {
	var f Future
	select {
	case <-f.Done():
		t.Fatal("zero Future resolved")
	default:
	}
}

func TestRefused(t *testing.T) {
	want := errors.New("no encoding")
	f := Refused(want)
	select {
	case <-f.Done():
	default:
		t.Fatal("a refused Future is not resolved")
	}
	if i, err := f.Wait(); i != 0 || !errors.Is(err, want) || f.Result() != nil {
		t.Fatalf("Wait = %d, %v; Result %v", i, err, f.Result())
	}
}

// fakeApply is a raft.ApplyFuture already answered.
type fakeApply struct {
	err error
	o   *outcome
}

func (f fakeApply) Error() error  { return f.err }
func (f fakeApply) Response() any { return f.o }
func (f fakeApply) Index() uint64 { return 0 }

// TestSettleParts: a proposal spread over several entries reports its first command's index
// and every command's result in order; one refused at its first entry is refused as that
// entry was; one refused after its first entry was applied is applied in part, which the
// proposer is told as ErrLeadershipLost (outcome unknown), never as "not applied".
func TestSettleParts(t *testing.T) {
	r := newReaper(func(err error) error { return err })
	ok := func(index uint64, n int, res []any) fakeApply {
		o := applied(index, n, res)
		return fakeApply{o: &o}
	}
	refusedBy := func(err error) fakeApply { return fakeApply{err: err} }
	errBad := errors.New("rejected")

	o := r.settleParts([]entryPart{{f: ok(10, 2, nil), n: 2}, {f: ok(12, 3, []any{nil, errBad, nil}), n: 3}})
	if o.index != 10 || !errors.Is(o.err(), errBad) || o.at(3) != errBad || o.at(0) != nil || o.at(4) != nil {
		t.Fatalf("all applied: index %d err %v results %v %v %v", o.index, o.err(), o.at(0), o.at(3), o.at(4))
	}
	if o := r.settleParts([]entryPart{{f: ok(10, 2, nil), n: 2}, {f: ok(12, 1, nil), n: 1}}); o.index != 10 || o.err() != nil {
		t.Fatalf("all applied, no results: index %d err %v", o.index, o.err())
	}
	if o := r.settleParts([]entryPart{{f: refusedBy(ErrNotLeader), n: 2}, {f: refusedBy(ErrNotLeader), n: 1}}); o.index != 0 || !errors.Is(o.err(), ErrNotLeader) {
		t.Fatalf("refused at the first entry: index %d err %v, want 0 and ErrNotLeader", o.index, o.err())
	}
	o = r.settleParts([]entryPart{{f: ok(10, 2, nil), n: 2}, {f: refusedBy(ErrNotLeader), n: 1}})
	if o.index != 0 || !errors.Is(o.err(), ErrLeadershipLost) {
		t.Fatalf("applied in part: index %d err %v, want 0 and ErrLeadershipLost", o.index, o.err())
	}
}
