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

// After a SIGKILL, every PubAck the publisher reads, however late, was sent by the server
// before it died, its store holding the message: the check must count it. After a power
// cut only the acks read before the cut began count (a later one may rest on an fsync
// the cut undid).
func TestCrashLateAcksCount(t *testing.T) {
	var kill crashTarget = &crashBinary{store: "file"}
	if !kill.lateAcksCount() {
		t.Error("SIGKILL: acks read after the crash began are not checked")
	}
	var power crashTarget = &crashPower{}
	if power.lateAcksCount() {
		t.Error("power cut: acks read after the cut began are checked")
	}
}
