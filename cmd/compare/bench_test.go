package main

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"
)

// Outputs captured from natscli v0.5.0 (stdout only; the banner goes to stderr).
const (
	pubOutput = `
NATS Core NATS publisher stats: 1,867,767 msgs/sec ~ 28 MiB/sec ~ min: 0.06us ~ avg: 0.36us ~ max: 87,255.94us ~ P50: 0.08us ~ P90: 0.13us ~ P99: 0.26us ~ P99.9: 23.94us

`
	fanoutOutput = `
  [1] 203,789 msgs/sec ~ 3.1 MiB/sec (1,000,000 msgs)
  [2] 205,208 msgs/sec ~ 3.1 MiB/sec (1,000,000 msgs)
  [3] 190,668 msgs/sec ~ 2.9 MiB/sec (1,000,000 msgs)
  [4] 187,414 msgs/sec ~ 2.9 MiB/sec (1,000,000 msgs)
  [5] 185,875 msgs/sec ~ 2.8 MiB/sec (1,000,000 msgs)

 NATS Core NATS subscriber aggregated stats: 919,614 msgs/sec ~ 14 MiB/sec
 message rates min 185,875 | avg 194,590 | max 205,208 | stddev 8,248 msgs

`
	requestOutput = `
  [1] 2,008 msgs/sec ~ 31 KiB/sec ~ min: 66.78us ~ avg: 497.62us ~ max: 25,932.14us ~ P50: 413.10us ~ P90: 801.59us ~ P99: 1,688.97us ~ P99.9: 4,946.44us (50,000 msgs)
  [2] 2,005 msgs/sec ~ 31 KiB/sec ~ min: 72.45us ~ avg: 498.41us ~ max: 32,803.91us ~ P50: 413.56us ~ P90: 801.16us ~ P99: 1,737.96us ~ P99.9: 4,970.47us (50,000 msgs)

 NATS Core NATS service requester aggregated stats: 8,010 msgs/sec ~ 125 KiB/sec
 message rates min 2,002 | avg 2,004 | max 2,008 | stddev 2 msgs
 latencies per operation min 66.78us | avg 498.48us | max 32,803.91us | stddev 667.28us | P50 413.21us | P90 804.10us | P99 1,713.84us | P99.9: 4,952.68us
`
)

func TestParseBenchOutput(t *testing.T) {
	for _, tc := range []struct {
		name        string
		out         string
		msgs, bytes float64
	}{
		{"single client", pubOutput, 1_867_767, 28 << 20},
		{"aggregate wins over per-client lines", fanoutOutput, 919_614, 14 << 20},
		{"requester aggregate", requestOutput, 8_010, 125 << 10},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := parseBenchOutput(tc.out)
			if err != nil {
				t.Fatal(err)
			}
			if got.msgsPerSec != tc.msgs || got.bytesPerSec != tc.bytes {
				t.Fatalf("got %+v, want %v msgs/s %v B/s", got, tc.msgs, tc.bytes)
			}
		})
	}
}

func TestParseBenchOutputRejects(t *testing.T) {
	for _, out := range []string{
		"",
		"No publisher or subscribers. Nothing to report.",
		"NATS Core NATS publisher stats: lots msgs/sec ~ 1 MiB/sec",
	} {
		if _, err := parseBenchOutput(out); err == nil {
			t.Errorf("parseBenchOutput(%q): no error", out)
		}
	}
}

func TestParseIBytes(t *testing.T) {
	for in, want := range map[string]float64{"900 B": 900, "5.5 MiB": 5.5 * (1 << 20), "1 GiB": 1 << 30} {
		if got, err := parseIBytes(in); err != nil || got != want {
			t.Errorf("parseIBytes(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	if _, err := parseIBytes("3 furlongs"); err == nil || !strings.Contains(err.Error(), "unit") {
		t.Errorf("unknown unit accepted: %v", err)
	}
}

func TestWaitProgress(t *testing.T) {
	ctx := context.Background()
	far := time.Now().Add(time.Minute)
	frozen := func() (int64, error) { return 7, nil }
	if err := waitProgress(ctx, nil, far, 50*time.Millisecond, frozen); !errors.Is(err, errStalled) {
		t.Fatalf("frozen counter: got %v, want errStalled", err)
	}
	done := make(chan struct{})
	close(done)
	if err := waitProgress(ctx, done, far, 50*time.Millisecond, frozen); err != nil {
		t.Fatalf("finished consumer: %v", err)
	}
	var n int64
	moving := func() (int64, error) { n++; return n, nil }
	if err := waitProgress(ctx, nil, time.Now().Add(200*time.Millisecond), time.Second, moving); err == nil || errors.Is(err, errStalled) {
		t.Fatalf("deadline: got %v, want a timeout", err)
	}
}
