package core

import (
	"testing"
	"time"
)

// The refused-login log lets through authLogBurst lines per window; the first line of a
// later window says how many were left out.
func TestLogLimiter(t *testing.T) {
	var l logLimiter
	t0 := time.Now()
	for i := range authLogBurst {
		if ok, d := l.allow(t0.Add(time.Duration(i) * time.Millisecond)); !ok || d != 0 {
			t.Fatalf("line %d: allow = %v, %d", i, ok, d)
		}
	}
	for i := range 25 {
		if ok, _ := l.allow(t0.Add(authLogWindow - time.Duration(25-i)*time.Millisecond)); ok {
			t.Fatalf("line %d over the burst let through", authLogBurst+i)
		}
	}
	if ok, d := l.allow(t0.Add(authLogWindow)); !ok || d != 25 {
		t.Fatalf("first line of the next window: allow = %v, %d; want true, 25", ok, d)
	}
	if ok, d := l.allow(t0.Add(authLogWindow + 1)); !ok || d != 0 {
		t.Fatalf("second line of the next window: allow = %v, %d", ok, d)
	}
}
