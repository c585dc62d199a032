package subject

import (
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"testing"
)

// canon renders a result as a deterministic string: sorted plain values, then
// queue groups sorted by name with sorted members.
func canon[T comparable](r *Result[T]) string {
	var plain []string
	for _, v := range r.Plain {
		plain = append(plain, fmt.Sprint(v))
	}
	slices.Sort(plain)
	groups := map[string][]string{}
	for _, g := range r.Queues {
		if _, dup := groups[g.Name]; dup {
			return "DUPLICATE GROUP " + g.Name
		}
		if len(g.Members) == 0 {
			return "EMPTY GROUP " + g.Name
		}
		for _, v := range g.Members {
			groups[g.Name] = append(groups[g.Name], fmt.Sprint(v))
		}
	}
	var b strings.Builder
	fmt.Fprintf(&b, "plain%v", plain)
	for _, name := range slices.Sorted(maps.Keys(groups)) {
		m := groups[name]
		slices.Sort(m)
		fmt.Fprintf(&b, " %s%v", name, m)
	}
	return b.String()
}

func mustInsert[T comparable](t testing.TB, x *Index[T], subject, queue string, v T) {
	t.Helper()
	if err := x.Insert(subject, queue, v); err != nil {
		t.Fatalf("Insert(%q, %q, %v): %v", subject, queue, v, err)
	}
}

func mustRemove[T comparable](t testing.TB, x *Index[T], subject, queue string, v T) {
	t.Helper()
	if err := x.Remove(subject, queue, v); err != nil {
		t.Fatalf("Remove(%q, %q, %v): %v", subject, queue, v, err)
	}
}

func expectMatch[T comparable](t testing.TB, x *Index[T], subject, want string) {
	t.Helper()
	for _, r := range []*Result[T]{x.Match([]byte(subject)), x.MatchString(subject), x.Match([]byte(subject))} {
		if got := canon(r); got != want {
			t.Fatalf("Match(%q) = %s, want %s", subject, got, want)
		}
	}
	if got, want := x.HasInterest([]byte(subject)), want != "plain[]"; got != want {
		t.Fatalf("HasInterest(%q) = %v, want %v", subject, got, want)
	}
}

func TestIndexMatchCases(t *testing.T) {
	// Each matchCases pattern alone in an index must agree with Matches.
	for _, tt := range matchCases {
		x := NewIndex[int]()
		if !ValidSubject(tt.pattern) {
			if err := x.Insert(tt.pattern, "", 1); !errors.Is(err, ErrInvalidSubject) {
				t.Errorf("Insert(%q) = %v, want ErrInvalidSubject", tt.pattern, err)
			}
			continue
		}
		mustInsert(t, x, tt.pattern, "", 1)
		want := "plain[]"
		if tt.match {
			want = "plain[1]"
		}
		expectMatch(t, x, tt.subject, want)
	}
}

func TestIndexWildcards(t *testing.T) {
	x := NewIndex[string]()
	for _, p := range []string{"foo", "foo.bar", "foo.*", "foo.>", "*.bar", ">", "*", "*.*", "foo.*.baz", "foo.bar.>"} {
		mustInsert(t, x, p, "", p)
	}
	tests := []struct{ subject, want string }{
		{"foo", "plain[* > foo]"},
		{"bar", "plain[* >]"},
		{"foo.bar", "plain[*.* *.bar > foo.* foo.> foo.bar]"},
		{"foo.baz", "plain[*.* > foo.* foo.>]"},
		{"x.bar", "plain[*.* *.bar >]"},
		{"foo.bar.baz", "plain[> foo.*.baz foo.> foo.bar.>]"},
		{"foo.x.baz", "plain[> foo.*.baz foo.>]"},
		{"foo.bar.baz.qux", "plain[> foo.> foo.bar.>]"},
		// publish subjects with wildcard tokens: only wildcard positions match
		{"foo.*", "plain[*.* > foo.* foo.>]"},
		{"foo.>", "plain[*.* > foo.* foo.>]"},
		{"*", "plain[* >]"},
		{"*.bar", "plain[*.* *.bar >]"},
		{"foo.*.baz", "plain[> foo.*.baz foo.>]"},
		// empty tokens match nothing, not even '>'
		{"", "plain[]"},
		{".", "plain[]"},
		{"foo.", "plain[]"},
		{".foo", "plain[]"},
		{"foo..bar", "plain[]"},
	}
	for _, tt := range tests {
		expectMatch(t, x, tt.subject, tt.want)
	}
}

func TestIndexQueues(t *testing.T) {
	x := NewIndex[string]()
	mustInsert(t, x, "orders.new", "workers", "a")
	mustInsert(t, x, "orders.*", "workers", "b")
	mustInsert(t, x, "orders.>", "workers", "c")
	mustInsert(t, x, "orders.>", "audit", "d")
	mustInsert(t, x, "orders.new", "", "e")
	mustInsert(t, x, "orders.new", "audit", "f")
	mustInsert(t, x, "orders.new", "Workers", "g") // names are case-sensitive
	expectMatch(t, x, "orders.new", "plain[e] Workers[g] audit[d f] workers[a b c]")
	expectMatch(t, x, "orders.old", "plain[] audit[d] workers[b c]")
	expectMatch(t, x, "orders.new.x", "plain[] audit[d] workers[c]")
	mustRemove(t, x, "orders.*", "workers", "b")
	expectMatch(t, x, "orders.new", "plain[e] Workers[g] audit[d f] workers[a c]")
	mustRemove(t, x, "orders.new", "Workers", "g")
	mustRemove(t, x, "orders.new", "audit", "f")
	expectMatch(t, x, "orders.new", "plain[e] audit[d] workers[a c]")
	if err := x.Remove("orders.new", "", "a"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("removing a queue member as plain: %v, want ErrNotFound", err)
	}
	if err := x.Remove("orders.new", "other", "a"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("removing from the wrong group: %v, want ErrNotFound", err)
	}
}

// TestIndexManyQueueGroups exercises the by-name map used when merging more
// than 16 groups across nodes.
func TestIndexManyQueueGroups(t *testing.T) {
	x := NewIndex[int]()
	want := "plain[]"
	for i := range 40 {
		mustInsert(t, x, "a.b", fmt.Sprintf("q%02d", i), i)
		mustInsert(t, x, "a.*", fmt.Sprintf("q%02d", i), 100+i)
		if i%2 == 0 {
			mustInsert(t, x, "a.>", fmt.Sprintf("q%02d", i+1), 200+i)
		}
	}
	for i := range 40 {
		m := []string{fmt.Sprint(i), fmt.Sprint(100 + i)}
		if i%2 == 1 {
			m = append(m, fmt.Sprint(200+i-1))
		}
		slices.Sort(m)
		want += fmt.Sprintf(" q%02d%v", i, m)
	}
	expectMatch(t, x, "a.b", want)
}

func TestIndexDuplicates(t *testing.T) {
	x := NewIndex[int]()
	mustInsert(t, x, "foo.bar", "", 1)
	mustInsert(t, x, "foo.*", "", 1)
	mustInsert(t, x, "foo.>", "", 1)
	mustInsert(t, x, "foo.bar", "", 1) // same subscription key twice: two subscriptions
	mustInsert(t, x, "foo.bar", "q", 1)
	mustInsert(t, x, "foo.*", "q", 1)
	expectMatch(t, x, "foo.bar", "plain[1 1 1 1] q[1 1]")
	if got := x.Count(); got != 6 {
		t.Fatalf("Count = %d, want 6", got)
	}
	mustRemove(t, x, "foo.bar", "", 1)
	expectMatch(t, x, "foo.bar", "plain[1 1 1] q[1 1]")
	mustRemove(t, x, "foo.bar", "", 1)
	expectMatch(t, x, "foo.bar", "plain[1 1] q[1 1]")
	if err := x.Remove("foo.bar", "", 1); !errors.Is(err, ErrNotFound) {
		t.Fatalf("third remove: %v, want ErrNotFound", err)
	}
	mustRemove(t, x, "foo.*", "q", 1)
	expectMatch(t, x, "foo.bar", "plain[1 1] q[1]")
}

func TestIndexRemoveErrors(t *testing.T) {
	x := NewIndex[int]()
	mustInsert(t, x, "foo.bar", "", 1)
	gen := x.Generation()
	for _, tt := range []struct {
		subject, queue string
		v              int
		err            error
	}{
		{"foo.bar", "", 2, ErrNotFound},
		{"foo", "", 1, ErrNotFound},
		{"foo.bar.baz", "", 1, ErrNotFound},
		{"foo.*", "", 1, ErrNotFound},
		{"foo.>", "", 1, ErrNotFound},
		{"foo.bar", "q", 1, ErrNotFound},
		{"foo..bar", "", 1, ErrInvalidSubject},
		{"", "", 1, ErrInvalidSubject},
	} {
		if err := x.Remove(tt.subject, tt.queue, tt.v); !errors.Is(err, tt.err) {
			t.Errorf("Remove(%q, %q, %d) = %v, want %v", tt.subject, tt.queue, tt.v, err, tt.err)
		}
	}
	if x.Generation() != gen {
		t.Fatal("failed removes changed the generation")
	}
	for _, s := range []string{"", "foo.", "a b", "foo.>.bar"} {
		if err := x.Insert(s, "", 1); !errors.Is(err, ErrInvalidSubject) {
			t.Errorf("Insert(%q) = %v, want ErrInvalidSubject", s, err)
		}
	}
	if x.Count() != 1 || x.Generation() != gen {
		t.Fatal("failed inserts changed the index")
	}
}

func TestIndexPruning(t *testing.T) {
	x := NewIndex[int]()
	subjects := []string{"a", "a.b", "a.b.c", "a.*.c", "a.>", "*", ">", "*.*.>", "x.y.z.w", "x.y.q", "a.b.c.d.e.f"}
	for i, s := range subjects {
		mustInsert(t, x, s, "", i)
		mustInsert(t, x, s, "q", i)
		x.MatchString(s)
	}
	if x.numNodes() == 0 {
		t.Fatal("no nodes")
	}
	// Remove in an order unlike insertion.
	for i := len(subjects) - 1; i >= 0; i-- {
		mustRemove(t, x, subjects[i], "", i)
	}
	for i, s := range subjects {
		mustRemove(t, x, s, "q", i)
	}
	if n := x.numNodes(); n != 0 {
		t.Fatalf("nodes after removing everything = %d, want 0", n)
	}
	if x.Count() != 0 || x.root.lit != nil {
		t.Fatalf("Count = %d, root.lit = %v", x.Count(), x.root.lit)
	}
	// Churning unique subjects must not grow the trie.
	for i := range 10000 {
		s := fmt.Sprintf("_INBOX.%d.%d", i%7, i)
		mustInsert(t, x, s, "", i)
		x.MatchString(s)
		mustRemove(t, x, s, "", i)
	}
	if n := x.numNodes(); n != 0 {
		t.Fatalf("nodes after churn = %d, want 0", n)
	}
}

func TestIndexCacheInvalidation(t *testing.T) {
	x := NewIndex[string]()
	subjects := []string{"foo.bar", "foo.baz", "foo.bar.baz", "bar", "foo.*", "foo.>", "x.y"}
	warm := func() {
		for _, s := range subjects {
			x.MatchString(s)
		}
	}
	warm()
	steps := []struct {
		insert         bool
		pattern, queue string
		v              string
		want           map[string]string // subject -> expected result after the step
	}{
		{true, "foo.bar", "", "A", map[string]string{"foo.bar": "plain[A]", "foo.baz": "plain[]", "foo.*": "plain[]"}},
		{true, "foo.*", "", "B", map[string]string{"foo.bar": "plain[A B]", "foo.baz": "plain[B]", "foo.*": "plain[B]", "foo.bar.baz": "plain[]", "foo.>": "plain[B]"}},
		{true, "foo.>", "q", "C", map[string]string{"foo.bar": "plain[A B] q[C]", "foo.bar.baz": "plain[] q[C]", "bar": "plain[]"}},
		{true, ">", "q", "D", map[string]string{"foo.bar": "plain[A B] q[C D]", "bar": "plain[] q[D]", "x.y": "plain[] q[D]"}},
		{false, "foo.*", "", "B", map[string]string{"foo.bar": "plain[A] q[C D]", "foo.baz": "plain[] q[C D]", "foo.*": "plain[] q[C D]"}},
		{true, "*.bar.*", "", "E", map[string]string{"foo.bar.baz": "plain[E] q[C D]", "foo.bar": "plain[A] q[C D]"}},
		{false, "foo.bar", "", "A", map[string]string{"foo.bar": "plain[] q[C D]", "foo.baz": "plain[] q[C D]"}},
		{false, ">", "q", "D", map[string]string{"foo.bar": "plain[] q[C]", "bar": "plain[]", "x.y": "plain[]"}},
		{false, "foo.>", "q", "C", map[string]string{"foo.bar": "plain[]", "foo.bar.baz": "plain[E]"}},
		{false, "*.bar.*", "", "E", map[string]string{"foo.bar.baz": "plain[]"}},
	}
	for i, st := range steps {
		gen := x.Generation()
		if st.insert {
			mustInsert(t, x, st.pattern, st.queue, st.v)
		} else {
			mustRemove(t, x, st.pattern, st.queue, st.v)
		}
		if x.Generation() == gen {
			t.Fatalf("step %d: generation unchanged", i)
		}
		for s, want := range st.want {
			if got := canon(x.MatchString(s)); got != want {
				t.Fatalf("step %d (%v %q): Match(%q) = %s, want %s", i, st.insert, st.pattern, s, got, want)
			}
		}
		warm()
	}
	if n := x.numNodes(); n != 0 {
		t.Fatalf("nodes = %d, want 0", n)
	}
}

// TestIndexCacheTargeted checks that inserting and removing a literal
// subscription (request/reply churn) leaves unrelated cached entries alone.
func TestIndexCacheTargeted(t *testing.T) {
	x := NewIndex[int]()
	mustInsert(t, x, "svc.>", "", 1)
	hot := x.MatchString("svc.a")
	for i := range 100 {
		inbox := fmt.Sprintf("_INBOX.%d", i)
		mustInsert(t, x, inbox, "", i)
		mustRemove(t, x, inbox, "", i)
		mustInsert(t, x, "_INBOX.x.*", "", i)
		mustRemove(t, x, "_INBOX.x.*", "", i)
	}
	if x.MatchString("svc.a") != hot {
		t.Fatal("unrelated cache entry was invalidated")
	}
	mustInsert(t, x, "svc.*", "", 2)
	if x.MatchString("svc.a") == hot {
		t.Fatal("matching cache entry was not invalidated")
	}
}

func TestIndexCacheBounded(t *testing.T) {
	x := NewIndex[int]()
	mustInsert(t, x, ">", "", 1)
	for i := range 5 * cacheSlots {
		if r := x.MatchString(fmt.Sprintf("s.%d", i)); len(r.Plain) != 1 {
			t.Fatalf("bad result %v", r)
		}
	}
	st := x.Stats()
	if st.NumCache == 0 || st.NumCache > cacheSlots {
		t.Fatalf("NumCache = %d, want 1..%d", st.NumCache, cacheSlots)
	}
}

func TestIndexAll(t *testing.T) {
	x := NewIndex[int]()
	want := map[string]int{}
	add := func(subject, queue string, v int) {
		mustInsert(t, x, subject, queue, v)
		want[fmt.Sprintf("%s|%s|%d", subject, queue, v)]++
	}
	add("foo", "", 1)
	add("foo", "", 1)
	add("foo.bar", "q", 2)
	add("foo.*", "", 3)
	add("foo.>", "q", 4)
	add(">", "", 5)
	add("*.x.>", "r", 6)
	got := map[string]int{}
	x.All(func(subject, queue string, v int) bool {
		got[fmt.Sprintf("%s|%s|%d", subject, queue, v)]++
		return true
	})
	if !maps.Equal(got, want) {
		t.Fatalf("All = %v, want %v", got, want)
	}
	n := 0
	x.All(func(subject, queue string, v int) bool {
		n++
		_ = x.Remove(subject, queue, v) // calling back into the index is allowed
		return n < 3
	})
	if n != 3 || x.Count() != 4 {
		t.Fatalf("stopped after %d, Count = %d; want 3, 4", n, x.Count())
	}
}

func TestIndexStats(t *testing.T) {
	x := NewIndex[int]()
	mustInsert(t, x, "foo", "", 1)
	mustInsert(t, x, "foo", "", 2)
	mustInsert(t, x, "foo", "q", 3)
	mustInsert(t, x, "bar", "", 4)
	mustRemove(t, x, "bar", "", 4)
	x.MatchString("foo") // miss
	x.MatchString("foo") // hit
	x.MatchString("foo") // hit
	x.MatchString("bar") // miss
	st := x.Stats()
	want := Stats{NumSubs: 3, NumCache: 2, NumInserts: 4, NumRemoves: 1, NumMatches: 4,
		CacheHitRate: 0.5, MaxFanout: 3, AvgFanout: 1.5}
	if st != want {
		t.Fatalf("Stats = %+v\nwant    %+v", st, want)
	}
}

func TestIndexLongSubjects(t *testing.T) {
	x := NewIndex[int]()
	long := strings.Repeat("t.", 50) + "end" // 51 tokens: heap fallback
	mustInsert(t, x, long, "", 1)
	mustInsert(t, x, strings.Repeat("t.", 40)+">", "", 2)
	mustInsert(t, x, strings.Repeat("*.", 50)+"*", "", 3)
	expectMatch(t, x, long, "plain[1 2 3]")
	mustRemove(t, x, long, "", 1)
	mustRemove(t, x, strings.Repeat("t.", 40)+">", "", 2)
	mustRemove(t, x, strings.Repeat("*.", 50)+"*", "", 3)
	if x.numNodes() != 0 {
		t.Fatal("not pruned")
	}
}

func TestMatchCacheHitAllocs(t *testing.T) {
	x := NewIndex[int]()
	mustInsert(t, x, "foo.bar", "", 1)
	mustInsert(t, x, "foo.*", "q", 2)
	mustInsert(t, x, "foo.>", "", 3)
	b := []byte("foo.bar")
	x.Match(b)
	x.MatchString("foo.bar")
	if n := testing.AllocsPerRun(1000, func() { x.Match(b) }); n != 0 {
		t.Errorf("Match cache hit: %v allocs, want 0", n)
	}
	if n := testing.AllocsPerRun(1000, func() { x.MatchString("foo.bar") }); n != 0 {
		t.Errorf("MatchString cache hit: %v allocs, want 0", n)
	}
	other, bad := []byte("foo.baz.x"), []byte("foo..bar")
	if n := testing.AllocsPerRun(1000, func() { x.HasInterest(other) }); n != 0 {
		t.Errorf("HasInterest miss: %v allocs, want 0", n)
	}
	if n := testing.AllocsPerRun(1000, func() { x.Match(bad) }); n != 0 {
		t.Errorf("Match of an empty-token subject: %v allocs, want 0", n)
	}
	if n := testing.AllocsPerRun(1000, func() { _ = x.Generation() }); n != 0 {
		t.Errorf("Generation: %v allocs", n)
	}
}

// TestMatchMissAllocs bounds what a miss allocates: the cache entry with its
// embedded Result, the key, one value array and one queue-group array.
func TestMatchMissAllocs(t *testing.T) {
	x := NewIndex[int]()
	mustInsert(t, x, "foo.*", "", 1)
	mustInsert(t, x, "foo.*", "q", 2)
	mustInsert(t, x, "foo.>", "q", 3)
	mustInsert(t, x, "foo.>", "r", 4)
	subjects := make([][]byte, 200)
	for i := range subjects {
		subjects[i] = []byte(fmt.Sprintf("foo.%d", i))
	}
	i := 0
	n := testing.AllocsPerRun(100, func() {
		x.Match(subjects[i])
		i++
	})
	if n > 4 {
		t.Errorf("miss: %v allocs, want <= 4", n)
	}
	if st := x.Stats(); st.CacheHitRate != 0 {
		t.Errorf("expected only misses, hit rate %v", st.CacheHitRate)
	}
}

// EachPlain visits what Match lists as plain, never a queue member, and leaves the match
// cache as it was; it stops when asked to.
func TestEachPlain(t *testing.T) {
	x := NewIndex[int]()
	for i, p := range []string{"a.b.c", "a.*.c", "a.>", ">", "a.b", "*.b.*", "x.y"} {
		if err := x.Insert(p, "", i); err != nil {
			t.Fatal(err)
		}
	}
	if err := x.Insert("a.b.c", "q", 100); err != nil {
		t.Fatal(err)
	}
	for _, subj := range []string{"a.b.c", "a.b", "x.y", "z", "a..c", ""} {
		var got []int
		x.EachPlain([]byte(subj), func(v int) bool { got = append(got, v); return true })
		slices.Sort(got)
		if st := x.Stats(); st.NumCache != 0 {
			t.Fatalf("%q: EachPlain filled the cache (%d)", subj, st.NumCache)
		}
		want := slices.Clone(x.Match([]byte(subj)).Plain)
		slices.Sort(want)
		if !slices.Equal(got, want) {
			t.Fatalf("%q: EachPlain %v, Match %v", subj, got, want)
		}
		x = cloneWithoutCache(t, x)
	}
	n := 0
	x.EachPlain([]byte("a.b.c"), func(int) bool { n++; return false })
	if n != 1 {
		t.Fatalf("visited %d after stopping", n)
	}
}

// cloneWithoutCache rebuilds x so that its match cache is empty again.
func cloneWithoutCache(t *testing.T, x *Index[int]) *Index[int] {
	y := NewIndex[int]()
	x.All(func(subject, queue string, v int) bool {
		if err := y.Insert(subject, queue, v); err != nil {
			t.Fatal(err)
		}
		return true
	})
	return y
}
