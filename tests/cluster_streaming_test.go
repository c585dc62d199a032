package tests

import (
	"fmt"
	"io"
	"testing"
	"time"

	"github.com/nats-io/stan.go"

	"github.com/starling-io/starling/cmd/starling/app"
)

// Streaming runs on one server of a mesh; stan.go clients connected to another server use
// it through the routes (requests, acks, heartbeats and deliveries all cross them).
func TestStreamingThroughRoutes(t *testing.T) {
	a := app.NewMain(io.Discard, io.Discard)
	must(t, a.ParseFlags([]string{"-a", "127.0.0.1", "-p", "-1", "--cluster", "nats://127.0.0.1:-1", "--cluster_name", "s"}))
	must(t, a.Start())
	t.Cleanup(func() { _ = a.Close() })
	seed := "nats://" + a.Server().ClusterAddr().String()
	b := startServer(t, "--cluster", "nats://127.0.0.1:-1", "--cluster_name", "s", "--routes", seed)
	waitFor(t, 5*time.Second, func() error {
		if a.Server().NumRoutes() != 1 || b.Server().NumRoutes() != 1 {
			return fmt.Errorf("routes %d %d", a.Server().NumRoutes(), b.Server().NumRoutes())
		}
		return nil
	})

	onB := func(id string) stan.Conn {
		sc, err := stan.Connect("test-cluster", id, stan.NatsURL(clientURL(b)), stan.ConnectWait(5*time.Second))
		if err != nil {
			t.Fatalf("stan connect through a route: %v", err)
		}
		t.Cleanup(func() { _ = sc.Close() })
		return sc
	}
	pub := onB("pub")
	subB := onB("sub")
	subA, err := stan.Connect("test-cluster", "subA", stan.NatsURL(clientURL(a)))
	must(t, err)
	t.Cleanup(func() { _ = subA.Close() })

	cb, ca := newCollector(), newCollector()
	_, err = subB.Subscribe("orders", cb.handler, stan.DeliverAllAvailable(), stan.DurableName("d"), stan.SetManualAckMode())
	must(t, err)
	_, err = subA.Subscribe("orders", ca.handler, stan.DeliverAllAvailable())
	must(t, err)
	const n = 500
	publishN(t, pub, "orders", 1, n)
	gotB := cb.seqs(t, n, 10*time.Second)
	gotA := ca.seqs(t, n, 10*time.Second)
	if !equalSeqs(gotB, seqRange(1, n)) || !equalSeqs(gotA, seqRange(1, n)) {
		t.Fatalf("sequences through the route: B %d, A %d", len(gotB), len(gotA))
	}
	// A duplicate client ID from the other server is refused while the first is alive.
	if _, err := stan.Connect("test-cluster", "pub", stan.NatsURL(clientURL(a))); err == nil {
		t.Fatal("a live client ID was taken over through the mesh")
	}
}
