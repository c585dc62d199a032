// Package gcfloor keeps the Go collector from running many times a second on a small heap.
//
// The server's live heap is small (the memory store keeps its messages outside the Go
// heap), so with GOGC=100 the heap goal sits at the runtime's 4 MB minimum while every
// publish allocates its copy of the message: at 1 KiB, about 90 collections a second,
// ~1.7 µs of the server's CPU per message. Start raises GOGC while the live heap is small,
// so that a cycle comes every ~16 MiB allocated at least, and returns it to 100 as the heap
// grows (10,000 connections hold ~150 MiB: nothing changes there). The RSS it may add is
// that headroom, 16 MiB at most.
package gcfloor

import (
	"os"
	"runtime/debug"
	"runtime/metrics"
	"time"
)

// Headroom is the garbage the heap may gather between two collections when the live heap
// is small.
const Headroom = 16 << 20

// runtimeMinimum is the runtime's smallest heap goal at GOGC=100; it scales with GOGC.
const runtimeMinimum = 4 << 20

// Percent is the GOGC that gives a live heap of live bytes about Headroom of headroom:
// the runtime's goal is max(runtimeMinimum×GOGC/100, live×(1+GOGC/100)); the percentage is
// kept between 100 and Headroom/runtimeMinimum×100 (400), so a tiny heap's goal is Headroom,
// not more.
func Percent(live uint64) int {
	limit := Headroom / runtimeMinimum * 100
	if live == 0 {
		return limit
	}
	return int(max(100, min(uint64(limit), Headroom*100/live)))
}

// Start adjusts GOGC every interval from the live heap, unless GOGC is set in the
// environment (the operator's choice stands).
func Start(interval time.Duration) {
	if _, set := os.LookupEnv("GOGC"); set {
		return
	}
	sample := []metrics.Sample{{Name: "/gc/heap/live:bytes"}}
	current := 100
	adjust := func() {
		metrics.Read(sample)
		live := uint64(0)
		if sample[0].Value.Kind() == metrics.KindUint64 {
			live = sample[0].Value.Uint64()
		}
		if p := Percent(live); p != current {
			current = p
			debug.SetGCPercent(p)
		}
	}
	adjust()
	go func() {
		for range time.Tick(interval) {
			adjust()
		}
	}()
}
