package main

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"time"
)

// The disk's own rate: what a synchronous publish with fsync can approach at best. Measured in
// process, in the same run and the same temporary directory as the servers' stores.

const (
	diskProbeTime = 1500 * time.Millisecond
	diskProbeSize = 1024 // record bytes, as the 1 KiB sync publish row
)

// diskResult is one probe: records appended and synced one at a time.
type diskResult struct {
	records  int
	duration time.Duration
	p50, p99 time.Duration // one write + Sync
}

func (d diskResult) rate() float64 {
	if d.duration <= 0 {
		return 0
	}
	return float64(d.records) / d.duration.Seconds()
}

// measureDiskRate appends size-byte records to a new file in a new directory under dir for
// about dur, calling f.Sync() after each: fsync(2), the call both servers' file stores make
// (nats-streaming-server's File.Sync on flush, Starling's filestore before a PubAck). The
// file grows with every record, as nats-streaming-server's segments do; this is the rate
// issue 13's target is stated against.
func measureDiskRate(dir string, size int, dur time.Duration) (diskResult, error) {
	return measureDisk(dir, size, dur, false)
}

// measurePreallocatedDiskRate is measureDiskRate into blocks allocated ahead of the writes
// (fallocate, diskProbePrealloc at a time), as Starling's tail segments are written: the
// fsync then journals no new size or block, and the disk does more of them per second.
func measurePreallocatedDiskRate(dir string, size int, dur time.Duration) (diskResult, error) {
	return measureDisk(dir, size, dur, true)
}

// diskProbePrealloc is how far ahead the preallocated probe allocates, as a busy tail
// segment does (stores/filestore/prealloc.go: up to 4 MiB per growth).
const diskProbePrealloc = 4 << 20

func measureDisk(dir string, size int, dur time.Duration, prealloc bool) (diskResult, error) {
	tmp, err := os.MkdirTemp(dir, "starling-compare-disk-")
	if err != nil {
		return diskResult{}, err
	}
	defer os.RemoveAll(tmp)
	f, err := os.Create(filepath.Join(tmp, "records"))
	if err != nil {
		return diskResult{}, err
	}
	defer f.Close()
	rec := make([]byte, size)
	var lat []time.Duration
	var written, alloc int64
	start := time.Now()
	for time.Since(start) < dur {
		t0 := time.Now()
		if prealloc && written+int64(size) > alloc {
			alloc += diskProbePrealloc
			if err := allocate(f, alloc); err != nil {
				return diskResult{}, fmt.Errorf("fallocate: %w", err)
			}
		}
		written += int64(size)
		if _, err := f.Write(rec); err != nil {
			return diskResult{}, fmt.Errorf("write: %w", err)
		}
		if err := f.Sync(); err != nil {
			return diskResult{}, fmt.Errorf("fsync: %w", err)
		}
		lat = append(lat, time.Since(t0))
	}
	p50, p99 := percentiles(lat)
	return diskResult{records: len(lat), duration: time.Since(start), p50: p50, p99: p99}, nil
}

// percentiles returns the 50th and 99th percentiles of xs (nearest rank), sorting xs.
func percentiles(xs []time.Duration) (p50, p99 time.Duration) {
	if len(xs) == 0 {
		return 0, 0
	}
	slices.Sort(xs)
	rank := func(p int) time.Duration { return xs[max((p*len(xs)+99)/100-1, 0)] }
	return rank(50), rank(99)
}
