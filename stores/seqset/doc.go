// Package seqset is a compact set of uint64 sequences, made for a subscription's pending
// (sent, not yet acknowledged) messages: sequences are added in mostly increasing order
// and removed mostly from the low end, within a window of a few thousand.
//
// A Set is a sorted slice of bitmap blocks, each covering 1024 consecutive sequences
// (144 bytes). Empty blocks are dropped at once, so memory follows the live window, not
// the history; the slice's capacity is reused, so Add and Remove do not allocate in
// steady state. Lookups try the last and the first block before a binary search. A dense
// window costs about one bit per sequence; the worst case, isolated sequences more than
// 1024 apart, costs one block (144 bytes) each.
//
// The zero Set is empty and ready to use. A Set is not safe for concurrent use and must
// not be copied after first use (copies share blocks).
package seqset
