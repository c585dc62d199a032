package tests

import (
	"strings"
	"testing"
)

// The soak's tally line says lost=0 only when every iteration passed its checks: an
// iteration that failed (a lost acknowledged message, say) ends the run and must show.
func TestCrashTallyFailed(t *testing.T) {
	ok := crashTally{Iterations: 3, Published: 300, Acked: 250, Present: 260}
	if s := ok.String(); !strings.Contains(s, "lost=0") {
		t.Errorf("passing tally %q lacks lost=0", s)
	}
	failed := crashTally{Iterations: 2, Published: 200, Acked: 150, Present: 160, Failed: 1}
	if s := failed.String(); strings.Contains(s, "lost=0") || !strings.Contains(s, "FAILED") {
		t.Errorf("tally with a failed iteration reads %q", s)
	}
}
