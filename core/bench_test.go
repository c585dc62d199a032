package core_test

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"testing"
	"time"

	"github.com/starling-io/starling/core"
	"github.com/starling-io/starling/core/auth"
)

// subscribeRaw opens n socket subscribers on subject that read and discard everything.
func subscribeRaw(b *testing.B, s *core.Server, subject string, n int) {
	b.Helper()
	for i := range n {
		nc, err := net.Dial("tcp", s.Addr().String())
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { nc.Close() })
		r := bufio.NewReader(nc)
		if _, err := r.ReadString('\n'); err != nil { // INFO
			b.Fatal(err)
		}
		fmt.Fprintf(nc, "CONNECT {\"verbose\":false,\"pedantic\":false}\r\nSUB %s %d\r\nPING\r\n", subject, i+1)
		if l, err := r.ReadString('\n'); err != nil || l != "PONG\r\n" {
			b.Fatalf("handshake: %q %v", l, err)
		}
		go io.Copy(io.Discard, r)
	}
}

// BenchmarkDeliver routes one 16-byte message to 1 and to 100 socket subscribers: match
// (cached), frame append into each outbound buffer, one writer wake-up per batch of 64.
func BenchmarkDeliver(b *testing.B) {
	for _, subs := range []int{1, 100} {
		b.Run(fmt.Sprintf("subs=%d", subs), func(b *testing.B) {
			s := startCoreB(b)
			subscribeRaw(b, s, "bench.deliver", subs)
			for s.NumSubscriptions() < subs {
				time.Sleep(time.Millisecond)
			}
			nc, err := s.Connect("bench")
			if err != nil {
				b.Fatal(err)
			}
			payload := make([]byte, 16)
			b.SetBytes(int64(len(payload) * subs))
			b.ReportAllocs()
			b.ResetTimer()
			for i := range b.N {
				if err := nc.Publish("bench.deliver", "", nil, payload); err != nil {
					b.Fatal(err)
				}
				if i%64 == 63 {
					nc.Flush()
				}
			}
			nc.Flush()
			b.StopTimer()
			b.ReportMetric(float64(b.N)*float64(subs)/b.Elapsed().Seconds(), "deliveries/s")
		})
	}
}

// BenchmarkDeliverQueue: one message to one member of a queue group. The pick costs the
// same whatever the group's size (a random member, not a scan of them all).
func BenchmarkDeliverQueue(b *testing.B) {
	for _, members := range []int{1, 1000} {
		b.Run(fmt.Sprintf("members=%d", members), func(b *testing.B) {
			s := startCoreB(b)
			nc, err := s.Connect("bench")
			if err != nil {
				b.Fatal(err)
			}
			var n int
			for range members {
				if _, err := nc.Subscribe("bench.queue", "workers", func(core.Msg) { n++ }); err != nil {
					b.Fatal(err)
				}
			}
			payload := make([]byte, 16)
			b.ReportAllocs()
			b.ResetTimer()
			for range b.N {
				_ = nc.Publish("bench.queue", "", nil, payload)
			}
			b.StopTimer()
			if n != b.N {
				b.Fatalf("%d deliveries for %d messages", n, b.N)
			}
		})
	}
}

// BenchmarkInProcessHandler is the streaming path: a socket-free publish to an in-process
// handler subscription.
func BenchmarkInProcessHandler(b *testing.B) {
	s := startCoreB(b)
	nc, err := s.Connect("bench")
	if err != nil {
		b.Fatal(err)
	}
	var n int
	if _, err := nc.Subscribe("bench.handler", "", func(m core.Msg) { n += len(m.Data) }); err != nil {
		b.Fatal(err)
	}
	payload := make([]byte, 16)
	b.SetBytes(16)
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		_ = nc.Publish("bench.handler", "", nil, payload)
	}
}

// BenchmarkPubSubSocket is the whole path over loopback: a client writes batches of PUBs,
// the server parses, routes and writes MSGs to one subscriber that discards them.
func BenchmarkPubSubSocket(b *testing.B) {
	s := startCoreB(b)
	subscribeRaw(b, s, "bench.sock", 1)
	pub, err := net.Dial("tcp", s.Addr().String())
	if err != nil {
		b.Fatal(err)
	}
	defer pub.Close()
	r := bufio.NewReader(pub)
	_, _ = r.ReadString('\n')
	fmt.Fprint(pub, "CONNECT {\"verbose\":false,\"pedantic\":false}\r\n")
	frame := []byte("PUB bench.sock 16\r\n0123456789abcdef\r\n")
	const perWrite = 1024
	batch := make([]byte, 0, len(frame)*perWrite)
	for range perWrite {
		batch = append(batch, frame...)
	}
	b.SetBytes(16)
	b.ReportAllocs()
	b.ResetTimer()
	for sent := 0; sent < b.N; sent += perWrite {
		n := min(perWrite, b.N-sent)
		if _, err := pub.Write(batch[:n*len(frame)]); err != nil {
			b.Fatal(err)
		}
	}
	fmt.Fprint(pub, "PING\r\n")
	if l, err := r.ReadString('\n'); err != nil || l != "PONG\r\n" {
		b.Fatalf("%q %v", l, err)
	}
	b.StopTimer()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
}

// BenchmarkPubOnlySocket is make compare's pub-only rows in process: a client writes batches
// of 16-byte PUBs on one subject that nobody subscribes to, as a user without permissions
// (open) and as one with compare's 20 publish rules, 10 allow and 10 deny (rules20). The
// difference is what the publish check costs a publish.
func BenchmarkPubOnlySocket(b *testing.B) {
	allow := []string{"bench.>", "orders.*.created", "metrics.>", "a.b.c.*", "events.*.*.updated",
		"logs.app.>", "telemetry.*.cpu", "svc.*.request", "inventory.eu.*", "_INBOX.>"}
	deny := []string{"bench.secret.>", "bench.*.private", "admin.>", "orders.*.deleted", "metrics.internal.>",
		"a.b.c.d", "system.>", "bench.perm.*", "events.*.*.purged", "logs.app.audit.>"}
	for _, tc := range []struct {
		name  string
		perms *auth.Permissions
	}{{"open", nil}, {"rules20", &auth.Permissions{Publish: &auth.SubjectPermission{Allow: allow, Deny: deny}}}} {
		b.Run(tc.name, func(b *testing.B) {
			au, err := auth.New(auth.Options{Users: []*auth.User{{Username: "bench", Password: "bench", Permissions: tc.perms}}})
			if err != nil {
				b.Fatal(err)
			}
			s, err := core.New(core.Options{Host: "127.0.0.1", Port: -1, Auth: au})
			if err != nil {
				b.Fatal(err)
			}
			if err := s.Start(); err != nil {
				b.Fatal(err)
			}
			b.Cleanup(func() { _ = s.Shutdown(b.Context()) })
			pub, err := net.Dial("tcp", s.Addr().String())
			if err != nil {
				b.Fatal(err)
			}
			defer pub.Close()
			r := bufio.NewReader(pub)
			_, _ = r.ReadString('\n')
			fmt.Fprint(pub, "CONNECT {\"verbose\":false,\"pedantic\":false,\"user\":\"bench\",\"pass\":\"bench\"}\r\nPING\r\n")
			if l, err := r.ReadString('\n'); err != nil || l != "PONG\r\n" {
				b.Fatalf("handshake: %q %v", l, err)
			}
			frame := []byte("PUB bench.perm 16\r\n0123456789abcdef\r\n")
			const perWrite = 1024
			batch := make([]byte, 0, len(frame)*perWrite)
			for range perWrite {
				batch = append(batch, frame...)
			}
			b.SetBytes(16)
			b.ReportAllocs()
			b.ResetTimer()
			for sent := 0; sent < b.N; sent += perWrite {
				n := min(perWrite, b.N-sent)
				if _, err := pub.Write(batch[:n*len(frame)]); err != nil {
					b.Fatal(err)
				}
			}
			fmt.Fprint(pub, "PING\r\n")
			if l, err := r.ReadString('\n'); err != nil || l != "PONG\r\n" { // an -ERR: the publish was refused
				b.Fatalf("%q %v", l, err)
			}
			b.StopTimer()
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
		})
	}
}

func startCoreB(b *testing.B) *core.Server {
	b.Helper()
	s, err := core.New(core.Options{Host: "127.0.0.1", Port: -1})
	if err != nil {
		b.Fatal(err)
	}
	if err := s.Start(); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = s.Shutdown(b.Context()) })
	return s
}

// BenchmarkConnPublish is the in-process publish the streaming layer makes for every
// delivery and heartbeat: a 16-byte message to one socket subscriber (flushed every 64
// messages, as a batch would be), the same with a reply subject (a heartbeat), and to
// nobody. Steady state allocates nothing.
func BenchmarkConnPublish(b *testing.B) {
	for _, tc := range []struct {
		name  string
		subs  int
		reply string
	}{{"socket", 1, ""}, {"socket-reply", 1, "_STAN.hb.bench.client-1"}, {"none", 0, ""}} {
		b.Run(tc.name, func(b *testing.B) {
			s := startCoreB(b)
			subscribeRaw(b, s, "_INBOX.bench.conn.publish", tc.subs)
			for s.NumSubscriptions() < tc.subs {
				time.Sleep(time.Millisecond)
			}
			nc, err := s.Connect("bench")
			if err != nil {
				b.Fatal(err)
			}
			payload := make([]byte, 16)
			b.SetBytes(int64(len(payload)))
			b.ReportAllocs()
			b.ResetTimer()
			for i := range b.N {
				if err := nc.Publish("_INBOX.bench.conn.publish", tc.reply, nil, payload); err != nil {
					b.Fatal(err)
				}
				if i%64 == 63 {
					nc.Flush()
				}
			}
			nc.Flush()
		})
	}
}

// BenchmarkDeliverStreamImport is BenchmarkDeliver/subs=1 through a stream import: the
// subscriber is in account B, which imports the publisher's subjects under a prefix, so
// each message goes through a shadow subscription and a subject mapping.
func BenchmarkDeliverStreamImport(b *testing.B) {
	au, err := auth.New(auth.Options{Users: []*auth.User{{Username: "b", Password: "b", Account: "B"}}, NoAuthUser: "b"})
	if err != nil {
		b.Fatal(err)
	}
	s, err := core.New(core.Options{Host: "127.0.0.1", Port: -1, Auth: au, Accounts: []core.AccountConfig{
		{Name: core.GlobalAccount, Exports: []core.Export{{Subject: "bench.>"}}},
		{Name: "B", Imports: []core.Import{{Account: core.GlobalAccount, Subject: "bench.>", Prefix: "imp"}}},
	}})
	if err != nil {
		b.Fatal(err)
	}
	if err := s.Start(); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = s.Shutdown(context.Background()) })
	subscribeRaw(b, s, "imp.bench.deliver", 1)
	nc, err := s.Connect("bench")
	if err != nil {
		b.Fatal(err)
	}
	payload := make([]byte, 16)
	b.SetBytes(int64(len(payload)))
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		if err := nc.Publish("bench.deliver", "", nil, payload); err != nil {
			b.Fatal(err)
		}
		if i%64 == 63 {
			nc.Flush()
		}
	}
	nc.Flush()
}

// BenchmarkConnPublishRun is BenchmarkConnPublish/socket with the 64 messages between two
// flushes published as one run (PublishRun), as the streaming layer sends a subscription its
// messages; ns/op is per message. Steady state allocates nothing.
func BenchmarkConnPublishRun(b *testing.B) {
	s := startCoreB(b)
	subscribeRaw(b, s, "_INBOX.bench.conn.publish", 1)
	for s.NumSubscriptions() < 1 {
		time.Sleep(time.Millisecond)
	}
	nc, err := s.Connect("bench")
	if err != nil {
		b.Fatal(err)
	}
	const run = 64
	data := make([]byte, 16*run)
	ends := make([]int, run)
	for i := range ends {
		ends[i] = 16 * (i + 1)
	}
	b.SetBytes(16)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i += run {
		if err := nc.PublishRun("_INBOX.bench.conn.publish", data, ends[:min(run, b.N-i)]); err != nil {
			b.Fatal(err)
		}
		nc.Flush()
	}
}
