package core

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/starling-io/starling/core/auth"
	"github.com/starling-io/starling/core/subject"
)

// l1Client is a client of a fresh account, enough for client.match.
func l1Client() *client {
	return &client{acc: &account{name: "A", subs: subject.NewIndex[*subscription]()}}
}

// BenchmarkClientMatch is the per-client match cache: a publisher repeating its subject
// (what `nats bench pub` does), and one rotating over 8 subjects (every lookup a map hit).
func BenchmarkClientMatch(b *testing.B) {
	for _, n := range []int{1, 8} {
		b.Run(fmt.Sprintf("subjects=%d", n), func(b *testing.B) {
			c := l1Client()
			subjs := make([][]byte, n)
			for i := range subjs {
				subjs[i] = fmt.Appendf(nil, "bench.match.subject.%d", i)
				sub := &subscription{acc: c.acc, subject: string(subjs[i])}
				if err := c.acc.subs.Insert(sub.subject, "", sub); err != nil {
					b.Fatal(err)
				}
			}
			// A read buffer: the subject is a slice of it, as the parser hands it over.
			buf := make([]byte, 64)
			b.ReportAllocs()
			b.ResetTimer()
			for i := range b.N {
				s := buf[:copy(buf, subjs[i%n])]
				if r := c.match(s); len(r.Plain) != 1 {
					b.Fatal("no match")
				}
			}
		})
	}
}

// The subject matched last is answered without the map only while the index has not
// changed: every Insert and Remove in between — another subscriber, a queue member, a
// wildcard, an unsubscribe — is seen by the very next match of that subject, and other
// subjects between two matches of it change nothing.
func TestClientMatchLastFollowsIndex(t *testing.T) {
	c := l1Client()
	idx := c.acc.subs
	sub := func(subj, queue string) *subscription {
		s := &subscription{acc: c.acc, subject: subj, queue: queue}
		if err := idx.Insert(subj, queue, s); err != nil {
			t.Fatal(err)
		}
		return s
	}
	unsub := func(s *subscription) {
		if err := idx.Remove(s.subject, s.queue, s); err != nil {
			t.Fatal(err)
		}
	}
	buf := make([]byte, 64)
	// match matches subj twice (the second time as the last subject), from a buffer that
	// the next call overwrites, and wants plain subscriptions and queue members.
	match := func(step, subj string, plain, members int) {
		t.Helper()
		for i := range 2 {
			r := c.match(buf[:copy(buf, subj)])
			m := 0
			for _, q := range r.Queues {
				m += len(q.Members)
			}
			if len(r.Plain) != plain || m != members {
				t.Fatalf("%s: match %d of %q: %d plain, %d queue members, want %d, %d",
					step, i+1, subj, len(r.Plain), m, plain, members)
			}
		}
	}
	match("empty index", "foo", 0, 0)
	a := sub("foo", "")
	match("a subscriber", "foo", 1, 0)
	b := sub("foo", "")
	match("a second subscriber", "foo", 2, 0)
	unsub(a)
	match("the first unsubscribed", "foo", 1, 0)
	w := sub("f*", "")
	match("a wildcard not matching", "foo", 1, 0)
	unsub(w)
	w = sub(">", "")
	match("a full wildcard", "foo", 2, 0)
	q1 := sub("foo", "g")
	match("a queue member", "foo", 2, 1)
	unsub(q1)
	match("the queue member gone", "foo", 2, 0)
	q2 := sub("foo", "g")
	match("another queue member", "foo", 2, 1)
	match("another subject", "bar", 1, 0)
	match("back to the first", "foo", 2, 1)
	unsub(q2)
	match("after another subject, the queue member gone", "foo", 2, 0)
	bar := sub("bar", "")
	match("the other subject's subscriber", "bar", 2, 0)
	match("the first again", "foo", 2, 0)
	// A subject first seen after the index changed, while the map still held the
	// previous generation: the last subject must not survive the change either.
	unsub(b)
	match("a new subject after a change", "baz", 1, 0)
	unsub(w)
	match("the new subject's wildcard gone", "baz", 0, 0)
	unsub(bar)
	match("every subscriber gone", "foo", 0, 0)

	// The map full: a subject that does not fit is matched each time, never taken for the
	// last subject (whose result is another subject's).
	for i := range l1Max {
		match("filling the map", fmt.Sprintf("fill.%d", i), 0, 0)
	}
	sub("late", "")
	match("a full map", "fill.0", 0, 0)
	for range l1Max - 1 {
		_ = c.match([]byte(fmt.Sprintf("fill2.%d", len(c.l1))))
	}
	if len(c.l1) != l1Max {
		t.Fatalf("%d entries, want a full map (%d)", len(c.l1), l1Max)
	}
	match("a subject not in the full map", "late", 1, 0)
	match("the last stored subject", fmt.Sprintf("fill2.%d", l1Max-1), 0, 0)
	match("again a subject not in the full map", "late", 1, 0)
}

// A client whose CONNECT binds it to another account than the one it matched in so far
// forgets the last subject with the rest of the cache, even when the new account's index
// is at the generation the cache was reset to (0: an index never changed).
func TestClientMatchLastForgottenWithTheAccount(t *testing.T) {
	au, err := auth.New(auth.Options{Users: []*auth.User{{Username: "b", Password: "b", Account: "B"}}})
	if err != nil {
		t.Fatal(err)
	}
	s, err := New(Options{Host: "127.0.0.1", Port: -1, Auth: au, Accounts: []AccountConfig{{Name: "B"}}})
	if err != nil {
		t.Fatal(err)
	}
	// B's index as new (the server's own subscriptions put it past 0 at New; the server
	// is not started, nothing else uses it).
	b := s.account("B")
	b.subs = subject.NewIndex[*subscription]()
	if err := s.gacc.subs.Insert("foo", "", &subscription{acc: s.gacc, subject: "foo"}); err != nil {
		t.Fatal(err)
	}
	c := &client{srv: s, acc: s.gacc, ident: &auth.Identity{Account: "B"}}
	for range 2 {
		if r := c.match([]byte("foo")); len(r.Plain) != 1 {
			t.Fatalf("%d matches in $G, want 1", len(r.Plain))
		}
	}
	if !c.bindAccount() || c.acc != b {
		t.Fatal("not bound to B")
	}
	if r := c.match([]byte("foo")); len(r.Plain) != 0 {
		t.Fatalf("%d matches in B (the global account's result), want 0", len(r.Plain))
	}
}

// rawSub is a socket client speaking the protocol by hand: unlike nats.go, it shows a
// message delivered for a subscription it has unsubscribed.
type rawSub struct {
	t  *testing.T
	nc net.Conn
	r  *bufio.Reader
}

func dialRaw(t *testing.T, s *Server) *rawSub {
	t.Helper()
	nc, err := net.Dial("tcp", s.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nc.Close() })
	c := &rawSub{t: t, nc: nc, r: bufio.NewReader(nc)}
	if l := c.line(); !strings.HasPrefix(l, "INFO ") {
		t.Fatalf("%q, want INFO", l)
	}
	c.do("CONNECT {\"verbose\":false}")
	return c
}

// line reads a line, answering the server's PINGs.
func (c *rawSub) line() string {
	c.t.Helper()
	for {
		_ = c.nc.SetReadDeadline(time.Now().Add(2 * time.Second))
		l, err := c.r.ReadString('\n')
		if err != nil {
			c.t.Fatalf("read: %v", err)
		}
		if l == "PING\r\n" {
			_, _ = io.WriteString(c.nc, "PONG\r\n")
			continue
		}
		return strings.TrimSuffix(l, "\r\n")
	}
}

// do sends the protocol lines and waits for the server to have processed them.
func (c *rawSub) do(lines ...string) {
	c.t.Helper()
	if _, err := io.WriteString(c.nc, strings.Join(append(lines, "PING"), "\r\n")+"\r\n"); err != nil {
		c.t.Fatal(err)
	}
	if l := c.line(); l != "PONG" {
		c.t.Fatalf("%q, want PONG", l)
	}
}

// next reads a message and returns its MSG line and payload.
func (c *rawSub) next() (string, string) {
	c.t.Helper()
	return c.line(), c.line()
}

// pubConn is a socket publisher (its messages go through client.match, which an
// in-process Conn's do not).
func pubConn(t *testing.T, s *Server, user string) *nats.Conn {
	t.Helper()
	opts := []nats.Option{nats.NoReconnect()}
	if user != "" {
		opts = append(opts, nats.UserInfo(user, user))
	}
	nc, err := nats.Connect(s.ClientURL(), opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	return nc
}

// repeat publishes subj n times with payload data and waits until the server processed them.
func repeat(t *testing.T, nc *nats.Conn, subj string, n int, data string) {
	t.Helper()
	for range n {
		if err := nc.Publish(subj, []byte(data)); err != nil {
			t.Fatal(err)
		}
	}
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
}

// A publisher repeating its subject sees every SUB and UNSUB of other connections at its
// very next message: a new subscriber gets it, an unsubscribed one does not, a queue
// group's new member gets it after the old one left.
func TestRepeatedSubjectSeesOtherConnections(t *testing.T) {
	s := startMesh(t, 1, nil)[0]
	pub := pubConn(t, s, "")
	repeat(t, pub, "foo", 100, "nobody")

	a := dialRaw(t, s)
	a.do("SUB foo 1")
	repeat(t, pub, "foo", 1, "to a")
	if l, p := a.next(); l != "MSG foo 1 4" || p != "to a" {
		t.Fatalf("new subscriber got %q %q, want the next message", l, p)
	}
	repeat(t, pub, "foo", 100, "to a")
	for range 100 {
		a.next()
	}

	a.do("UNSUB 1", "SUB bar 2")
	repeat(t, pub, "foo", 1, "gone")
	repeat(t, pub, "bar", 1, "bar")
	if l, p := a.next(); l != "MSG bar 2 3" {
		t.Fatalf("unsubscribed client got %q %q, want only bar", l, p)
	}

	// Queue group g: member 3 of a, then member 4 of another connection instead.
	a.do("SUB work g 3")
	repeat(t, pub, "work", 100, "q")
	for range 100 {
		if l, _ := a.next(); l != "MSG work 3 1" {
			t.Fatalf("queue member got %q", l)
		}
	}
	a.do("UNSUB 3")
	b := dialRaw(t, s)
	b.do("SUB work g 4")
	repeat(t, pub, "work", 1, "q")
	if l, _ := b.next(); l != "MSG work 4 1" {
		t.Fatalf("new queue member got %q", l)
	}
	// b leaves by closing its connection; a subscribes anew.
	b.nc.Close()
	waitFor(t, 2*time.Second, func() bool { return interest(s, "work") == 0 })
	a.do("SUB work 5")
	repeat(t, pub, "work", 1, "after close")
	if l, p := a.next(); l != "MSG work 5 11" || p != "after close" {
		t.Fatalf("got %q %q", l, p)
	}
}

// Across a route: a publisher repeating its subject reaches a subscriber that appeared on
// the other server (plain or queue) with its next message once the interest arrived, and
// a route repeating a subject reaches a local subscriber that appeared since.
func TestRepeatedSubjectSeesRouteInterest(t *testing.T) {
	srvs := startMesh(t, 2, nil)
	pub := pubConn(t, srvs[0], "")
	repeat(t, pub, "foo", 100, "nobody")
	repeat(t, pub, "work", 100, "nobody")

	far := dialRaw(t, srvs[1])
	far.do("SUB foo 1", "SUB work g 2")
	waitFor(t, 2*time.Second, func() bool { return interest(srvs[0], "foo") == 1 && interest(srvs[0], "work") == 1 })
	repeat(t, pub, "foo", 1, "far")
	if l, _ := far.next(); l != "MSG foo 1 3" {
		t.Fatalf("remote subscriber got %q", l)
	}
	repeat(t, pub, "work", 1, "far")
	if l, _ := far.next(); l != "MSG work 2 3" {
		t.Fatalf("remote queue member got %q", l)
	}

	// The other way: srvs[1] publishes bar to a's subscription on srvs[0], through the
	// route, whose read goroutine matches bar each time; then b subscribes on srvs[0].
	a := dialRaw(t, srvs[0])
	a.do("SUB bar 1")
	waitFor(t, 2*time.Second, func() bool { return interest(srvs[1], "bar") == 1 })
	pub1 := pubConn(t, srvs[1], "")
	repeat(t, pub1, "bar", 100, "x")
	for range 100 {
		a.next()
	}
	b := dialRaw(t, srvs[0])
	b.do("SUB bar 7")
	repeat(t, pub1, "bar", 1, "y")
	if l, p := b.next(); l != "MSG bar 7 1" || p != "y" {
		t.Fatalf("new local subscriber of routed messages got %q %q", l, p)
	}
}

// A stream import of an account a reload added: the exporter's publisher repeating its
// subject reaches the importer's new subscriber with its next message.
func TestRepeatedSubjectSeesImportAddedByReload(t *testing.T) {
	cfg := func(withB bool) Options {
		us := []*auth.User{{Username: "a", Password: "a", Account: "A"}}
		accs := []AccountConfig{{Name: "A", Exports: []Export{{Subject: "foo"}}}}
		if withB {
			us = append(us, &auth.User{Username: "b", Password: "b", Account: "B"})
			accs = append(accs, AccountConfig{Name: "B", Imports: []Import{{Account: "A", Subject: "foo"}}})
		}
		au, err := auth.New(auth.Options{Users: us})
		if err != nil {
			t.Fatal(err)
		}
		return Options{Host: "127.0.0.1", Port: -1, Auth: au, Accounts: accs}
	}
	s, err := New(cfg(false))
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Shutdown(context.Background()) })
	pub := pubConn(t, s, "a")
	repeat(t, pub, "foo", 100, "nobody")
	if err := s.Reload(cfg(true)); err != nil {
		t.Fatal(err)
	}
	repeat(t, pub, "foo", 100, "nobody yet")
	b := pubConn(t, s, "b")
	sub, err := b.SubscribeSync("foo")
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Flush(); err != nil {
		t.Fatal(err)
	}
	repeat(t, pub, "foo", 1, "imported")
	if m, err := sub.NextMsg(2 * time.Second); err != nil || string(m.Data) != "imported" {
		t.Fatalf("importer's new subscriber: %v %v", m, err)
	}
}
