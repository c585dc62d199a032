package main

import "testing"

func TestMedian(t *testing.T) {
	for _, tc := range []struct {
		in   []float64
		want float64
	}{
		{nil, 0},
		{[]float64{3}, 3},
		{[]float64{5, 1, 3}, 3},
		{[]float64{4, 1, 3, 2}, 2.5},
	} {
		if got := median(tc.in); got != tc.want {
			t.Errorf("median(%v) = %v, want %v", tc.in, got, tc.want)
		}
	}
}

func TestFormatting(t *testing.T) {
	for in, want := range map[int64]string{0: "0", 999: "999", 1000: "1,000", 1234567: "1,234,567", -1234: "-1,234"} {
		if got := fmtInt(in); got != want {
			t.Errorf("fmtInt(%d) = %q, want %q", in, got, want)
		}
	}
	if got := fmtBytes(1.5 * (1 << 20)); got != "1.5 MiB" {
		t.Errorf("fmtBytes = %q", got)
	}
	if got := fmtRatio(3, 2); got != "1.50" {
		t.Errorf("fmtRatio = %q", got)
	}
	if got := fmtRatio(1, 0); got != "–" {
		t.Errorf("fmtRatio with no baseline = %q", got)
	}
}
