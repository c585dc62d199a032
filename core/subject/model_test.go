package subject

import (
	"errors"
	"math/rand/v2"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
)

// The model test drives an Index with random operations and checks every
// result against a brute-force reference built on Matches. Concurrent
// matchers check that a result read between two equal Generation() values is
// exactly the reference state of that generation.

type modelSub struct {
	subject, queue string
	v              int
}

var (
	modelTokens  = []string{"a", "b", "c", "*", ">"}
	modelQueues  = []string{"", "", "q1", "q2"}
	modelLiteral = []string{"a", "b", "c", "d", "*", ">"}
)

func randSubject(r *rand.Rand, tokens []string, emptyOK bool) string {
	n := 1 + r.IntN(4)
	toks := make([]string, n)
	for i := range toks {
		toks[i] = tokens[r.IntN(len(tokens))]
		if emptyOK && r.IntN(40) == 0 {
			toks[i] = ""
		}
	}
	return strings.Join(toks, ".")
}

func randPattern(r *rand.Rand) string {
	for {
		if s := randSubject(r, modelTokens, false); ValidSubject(s) {
			return s
		}
	}
}

// expected computes the reference result for subject over subs.
func expected(subs []modelSub, subject string) *Result[int] {
	var r Result[int]
	for _, s := range subs {
		if !Matches(s.subject, subject) {
			continue
		}
		if s.queue == "" {
			r.Plain = append(r.Plain, s.v)
			continue
		}
		found := false
		for i := range r.Queues {
			if r.Queues[i].Name == s.queue {
				r.Queues[i].Members = append(r.Queues[i].Members, s.v)
				found = true
			}
		}
		if !found {
			r.Queues = append(r.Queues, QueueGroup[int]{Name: s.queue, Members: []int{s.v}})
		}
	}
	return &r
}

type observation struct {
	gen     uint64
	subject string
	res     *Result[int]
}

func TestIndexModel(t *testing.T) {
	ops := 20000
	if testing.Short() || raceEnabled {
		ops = 5000
	}
	for seed := range uint64(4) {
		t.Run("", func(t *testing.T) { runModel(t, seed, ops, 3) })
	}
}

func runModel(t *testing.T, seed uint64, ops, matchers int) {
	r := rand.New(rand.NewPCG(seed, 42))
	x := NewIndex[int]()

	var snapMu sync.Mutex
	snapshots := [][]modelSub{nil} // snapshots[g]: reference state at generation g
	var ref []modelSub

	var stop atomic.Bool
	var wg sync.WaitGroup
	obs := make([][]observation, matchers)
	for m := range matchers {
		wg.Go(func() {
			mr := rand.New(rand.NewPCG(seed, uint64(m)+100))
			for seen := 0; !stop.Load(); seen++ {
				s := randSubject(mr, modelLiteral, true)
				g1 := x.Generation()
				var res *Result[int]
				if mr.IntN(2) == 0 {
					res = x.Match([]byte(s))
				} else {
					res = x.MatchString(s)
				}
				if x.Generation() != g1 {
					continue
				}
				// Reservoir sampling keeps observations from all generations.
				o := observation{g1, s, res}
				if len(obs[m]) < 5000 {
					obs[m] = append(obs[m], o)
				} else if j := mr.IntN(seen + 1); j < len(obs[m]) {
					obs[m][j] = o
				}
				runtime.Gosched()
			}
		})
	}

	for range ops {
		insertPct := 45 // keeps the reference around a hundred subscriptions
		if len(ref) > 100 {
			insertPct = 35
		}
		switch op := r.IntN(100); {
		case op < insertPct:
			s := modelSub{randPattern(r), modelQueues[r.IntN(len(modelQueues))], r.IntN(10)}
			if err := x.Insert(s.subject, s.queue, s.v); err != nil {
				t.Fatalf("Insert(%v): %v", s, err)
			}
			ref = append(ref[:len(ref):len(ref)], s) // copy on write: snapshots share
		case op < 80:
			var s modelSub
			i := -1
			if len(ref) > 0 && r.IntN(5) > 0 {
				i = r.IntN(len(ref))
				s = ref[i]
			} else {
				s = modelSub{randPattern(r), modelQueues[r.IntN(len(modelQueues))], r.IntN(10)}
				for j, e := range ref {
					if e == s {
						i = j
					}
				}
			}
			err := x.Remove(s.subject, s.queue, s.v)
			if i < 0 {
				if !errors.Is(err, ErrNotFound) {
					t.Fatalf("Remove(%v) of an absent sub: %v", s, err)
				}
				continue
			}
			if err != nil {
				t.Fatalf("Remove(%v): %v", s, err)
			}
			next := make([]modelSub, 0, len(ref))
			next = append(append(next, ref[:i]...), ref[i+1:]...)
			ref = next
		default:
			s := randSubject(r, modelLiteral, true)
			if got, want := canon(x.MatchString(s)), canon(expected(ref, s)); got != want {
				t.Fatalf("op Match(%q) = %s, want %s", s, got, want)
			}
			if got, want := x.HasInterest([]byte(s)), canon(expected(ref, s)) != "plain[]"; got != want {
				t.Fatalf("HasInterest(%q) = %v, want %v", s, got, want)
			}
			continue
		}
		snapMu.Lock()
		snapshots = append(snapshots, ref)
		snapMu.Unlock()
		if g := x.Generation(); g != uint64(len(snapshots)-1) {
			t.Fatalf("generation %d after %d changes", g, len(snapshots)-1)
		}
		if x.Count() != len(ref) {
			t.Fatalf("Count = %d, want %d", x.Count(), len(ref))
		}
	}
	stop.Store(true)
	wg.Wait()

	checked, gens := 0, map[uint64]bool{}
	for _, list := range obs {
		for _, o := range list {
			gens[o.gen] = true
			if got, want := canon(o.res), canon(expected(snapshots[o.gen], o.subject)); got != want {
				t.Fatalf("concurrent Match(%q) at generation %d = %s, want %s", o.subject, o.gen, got, want)
			}
			checked++
		}
	}
	t.Logf("%d ops, %d concurrent observations over %d generations checked, stats %+v", ops, checked, len(gens), x.Stats())

	for _, s := range ref {
		if err := x.Remove(s.subject, s.queue, s.v); err != nil {
			t.Fatalf("final Remove(%v): %v", s, err)
		}
	}
	if x.Count() != 0 || x.numNodes() != 0 {
		t.Fatalf("after removing everything: Count = %d, nodes = %d", x.Count(), x.numNodes())
	}
}
