// Package chunked is an append-only sequence that grows in fixed chunks, with removal from
// the front: the in-memory index of a channel's messages in the file and bolt stores.
//
// As one doubling slice, a growing index was copied again and again into memory the
// process had never touched: 8–12 % of a loaded file-store node's CPU, 8.7 % of a bolt
// store's publishing 16-byte messages (growslice and its page faults). Chunks are never
// copied; the first grows as a slice up to a chunk, so a small sequence stays small, and a
// chunk emptied from the front is reused at the back.
package chunked

const (
	shift = 12
	// Chunk is the number of elements a chunk holds.
	Chunk = 1 << shift
)

// Seq is the sequence. The zero value is empty and ready to use.
type Seq[T any] struct {
	chunks [][]T // all full but the last; the first may hold removed elements before head
	head   int   // elements removed from the front of chunks[0]
	n      int   // elements held
	spare  []T   // an emptied chunk, reused for the next one
}

// Of returns a Seq holding a copy of s.
func Of[T any](s []T) Seq[T] {
	var q Seq[T]
	for i := range s {
		q.Add(s[i])
	}
	return q
}

// Len is the number of elements held.
func (q *Seq[T]) Len() int { return q.n }

// At returns element i, which must be below Len.
func (q *Seq[T]) At(i int) *T {
	i += q.head
	return &q.chunks[i>>shift][i&(Chunk-1)]
}

// Last returns the last element; there must be one.
func (q *Seq[T]) Last() *T { return q.At(q.n - 1) }

// Add appends e.
func (q *Seq[T]) Add(e T) {
	c := (q.head + q.n) >> shift
	if c == len(q.chunks) {
		var chunk []T // the first chunk grows as a slice
		switch {
		case q.spare != nil:
			chunk, q.spare = q.spare, nil
		case c > 0:
			chunk = make([]T, 0, Chunk)
		}
		q.chunks = append(q.chunks, chunk)
	}
	q.chunks[c] = append(q.chunks[c], e)
	q.n++
}

// RemoveFirst removes the first element; there must be one.
func (q *Seq[T]) RemoveFirst() {
	q.head++
	q.n--
	if q.n == 0 {
		q.Reset()
		return
	}
	if q.head == Chunk { // the first chunk is all removed
		if cap(q.chunks[0]) >= Chunk {
			q.spare = q.chunks[0][:0:Chunk]
		}
		n := copy(q.chunks, q.chunks[1:])
		q.chunks[n] = nil
		q.chunks, q.head = q.chunks[:n], 0
	}
}

// Reset empties q, keeping its first chunk's memory.
func (q *Seq[T]) Reset() {
	if len(q.chunks) > 0 {
		clear(q.chunks[1:])
		q.chunks = append(q.chunks[:0], q.chunks[0][:0])
	}
	q.head, q.n = 0, 0
}

// Search returns the smallest i in [lo, Len) for which f(At(i)) is true, or Len if none,
// f being false then true along the sequence (sort.Search).
func (q *Seq[T]) Search(lo int, f func(*T) bool) int {
	hi := q.n
	for lo < hi {
		mid := int(uint(lo+hi) >> 1)
		if !f(q.At(mid)) {
			lo = mid + 1
		} else {
			hi = mid
		}
	}
	return lo
}

// Slice returns a copy of the elements as one slice.
func (q *Seq[T]) Slice() []T {
	s := make([]T, 0, q.n)
	for i := range q.n {
		s = append(s, *q.At(i))
	}
	return s
}
