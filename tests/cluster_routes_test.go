package tests

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
)

// Servers of one cluster may have different max_payload: it limits what a client publishes
// to its own server, not what a route carries (nats-server reads routes with no payload
// limit). A message published on A larger than B's limit reaches B's subscriber, and the
// route stays up.
func TestClusterRoutedMessageOverPeerMaxPayload(t *testing.T) {
	a, b := newNode(t, "A"), newNode(t, "B")
	small := writeConf(t, "b.conf", "max_payload: 1024\n")
	a.start(a.clusterArgs("mp")...)
	b.start(append(b.clusterArgs("mp", a), "-c", small)...)
	waitMesh(t, a, b)

	ncB := b.dial()
	sub, err := ncB.SubscribeSync("mp.big")
	must(t, err)
	must(t, ncB.Flush())
	pub := a.dial()
	awaitInterest(t, pub, ncB)

	big := bytes.Repeat([]byte("x"), 4096)
	must(t, pub.Publish("mp.big", big))
	must(t, pub.Flush())
	m, err := sub.NextMsg(3 * time.Second)
	if err != nil {
		t.Fatalf("B's subscriber did not get the 4 KiB message published on A: %v", err)
	}
	if !bytes.Equal(m.Data, big) {
		t.Fatalf("got %d bytes, want %d", len(m.Data), len(big))
	}
	// The route survived: no reconnect happened in between.
	if err := b.checkPeers("A"); err != nil {
		t.Fatal(err)
	}
}

// With a raised max_control_line, a client may publish a subject longer than the route
// parser's default line limit; the route must carry it (nats-server allows routes 16 times
// its max_control_line) rather than close as a protocol violation.
func TestClusterRoutedLongSubjectWithRaisedMaxControlLine(t *testing.T) {
	a, b := newNode(t, "A"), newNode(t, "B")
	conf := writeConf(t, "mcl.conf", "max_control_line: 262144\n")
	a.start(append(a.clusterArgs("mcl"), "-c", conf)...)
	b.start(append(b.clusterArgs("mcl", a), "-c", conf)...)
	waitMesh(t, a, b)

	ncB := b.dial()
	sub, err := ncB.SubscribeSync("long.>")
	must(t, err)
	must(t, ncB.Flush())
	pub := a.dial()
	awaitInterest(t, pub, ncB)

	subj := "long." + strings.Repeat("s", 100<<10)
	must(t, pub.Publish(subj, []byte("hi")))
	must(t, pub.Flush())
	m, err := sub.NextMsg(3 * time.Second)
	if err != nil {
		t.Fatalf("B's subscriber did not get the message with a 100 KiB subject published on A: %v", err)
	}
	if m.Subject != subj {
		t.Fatalf("subject of %d bytes, want %d", len(m.Subject), len(subj))
	}
	if err := b.checkPeers("A"); err != nil {
		t.Fatal(err)
	}
}

// A subscriber on B that stopped reading must not slow down what the route from A carries
// for everyone else on B. The route's reader used to wait up to 10 ms at every read buffer
// that delivered to the stuck subscriber (the stall meant for a client publishing to a slow
// reader), so each request from A to a fast responder on B took 10 ms more; nats-server
// stalls only client publishers.
func TestClusterRouteReaderNeverStalls(t *testing.T) {
	a, b := newNode(t, "A"), newNode(t, "B")
	a.start(a.clusterArgs("st")...)
	b.start(b.clusterArgs("st", a)...)
	waitMesh(t, a, b)

	// The stuck subscriber: subscribes, then never reads.
	rawSubscribe(t, b, "stuck", 4096)
	ncB := b.dial()
	_, err := ncB.Subscribe("svc", func(m *nats.Msg) { _ = m.Respond(nil) })
	must(t, err)
	must(t, ncB.Flush())
	pub := a.dial()
	awaitInterest(t, pub, ncB) // B's interest in "stuck" was sent before

	// Fill the stuck subscriber past its stall mark (8 MiB), well below max_pending (64 MiB).
	big := make([]byte, 64<<10)
	for range 512 {
		must(t, pub.Publish("stuck", big))
	}
	must(t, pub.Flush())
	pending := func() int {
		var cz struct {
			Conns []struct {
				Name    string `json:"name"`
				Pending int    `json:"pending_bytes"`
			} `json:"connections"`
		}
		must(t, b.monGet("/connz", &cz))
		for _, c := range cz.Conns {
			if c.Name == "stuck" {
				return c.Pending
			}
		}
		return -1
	}
	last := -1
	waitFor(t, 20*time.Second, func() error {
		p := pending()
		if p != last || p < 0 {
			last = p
			return fmt.Errorf("stuck subscriber's pending bytes still moving: %d", p)
		}
		return nil
	})
	if last < 9<<20 {
		t.Fatalf("stuck subscriber has %d bytes pending, want past the 8 MiB stall mark", last)
	}

	// Each request shares B's read buffer with a message for the stuck subscriber.
	small := make([]byte, 1024)
	slow := 0
	for range 50 {
		must(t, pub.Publish("stuck", small))
		start := time.Now()
		if _, err := pub.Request("svc", nil, 2*time.Second); err != nil {
			t.Fatal(err)
		}
		if time.Since(start) >= 8*time.Millisecond {
			slow++
		}
	}
	if slow > 10 {
		t.Fatalf("%d of 50 requests across the route took 8 ms or more while a subscriber on B was stuck", slow)
	}
}

// TestClusterBacklogThroughRouteInOrder: a subscriber on B that reads nothing while 40 MiB
// arrive from A over the route (below max_pending) is queued a backlog of many chunks; when
// it reads, it gets every message once, in order, intact.
func TestClusterBacklogThroughRouteInOrder(t *testing.T) {
	a, b := newNode(t, "A"), newNode(t, "B")
	a.start(a.clusterArgs("st")...)
	b.start(b.clusterArgs("st", a)...)
	waitMesh(t, a, b)

	br := rawSubscribe(t, b, "late", 0)
	pub := a.dial()
	ncB := b.dial()
	awaitInterest(t, pub, ncB)

	const n, size = 1280, 32 << 10 // 40 MiB
	payload := make([]byte, size)
	for i := range n {
		binary.BigEndian.PutUint64(payload, uint64(i))
		payload[size-1] = byte(i)
		must(t, pub.Publish("late", payload))
	}
	must(t, pub.Flush())

	for i := range n {
		l, err := br.ReadString('\n')
		must(t, err)
		if want := fmt.Sprintf("MSG late 1 %d\r\n", size); l != want {
			t.Fatalf("frame %d: %q, want %q", i, l, want)
		}
		if _, err := io.ReadFull(br, payload); err != nil {
			t.Fatal(err)
		}
		if got := binary.BigEndian.Uint64(payload); got != uint64(i) || payload[size-1] != byte(i) {
			t.Fatalf("frame %d carries message %d", i, got)
		}
		if _, err := br.Discard(2); err != nil {
			t.Fatal(err)
		}
	}
}

// rawSubscribe connects a raw socket to n named name, subscribed to subject name with sid
// 1 (a socket receive buffer of rcvBuf bytes unless 0), and returns its reader once the
// subscription is in place; it reads within 30 s of that or fails. Closed at the test's end.
func rawSubscribe(t *testing.T, n *node, name string, rcvBuf int) *bufio.Reader {
	t.Helper()
	raw, err := net.Dial("tcp", n.hostPort())
	must(t, err)
	t.Cleanup(func() { raw.Close() })
	if rcvBuf > 0 {
		_ = raw.(*net.TCPConn).SetReadBuffer(rcvBuf)
	}
	br := bufio.NewReaderSize(raw, 1<<16)
	_, _ = fmt.Fprintf(raw, "CONNECT {\"verbose\":false,\"name\":%q}\r\nSUB %s 1\r\nPING\r\n", name, name)
	_ = raw.SetReadDeadline(time.Now().Add(30 * time.Second))
	for {
		l, err := br.ReadString('\n')
		must(t, err)
		if strings.HasPrefix(l, "PONG") {
			return br
		}
	}
}
