package core

import (
	"bufio"
	"context"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
)

// A client closed in the middle of a read buffer handles nothing more of it: here its own
// echo passes max_pending, and the PUB after it in the same write reaches nobody. Before,
// the rest of the buffer went on as if the client were open: the subscriber of y got
// "after" from a connection closed as a slow consumer.
func TestClosedClientStopsMidBuffer(t *testing.T) {
	s, err := New(Options{Host: "127.0.0.1", Port: -1, MaxPayload: 100, MaxPending: 200})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Shutdown(context.Background()) })
	sub, err := nats.Connect(s.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	sy, err := sub.SubscribeSync("y")
	if err != nil {
		t.Fatal(err)
	}
	if err := sub.Flush(); err != nil {
		t.Fatal(err)
	}

	raw, err := net.Dial("tcp", s.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	_ = raw.SetDeadline(time.Now().Add(5 * time.Second))
	r := bufio.NewReader(raw)
	if _, err := raw.Write([]byte("CONNECT {\"verbose\":false,\"pedantic\":false}\r\nSUB x 1\r\nPING\r\n")); err != nil {
		t.Fatal(err)
	}
	for line := ""; line != "PONG\r\n"; {
		if line, err = r.ReadString('\n'); err != nil {
			t.Fatal(err)
		}
	}
	// One write, one read buffer: two echoes of 100 bytes pass max_pending (200), which
	// closes the publisher before its PUB on y.
	payload := strings.Repeat("p", 100)
	batch := "PUB x 100\r\n" + payload + "\r\nPUB x 100\r\n" + payload + "\r\nPUB y 5\r\nafter\r\n"
	if _, err := raw.Write([]byte(batch)); err != nil {
		t.Fatal(err)
	}
	if m, err := sy.NextMsg(500 * time.Millisecond); err == nil {
		t.Fatalf("a client closed as a slow consumer still published %q on y", m.Data)
	}
	reason := ""
	waitFor(t, 2*time.Second, func() bool {
		z, err := s.Connz(ConnzOptions{State: "closed"})
		if err != nil || len(z.Conns) == 0 {
			return false
		}
		reason = z.Conns[len(z.Conns)-1].Reason
		return true
	})
	if reason != reasonSlowConsumerPending {
		t.Fatalf("the publisher was closed for %q, want %q", reason, reasonSlowConsumerPending)
	}
}
