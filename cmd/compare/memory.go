package main

import (
	"bytes"
	"context"
	"fmt"
	"sync"
	"time"
)

const (
	idleConns       = 10_000
	idleSubsPerConn = 10
	// dialWorkers bounds concurrent handshakes: enough to be quick, few enough that the server's
	// listen backlog (somaxconn, 4096 here) never overflows into SYN retransmits.
	dialWorkers  = 32
	dialTimeout  = 10 * time.Second
	openTimeout  = 60 * time.Second // opening all connections; well under the servers' 2 min PING
	countTimeout = 30 * time.Second // /varz catching up with the opened connections
	settleTime   = 2 * time.Second  // let the server's allocator and GC settle before reading RSS
)

// memResult is one server's footprint holding the idle connections.
type memResult struct {
	conns    int
	subs     int
	rss      int64 // VmRSS of the server process
	varzMem  int64 // /varz mem, as the server reports itself
	openTime time.Duration
}

// measureMemory starts spec fresh, holds idleConns connections with idleSubsPerConn
// subscriptions each, and reads the server's memory once /varz shows all of them.
func measureMemory(ctx context.Context, spec serverSpec, logDir string) (memResult, error) {
	var res memResult
	s, err := startServer(ctx, spec, logDir, nil)
	if err != nil {
		return res, err
	}
	defer s.stop()

	start := time.Now()
	conns, err := openConns(ctx, idleConns, func(i int) (*rawConn, error) {
		// The read buffer only has to hold INFO's prefix and PONG; it stays allocated for
		// every idle connection, so it is small.
		return dialRaw(s.addr(), idleSubs(i), 512, dialTimeout)
	})
	defer closeAll(conns)
	if err != nil {
		return res, err
	}
	res.openTime = time.Since(start)

	var v varzInfo
	err = pollUntil(ctx, countTimeout, func() (bool, error) {
		v, err = s.varz()
		return err == nil && v.Connections >= idleConns && v.Subscriptions >= idleConns*idleSubsPerConn, nil
	})
	if err != nil {
		return res, fmt.Errorf("%s /varz shows %d connections, %d subscriptions: %w", spec.name, v.Connections, v.Subscriptions, err)
	}
	select {
	case <-ctx.Done():
		return res, ctx.Err()
	case <-time.After(settleTime):
	}
	if res.rss, err = s.rssBytes(); err != nil {
		return res, err
	}
	if v, err = s.varz(); err != nil {
		return res, err
	}
	res.conns, res.subs, res.varzMem = v.Connections, v.Subscriptions, v.Mem
	return res, nil
}

// openConns opens n connections with dial, from a bounded pool of dialers. On error it returns
// the connections opened so far, for the caller to close.
func openConns(ctx context.Context, n int, dial func(i int) (*rawConn, error)) ([]*rawConn, error) {
	ctx, cancel := context.WithTimeout(ctx, openTimeout)
	defer cancel()
	conns := make([]*rawConn, n)
	next := make(chan int)
	errs := make(chan error, dialWorkers)
	var wg sync.WaitGroup
	for range dialWorkers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				rc, err := dial(i)
				if err != nil {
					errs <- fmt.Errorf("connection %d: %w", i, err)
					return
				}
				conns[i] = rc
			}
		}()
	}
	err := feed(ctx, n, next, errs)
	close(next)
	wg.Wait()
	if err == nil && len(errs) > 0 {
		err = <-errs // a dialer that failed after the last index was handed out
	}
	return conns, err
}

// feed hands out connection indexes until n are given, a dialer fails, or ctx ends.
func feed(ctx context.Context, n int, next chan<- int, errs <-chan error) error {
	for i := range n {
		select {
		case next <- i:
		case err := <-errs:
			return err
		case <-ctx.Done():
			return fmt.Errorf("opening connections: %w", ctx.Err())
		}
	}
	return nil
}

// idleSubs is connection i's subscriptions: SUB idle.<i>.<j> <j>, each on its own subject.
func idleSubs(i int) []byte {
	var b bytes.Buffer
	for j := 1; j <= idleSubsPerConn; j++ {
		fmt.Fprintf(&b, "SUB idle.%d.%d %d\r\n", i, j, j)
	}
	return b.Bytes()
}

func closeAll(conns []*rawConn) {
	for _, c := range conns {
		if c != nil {
			c.close()
		}
	}
}
