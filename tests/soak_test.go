//go:build soak

package tests

import (
	"fmt"
	"os"
	"strconv"
	"testing"
)

// TestSoakCrash runs the crash harness many times per durable store (`make soak`): 100
// iterations each, or $SOAK_ITERATIONS, and prints the tally per store.
func TestSoakCrash(t *testing.T) {
	n := 100
	if s := os.Getenv("SOAK_ITERATIONS"); s != "" {
		v, err := strconv.Atoi(s)
		if err != nil || v < 1 {
			t.Fatalf("SOAK_ITERATIONS=%q: want a positive integer", s)
		}
		n = v
	}
	tallies := map[string]crashTally{}
	stores := []string{"file", "bolt"}
	for _, store := range stores {
		tallies[store] = crashIterations(t, store, newCrashBinary(store), n)
	}
	fmt.Println("crash soak tally:")
	for _, store := range stores {
		fmt.Printf("  %-4s %v\n", store, tallies[store])
	}
}
