package core

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// A closed route's traffic stays in /varz in_msgs and the like, and does not move into
// the clients' figures (in_client_msgs and the like).
func TestVarzClosedRouteTraffic(t *testing.T) {
	srvs := startMesh(t, 2, nil)
	c := mustConnect(t, srvs[1])
	var got atomic.Int64
	if _, err := c.Subscribe("r", "", func(Msg) { got.Add(1) }); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 2*time.Second, func() bool { return interest(srvs[0], "r") == 1 })
	pub := mustConnect(t, srvs[0])
	for range 10 {
		_ = pub.Publish("r", "", nil, []byte("12345"))
	}
	pub.Flush()
	waitFor(t, 2*time.Second, func() bool { return got.Load() == 10 })
	before := srvs[1].Varz()
	if before.InMsgs-before.InClientMsgs != 10 || before.InBytes-before.InClientBytes != 50 {
		t.Fatalf("route traffic in: %d msgs %d bytes, want 10 and 50", before.InMsgs-before.InClientMsgs, before.InBytes-before.InClientBytes)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = srvs[0].Shutdown(ctx)
	waitFor(t, 2*time.Second, func() bool { return srvs[1].NumRoutes() == 0 })
	after := srvs[1].Varz()
	if after.InClientMsgs != before.InClientMsgs || after.InClientBytes != before.InClientBytes ||
		after.OutClientMsgs != before.OutClientMsgs || after.OutClientBytes != before.OutClientBytes {
		t.Errorf("client figures changed with the route's close: before %d/%d/%d/%d, after %d/%d/%d/%d",
			before.InClientMsgs, before.InClientBytes, before.OutClientMsgs, before.OutClientBytes,
			after.InClientMsgs, after.InClientBytes, after.OutClientMsgs, after.OutClientBytes)
	}
	if after.InMsgs < before.InMsgs || after.InBytes < before.InBytes || after.OutMsgs < before.OutMsgs || after.OutBytes < before.OutBytes {
		t.Errorf("totals went back: before %d/%d/%d/%d, after %d/%d/%d/%d", before.InMsgs, before.InBytes,
			before.OutMsgs, before.OutBytes, after.InMsgs, after.InBytes, after.OutMsgs, after.OutBytes)
	}
}

// /varz traffic totals never go back while connections close: a closing connection leaves
// the open connections' sum and joins the closed ones' in one step, as Varz reads them
// (they dipped by its traffic, which prometheus-nats-exporter and the dashboard saw).
func TestVarzTotalsNeverGoBack(t *testing.T) {
	s, err := New(Options{Host: "127.0.0.1", Port: -1})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Shutdown(t.Context()) })
	var stop atomic.Bool
	var wg sync.WaitGroup
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for !stop.Load() {
				c, err := s.Connect("churn")
				if err != nil {
					return
				}
				_ = c.Publish("x", "", nil, []byte("12345"))
				c.Close()
			}
		}()
	}
	var bad atomic.Int64
	for range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var last int64
			for !stop.Load() {
				v := s.Varz()
				if v.InMsgs < last {
					bad.Add(1)
				}
				last = v.InMsgs
			}
		}()
	}
	time.Sleep(3 * time.Second)
	stop.Store(true)
	wg.Wait()
	if n := bad.Load(); n > 0 {
		t.Fatalf("in_msgs went back %d times", n)
	}
}

// /varz remotes counts the servers routed to, as nats-server's does (it was always 0).
func TestVarzRemotes(t *testing.T) {
	srvs := startMesh(t, 3, nil)
	for i, s := range srvs {
		if v := s.Varz(); v.Remotes != 2 || v.Routes != 2 {
			t.Errorf("server %d: remotes %d, routes %d; want 2 and 2", i, v.Remotes, v.Routes)
		}
	}
}

// /routez names each route's compression "off", as nats-server names an uncompressed route
// (prometheus-nats-exporter's compression label); it was left out.
func TestRoutezCompressionOff(t *testing.T) {
	srvs := startMesh(t, 2, nil)
	rs := srvs[0].Routez(false, false)
	if len(rs) != 1 || rs[0].Compression != "off" {
		t.Fatalf("routez: %+v", rs)
	}
}
