package core

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/url"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
)

// startMesh starts n servers: the first alone, each other one with the first as its only
// seed, and waits until every server has a route to every other.
func startMesh(t testing.TB, n int, tweak func(i int, o *Options)) []*Server {
	t.Helper()
	var srvs []*Server
	var seed *url.URL
	for i := range n {
		o := Options{Host: "127.0.0.1", Port: -1, ServerName: fmt.Sprintf("s%d", i),
			Cluster: &ClusterOptions{Host: "127.0.0.1", Port: -1, Name: "mesh"}}
		if seed != nil {
			o.Cluster.Routes = []*url.URL{seed}
		}
		if tweak != nil {
			tweak(i, &o)
		}
		s, err := New(o)
		if err != nil {
			t.Fatal(err)
		}
		if err := s.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			_ = s.Shutdown(ctx)
		})
		if seed == nil {
			seed = &url.URL{Scheme: "nats-route", Host: s.ClusterAddr().String()}
		}
		srvs = append(srvs, s)
	}
	waitFor(t, 5*time.Second, func() bool {
		for _, s := range srvs {
			if s.NumRoutes() != n-1 {
				return false
			}
		}
		return true
	})
	return srvs
}

func waitFor(t testing.TB, d time.Duration, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("condition not met within %v", d)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// interest reports whether s would send subj anywhere (a local or route subscription).
func interest(s *Server, subj string) int {
	r := s.gacc.subs.Match([]byte(subj))
	n := len(r.Plain)
	for _, q := range r.Queues {
		n += len(q.Members)
	}
	return n
}

func mustConnect(t testing.TB, s *Server) *Conn {
	t.Helper()
	c, err := s.Connect("test")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c
}

func TestRouteMeshForwardsOnce(t *testing.T) {
	srvs := startMesh(t, 3, nil)
	var got [3]atomic.Int64
	for i, s := range srvs[1:] {
		c := mustConnect(t, s)
		if _, err := c.Subscribe("foo.*", "", func(Msg) { got[i+1].Add(1) }); err != nil {
			t.Fatal(err)
		}
		if _, err := c.Subscribe("foo.>", "", func(Msg) { got[i+1].Add(1) }); err != nil {
			t.Fatal(err)
		}
	}
	// Both remote servers' interest has reached s0 (one route sub per subject per server).
	waitFor(t, 2*time.Second, func() bool { return interest(srvs[0], "foo.bar") == 4 })
	pub := mustConnect(t, srvs[0])
	const n = 1000
	for range n {
		_ = pub.Publish("foo.bar", "", nil, []byte("x"))
	}
	pub.Flush()
	waitFor(t, 2*time.Second, func() bool { return got[1].Load() == 2*n && got[2].Load() == 2*n })
	time.Sleep(50 * time.Millisecond)
	if got[1].Load() != 2*n || got[2].Load() != 2*n {
		t.Fatalf("duplicates: %d %d", got[1].Load(), got[2].Load())
	}
}

func TestRouteQueuePrefersLocalAndDeliversOnce(t *testing.T) {
	srvs := startMesh(t, 3, nil)
	var got [3]atomic.Int64
	for i, s := range srvs {
		c := mustConnect(t, s)
		for range 2 {
			if _, err := c.Subscribe("work", "q", func(Msg) { got[i].Add(1) }); err != nil {
				t.Fatal(err)
			}
		}
	}
	waitFor(t, 2*time.Second, func() bool { return interest(srvs[0], "work") == 4 })
	pub := mustConnect(t, srvs[0])
	for range 100 {
		_ = pub.Publish("work", "", nil, nil)
	}
	if got[0].Load() != 100 || got[1].Load()+got[2].Load() != 0 {
		t.Fatalf("local member not preferred: %d %d %d", got[0].Load(), got[1].Load(), got[2].Load())
	}
	// Publish from a server with no member: each message to exactly one remote member.
	srvs2 := startMesh(t, 3, nil)
	var rem [3]atomic.Int64
	for i, s := range srvs2[1:] {
		c := mustConnect(t, s)
		if _, err := c.Subscribe("work", "q", func(Msg) { rem[i+1].Add(1) }); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, 2*time.Second, func() bool { return interest(srvs2[0], "work") == 2 })
	pub2 := mustConnect(t, srvs2[0])
	const n = 2000
	for range n {
		_ = pub2.Publish("work", "", nil, nil)
	}
	pub2.Flush()
	waitFor(t, 2*time.Second, func() bool { return rem[1].Load()+rem[2].Load() == n })
	time.Sleep(50 * time.Millisecond)
	if a, b := rem[1].Load(), rem[2].Load(); a+b != n || a < n/4 || b < n/4 {
		t.Fatalf("queue spread %d/%d of %d", a, b, n)
	}
}

func TestRouteUnsubscribeAndRouteLoss(t *testing.T) {
	srvs := startMesh(t, 2, nil)
	c := mustConnect(t, srvs[1])
	sub, _ := c.Subscribe("a", "", func(Msg) {})
	waitFor(t, 2*time.Second, func() bool { return interest(srvs[0], "a") == 1 })
	_ = sub.Unsubscribe()
	waitFor(t, 2*time.Second, func() bool { return interest(srvs[0], "a") == 0 })
	_, _ = c.Subscribe("b", "", func(Msg) {})
	waitFor(t, 2*time.Second, func() bool { return interest(srvs[0], "b") == 1 })
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = srvs[1].Shutdown(ctx)
	waitFor(t, 2*time.Second, func() bool { return interest(srvs[0], "b") == 0 && srvs[0].NumRoutes() == 0 })
}

func TestRouteRequestReplyAcrossServers(t *testing.T) {
	srvs := startMesh(t, 3, nil)
	resp := mustConnect(t, srvs[2])
	if _, err := resp.Subscribe("svc", "", func(m Msg) {
		_ = resp.Publish(string(m.Reply), "", nil, append([]byte("re:"), m.Data...))
		resp.Flush()
	}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 2*time.Second, func() bool { return interest(srvs[0], "svc") == 1 })
	req := mustConnect(t, srvs[0])
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	m, err := req.Request(ctx, "svc", nil, []byte("hi"))
	if err != nil {
		t.Fatal(err)
	}
	if string(m.Data) != "re:hi" {
		t.Fatalf("reply %q", m.Data)
	}
}

func TestRouteAuthRejectsWrongPassword(t *testing.T) {
	srvs := startMesh(t, 2, func(i int, o *Options) {
		o.Cluster.Username, o.Cluster.Password = "r", "secret"
	})
	_ = srvs
	// A third server with the wrong password never joins.
	bad, err := New(Options{Host: "127.0.0.1", Port: -1, Cluster: &ClusterOptions{
		Host: "127.0.0.1", Port: -1, Name: "mesh", Username: "r", Password: "wrong",
		Routes: []*url.URL{{Scheme: "nats-route", Host: srvs[0].ClusterAddr().String()}}}})
	if err != nil {
		t.Fatal(err)
	}
	if err := bad.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = bad.Shutdown(context.Background()) }()
	time.Sleep(500 * time.Millisecond)
	if bad.NumRoutes() != 0 || srvs[0].NumRoutes() != 1 {
		t.Fatalf("routes: bad %d, s0 %d", bad.NumRoutes(), srvs[0].NumRoutes())
	}
}

func TestRouteConnectURLs(t *testing.T) {
	srvs := startMesh(t, 3, nil)
	waitFor(t, 2*time.Second, func() bool {
		srvs[0].mu.Lock()
		defer srvs[0].mu.Unlock()
		return len(srvs[0].connectURLs()) == 3
	})
	v := srvs[0].Varz()
	if v.Routes != 2 || v.Cluster.Name != "mesh" || v.Cluster.Port != srvs[0].ClusterAddr().Port || len(v.ConnectURLs) != 3 {
		t.Fatalf("varz routes %d cluster %+v urls %v", v.Routes, v.Cluster, v.ConnectURLs)
	}
	c := mustConnect(t, srvs[1])
	_, _ = c.Subscribe("count", "", func(Msg) {})
	waitFor(t, 2*time.Second, func() bool { return interest(srvs[0], "count") == 1 })
	pub := mustConnect(t, srvs[0])
	for range 10 {
		_ = pub.Publish("count", "", nil, []byte("12345"))
	}
	pub.Flush()
	waitFor(t, 2*time.Second, func() bool {
		rs := srvs[0].Routez(true, false)
		for _, r := range rs {
			if r.RemoteID == srvs[1].ID() {
				return r.OutMsgs == 10 && r.OutBytes == 50 && r.NumSubs >= 1
			}
		}
		return false
	})
	if v := srvs[0].Varz(); v.OutMsgs < 10 {
		t.Fatalf("varz out_msgs %d", v.OutMsgs)
	}
}

// BenchmarkRouteForward: an in-process publisher on one server, a subscriber on another;
// every message crosses a real route socket (encode, write, read, parse, match, deliver).
func BenchmarkRouteForward(b *testing.B) {
	for _, size := range []int{16, 1024} {
		b.Run(fmt.Sprintf("%dB", size), func(b *testing.B) {
			t := &testing.T{}
			srvs := startMesh(t, 2, nil)
			defer func() {
				for _, s := range srvs {
					_ = s.Shutdown(context.Background())
				}
			}()
			var got atomic.Int64
			sc, _ := srvs[1].Connect("sub")
			_, _ = sc.Subscribe("bench", "", func(Msg) { got.Add(1) })
			for interest(srvs[0], "bench") == 0 {
				time.Sleep(time.Millisecond)
			}
			pub, _ := srvs[0].Connect("pub")
			msg := make([]byte, size)
			b.SetBytes(int64(size))
			b.ReportAllocs()
			n := int64(0)
			for b.Loop() {
				_ = pub.Publish("bench", "", nil, msg)
				if n++; n%64 == 0 {
					pub.Flush()
					for n-got.Load() > 512 {
						time.Sleep(10 * time.Microsecond)
					}
				}
			}
			pub.Flush()
			for got.Load() < n {
				time.Sleep(100 * time.Microsecond)
			}
		})
	}
}

func TestRouteReconnectsToRestartedSeed(t *testing.T) {
	srvs := startMesh(t, 2, nil)
	addr := srvs[0].ClusterAddr()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = srvs[0].Shutdown(ctx)
	waitFor(t, 2*time.Second, func() bool { return srvs[1].NumRoutes() == 0 })
	time.Sleep(300 * time.Millisecond) // a failed dial or two: the backoff grows
	again, err := New(Options{Host: "127.0.0.1", Port: -1, Cluster: &ClusterOptions{Host: "127.0.0.1", Port: addr.Port, Name: "mesh"}})
	if err != nil {
		t.Fatal(err)
	}
	if err := again.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = again.Shutdown(context.Background()) }()
	waitFor(t, 5*time.Second, func() bool { return again.NumRoutes() == 1 && srvs[1].NumRoutes() == 1 })
}

// A server entering lame duck mode tells the others, which stop advertising its client URLs.
func TestRouteLameDuckWithdrawsURLs(t *testing.T) {
	srvs := startMesh(t, 2, func(_ int, o *Options) {
		o.LameDuckDuration, o.LameDuckGracePeriod = time.Second, 500*time.Millisecond
	})
	urls := func() []string {
		srvs[0].mu.Lock()
		defer srvs[0].mu.Unlock()
		return srvs[0].connectURLs()
	}
	waitFor(t, 2*time.Second, func() bool { return len(urls()) == 2 })
	go func() { _ = srvs[1].LameDuck(context.Background()) }()
	waitFor(t, 2*time.Second, func() bool { return len(urls()) == 1 })
	if u := urls(); u[0] != srvs[0].urls[0] {
		t.Fatalf("left %v", u)
	}
}

// A server in lame duck mode never advertises fewer servers to its clients than when it
// began: a peer that leaves stays in its connect_urls (its clients are about to go elsewhere
// and need every server they know), one that joins is added, and its own URL stays out.
func TestRouteLameDuckKeepsPeerURLs(t *testing.T) {
	srvs := startMesh(t, 3, func(_ int, o *Options) {
		o.LameDuckDuration, o.LameDuckGracePeriod = time.Minute+time.Second, time.Minute // grace strictly lower, as nats-server
	})
	ldm := srvs[0]
	urls := func() []string {
		ldm.mu.Lock()
		defer ldm.mu.Unlock()
		return ldm.connectURLs()
	}
	waitFor(t, 2*time.Second, func() bool { return len(urls()) == 3 })
	// A client keeps the lame duck in its grace period (without one it shuts down at once).
	nc, err := net.Dial("tcp", ldm.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	if _, err := nc.Write([]byte("CONNECT {\"verbose\":false}\r\nPING\r\n")); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 2*time.Second, func() bool { return ldm.NumClients() == 1 })
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	go func() { _ = ldm.LameDuck(ctx) }()
	waitFor(t, 2*time.Second, func() bool { return len(urls()) == 2 }) // its own URL withdrawn
	want := []string{srvs[1].urls[0], srvs[2].urls[0]}
	slices.Sort(want)
	if got := urls(); !slices.Equal(got, want) {
		t.Fatalf("lame duck connect_urls %v, want %v", got, want)
	}

	if err := srvs[2].Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 5*time.Second, func() bool { return ldm.NumRoutes() == 1 })
	if got := urls(); !slices.Contains(got, srvs[2].urls[0]) {
		t.Fatalf("lame duck connect_urls %v dropped the server that left (%s)", got, srvs[2].urls[0])
	}

	seed := &url.URL{Scheme: "nats-route", Host: srvs[1].ClusterAddr().String()}
	// Not a port the kernel may hand out again: the lame duck closed its client listener and
	// s2 is gone, and a late server on either's port would advertise that very URL (a CI flake).
	port := freePortExcept(t, ldm.urls[0], srvs[2].urls[0])
	late, err := New(Options{Host: "127.0.0.1", Port: port, ServerName: "s3",
		Cluster: &ClusterOptions{Host: "127.0.0.1", Port: -1, Name: "mesh", Routes: []*url.URL{seed}}})
	if err != nil {
		t.Fatal(err)
	}
	if err := late.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = late.Shutdown(context.Background()) })
	waitFor(t, 5*time.Second, func() bool { return slices.Contains(urls(), late.urls[0]) })
	if got := urls(); len(got) != 3 || slices.Contains(got, ldm.urls[0]) {
		t.Fatalf("lame duck connect_urls %v, want s1, s2 (gone) and s3", got)
	}
}

// freePortExcept returns a free local TCP port whose 127.0.0.1 URL is none of taken.
func freePortExcept(t testing.TB, taken ...string) int {
	t.Helper()
	for range 100 {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		port := ln.Addr().(*net.TCPAddr).Port
		ln.Close()
		if !slices.Contains(taken, fmt.Sprintf("127.0.0.1:%d", port)) {
			return port
		}
	}
	t.Fatal("no free port")
	return 0
}

// The audit's cross-route forgery: a subject with CR LF published in-process on s0 would
// have become RMSG lines that s1 parsed as messages to any subject. Publish refuses it, so
// s1's subscribers (a wildcard and the literal target) see only the ordinary message,
// and the route stays up.
func TestRouteConnPublishRefusesForgery(t *testing.T) {
	srvs := startMesh(t, 2, nil)
	var mu sync.Mutex
	var got []string // "subject data" of what s1's subscribers received
	record := func(m Msg) {
		mu.Lock()
		got = append(got, string(m.Subject)+" "+string(m.Data))
		mu.Unlock()
	}
	seen := func() []string {
		mu.Lock()
		defer mu.Unlock()
		return append([]string(nil), got...)
	}
	victim := mustConnect(t, srvs[1])
	for _, subj := range []string{"orders.>", "admin.shutdown"} {
		if _, err := victim.Subscribe(subj, "", record); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, 2*time.Second, func() bool { return interest(srvs[0], "orders.x") == 1 && interest(srvs[0], "admin.shutdown") == 1 })
	pub := mustConnect(t, srvs[0])
	for _, bad := range []string{
		"orders.x 12\r\ncancel-all!!\r\nRMSG admin.shutdown 5\r\nHELLO\r\nRMSG orders.y",
		"orders.x 5\r\nHELLO\r\nRS+ admin.>\r\nRMSG orders.y",
		"orders.>",
	} {
		if err := pub.Publish(bad, "", nil, []byte("inj")); err != ErrBadSubject {
			t.Fatalf("Publish(%q) = %v, want ErrBadSubject", bad, err)
		}
		if err := pub.Publish("orders.ok", bad, nil, []byte("inj")); err != ErrBadSubject {
			t.Fatalf("Publish(reply %q) = %v, want ErrBadSubject", bad, err)
		}
	}
	if err := pub.Publish("orders.done", "", nil, []byte("ok")); err != nil {
		t.Fatal(err)
	}
	pub.Flush()
	waitFor(t, 2*time.Second, func() bool { return len(seen()) > 0 })
	if g := seen(); len(g) != 1 || g[0] != "orders.done ok" {
		t.Fatalf("s1 received %q, want only \"orders.done ok\"", g)
	}
	if srvs[0].NumRoutes() != 1 || srvs[1].NumRoutes() != 1 {
		t.Fatal("the route dropped")
	}
}

// A client is told of lame duck mode once: the INFO that announces it carries "ldm", a later
// topology INFO (a server joining) does not — nats.go calls its LameDuckModeHandler for
// every INFO that has it.
func TestLameDuckToldOnce(t *testing.T) {
	srvs := startMesh(t, 2, func(_ int, o *Options) {
		o.LameDuckDuration, o.LameDuckGracePeriod = time.Minute+time.Second, time.Minute // grace strictly lower, as nats-server
	})
	ldm := srvs[0]
	nc, err := net.Dial("tcp", ldm.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	infos := make(chan string, 16)
	go func() {
		r := bufio.NewReader(nc)
		for {
			line, err := r.ReadString('\n')
			if err != nil {
				close(infos)
				return
			}
			if strings.HasPrefix(line, "INFO ") {
				infos <- line
			}
		}
	}()
	if _, err := nc.Write([]byte("CONNECT {\"verbose\":false,\"protocol\":1}\r\nPING\r\n")); err != nil {
		t.Fatal(err)
	}
	next := func() string {
		t.Helper()
		select {
		case l := <-infos:
			return l
		case <-time.After(5 * time.Second):
			t.Fatal("no INFO")
			return ""
		}
	}
	next() // the greeting
	// The INFO after the first PONG: from then on the client takes async INFOs (without
	// waiting for it, a loaded machine could enter lame duck mode before the PING was read,
	// and the client would never be told).
	next()
	waitFor(t, 2*time.Second, func() bool { return ldm.NumClients() == 1 })
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	go func() { _ = ldm.LameDuck(ctx) }()
	for l := next(); !strings.Contains(l, `"ldm":true`); l = next() {
	}
	seed := &url.URL{Scheme: "nats-route", Host: srvs[1].ClusterAddr().String()}
	late, err := New(Options{Host: "127.0.0.1", Port: -1, ServerName: "s2",
		Cluster: &ClusterOptions{Host: "127.0.0.1", Port: -1, Name: "mesh", Routes: []*url.URL{seed}}})
	if err != nil {
		t.Fatal(err)
	}
	if err := late.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = late.Shutdown(context.Background()) })
	for {
		l := next()
		if strings.Contains(l, `"ldm":true`) {
			t.Fatalf("a later INFO tells lame duck mode again: %s", l)
		}
		if strings.Contains(l, late.urls[0]) {
			return // the topology INFO, without ldm
		}
	}
}

// TestRoutePublishOverMaxPayload: PublishOverMaxPayload sends a message past the
// publisher's max_payload (1 KiB) to an in-process subscriber behind a route, whose server
// has a larger one; Publish refuses it. The streaming layer sends a message a leader with a
// larger max_payload accepted that way to a node catching up.
func TestRoutePublishOverMaxPayload(t *testing.T) {
	srvs := startMesh(t, 2, func(i int, o *Options) {
		o.MaxPayload = 1 << 10
		if i == 1 {
			o.MaxPayload = 64 << 10
		}
	})
	got := make(chan int, 1)
	if _, err := mustConnect(t, srvs[1]).Subscribe("big", "", func(m Msg) { got <- len(m.Data) }); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 2*time.Second, func() bool { return interest(srvs[0], "big") == 1 })
	pub := mustConnect(t, srvs[0])
	data := make([]byte, 10<<10)
	if err := pub.Publish("big", "", nil, data); err != ErrMaxPayload {
		t.Fatalf("Publish past max_payload: %v", err)
	}
	if err := pub.PublishOverMaxPayload("big", "", data); err != nil {
		t.Fatal(err)
	}
	pub.Flush()
	select {
	case n := <-got:
		if n != len(data) {
			t.Fatalf("received %d bytes, want %d", n, len(data))
		}
	case <-time.After(2 * time.Second):
		t.Fatal("not delivered")
	}
}

// Local queue members share a group's messages evenly whatever the order they and the
// other servers' members joined in. The pick started at a random entry of the group and
// skipped route entries to the next local member, so a local member listed after the two
// peers' entries took three turns in four: with members [local1, peer1, peer2, local2],
// local2 got 75% of the messages.
func TestRouteQueueLocalMembersShareEvenly(t *testing.T) {
	srvs := startMesh(t, 3, nil)
	dial := func(s *Server) *nats.Conn {
		nc, err := nats.Connect(s.ClientURL())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(nc.Close)
		return nc
	}
	var got [2]atomic.Int64
	member := func(nc *nats.Conn, i int) {
		if _, err := nc.QueueSubscribe("work", "q", func(*nats.Msg) { got[i].Add(1) }); err != nil {
			t.Fatal(err)
		}
		if err := nc.Flush(); err != nil {
			t.Fatal(err)
		}
	}
	member(dial(srvs[0]), 0)
	for _, s := range srvs[1:] {
		nc := dial(s)
		if _, err := nc.QueueSubscribe("work", "q", func(*nats.Msg) { t.Error("remote member chosen over local ones") }); err != nil {
			t.Fatal(err)
		}
		if err := nc.Flush(); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, 2*time.Second, func() bool { return interest(srvs[0], "work") == 3 })
	member(dial(srvs[0]), 1)
	pub := dial(srvs[0])
	const n = 4000
	for range n {
		if err := pub.Publish("work", nil); err != nil {
			t.Fatal(err)
		}
	}
	if err := pub.Flush(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 5*time.Second, func() bool { return got[0].Load()+got[1].Load() == n })
	// Even: 2000 each; the old pick gave 1000 and 3000.
	if a, b := got[0].Load(), got[1].Load(); a < n*2/5 || b < n*2/5 {
		t.Fatalf("local members got %d and %d of %d messages, want about half each", a, b, n)
	}
}

// A request the only route with interest could not take (its output past max_pending, so
// the route is cut off as a slow consumer) reached nobody: the requester gets the 503 at
// once instead of waiting for its timeout. route() counted the route as a delivery.
func TestRequestSkippedRouteIsNoResponders(t *testing.T) {
	const limit = 64 << 10
	srvs := startMesh(t, 2, func(_ int, o *Options) { o.MaxPending, o.MaxPayload = limit, limit })
	resp := mustConnect(t, srvs[1])
	if _, err := resp.Subscribe("svc", "", func(Msg) {}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 2*time.Second, func() bool { return interest(srvs[0], "svc") == 1 })
	nc, err := nats.Connect(srvs[0].ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	start := time.Now()
	_, err = nc.Request("svc", make([]byte, limit), 3*time.Second)
	if !errors.Is(err, nats.ErrNoResponders) {
		t.Fatalf("request through a route that could not take it: %v after %v, want no responders", err, time.Since(start))
	}
}

// A route that has just closed, its interest not yet out of the index, takes nothing: a
// request only it would have taken gets the 503.
func TestRequestClosedRouteIsNoResponders(t *testing.T) {
	s := startMesh(t, 1, nil)[0]
	// The moment between a route's close and the removal of its subscriptions, frozen.
	rc := &client{kind: kindRoute, srv: s, closed: true}
	rsub := &subscription{client: rc, acc: s.gacc, subject: "svc", sid: "$G svc"}
	if err := s.gacc.subs.Insert(rsub.subject, "", rsub); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = s.gacc.subs.Remove(rsub.subject, "", rsub) }()
	ic := mustConnect(t, s)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if _, err := ic.Request(ctx, "svc", nil, nil); !errors.Is(err, ErrNoResponders) {
		t.Fatalf("request to a closed route: %v, want ErrNoResponders", err)
	}
}

// A traced message for a queue group with a member here and one behind a route goes to the
// local member (routing prefers it), and the trace says so. It named the first member
// listed, the route's entry when the remote member subscribed first: a destination the
// message never went to.
func TestMsgTraceQueueLocalMemberBeforeRoute(t *testing.T) {
	srvs := startMesh(t, 2, nil)
	if _, err := mustConnect(t, srvs[1]).Subscribe("work", "q", func(Msg) {}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 2*time.Second, func() bool { return interest(srvs[0], "work") == 1 })
	local := make(chan struct{}, 1)
	if _, err := mustConnect(t, srvs[0]).Subscribe("work", "q", func(Msg) { local <- struct{}{} }); err != nil {
		t.Fatal(err)
	}
	nc, err := nats.Connect(srvs[0].ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	events, err := nc.SubscribeSync("trace.work")
	if err != nil {
		t.Fatal(err)
	}
	msg := nats.NewMsg("work")
	msg.Header.Set("Nats-Trace-Dest", "trace.work")
	if err := nc.PublishMsg(msg); err != nil {
		t.Fatal(err)
	}
	em, err := events.NextMsg(2 * time.Second)
	if err != nil {
		t.Fatal(err)
	}
	select {
	case <-local:
	case <-time.After(2 * time.Second):
		t.Fatal("not delivered to the local member")
	}
	var ev struct {
		Events []struct {
			Type, Queue string
			Kind        int
		}
	}
	if err := json.Unmarshal(em.Data, &ev); err != nil {
		t.Fatal(err)
	}
	if len(ev.Events) != 2 || ev.Events[1].Kind != traceKindClient || ev.Events[1].Queue != "q" {
		t.Fatalf("trace %s", em.Data)
	}
}
