package ipq

import (
	"strconv"
	"testing"
)

// BenchmarkPushPop pushes a batch and drains it with one Pop; ns/op is per
// item.
func BenchmarkPushPop(b *testing.B) {
	for _, n := range []int{1, 16, 256} {
		b.Run("batch="+strconv.Itoa(n), func(b *testing.B) {
			q := New[int]("bench", 0)
			var batch []int
			b.ReportAllocs()
			for i := 0; i < b.N; i += n {
				for j := range n {
					_ = q.Push(j)
				}
				<-q.Ready()
				batch = q.Pop(batch[:0])
			}
		})
	}
}

// BenchmarkPushParallel has producers on all Ps and one consumer draining.
func BenchmarkPushParallel(b *testing.B) {
	q := New[int]("bench", 0)
	done := make(chan struct{})
	go func() {
		var batch []int
		for {
			select {
			case <-q.Ready():
				batch = q.Pop(batch[:0])
			case <-done:
				return
			}
		}
	}()
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			_ = q.Push(1)
		}
	})
	close(done)
}
