package auth

import (
	"fmt"
	"testing"
	"time"
)

func TestResponsesDropOldest(t *testing.T) {
	r := NewResponses(&ResponsePermission{MaxMsgs: -1, Expires: -1})
	r.limit = 1000
	start := time.Now()
	at := func(i int) time.Time { return start.Add(time.Duration(i) * time.Millisecond) }
	for i := range 5000 {
		r.Record(fmt.Appendf(nil, "r.%d", i), at(i))
		if n := r.Len(); n > r.limit {
			t.Fatalf("after %d records: %d entries > limit %d", i+1, n, r.limit)
		}
	}
	// The newest replies survive, the oldest were dropped.
	if !r.Use([]byte("r.4999"), at(5000)) || !r.Use([]byte("r.4500"), at(5000)) {
		t.Fatal("a recent reply was dropped")
	}
	if r.Use([]byte("r.0"), at(5000)) || r.Use([]byte("r.3000"), at(5000)) {
		t.Fatal("an old reply survived")
	}
}

func TestQueueCovered(t *testing.T) {
	cases := []struct {
		q, p string
		want bool
	}{
		{"v1.a", "v1.*", true},
		{"v1.*", "v1.*", true},
		{"v1.>", "v1.*", false},
		{"v1", "v1.*", false},
		{"v1.a.b", "v1.*", false},
		{"v1.a", "v1.>", true},
		{"v1.a.b", "v1.>", true},
		{"v1.>", "v1.>", true},
		{"v1", "v1.>", false},
		{"v1.a..b", "v1.>", false},
		{"v1.a.", "v1.>", false},
		{"v1..a", "v1.*.a", false},
		{"a", "*", true},
		{"a.b", ">", true},
		{"", "*", false},
		{"v1", "v1", false}, // literal patterns: equality is the caller's check
		{"x.y", "*.y", true},
		{"x.z", "*.y", false},
	}
	for _, tc := range cases {
		if got := queueCovered([]byte(tc.q), tc.p); got != tc.want {
			t.Errorf("queueCovered(%q, %q) = %v, want %v", tc.q, tc.p, got, tc.want)
		}
	}
}

func TestIsBcrypt(t *testing.T) {
	for s, want := range map[string]bool{
		"$2a$11$abc": true, "$2b$04$": true, "$2x$10$x": true, "$2y$31$x": true,
		"$2c$11$x": false, "$2a$1$x": false, "$2a$1x$": false, "2a$11$x": false, "$2a$11": false, "": false,
	} {
		if got := isBcrypt(s); got != want {
			t.Errorf("isBcrypt(%q) = %v, want %v", s, got, want)
		}
	}
}
