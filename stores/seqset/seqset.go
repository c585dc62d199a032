package seqset

import (
	"math/bits"
	"slices"
)

const (
	blockBits  = 1024
	blockWords = blockBits / 64
	blockMask  = blockBits - 1
)

// block is the bitmap of sequences base .. base+1023; base is a multiple of 1024.
type block struct {
	base uint64
	n    uint32 // set bits
	bits [blockWords]uint64
}

// Set is a set of uint64 sequences. See the package documentation.
type Set struct {
	blocks []block // ascending base; none empty
	n      int
}

// find returns the index of the block with base, or where to insert it.
func (s *Set) find(base uint64) (int, bool) {
	n := len(s.blocks)
	if n == 0 {
		return 0, false
	}
	if last := s.blocks[n-1].base; base >= last { // common: the newest sequences
		if base == last {
			return n - 1, true
		}
		return n, false
	}
	if first := s.blocks[0].base; base <= first { // common: the oldest sequences
		return 0, base == first
	}
	lo, hi := 1, n-1 // blocks[0].base < base < blocks[n-1].base
	for lo < hi {
		m := int(uint(lo+hi) >> 1)
		if s.blocks[m].base < base {
			lo = m + 1
		} else {
			hi = m
		}
	}
	return lo, s.blocks[lo].base == base
}

// Add inserts seq and reports whether it was absent.
func (s *Set) Add(seq uint64) bool {
	base := seq &^ blockMask
	i, ok := s.find(base)
	if !ok {
		s.insert(i, base)
	}
	w, bit := (seq&blockMask)>>6, uint64(1)<<(seq&63)
	b := &s.blocks[i]
	if b.bits[w]&bit != 0 {
		return false
	}
	b.bits[w] |= bit
	b.n++
	s.n++
	return true
}

func (s *Set) insert(i int, base uint64) {
	s.blocks = append(s.blocks, block{})
	if i < len(s.blocks)-1 {
		copy(s.blocks[i+1:], s.blocks[i:])
	}
	s.blocks[i] = block{base: base} // zeroes a reused slot
}

// Remove deletes seq and reports whether it was present.
func (s *Set) Remove(seq uint64) bool {
	i, ok := s.find(seq &^ blockMask)
	if !ok {
		return false
	}
	w, bit := (seq&blockMask)>>6, uint64(1)<<(seq&63)
	b := &s.blocks[i]
	if b.bits[w]&bit == 0 {
		return false
	}
	b.bits[w] &^= bit
	s.n--
	if b.n--; b.n == 0 {
		copy(s.blocks[i:], s.blocks[i+1:])
		s.blocks = s.blocks[:len(s.blocks)-1]
	}
	return true
}

// Contains reports whether seq is in the set.
func (s *Set) Contains(seq uint64) bool {
	i, ok := s.find(seq &^ blockMask)
	return ok && s.blocks[i].bits[(seq&blockMask)>>6]&(uint64(1)<<(seq&63)) != 0
}

// Len returns the number of sequences in the set.
func (s *Set) Len() int { return s.n }

// Min returns the smallest sequence, or false if the set is empty.
func (s *Set) Min() (uint64, bool) {
	if s.n == 0 {
		return 0, false
	}
	b := &s.blocks[0]
	for w, word := range b.bits {
		if word != 0 {
			return b.base + uint64(w*64+bits.TrailingZeros64(word)), true
		}
	}
	panic("seqset: empty block") // unreachable: empty blocks are removed
}

// Max returns the largest sequence, or false if the set is empty.
func (s *Set) Max() (uint64, bool) {
	if s.n == 0 {
		return 0, false
	}
	b := &s.blocks[len(s.blocks)-1]
	for w := blockWords - 1; w >= 0; w-- {
		if word := b.bits[w]; word != 0 {
			return b.base + uint64(w*64+63-bits.LeadingZeros64(word)), true
		}
	}
	panic("seqset: empty block") // unreachable: empty blocks are removed
}

// Ascend calls fn for every sequence in increasing order until fn returns false. The set
// must not be modified during the walk.
func (s *Set) Ascend(fn func(seq uint64) bool) {
	for i := range s.blocks {
		b := &s.blocks[i]
		for w, word := range b.bits {
			for word != 0 {
				if !fn(b.base + uint64(w*64+bits.TrailingZeros64(word))) {
					return
				}
				word &= word - 1
			}
		}
	}
}

// AppendTo appends the sequences in increasing order to dst and returns it.
func (s *Set) AppendTo(dst []uint64) []uint64 {
	dst = slices.Grow(dst, s.n)
	s.Ascend(func(seq uint64) bool {
		dst = append(dst, seq)
		return true
	})
	return dst
}

// Clear empties the set, keeping its memory for reuse.
func (s *Set) Clear() {
	s.blocks = s.blocks[:0]
	s.n = 0
}
