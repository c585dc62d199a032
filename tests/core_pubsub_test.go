package tests

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
)

func TestPubSub(t *testing.T) {
	m := startServer(t)
	nc := connect(t, m)
	ch := make(chan *nats.Msg, 16)
	_, err := nc.ChanSubscribe("greet", ch)
	must(t, err)
	must(t, nc.Flush())
	must(t, nc.Publish("greet", []byte("hello")))
	got := recvN(t, ch, 1, 2*time.Second)[0]
	if got.Subject != "greet" || string(got.Data) != "hello" {
		t.Fatalf("got %q %q", got.Subject, got.Data)
	}
	if nc.ConnectedServerVersion() == "" || !nc.HeadersSupported() {
		t.Fatalf("INFO incomplete: version %q headers %v", nc.ConnectedServerVersion(), nc.HeadersSupported())
	}
	if _, err := nc.GetClientID(); err != nil {
		t.Fatalf("client id: %v", err)
	}
}

func TestWildcardsAndNonMatches(t *testing.T) {
	m := startServer(t)
	nc := connect(t, m)
	subs := map[string]chan *nats.Msg{}
	for _, s := range []string{"foo.*", "foo.>", ">", "*.bar", "foo.bar", "foo.bar.baz"} {
		ch := make(chan *nats.Msg, 16)
		_, err := nc.ChanSubscribe(s, ch)
		must(t, err)
		subs[s] = ch
	}
	must(t, nc.Flush())
	cases := []struct {
		subject string
		want    []string
	}{
		{"foo.bar", []string{"foo.*", "foo.>", ">", "*.bar", "foo.bar"}},
		{"foo.bar.baz", []string{"foo.>", ">", "foo.bar.baz"}},
		{"foo", []string{">"}},
		{"x.bar", []string{">", "*.bar"}},
		{"foo.baz", []string{"foo.*", "foo.>", ">"}},
	}
	for _, tc := range cases {
		must(t, nc.Publish(tc.subject, []byte(tc.subject)))
		must(t, nc.Flush())
		want := map[string]bool{}
		for _, s := range tc.want {
			want[s] = true
			got := recvN(t, subs[s], 1, 2*time.Second)[0]
			if got.Subject != tc.subject {
				t.Fatalf("sub %s: got subject %q want %q", s, got.Subject, tc.subject)
			}
		}
		for s, ch := range subs {
			if !want[s] {
				expectNone(t, ch, 20*time.Millisecond)
			}
		}
	}
}

func TestQueueGroupSpread(t *testing.T) {
	m := startServer(t)
	nc := connect(t, m)
	const members, msgs = 4, 2000
	var counts [members]atomic.Int64
	var total atomic.Int64
	for i := range members {
		c := connect(t, m)
		_, err := c.QueueSubscribe("work", "workers", func(*nats.Msg) {
			counts[i].Add(1)
			total.Add(1)
		})
		must(t, err)
		must(t, c.Flush())
	}
	plain := make(chan *nats.Msg, msgs)
	_, err := nc.ChanSubscribe("work", plain)
	must(t, err)
	must(t, nc.Flush())
	for i := range msgs {
		must(t, nc.Publish("work", msgf("%d", i)))
	}
	must(t, nc.Flush())
	waitFor(t, 5*time.Second, func() error {
		if n := total.Load(); n != msgs {
			return fmt.Errorf("queue got %d of %d", n, msgs)
		}
		return nil
	})
	recvN(t, plain, msgs, 5*time.Second) // the plain subscriber gets everything too
	for i := range members {
		// Uniform random: 500 expected each; 300 is far outside any plausible spread.
		if n := counts[i].Load(); n < 300 {
			t.Errorf("member %d got %d of %d: not spread", i, n, msgs)
		}
	}
	time.Sleep(50 * time.Millisecond) // let any duplicate show up before the final count
	if n := total.Load(); n != msgs {
		t.Fatalf("queue members got %d messages in total, want exactly %d", n, msgs)
	}
}

// A publisher with echo off that is itself a member of the queue group it publishes to
// never takes its own messages: the other members share them evenly. The pick started at
// a random member and, on the publisher's own, went on to the next one, which so got
// two shares: with members [publisher, a, b], a got two thirds of the messages.
func TestQueueGroupSpreadAroundNoEchoPublisher(t *testing.T) {
	m := startServer(t)
	pub := connect(t, m, nats.NoEcho())
	_, err := pub.QueueSubscribe("work", "workers", func(*nats.Msg) { t.Error("echo-suppressed publisher got its own message") })
	must(t, err)
	must(t, pub.Flush())
	const members, msgs = 2, 3000
	var counts [members]atomic.Int64
	var total atomic.Int64
	for i := range members {
		c := connect(t, m)
		_, err := c.QueueSubscribe("work", "workers", func(*nats.Msg) {
			counts[i].Add(1)
			total.Add(1)
		})
		must(t, err)
		must(t, c.Flush())
	}
	for i := range msgs {
		must(t, pub.Publish("work", msgf("%d", i)))
	}
	must(t, pub.Flush())
	waitFor(t, 5*time.Second, func() error {
		if n := total.Load(); n != msgs {
			return fmt.Errorf("queue got %d of %d", n, msgs)
		}
		return nil
	})
	for i := range members {
		// Even: 1500 each; the old pick gave 2000 and 1000.
		if n := counts[i].Load(); n < msgs*2/5 {
			t.Errorf("member %d got %d of %d: not spread", i, n, msgs)
		}
	}
}

func TestRequestReply(t *testing.T) {
	m := startServer(t)
	responder := connect(t, m)
	_, err := responder.Subscribe("svc.echo", func(msg *nats.Msg) {
		_ = msg.Respond(append([]byte("echo:"), msg.Data...))
	})
	must(t, err)
	must(t, responder.Flush())
	nc := connect(t, m)

	resp, err := nc.Request("svc.echo", []byte("hi"), 2*time.Second)
	must(t, err)
	if string(resp.Data) != "echo:hi" {
		t.Fatalf("got %q", resp.Data)
	}
	// Old-style request (a fresh inbox per request) too.
	oldStyle := connect(t, m, nats.UseOldRequestStyle())
	resp, err = oldStyle.Request("svc.echo", []byte("old"), 2*time.Second)
	must(t, err)
	if string(resp.Data) != "echo:old" {
		t.Fatalf("got %q", resp.Data)
	}

	// No responders: fails fast, not after the timeout.
	start := time.Now()
	_, err = nc.Request("svc.nobody", []byte("x"), 5*time.Second)
	if !errors.Is(err, nats.ErrNoResponders) {
		t.Fatalf("want ErrNoResponders, got %v", err)
	}
	if d := time.Since(start); d > time.Second {
		t.Fatalf("no-responders took %v", d)
	}
	_, err = oldStyle.Request("svc.nobody", []byte("x"), 5*time.Second)
	if !errors.Is(err, nats.ErrNoResponders) {
		t.Fatalf("old style: want ErrNoResponders, got %v", err)
	}

	// A responder that never answers: the client times out.
	_, err = responder.Subscribe("svc.silent", func(*nats.Msg) {})
	must(t, err)
	must(t, responder.Flush())
	_, err = nc.Request("svc.silent", nil, 200*time.Millisecond)
	if !errors.Is(err, nats.ErrTimeout) {
		t.Fatalf("want timeout, got %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	if _, err = nc.RequestWithContext(ctx, "svc.silent", nil); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("want deadline exceeded, got %v", err)
	}
}

func TestHeadersRoundTrip(t *testing.T) {
	m := startServer(t)
	nc := connect(t, m)
	ch := make(chan *nats.Msg, 4)
	_, err := nc.ChanSubscribe("hdr", ch)
	must(t, err)
	must(t, nc.Flush())
	msg := nats.NewMsg("hdr")
	msg.Header.Set("Trace-Id", "abc")
	msg.Header.Add("Multi", "1")
	msg.Header.Add("Multi", "2")
	msg.Data = []byte("body")
	must(t, nc.PublishMsg(msg))
	got := recvN(t, ch, 1, 2*time.Second)[0]
	if got.Header.Get("Trace-Id") != "abc" || len(got.Header.Values("Multi")) != 2 || string(got.Data) != "body" {
		t.Fatalf("got header %v data %q", got.Header, got.Data)
	}
	// Headers only, empty body.
	msg = nats.NewMsg("hdr")
	msg.Header.Set("Only", "h")
	must(t, nc.PublishMsg(msg))
	got = recvN(t, ch, 1, 2*time.Second)[0]
	if got.Header.Get("Only") != "h" || len(got.Data) != 0 {
		t.Fatalf("got header %v data %q", got.Header, got.Data)
	}
	// Request/reply with headers both ways.
	_, err = nc.Subscribe("hdr.svc", func(m *nats.Msg) {
		r := nats.NewMsg(m.Reply)
		r.Header.Set("Echo", m.Header.Get("Ask"))
		_ = m.RespondMsg(r)
	})
	must(t, err)
	req := nats.NewMsg("hdr.svc")
	req.Header.Set("Ask", "42")
	resp, err := nc.RequestMsg(req, 2*time.Second)
	must(t, err)
	if resp.Header.Get("Echo") != "42" {
		t.Fatalf("response header %v", resp.Header)
	}
}

func TestAutoUnsubscribe(t *testing.T) {
	m := startServer(t)
	nc := connect(t, m)
	var got atomic.Int64
	sub, err := nc.Subscribe("auto", func(*nats.Msg) { got.Add(1) })
	must(t, err)
	must(t, sub.AutoUnsubscribe(5))
	must(t, nc.Flush())
	for range 20 {
		must(t, nc.Publish("auto", nil))
	}
	must(t, nc.Flush())
	waitFor(t, 2*time.Second, func() error {
		if got.Load() != 5 {
			return fmt.Errorf("got %d", got.Load())
		}
		return nil
	})
	time.Sleep(50 * time.Millisecond)
	if n := got.Load(); n != 5 {
		t.Fatalf("got %d messages, want 5", n)
	}
	waitFor(t, 2*time.Second, func() error {
		if n := numClientSubs(m); n != 0 {
			return fmt.Errorf("%d subscriptions left on the server", n)
		}
		return nil
	})
}

func TestDrainLosesNothing(t *testing.T) {
	m := startServer(t)
	pub := connect(t, m)
	const n = 5000

	// Drain a subscription while messages are in flight.
	sc := connect(t, m)
	var got atomic.Int64
	sub, err := sc.Subscribe("drain.sub", func(*nats.Msg) {
		time.Sleep(10 * time.Microsecond)
		got.Add(1)
	})
	must(t, err)
	must(t, sc.Flush())
	for i := range n {
		must(t, pub.Publish("drain.sub", msgf("%d", i)))
	}
	must(t, pub.Flush())
	must(t, sc.Flush()) // everything published has reached sc before the drain starts
	must(t, sub.Drain())
	waitFor(t, 10*time.Second, func() error {
		if !sub.IsValid() && got.Load() == n {
			return nil
		}
		return fmt.Errorf("drained %d of %d (valid %v)", got.Load(), n, sub.IsValid())
	})

	// Drain a whole connection.
	closed := make(chan struct{})
	dc := connect(t, m, nats.ClosedHandler(func(*nats.Conn) { close(closed) }))
	var got2 atomic.Int64
	_, err = dc.Subscribe("drain.conn", func(*nats.Msg) { got2.Add(1) })
	must(t, err)
	must(t, dc.Flush())
	for i := range n {
		must(t, pub.Publish("drain.conn", msgf("%d", i)))
	}
	must(t, pub.Flush())
	must(t, dc.Flush())
	must(t, dc.Drain())
	select {
	case <-closed:
	case <-time.After(10 * time.Second):
		t.Fatal("connection drain did not finish")
	}
	if got2.Load() != n {
		t.Fatalf("connection drain delivered %d of %d", got2.Load(), n)
	}
}

func TestFlushAndRTT(t *testing.T) {
	m := startServer(t)
	nc := connect(t, m)
	for range 100 {
		must(t, nc.FlushTimeout(time.Second))
	}
	rtt, err := nc.RTT()
	must(t, err)
	if rtt <= 0 || rtt > time.Second {
		t.Fatalf("rtt %v", rtt)
	}
}

func TestMaxPayloadSurfaced(t *testing.T) {
	m := startServer(t, "--max_payload", "1024")
	nc := connect(t, m)
	if got := nc.MaxPayload(); got != 1024 {
		t.Fatalf("client sees max payload %d", got)
	}
	err := nc.Publish("big", make([]byte, 1025))
	if !errors.Is(err, nats.ErrMaxPayload) {
		t.Fatalf("want ErrMaxPayload, got %v", err)
	}
	must(t, nc.Publish("ok", make([]byte, 1024)))
	must(t, nc.Flush())
}

func TestPerPublisherOrdering(t *testing.T) {
	m := startServer(t)
	sub := connect(t, m)
	const pubs, n = 4, 5000
	var mu sync.Mutex
	next := make(map[string]int)
	var errs atomic.Int64
	var total atomic.Int64
	_, err := sub.Subscribe("order.>", func(msg *nats.Msg) {
		var seq int
		fmt.Sscanf(string(msg.Data), "%d", &seq)
		mu.Lock()
		if next[msg.Subject] != seq {
			errs.Add(1)
		}
		next[msg.Subject] = seq + 1
		mu.Unlock()
		total.Add(1)
	})
	must(t, err)
	must(t, sub.Flush())
	var wg sync.WaitGroup
	for p := range pubs {
		pc := connect(t, m)
		wg.Add(1)
		go func() {
			defer wg.Done()
			subj := fmt.Sprintf("order.%d", p)
			for i := range n {
				_ = pc.Publish(subj, msgf("%d", i))
			}
			_ = pc.Flush()
		}()
	}
	wg.Wait()
	waitFor(t, 10*time.Second, func() error {
		if total.Load() != pubs*n {
			return fmt.Errorf("got %d of %d", total.Load(), pubs*n)
		}
		return nil
	})
	if errs.Load() != 0 {
		t.Fatalf("%d messages out of order", errs.Load())
	}
}

func TestNoEcho(t *testing.T) {
	m := startServer(t)
	nc := connect(t, m, nats.NoEcho())
	other := connect(t, m)
	mine := make(chan *nats.Msg, 4)
	theirs := make(chan *nats.Msg, 4)
	_, err := nc.ChanSubscribe("echo", mine)
	must(t, err)
	_, err = other.ChanSubscribe("echo", theirs)
	must(t, err)
	must(t, nc.Flush())
	must(t, other.Flush())
	must(t, nc.Publish("echo", []byte("x")))
	must(t, nc.Flush())
	recvN(t, theirs, 1, 2*time.Second)
	expectNone(t, mine, 100*time.Millisecond)
}

// Many concurrent requesters against a queue group of responders: every request is
// answered (this caught a lost-wake-up race between in-place flushes and the writer).
func TestConcurrentRequestReply(t *testing.T) {
	m := startServer(t)
	for range 2 {
		r := connect(t, m)
		_, err := r.QueueSubscribe("svc.concurrent", "q", func(msg *nats.Msg) { _ = msg.Respond(msg.Data) })
		must(t, err)
		must(t, r.Flush())
	}
	const requesters, each = 8, 300
	var wg sync.WaitGroup
	var failed atomic.Int64
	for i := range requesters {
		nc := connect(t, m)
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range each {
				want := fmt.Sprintf("%d-%d", i, j)
				resp, err := nc.Request("svc.concurrent", []byte(want), 5*time.Second)
				if err != nil || string(resp.Data) != want {
					failed.Add(1)
				}
			}
		}()
	}
	wg.Wait()
	if n := failed.Load(); n > 0 {
		t.Fatalf("%d of %d requests failed", n, requesters*each)
	}
}
