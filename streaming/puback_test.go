package streaming

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/starling-io/starling/core"
	"github.com/starling-io/starling/proto/stanpb"
	"github.com/starling-io/starling/raftlog"
	"github.com/starling-io/starling/stores"
	"github.com/starling-io/starling/stores/memstore"
)

// anyUser is core's in-process bus where every connection id is a live one (the requests
// of these tests come from no socket).
type anyUser struct{ inProcess }

func (anyUser) ConnUser(uint64) (string, bool) { return "", true }

// coreEngine is an engine (not started: the caller steps it) on core's in-process bus, over
// a memory store of at most 10,000 messages a channel (a benchmark's store reuses its
// memory: fresh pages would cost more than the rest), and a socket subscribed to subject,
// whose reader it returns.
func coreEngine(tb testing.TB, subject string) (*Server, inProcess, *bufio.Reader) {
	tb.Helper()
	cs, err := core.New(core.Options{Host: "127.0.0.1", Port: -1})
	if err != nil {
		tb.Fatal(err)
	}
	if err := cs.Start(); err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { _ = cs.Shutdown(context.Background()) })
	nc, err := net.Dial("tcp", cs.Addr().String())
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { nc.Close() })
	r := bufio.NewReader(nc)
	if _, err := r.ReadString('\n'); err != nil { // INFO
		tb.Fatal(err)
	}
	fmt.Fprintf(nc, "CONNECT {\"verbose\":false,\"pedantic\":false}\r\nSUB %s 1\r\nPING\r\n", subject)
	if l, err := r.ReadString('\n'); err != nil || l != "PONG\r\n" {
		tb.Fatalf("handshake: %q %v", l, err)
	}
	for cs.NumSubscriptions() < 1 {
		time.Sleep(time.Millisecond)
	}
	conn, err := cs.Connect("test")
	if err != nil {
		tb.Fatal(err)
	}
	lim := stores.DefaultLimits()
	lim.MaxMsgs = 10_000
	store, err := memstore.New(memstore.Options{Limits: &stores.LimitsSet{Global: lim}})
	if err != nil {
		tb.Fatal(err)
	}
	bus := inProcess{conn}
	s, err := New(anyUser{bus}, store, raftlog.Standalone, Options{})
	if err != nil {
		tb.Fatal(err)
	}
	if err := s.recover(); err != nil {
		tb.Fatal(err)
	}
	return s, bus, r
}

// TestPubAckRunsKeepOrder: a group's PubAcks reach their publishers in the order of the
// publishes, each with its GUID, however the publishers' messages interleave — consecutive
// PubAcks to one ack inbox leave as one run (runBus), the others each in their own.
func TestPubAckRunsKeepOrder(t *testing.T) {
	s, bus, r := coreEngine(t, "_STAN.acks.>")
	for _, id := range []string{"c1", "c2"} {
		s.step(op{kind: opConnect, reply: "r", data: marshal(&stanpb.ConnectRequest{ClientID: id, HeartbeatInbox: "hb." + id, Protocol: 1, ConnID: []byte("conn-" + id)})})
	}
	if len(s.clients) != 2 {
		t.Fatalf("%d clients", len(s.clients))
	}
	type ack struct{ inbox, guid string }
	var want []ack
	for i, id := range []string{"c1", "c1", "c2", "c1", "c2", "c2", "c2", "c1"} {
		guid := "g" + strconv.Itoa(i)
		o := s.pubBufs.publishOp([]byte("_STAN.acks."+id), marshal(&stanpb.PubMsg{ClientID: id, Guid: guid, Subject: "foo", Data: []byte("hi"), ConnID: []byte("conn-" + id)}), 0)
		s.queuePublish(&o)
		want = append(want, ack{"_STAN.acks." + id, guid})
	}
	s.flushPublishes()
	bus.Flush()
	for i, w := range want {
		l, err := r.ReadString('\n')
		if err != nil {
			t.Fatal(err)
		}
		f := strings.Fields(l) // MSG subject sid size
		if len(f) != 4 || f[0] != "MSG" {
			t.Fatalf("frame %d: %q", i, l)
		}
		n, _ := strconv.Atoi(f[3])
		payload := make([]byte, n+2)
		if _, err := io.ReadFull(r, payload); err != nil {
			t.Fatal(err)
		}
		var a stanpb.PubAck
		if err := proto.Unmarshal(payload[:n], &a); err != nil {
			t.Fatal(err)
		}
		if got := (ack{f[1], a.Guid}); got != w || a.Error != "" {
			t.Fatalf("PubAck %d: %+v (error %q), want %+v", i, got, a.Error, w)
		}
	}
}

// BenchmarkPubAckCore is an async publisher's read buffer on core's in-process bus: 64
// publishes of 16 B from one client, stored, and their PubAcks to its ack inbox, which a
// socket subscriber drains. Past the store, the PubAcks are most of what it measures: one
// publish each (subject check, match, lock of the publisher's connection) before runs.
// Run: go test -run '^$' -bench PubAckCore -benchmem ./streaming/
func BenchmarkPubAckCore(b *testing.B) {
	const inbox = "_STAN.acks.bench"
	s, bus, r := coreEngine(b, inbox)
	go func() { _, _ = io.Copy(io.Discard, r) }()
	s.step(op{kind: opConnect, reply: "r", data: marshal(&stanpb.ConnectRequest{ClientID: "c1", HeartbeatInbox: "hb", Protocol: 1, ConnID: []byte("conn")})})
	if len(s.clients) != 1 {
		b.Fatalf("%d clients", len(s.clients))
	}
	pub := marshal(&stanpb.PubMsg{ClientID: "c1", Guid: "0123456789012345678901", Subject: "bench", Data: make([]byte, 16), ConnID: []byte("conn")})
	reply := []byte(inbox)
	const batch = 64
	b.SetBytes(16)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i += batch {
		for range min(batch, b.N-i) {
			o := s.pubBufs.publishOp(reply, pub, 0) // the handler's copy
			s.queuePublish(&o)
		}
		s.flushPublishes()
		bus.Flush()
	}
}
