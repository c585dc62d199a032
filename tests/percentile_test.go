package tests

import (
	"testing"
	"time"
)

// percentile is nearest rank: the smallest sample with at least p% of the samples at or
// below it, i.e. sorted[ceil(p/100 × n) - 1].
func TestPercentileNearestRank(t *testing.T) {
	ms := func(n int) []time.Duration {
		ds := make([]time.Duration, n)
		for i := range ds {
			ds[i] = time.Duration(n-i) * time.Millisecond // unsorted: n ms down to 1 ms
		}
		return ds
	}
	for _, tc := range []struct {
		n    int
		p    float64
		want time.Duration
	}{
		{1, 50, 1 * time.Millisecond},
		{2, 50, 1 * time.Millisecond},
		{3, 50, 2 * time.Millisecond},
		{10, 99, 10 * time.Millisecond},
		{70, 99, 70 * time.Millisecond}, // 69.3 → rank 70, the slowest of 70
		{80, 99, 80 * time.Millisecond},
		{100, 99, 99 * time.Millisecond},
		{100, 50, 50 * time.Millisecond},
		{100, 100, 100 * time.Millisecond},
		{160, 99, 159 * time.Millisecond}, // 158.4 → rank 159
		{10, 12, 2 * time.Millisecond},    // 1.2 → rank 2
	} {
		if got := percentile(ms(tc.n), tc.p); got != tc.want {
			t.Errorf("p%g of 1..%d ms = %v, want %v", tc.p, tc.n, got, tc.want)
		}
	}
}
