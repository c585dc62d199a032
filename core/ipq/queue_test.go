package ipq

import (
	"errors"
	"sync"
	"testing"
	"time"
)

func TestQueueBasics(t *testing.T) {
	q := New[int]("test", 0)
	if q.Name() != "test" || q.Len() != 0 {
		t.Fatalf("Name = %q, Len = %d", q.Name(), q.Len())
	}
	if got := q.Pop(nil); len(got) != 0 {
		t.Fatalf("Pop of empty queue = %v", got)
	}
	select {
	case <-q.Ready():
		t.Fatal("Ready signalled on an empty queue")
	default:
	}
	for i := range 5 {
		if err := q.Push(i); err != nil {
			t.Fatal(err)
		}
	}
	if q.Len() != 5 {
		t.Fatalf("Len = %d, want 5", q.Len())
	}
	select {
	case <-q.Ready():
	default:
		t.Fatal("Ready not signalled")
	}
	select {
	case <-q.Ready():
		t.Fatal("Ready signalled twice for one empty-to-non-empty transition")
	default:
	}
	got := q.Pop(nil)
	if len(got) != 5 || got[0] != 0 || got[4] != 4 || q.Len() != 0 {
		t.Fatalf("Pop = %v, Len = %d", got, q.Len())
	}
	// Append mode: items go after what into holds.
	_ = q.Push(7)
	_ = q.Push(8)
	got = q.Pop([]int{1, 2})
	if len(got) != 4 || got[2] != 7 || got[3] != 8 || q.Len() != 0 {
		t.Fatalf("Pop(append) = %v", got)
	}
	<-q.Ready()
	// After draining, the next push signals again.
	_ = q.Push(9)
	select {
	case <-q.Ready():
	default:
		t.Fatal("Ready not signalled after drain")
	}
}

func TestQueueLimit(t *testing.T) {
	q := New[string]("limited", 3)
	for i := range 3 {
		if err := q.Push("x"); err != nil {
			t.Fatalf("push %d: %v", i, err)
		}
	}
	if err := q.Push("y"); !errors.Is(err, ErrFull) {
		t.Fatalf("push past limit = %v, want ErrFull", err)
	}
	if q.Len() != 3 {
		t.Fatalf("Len = %d", q.Len())
	}
	q.PushAlways("t") // a timer's item is never refused
	if q.Len() != 4 {
		t.Fatalf("Len after PushAlways = %d, want 4", q.Len())
	}
	if got := q.Pop(nil); got[3] != "t" {
		t.Fatalf("popped %v", got)
	}
	if err := q.Push("z"); err != nil {
		t.Fatalf("push after pop: %v", err)
	}
}

func TestQueuePopClearsRecycledBuffer(t *testing.T) {
	q := New[*int]("ptrs", 0)
	v := new(int)
	_ = q.Push(v)
	batch := q.Pop(nil)
	_ = q.Push(new(int))
	batch = q.Pop(batch[:0]) // the old buffer goes to the queue, cleared
	if len(batch) != 1 || batch[0] == v {
		t.Fatalf("batch = %v", batch)
	}
	q.mu.Lock()
	defer q.mu.Unlock()
	if len(q.items) != 0 || q.items[:cap(q.items)][0] != nil {
		t.Fatal("recycled buffer still references a popped item")
	}
}

// TestQueueConcurrent has several producers and one consumer driven by Ready;
// every item arrives once and each producer's items arrive in order.
func TestQueueConcurrent(t *testing.T) {
	const producers, perProducer = 4, 20000
	type item struct{ p, seq int }
	q := New[item]("conc", 0)
	var wg sync.WaitGroup
	for p := range producers {
		wg.Go(func() {
			for i := range perProducer {
				if err := q.Push(item{p, i}); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	next := make([]int, producers)
	total := 0
	var batch []item
	timeout := time.After(30 * time.Second)
	for total < producers*perProducer {
		select {
		case <-q.Ready():
		case <-timeout:
			t.Fatalf("stalled after %d items", total)
		}
		batch = q.Pop(batch[:0])
		for _, it := range batch {
			if it.seq != next[it.p] {
				t.Fatalf("producer %d: got seq %d, want %d", it.p, it.seq, next[it.p])
			}
			next[it.p]++
		}
		total += len(batch)
	}
	wg.Wait()
	if q.Len() != 0 {
		t.Fatalf("Len = %d after draining", q.Len())
	}
}

func TestQueueSteadyStateAllocs(t *testing.T) {
	q := New[int]("allocs", 0)
	var batch []int
	round := func() {
		for i := range 64 {
			_ = q.Push(i)
		}
		<-q.Ready()
		batch = q.Pop(batch[:0])
		if len(batch) != 64 {
			t.Fatalf("batch of %d", len(batch))
		}
	}
	round()
	round()
	if n := testing.AllocsPerRun(100, round); n != 0 {
		t.Fatalf("steady state: %v allocs per round, want 0", n)
	}
	var appendBatch []int
	appendRound := func() {
		_ = q.Push(1)
		appendBatch = q.Pop(append(appendBatch[:0], 0))
	}
	appendRound()
	if n := testing.AllocsPerRun(100, appendRound); n != 0 {
		t.Fatalf("append mode: %v allocs per round, want 0", n)
	}
}

// A Pop that finds the queue empty — a consumer woken by something else, such as the
// streaming engine by its committer — must not hand the queue the array it returns:
// the producers would then append into the batch the consumer goes on to read.
func TestQueueEmptyPopKeepsBuffersApart(t *testing.T) {
	q := New[int]("t", 0)
	for i := range 8 {
		_ = q.Push(i)
	}
	batch := q.Pop(nil) // first batch: the queue is left with no buffer
	batch = q.Pop(batch[:0])
	if len(batch) != 0 {
		t.Fatalf("empty pop returned %v", batch)
	}
	for i := range 3 {
		_ = q.Push(10 + i)
	}
	batch = q.Pop(batch[:0])
	got := append([]int(nil), batch...)
	for i := range 3 { // producers go on while the consumer reads the batch
		_ = q.Push(20 + i)
	}
	for i, v := range batch {
		if v != got[i] {
			t.Fatalf("batch changed under the consumer: %v, was %v", batch, got)
		}
	}
	if want := []int{10, 11, 12}; len(got) != 3 || got[0] != 10 || got[2] != 12 {
		t.Fatalf("batch %v, want %v", got, want)
	}
}

// TestQueueBytes: PushBytes refuses an item that would take the counted bytes past
// the bound, Push counts nothing, and a Pop (either form) starts the count again.
func TestQueueBytes(t *testing.T) {
	q := New[int]("t", 0)
	if err := q.PushBytes(1, 60, 100); err != nil {
		t.Fatal(err)
	}
	if err := q.PushBytes(2, 41, 100); !errors.Is(err, ErrFull) {
		t.Fatalf("60+41 > 100 bytes queued: err = %v, want ErrFull", err)
	}
	if err := q.Push(3); err != nil {
		t.Fatal(err)
	}
	if err := q.PushBytes(4, 40, 100); err != nil {
		t.Fatal(err)
	}
	if got := q.Bytes(); got != 100 {
		t.Fatalf("Bytes = %d, want 100", got)
	}
	if got := q.Pop(nil); len(got) != 3 || got[0] != 1 || got[1] != 3 || got[2] != 4 {
		t.Fatalf("Pop = %v, want [1 3 4]", got)
	}
	if got := q.Bytes(); got != 0 {
		t.Fatalf("after Pop: Bytes = %d, want 0", got)
	}
	if err := q.PushBytes(5, 100, 100); err != nil {
		t.Fatal(err)
	}
	var into []int
	into = q.Pop(append(into, 0)) // the copying form
	if len(into) != 2 || q.Bytes() != 0 {
		t.Fatalf("copying Pop: got %v, Bytes %d", into, q.Bytes())
	}
	lq := New[int]("t", 1)
	_ = lq.PushBytes(1, 1, 100)
	if err := lq.PushBytes(2, 1, 100); !errors.Is(err, ErrFull) {
		t.Fatalf("item limit: err = %v, want ErrFull", err)
	}
}

// signalled reports whether Ready holds a wake-up, consuming it.
func signalled[T any](q *Queue[T]) bool {
	select {
	case <-q.Ready():
		return true
	default:
		return false
	}
}

// A quiet push withholds the wake-up until Wake, a later Push, or never (a Pop took the
// items): a producer that drains the queue itself wakes nobody, and one that does not
// cannot strand an item behind a withheld wake-up.
func TestQueueQuietPush(t *testing.T) {
	q := New[int]("test", 0)
	_ = q.PushQuiet(1, 0, 1<<20)
	_ = q.PushQuiet(2, 0, 1<<20)
	if signalled(q) {
		t.Fatal("a quiet push signalled")
	}
	q.Wake()
	if !signalled(q) {
		t.Fatal("Wake did not send the withheld wake-up")
	}
	q.Wake()
	if signalled(q) {
		t.Fatal("a second Wake signalled again")
	}
	if got := q.Pop(nil); len(got) != 2 {
		t.Fatalf("Pop = %v", got)
	}

	// A plain push after quiet ones sends the wake-up they withheld.
	_ = q.PushQuiet(3, 0, 1<<20)
	_ = q.Push(4)
	if !signalled(q) {
		t.Fatal("a push after a quiet one did not signal")
	}
	q.Wake()
	if signalled(q) {
		t.Fatal("Wake signalled for items already signalled")
	}
	q.Pop(nil)

	// A quiet push behind signalled items needs no wake-up of its own.
	_ = q.Push(5)
	_ = q.PushQuiet(6, 0, 1<<20)
	signalled(q)
	q.Wake()
	if signalled(q) {
		t.Fatal("Wake signalled for a quiet push behind signalled items")
	}
	q.Pop(nil)

	// Items popped by the producer itself: nothing to wake for.
	_ = q.PushQuiet(7, 0, 1<<20)
	if got := q.Pop(nil); len(got) != 1 {
		t.Fatalf("Pop = %v", got)
	}
	q.Wake()
	if signalled(q) {
		t.Fatal("Wake signalled for an empty queue")
	}

	// Quiet pushes obey the same bounds.
	if err := q.PushQuiet(8, 10, 5); !errors.Is(err, ErrFull) {
		t.Fatalf("PushQuiet past maxBytes = %v, want ErrFull", err)
	}
}
