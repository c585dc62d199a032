package tests

import (
	"bytes"
	"strings"
	"testing"
	"time"
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
