package filestore

import (
	"slices"
	"testing"
)

func TestEntries(t *testing.T) {
	var es entries
	var want []entry
	for i := range 3*entChunk + 5 {
		e := entry{time: int64(i), off: uint32(i * 7)}
		es.add(e)
		want = append(want, e)
		if es.len() != i+1 || *es.at(i) != e || *es.last() != e || *es.at(i / 2) != want[i/2] {
			t.Fatalf("after %d adds: len %d, at(%d) %+v, want %+v", i+1, es.len(), i, *es.at(i), e)
		}
	}
	if !slices.Equal(es.slice(), want) {
		t.Fatal("slice differs from what was added")
	}
	for i, c := range es.chunks[1:] {
		if cap(c) != entChunk {
			t.Fatalf("chunk %d has capacity %d, want %d: a later chunk never grows", i+1, cap(c), entChunk)
		}
	}
	first := &es.chunks[0][0]
	es.reset()
	if es.len() != 0 || len(es.chunks) != 1 {
		t.Fatalf("after reset: len %d, %d chunks", es.len(), len(es.chunks))
	}
	es.add(entry{time: 9})
	if &es.chunks[0][0] != first || es.at(0).time != 9 {
		t.Fatal("reset did not keep the first chunk for reuse")
	}
	if c := entriesOf(want[:10]); c.len() != 10 || *c.at(9) != want[9] {
		t.Fatalf("entriesOf: len %d", c.len())
	}
}

// BenchmarkEntriesFill fills a first segment's index: chunks, against one doubling slice.
func BenchmarkEntriesFill(b *testing.B) {
	const n = 1 << 20 // a 64 MiB segment of 16-byte messages holds 1.4 million
	b.Run("chunks", func(b *testing.B) {
		for b.Loop() {
			var es entries
			for i := range n {
				es.add(entry{time: int64(i)})
			}
		}
	})
	b.Run("slice", func(b *testing.B) {
		for b.Loop() {
			var s []entry
			for i := range n {
				s = append(s, entry{time: int64(i)})
			}
			_ = s
		}
	})
}
