//go:build soak

package tests

import (
	"fmt"
	"os"
	"strconv"
	"testing"
)

// TestSoakCrash runs the crash harness many times per durable store (`make soak`): 100
// iterations each, or $SOAK_ITERATIONS, with SIGKILL of the binary on the file and the
// bolt store, then with power cuts of an in-process file store, and prints the tallies.
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
	// The same load and checks with power cuts (file store, in-process): every file cut
	// back to its last fsync, the unsynced rest torn.
	tallies["power"] = crashIterations(t, "power", newCrashPower(uint64(n)), n)
	fmt.Println("crash soak tally (SIGKILL of the binary per store; power: file store, power cuts):")
	for _, store := range append(stores, "power") {
		fmt.Printf("  %-5s %v\n", store, tallies[store])
	}
}
