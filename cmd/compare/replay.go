package main

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	stan "github.com/nats-io/stan.go"
)

// The replay row: stan-bench has no replay mode, so this loads the channel with stan.go
// (github.com/nats-io/stan.go v0.10.4) and then times a new subscriber reading it all back.

const (
	replaySubject  = "bench.replay"
	replayPubInfl  = 4096    // PublishAsync acks in flight while loading (untimed)
	replayMaxInfl  = 1 << 16 // subscriber MaxInflight: the server may run far ahead of the acks
	replayAckWait  = 60 * time.Second
	replayConnWait = 10 * time.Second
)

// runReplay publishes msgs messages of size bytes and waits for every PubAck (the load, whose
// rate is reported as pubRate), then opens a new connection and subscribes with
// DeliverAllAvailable and auto-ack; the rate is msgs over Subscribe call to last message. The
// server's VmRSS before and after the load gives rssAdded, what holding the messages costs (on a
// memory store).
func runReplay(ctx context.Context, s *server, size, msgs int, timeout time.Duration) (runResult, error) {
	if err := waitStanReady(ctx, s.addr(), readyTimeout); err != nil {
		return runResult{}, err
	}
	start := time.Now()
	deadline := start.Add(timeout)
	rss0, rssErr := s.rssBytes()
	loadDur, err := replayLoad(ctx, s.url(), size, msgs, deadline)
	if err != nil {
		return runResult{}, fmt.Errorf("load: %w", err)
	}
	var rssAdded int64
	if rss1, err := s.rssBytes(); err == nil && rssErr == nil {
		rssAdded = rss1 - rss0
	}
	// CPU while reading back: the server's from /proc, the reader's (this process, which
	// runs nothing else meanwhile) from getrusage. When the reader caps the rate, the
	// server's CPU per message is the figure that shows a faster server.
	cpu := startCPU(s.pid())
	self0, selfErr := selfCPU()
	readDur, err := replayRead(ctx, s.url(), msgs, deadline)
	if err != nil {
		return runResult{}, fmt.Errorf("replay: %w", err)
	}
	secs := readDur.Seconds()
	res := runResult{
		rate:     benchRate{msgsPerSec: float64(msgs) / secs, bytesPerSec: float64(msgs*size) / secs},
		pubRate:  float64(msgs) / loadDur.Seconds(),
		duration: time.Since(start),
		rssAdded: rssAdded,
	}
	res.serverCPUPerMsg = cpu.perMsg(msgs)
	if self1, err := selfCPU(); err == nil && selfErr == nil && msgs > 0 {
		res.clientCPUPerMsg = (self1 - self0) / time.Duration(msgs)
	}
	res.notes = []string{fmt.Sprintf("loaded in %s (VmRSS %+.1f MiB), read back in %s; CPU a message read back: server %.2f µs, reader %.2f µs",
		loadDur.Round(time.Millisecond), float64(rssAdded)/(1<<20), readDur.Round(time.Millisecond),
		float64(res.serverCPUPerMsg)/float64(time.Microsecond), float64(res.clientCPUPerMsg)/float64(time.Microsecond))}
	return res, nil
}

// selfCPU is this process's user and system CPU time so far.
func selfCPU() (time.Duration, error) {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0, err
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano()), nil
}

func stanConnect(url, clientID string, opts ...stan.Option) (stan.Conn, error) {
	opts = append([]stan.Option{stan.NatsURL(url), stan.ConnectWait(replayConnWait), stan.PubAckWait(replayAckWait)}, opts...)
	return stan.Connect(stanCluster, clientID, opts...)
}

// replayLoad publishes msgs messages asynchronously and returns once all are acked.
func replayLoad(ctx context.Context, url string, size, msgs int, deadline time.Time) (time.Duration, error) {
	sc, err := stanConnect(url, "compare-load", stan.MaxPubAcksInflight(replayPubInfl))
	if err != nil {
		return 0, err
	}
	defer sc.Close()
	var (
		acked    atomic.Int64
		errOnce  sync.Once
		firstErr error
		done     = make(chan struct{})
	)
	handler := func(_ string, err error) {
		if err != nil {
			errOnce.Do(func() { firstErr = err; close(done) })
			return
		}
		if acked.Add(1) == int64(msgs) {
			errOnce.Do(func() { close(done) })
		}
	}
	payload := make([]byte, size)
	start := time.Now()
	for i := 0; i < msgs && !closed(done); i++ { // done here means a failed ack
		if ctx.Err() != nil || time.Now().After(deadline) {
			break // reported by waitProgress
		}
		if _, err := sc.PublishAsync(replaySubject, payload, handler); err != nil {
			return 0, fmt.Errorf("publish %d: %w", i+1, err)
		}
	}
	if err := waitProgress(ctx, done, deadline, stallTimeout, counter(&acked)); err != nil {
		return 0, err
	}
	if firstErr != nil {
		return 0, fmt.Errorf("PubAck: %w", firstErr)
	}
	return time.Since(start), nil
}

// replayRead subscribes from sequence 1 on a new connection and returns once msgs messages, in
// sequence order, have arrived.
func replayRead(ctx context.Context, url string, msgs int, deadline time.Time) (time.Duration, error) {
	sc, err := stanConnect(url, "compare-replay")
	if err != nil {
		return 0, err
	}
	defer sc.Close()
	var (
		got     atomic.Int64
		badSeq  atomic.Uint64 // first out-of-order sequence, 0 if none
		endOnce sync.Once
		done    = make(chan struct{})
	)
	handler := func(m *stan.Msg) {
		n := got.Add(1)
		if m.Sequence != uint64(n) {
			badSeq.CompareAndSwap(0, m.Sequence)
		}
		if n == int64(msgs) {
			endOnce.Do(func() { close(done) })
		}
	}
	start := time.Now()
	sub, err := sc.Subscribe(replaySubject, handler, stan.DeliverAllAvailable(), stan.MaxInflight(replayMaxInfl))
	if err != nil {
		return 0, err
	}
	defer sub.Close()
	if err := waitProgress(ctx, done, deadline, stallTimeout, counter(&got)); err != nil {
		return 0, err
	}
	d := time.Since(start)
	if seq := badSeq.Load(); seq != 0 {
		return 0, fmt.Errorf("message out of order or missing: got sequence %d", seq)
	}
	return d, nil
}

func counter(n *atomic.Int64) func() (int64, error) {
	return func() (int64, error) { return n.Load(), nil }
}

func closed(c <-chan struct{}) bool {
	select {
	case <-c:
		return true
	default:
		return false
	}
}
