package main

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"testing"
	"time"
)

// fakeServer accepts connections on a random loopback port, answers the handshake and then
// calls serve with each connection.
func fakeServer(t *testing.T, serve func(i int, c net.Conn)) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	t.Cleanup(func() { l.Close(); wg.Wait() })
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := 0; ; i++ {
			c, err := l.Accept()
			if err != nil {
				return
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer c.Close()
				// An INFO longer than the client's read buffer must be skipped, not fatal.
				fmt.Fprintf(c, "INFO {\"pad\":%q}\r\n", strings.Repeat("x", 2000))
				r := bufio.NewReader(c)
				for {
					line, err := r.ReadString('\n')
					if err != nil {
						return
					}
					if strings.HasPrefix(line, "PING") {
						break
					}
				}
				fmt.Fprint(c, "PONG\r\n")
				serve(i, c)
			}()
		}
	}()
	return l.Addr().String()
}

func TestQueueGroupCountsEveryMessageOnce(t *testing.T) {
	const members, perMember = 3, 1000
	addr := fakeServer(t, func(i int, c net.Conn) {
		var b strings.Builder
		for range perMember {
			b.WriteString("MSG bench.q 1 16\r\n0123456789abcdef\r\n")
		}
		b.WriteString("PING\r\n") // must be answered without disturbing the count
		c.Write([]byte(b.String()))
		io.Copy(io.Discard, c) // hold the connection until the client closes it
	})
	g, err := joinQueueGroup(addr, "bench.q", queueName, members, members*perMember, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	select {
	case <-g.done:
	case <-time.After(5 * time.Second):
		t.Fatalf("got %d of %d messages", g.total.Load(), members*perMember)
	}
	g.close()
	for i, n := range g.counts {
		if n != perMember {
			t.Errorf("member %d counted %d, want %d", i, n, perMember)
		}
	}
	if g.span() < 0 {
		t.Errorf("negative span %v", g.span())
	}
}

func TestDialRawReportsServerError(t *testing.T) {
	addr := fakeServer(t, func(_ int, c net.Conn) { io.Copy(io.Discard, c) })
	// The fake answers PONG, so a server error has to come before it: use a raw listener.
	rc, err := dialRaw(addr, nil, 512, 5*time.Second)
	if err != nil {
		t.Fatalf("handshake with a well-behaved server: %v", err)
	}
	rc.close()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	go func() {
		c, err := l.Accept()
		if err == nil {
			fmt.Fprint(c, "INFO {}\r\n-ERR 'Authorization Violation'\r\n")
			io.Copy(io.Discard, c) // until the client gives up
			c.Close()
		}
	}()
	if _, err := dialRaw(l.Addr().String(), nil, 512, 5*time.Second); err == nil || !strings.Contains(err.Error(), "Authorization") {
		t.Fatalf("want the server's -ERR, got %v", err)
	}
}
