package gcfloor

import "testing"

// TestPercent: a tiny heap gets 400 (a 16 MiB goal, the runtime's 4 MB minimum scaled), a
// heap of 8 MiB 200 (16 MiB of headroom), 16 MiB and more the default 100.
func TestPercent(t *testing.T) {
	for _, c := range []struct {
		live uint64
		want int
	}{
		{0, 400}, {1 << 20, 400}, {4 << 20, 400}, {8 << 20, 200}, {16 << 20, 100}, {150 << 20, 100},
	} {
		if got := Percent(c.live); got != c.want {
			t.Errorf("Percent(%d MiB) = %d, want %d", c.live>>20, got, c.want)
		}
	}
}
