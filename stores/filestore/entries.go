package filestore

// entries is a segment's index in memory: where each of its records is, in sequence order.
// It grows in chunks of entChunk, so that a tail filling up never copies what it already
// holds. As one doubling slice, a channel's first segment (64 MiB of 16-byte messages is
// 1.4 million entries) was copied again and again into memory the process had never
// touched: 8–12 % of a loaded node's CPU in `append` (later segments took their
// predecessor's capacity, which the chunks make unnecessary).
type entries struct {
	chunks [][]entry // all full but the last; only the first grows by copying, to entChunk
	n      int
}

const (
	entShift = 12
	entChunk = 1 << entShift // 4,096 entries, 96 KiB
)

// entriesOf returns the entries of s, copied.
func entriesOf(s []entry) entries {
	var es entries
	for i := range s {
		es.add(s[i])
	}
	return es
}

func (es *entries) len() int { return es.n }

// at returns entry i, which must be below len.
func (es *entries) at(i int) *entry { return &es.chunks[i>>entShift][i&(entChunk-1)] }

// last returns the last entry; there must be one.
func (es *entries) last() *entry { return es.at(es.n - 1) }

func (es *entries) add(e entry) {
	c := es.n >> entShift
	if c == len(es.chunks) {
		capacity := 0 // the first chunk grows as a slice: a small segment stays small
		if c > 0 {
			capacity = entChunk
		}
		es.chunks = append(es.chunks, make([]entry, 0, capacity))
	}
	es.chunks[c] = append(es.chunks[c], e)
	es.n++
}

// reset empties es, keeping its first chunk's memory.
func (es *entries) reset() {
	if len(es.chunks) > 0 {
		clear(es.chunks[1:])
		es.chunks = append(es.chunks[:0], es.chunks[0][:0])
	}
	es.n = 0
}

// slice returns a copy of the entries as one slice.
func (es *entries) slice() []entry {
	s := make([]entry, 0, es.n)
	for _, c := range es.chunks {
		s = append(s, c...)
	}
	return s
}
