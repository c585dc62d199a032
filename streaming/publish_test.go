package streaming

import (
	"testing"

	"github.com/starling-io/starling/stores"
)

func TestPublishPiece(t *testing.T) {
	msgs := func(sizes ...int) []stores.Msg {
		ms := make([]stores.Msg, len(sizes))
		for i, n := range sizes {
			ms[i].Data = make([]byte, n)
		}
		return ms
	}
	for _, tc := range []struct {
		sizes []int
		want  int
	}{
		{[]int{16}, 1},
		{[]int{16, 16, 16}, 3},
		{[]int{10000}, 1},     // too large alone: still one piece
		{[]int{10000, 16}, 1}, // ...and alone
		{[]int{2000, 2000, 2000}, 2},
		{[]int{1000, 1000, 1000, 1000, 1000}, 4},
	} {
		if got := publishPiece(msgs(tc.sizes...)); got != tc.want {
			t.Errorf("publishPiece(%v) = %d, want %d", tc.sizes, got, tc.want)
		}
	}
}
