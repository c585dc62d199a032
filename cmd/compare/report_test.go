package main

import (
	"os"
	"strings"
	"testing"
	"time"
)

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

// TestDetailsShowServerCPU: the core rows' Details table gives each server's median CPU per
// message (the figure of record where the client caps msgs/s), "–" where none was measured.
func TestDetailsShowServerCPU(t *testing.T) {
	sc := scenarios()[0]
	r := &report{
		servers: [2]serverSpec{{name: "nats-server"}, {name: "starling"}},
		rows: []row{{sc: sc, msgs: 10, cells: [2]cell{
			{runs: []runResult{{serverCPUPerMsg: 3 * time.Microsecond}, {serverCPUPerMsg: 5 * time.Microsecond}, {serverCPUPerMsg: 4 * time.Microsecond}}},
			{runs: []runResult{{}}},
		}}},
	}
	var b strings.Builder
	r.writeDetails(&b)
	out := b.String()
	if !strings.Contains(out, "| median server CPU µs/msg |") {
		t.Fatalf("no server CPU column:\n%s", out)
	}
	lines := strings.Split(out, "\n")
	var nats, starling string
	for _, l := range lines {
		switch {
		case strings.Contains(l, "| nats-server |"):
			nats = l
		case strings.Contains(l, "| starling |"):
			starling = l
		}
	}
	if !strings.HasSuffix(nats, "| 4.00 |") || !strings.HasSuffix(starling, "| – |") {
		t.Fatalf("server CPU cells: %q, %q", nats, starling)
	}
}

// TestCPUMeter: perMsg is the process's CPU since startCPU over the messages; 0 without any.
func TestCPUMeter(t *testing.T) {
	m := startCPU(os.Getpid())
	// Spin until /proc counts some CPU (10 ms ticks): a loaded machine may lend less.
	for end := time.Now().Add(5 * time.Second); m.perMsg(1) < 20*time.Millisecond; {
		if time.Now().After(end) {
			t.Fatalf("perMsg(1) = %v after 5 s of spinning", m.perMsg(1))
		}
	}
	if d1, d2 := m.perMsg(1), m.perMsg(2); d2 > d1/2+10*time.Millisecond {
		t.Fatalf("perMsg(2) = %v, perMsg(1) = %v: not divided by the messages", d2, d1)
	}
	if d := m.perMsg(0); d != 0 {
		t.Fatalf("perMsg(0) = %v", d)
	}
	if d := startCPU(-1).perMsg(1); d != 0 {
		t.Fatalf("an unreadable process: perMsg = %v", d)
	}
}
