package tests

import (
	"errors"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
)

// A subscriber that keeps reading is not cut off as a slow consumer however small
// max_pending is (here a few messages' worth): a burst of publishes in one read buffer
// waits for the subscriber's writer to drain instead of piling past max_pending before
// the writer was even woken, as nats-server stalls the publisher per delivery.
func TestSmallMaxPendingKeepsHealthySubscriber(t *testing.T) {
	m := startServer(t, "--max_pending", "64KB", "--max_payload", "8KB")
	pub := connect(t, m)
	sub := connect(t, m)
	var got atomic.Int64
	_, err := sub.Subscribe("burst", func(*nats.Msg) { got.Add(1) })
	must(t, err)
	must(t, sub.Flush())
	const n = 400
	payload := make([]byte, 8000)
	for range n {
		must(t, pub.Publish("burst", payload))
	}
	must(t, pub.Flush())
	waitFor(t, 10*time.Second, func() error {
		if !sub.IsConnected() {
			return errors.New("the subscriber was disconnected")
		}
		if got.Load() != n {
			return fmt.Errorf("subscriber got %d of %d", got.Load(), n)
		}
		return nil
	})
	if v := m.Server().Varz(); v.SlowConsumers != 0 {
		t.Fatalf("slow_consumers = %d, want 0", v.SlowConsumers)
	}
}

// A subscriber that stops reading is cut off once its pending bytes pass max_pending; the
// publisher and a healthy subscriber keep going and lose nothing.
func TestSlowConsumerCutOff(t *testing.T) {
	m := startServer(t, "--max_pending", "1MB")
	pub := connect(t, m)
	healthy := connect(t, m)
	var got atomic.Int64
	_, err := healthy.Subscribe("flood", func(*nats.Msg) { got.Add(1) })
	must(t, err)
	must(t, healthy.Flush())

	// The slow one: a raw socket that subscribes and never reads again.
	raw, err := net.Dial("tcp", m.Server().Addr().String())
	must(t, err)
	defer raw.Close()
	_, err = raw.Write([]byte("CONNECT {\"verbose\":false}\r\nSUB flood 1\r\nPING\r\n"))
	must(t, err)
	waitFor(t, 2*time.Second, func() error {
		if n := numClientSubs(m); n != 2 {
			return fmt.Errorf("%d subscriptions", n)
		}
		return nil
	})

	const n = 20000
	payload := make([]byte, 1024)
	for range n {
		must(t, pub.Publish("flood", payload))
	}
	must(t, pub.Flush())
	waitFor(t, 10*time.Second, func() error {
		if got.Load() != n {
			return fmt.Errorf("healthy subscriber got %d of %d", got.Load(), n)
		}
		return nil
	})
	v := m.Server().Varz()
	if v.SlowConsumers != 1 {
		t.Fatalf("slow_consumers = %d, want 1", v.SlowConsumers)
	}
	if !pub.IsConnected() || !healthy.IsConnected() {
		t.Fatal("publisher or healthy subscriber was disconnected")
	}
	cz, err := m.Server().Connz(coreConnzClosed())
	must(t, err)
	found := false
	for _, c := range cz.Conns {
		if c.Reason == "Slow Consumer (Pending Bytes)" {
			found = true
		}
	}
	if !found {
		t.Fatalf("no closed connection with reason slow consumer in %+v", cz.Conns)
	}
}

func TestThousandConnections(t *testing.T) {
	m := startServer(t)
	const conns = 1000
	ncs := make([]*nats.Conn, conns)
	var wg sync.WaitGroup
	var failed atomic.Int64
	sem := make(chan struct{}, 64)
	var received atomic.Int64
	for i := range conns {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			nc, err := nats.Connect(clientURL(m), nats.Timeout(10*time.Second))
			if err != nil {
				failed.Add(1)
				return
			}
			ncs[i] = nc
			if _, err := nc.Subscribe("all", func(*nats.Msg) { received.Add(1) }); err != nil {
				failed.Add(1)
				return
			}
			if err := nc.Flush(); err != nil {
				failed.Add(1)
			}
		}()
	}
	wg.Wait()
	defer func() {
		for _, nc := range ncs {
			if nc != nil {
				nc.Close()
			}
		}
	}()
	if failed.Load() > 0 {
		t.Fatalf("%d of %d connections failed", failed.Load(), conns)
	}
	if n := m.Server().NumClients(); n != conns {
		t.Fatalf("server has %d clients, want %d", n, conns)
	}
	must(t, ncs[0].Publish("all", []byte("x")))
	must(t, ncs[0].Flush())
	waitFor(t, 10*time.Second, func() error {
		if received.Load() != conns {
			return fmt.Errorf("%d of %d received", received.Load(), conns)
		}
		return nil
	})
}

func TestReconnectAfterServerRestart(t *testing.T) {
	// Pick a fixed free port so the restarted server is at the same address.
	portArg := fmt.Sprint(freePort(t))
	m := startServer(t, "-p", portArg)

	reconnected := make(chan struct{}, 1)
	nc := connect(t, m, nats.ReconnectWait(50*time.Millisecond), nats.MaxReconnects(-1),
		nats.ReconnectHandler(func(*nats.Conn) { reconnected <- struct{}{} }))
	ch := make(chan *nats.Msg, 4)
	_, err := nc.ChanSubscribe("again", ch)
	must(t, err)
	must(t, nc.Flush())
	must(t, m.Close())

	m2 := startServer(t, "-p", portArg)
	select {
	case <-reconnected:
	case <-time.After(10 * time.Second):
		t.Fatal("client did not reconnect")
	}
	// The subscription was re-created by the client on the new server.
	pub := connect(t, m2)
	waitFor(t, 5*time.Second, func() error {
		if numClientSubs(m2) < 1 {
			return errors.New("subscription not restored yet")
		}
		return nil
	})
	must(t, pub.Publish("again", []byte("back")))
	must(t, pub.Flush())
	if got := recvN(t, ch, 1, 5*time.Second)[0]; string(got.Data) != "back" {
		t.Fatalf("got %q", got.Data)
	}
}

func TestLameDuckMode(t *testing.T) {
	m := startServer(t, "--lame_duck_duration", "2s", "--lame_duck_grace_period", "500ms")
	ldm := make(chan struct{}, 1)
	closed := make(chan struct{})
	nc := connect(t, m, nats.NoReconnect(),
		nats.LameDuckModeHandler(func(*nats.Conn) { ldm <- struct{}{} }),
		nats.ClosedHandler(func(*nats.Conn) { close(closed) }))
	must(t, nc.Flush())
	url := clientURL(m) // empty once the listener is closed: nats.go would dial localhost:4222
	go func() { _ = m.Server().LameDuck(t.Context()) }()
	select {
	case <-ldm:
	case <-time.After(5 * time.Second):
		t.Fatal("lame duck INFO not seen by the client")
	}
	// New connections are refused while in lame duck mode.
	if _, err := nats.Connect(url, nats.Timeout(500*time.Millisecond)); err == nil {
		t.Fatal("connected to a lame duck server")
	}
	select {
	case <-closed:
	case <-time.After(5 * time.Second):
		t.Fatal("client not closed by lame duck")
	}
	select {
	case <-m.Server().Done():
	case <-time.After(5 * time.Second):
		t.Fatal("server did not shut down after lame duck")
	}
}
