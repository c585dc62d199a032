package core

import (
	"bufio"
	"fmt"
	"net"
	"net/url"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// routePeer reads one side of a fake peer's route connection: it counts the RMSGs on
// subject and reports when the server shut its side (EOF or an error).
type routePeer struct {
	nc   net.Conn
	msgs atomic.Int64
	eof  chan struct{}
	err  error
}

func readRoute(nc net.Conn, subject string) *routePeer {
	p := &routePeer{nc: nc, eof: make(chan struct{})}
	go func() {
		defer close(p.eof)
		br := bufio.NewReader(nc)
		for {
			line, err := br.ReadString('\n')
			if err != nil {
				p.err = err
				return
			}
			f := strings.Fields(line)
			if len(f) < 4 || f[0] != "RMSG" {
				continue
			}
			n, err := strconv.Atoi(f[len(f)-1])
			if err != nil {
				p.err = err
				return
			}
			if _, err := br.Discard(n + 2); err != nil {
				p.err = err
				return
			}
			if f[2] == subject {
				p.msgs.Add(1)
			}
		}
	}()
	return p
}

// simultaneousDial starts a server whose route is configured to a fake peer, which dials it
// too: lost is the peer's own dial, registered first (with extra sent on it); dialed is the
// one the server made, which waits for the peer's INFO, returned as info — the peer's id is
// larger than any server's, so once info is written on dialed, that route wins the
// tie-break and lost is retired.
func simultaneousDial(t *testing.T, extra string) (s *Server, lost, dialed net.Conn, info string) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = ln.Close() })
	srvs := startMesh(t, 1, func(_ int, o *Options) {
		o.Cluster.Routes = []*url.URL{{Scheme: "nats-route", Host: ln.Addr().String()}}
	})
	s = srvs[0]
	fid := "Z" + strings.Repeat("Y", 55)
	info = `INFO {"server_id":"` + fid + `","cluster":"mesh"}` + "\r\n"
	lost = fakeRoute(t, s, fid, extra)
	if dialed, err = ln.Accept(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = dialed.Close() })
	waitFor(t, 2*time.Second, func() bool { return s.NumRoutes() == 1 })
	return s, lost, dialed, info
}

// A simultaneous dial leaves two routes between two servers, and the tie-break retires one.
// What either side sent on the loser before it learned the outcome must still arrive: the
// server writes what it queued there, shuts its side, and reads the peer's until the peer
// shuts its own. (Before, it closed the loser at once: a request or reply crossing it in that
// millisecond was lost.)
func TestRetiredRouteLosesNothingInFlight(t *testing.T) {
	s, lost, dialed, info := simultaneousDial(t, "RS+ $G bar\r\n")
	onLoser := readRoute(lost, "bar")
	onWinner := readRoute(dialed, "bar")

	var foo atomic.Int64
	local := mustConnect(t, s)
	if _, err := local.Subscribe("foo", "", func(Msg) { foo.Add(1) }); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 2*time.Second, func() bool { return interest(s, "bar") == 1 })

	// In flight both ways on the loser: s's messages to the peer, queued for the writer,
	// and the peer's messages to s's subscriber.
	const n = 500
	var batch strings.Builder
	for i := range n {
		fmt.Fprintf(&batch, "RMSG $G foo 3\r\n%03d\r\n", i)
	}
	for range n {
		_ = local.Publish("bar", "", nil, []byte("xyz"))
	}
	local.Flush()
	if _, err := lost.Write([]byte(batch.String())); err != nil {
		t.Fatal(err)
	}
	// The peer answers s's dial: s keeps the connection it dialed and retires the other.
	if _, err := dialed.Write([]byte(info)); err != nil {
		t.Fatal(err)
	}
	select {
	case <-onLoser.eof:
	case <-time.After(3 * time.Second):
		t.Fatal("the retired route was never shut")
	}
	if onLoser.err == nil || !strings.Contains(onLoser.err.Error(), "EOF") {
		t.Fatalf("the retired route ended with %v, want EOF (a half-close, not a reset)", onLoser.err)
	}
	if got := onLoser.msgs.Load(); got != n {
		t.Fatalf("the peer got %d of %d messages queued on the retired route", got, n)
	}
	// The peer, not having decided yet, still sends on the loser; then it shuts its side too.
	if _, err := lost.Write([]byte(batch.String())); err != nil {
		t.Fatalf("the retired route no longer takes the peer's messages: %v", err)
	}
	if err := lost.(*net.TCPConn).CloseWrite(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 3*time.Second, func() bool { return foo.Load() == 2*n })
	// The winner carries the traffic from now on.
	if _, err := dialed.Write([]byte("RS+ $G bar\r\n")); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 2*time.Second, func() bool { return interest(s, "bar") == 1 })
	for range n {
		_ = local.Publish("bar", "", nil, []byte("xyz"))
	}
	local.Flush()
	waitFor(t, 2*time.Second, func() bool { return onWinner.msgs.Load() == n })
	if got := s.NumRoutes(); got != 1 {
		t.Fatalf("%d routes, want 1", got)
	}
}
