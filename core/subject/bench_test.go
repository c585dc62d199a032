package subject

import (
	"fmt"
	"strconv"
	"testing"
)

// populate fills x with n subscriptions on realistic subjects
// foo.<i%100>.bar.<i>, plus per 100 of them: a foo.<k>.*.<i> wildcard, a
// foo.*.bar.<i> wildcard and a queue subscription on foo.<k>.bar.>, so a
// typical match visits literal, '*' and '>' nodes and returns 2-3 plain
// values and one queue group.
func populate(tb testing.TB, x *Index[int], n int) {
	for i := range n {
		mustInsert(tb, x, fmt.Sprintf("foo.%d.bar.%d", i%100, i), "", i)
		switch i % 100 {
		case 1:
			mustInsert(tb, x, fmt.Sprintf("foo.%d.*.%d", i%100, i), "", i)
		case 2:
			mustInsert(tb, x, fmt.Sprintf("foo.%d.bar.>", (i/100)%100), "workers", i)
		case 3:
			mustInsert(tb, x, fmt.Sprintf("foo.*.bar.%d", i), "", i)
		}
	}
}

func BenchmarkMatchCacheHit(b *testing.B) {
	x := NewIndex[int]()
	populate(b, x, 10_000)
	subj := []byte("foo.1.bar.1")
	x.Match(subj)
	b.ReportAllocs()
	for b.Loop() {
		x.Match(subj)
	}
}

func BenchmarkMatchStringCacheHit(b *testing.B) {
	x := NewIndex[int]()
	populate(b, x, 10_000)
	x.MatchString("foo.1.bar.1")
	b.ReportAllocs()
	for b.Loop() {
		x.MatchString("foo.1.bar.1")
	}
}

func BenchmarkMatchParallel(b *testing.B) {
	x := NewIndex[int]()
	populate(b, x, 10_000)
	subjects := make([][]byte, 64) // fits in the cache: all hits
	for i := range subjects {
		subjects[i] = []byte(fmt.Sprintf("foo.%d.bar.%d", i, i))
		x.Match(subjects[i])
	}
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		i := 0
		for pb.Next() {
			x.Match(subjects[i&63])
			i++
		}
	})
}

// missSubjects returns more distinct subjects than the cache holds, so that
// cycling through them misses almost always.
func missSubjects(n int) [][]byte {
	s := make([][]byte, n)
	for i := range s {
		s[i] = []byte(fmt.Sprintf("foo.%d.bar.%d", i%100, i))
	}
	return s
}

func BenchmarkMatchMiss(b *testing.B) {
	x := NewIndex[int]()
	populate(b, x, 10_000)
	subjects := missSubjects(10_000)
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		x.Match(subjects[i%len(subjects)])
		i++
	}
	b.ReportMetric(x.Stats().CacheHitRate, "hit-rate")
}

func BenchmarkHasInterestMiss(b *testing.B) {
	x := NewIndex[int]()
	populate(b, x, 10_000)
	subjects := missSubjects(10_000)
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		x.HasInterest(subjects[i%len(subjects)])
		i++
	}
}

// BenchmarkInsertRemove is old-style request/reply churn: a literal inbox
// subscribed and unsubscribed in a populated index with a full cache.
func BenchmarkInsertRemove(b *testing.B) {
	x := NewIndex[int]()
	populate(b, x, 10_000)
	for _, s := range missSubjects(cacheSlots) {
		x.Match(s)
	}
	mustInsert(b, x, "_INBOX.other", "", 2) // other requests in flight keep _INBOX
	b.ReportAllocs()
	for b.Loop() {
		_ = x.Insert("_INBOX.abcdef", "", 1)
		_ = x.Remove("_INBOX.abcdef", "", 1)
	}
}

// BenchmarkInsertRemoveWildcard subscribes and unsubscribes a wildcard,
// which scans the whole cache.
func BenchmarkInsertRemoveWildcard(b *testing.B) {
	x := NewIndex[int]()
	populate(b, x, 10_000)
	subjects := missSubjects(cacheSlots * 4)
	b.ReportAllocs()
	for b.Loop() {
		for _, s := range subjects[:8] { // keep the cache full
			x.Match(s)
		}
		_ = x.Insert("_INBOX.abcdef.*", "", 1)
		_ = x.Remove("_INBOX.abcdef.*", "", 1)
	}
}

func BenchmarkScale(b *testing.B) {
	for _, n := range []int{10_000, 1_000_000} {
		b.Run(strconv.Itoa(n), func(b *testing.B) {
			if n > 100_000 && testing.Short() {
				b.Skip("large index skipped in -short mode")
			}
			x := NewIndex[int]()
			populate(b, x, n)
			// Insert and Remove b.N fresh subscriptions, each on its own
			// subject, so nodes are created and pruned as in real churn.
			fresh := func(i int) string { return fmt.Sprintf("foo.%d.bar.new%d", i%100, i) }
			b.Run("Insert", func(b *testing.B) {
				subjects := make([]string, b.N)
				for i := range subjects {
					subjects[i] = fresh(i)
				}
				b.ReportAllocs()
				b.ResetTimer()
				for i, s := range subjects {
					_ = x.Insert(s, "", n+i)
				}
				b.StopTimer()
				for i, s := range subjects {
					_ = x.Remove(s, "", n+i)
				}
			})
			b.Run("Remove", func(b *testing.B) {
				subjects := make([]string, b.N)
				for i := range subjects {
					subjects[i] = fresh(i)
					_ = x.Insert(subjects[i], "", n+i)
				}
				b.ReportAllocs()
				b.ResetTimer()
				for i, s := range subjects {
					_ = x.Remove(s, "", n+i)
				}
			})
			b.Run("MatchMiss", func(b *testing.B) {
				miss := missSubjects(n)
				b.ReportAllocs()
				i := 0
				for b.Loop() {
					x.Match(miss[i%len(miss)])
					i++
				}
			})
			b.Run("MatchHit", func(b *testing.B) {
				subj := []byte("foo.3.bar.3")
				x.Match(subj)
				b.ReportAllocs()
				for b.Loop() {
					x.Match(subj)
				}
			})
		})
	}
}

// BenchmarkValidPublish is the check the in-process connection makes on every publish:
// a typical streaming inbox and a heartbeat reply subject.
func BenchmarkValidPublish(b *testing.B) {
	for _, s := range []string{"_INBOX.Zx3fA0b9QeLr4Tn2Kp7Ws1", "_STAN.hb.Zx3fA0b9QeLr4Tn2Kp7Ws1.client-1"} {
		b.Run(fmt.Sprint(len(s)), func(b *testing.B) {
			b.ReportAllocs()
			for range b.N {
				if !ValidPublish(s) {
					b.Fatal(s)
				}
			}
		})
	}
}
