package streaming

import (
	"sync/atomic"
	"time"
)

// latencyBounds are the upper bounds, in seconds, of the latency histograms' buckets: from
// 100 µs (a batch completed in memory) to 2.5 s (a disk or a quorum in trouble).
var latencyBounds = [...]float64{0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5}

// histogram counts latencies into latencyBounds' buckets with atomics: observed by the
// engine or the committer once per group (never per message), read at scrape time.
type histogram struct {
	buckets [len(latencyBounds) + 1]atomic.Uint64 // the last one: beyond every bound
	sum     atomic.Int64                          // nanoseconds
}

// observeN records n events that each took d.
func (h *histogram) observeN(d time.Duration, n int) {
	if n <= 0 {
		return
	}
	s := d.Seconds()
	i := 0
	for i < len(latencyBounds) && s > latencyBounds[i] {
		i++
	}
	h.buckets[i].Add(uint64(n))
	h.sum.Add(int64(d) * int64(n))
}

// Histogram is a latency histogram as Prometheus wants it: cumulative counts per upper
// bound (seconds), the total count and the sum in seconds.
type Histogram struct {
	Bounds     []float64
	Cumulative []uint64
	Count      uint64
	Sum        float64
}

func (h *histogram) snapshot() Histogram {
	out := Histogram{Bounds: latencyBounds[:], Cumulative: make([]uint64, len(latencyBounds))}
	var total uint64
	for i := range h.buckets {
		total += h.buckets[i].Load()
		if i < len(latencyBounds) {
			out.Cumulative[i] = total
		}
	}
	out.Count = total
	out.Sum = time.Duration(h.sum.Load()).Seconds()
	return out
}

// Latencies are the streaming layer's latency histograms.
type Latencies struct {
	// PubAck: from the publish batch's proposal to its PubAck (the store's sync standalone,
	// the log's commit replicated), one event per PubAck.
	PubAck Histogram
	// StoreSync: one pass of the committer's fsyncs (stores that split their Sync).
	StoreSync Histogram
}

// Latencies returns the latency histograms (safe to call from any goroutine).
func (s *Server) Latencies() Latencies {
	return Latencies{PubAck: s.pubAckLatency.snapshot(), StoreSync: s.commit.syncLatency.snapshot()}
}
