package streaming

import (
	"bytes"
	"fmt"
	"sync"
	"testing"

	"github.com/starling-io/starling/proto/stanpb"
	"github.com/starling-io/starling/stores"
	"google.golang.org/protobuf/proto"
)

// A chunk returns to the free list once its carver has moved on and every copy carved from
// it is released, and is reused next; a copy never released keeps its chunk out; a large
// copy has a buffer of its own.
func TestPubChunks(t *testing.T) {
	var p pubChunks
	data := bytes.Repeat([]byte{7}, 1000)
	var first *pubChunk
	var copies []*pubChunk
	for i := 0; ; i++ {
		b, c := p.copyPub(0, []byte(fmt.Sprint("r", i)), data)
		if !bytes.Equal(b, append([]byte(fmt.Sprint("r", i)), data...)) {
			t.Fatalf("copy %d differs", i)
		}
		if first == nil {
			first = c
		}
		if c != first {
			copies = append(copies, c) // the carver moved on, dropping its reference
			break
		}
		copies = append(copies, c)
	}
	if len(p.free) != 0 {
		t.Fatal("a chunk with unreleased copies is free")
	}
	for _, c := range copies[:len(copies)-1] {
		c.release()
	}
	if len(p.free) != 1 || p.free[0] != first {
		t.Fatalf("free list %v after releasing every copy of the first chunk", p.free)
	}
	// The second chunk fills up; the free first chunk is carved next.
	var c *pubChunk
	for c = copies[len(copies)-1]; c != first; _, c = p.copyPub(0, nil, data) {
	}
	if p.made.Load() != 2 {
		t.Fatalf("%d chunks made, want 2", p.made.Load())
	}
	// The second chunk's copies are never released: it never comes back.
	for range 200 {
		p.copyPub(0, nil, data)
	}
	if len(p.free) != 0 {
		t.Fatalf("free list %v: a chunk came back with copies unreleased", p.free)
	}
	if b, c := p.copyPub(0, nil, make([]byte, pubCopyMax+1)); c != nil || len(b) != pubCopyMax+1 {
		t.Fatalf("a large copy: chunk %v, %d bytes", c, len(b))
	}
}

// Publishers' goroutines carve concurrently while another releases: no copy is overwritten
// before its release (run with -race).
func TestPubChunksConcurrent(t *testing.T) {
	var p pubChunks
	type held struct {
		b    []byte
		c    *pubChunk
		want byte
	}
	out := make(chan held, 256)
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			src := make([]byte, 300+g*100)
			for i := range 5000 {
				v := byte(g*31 + i)
				for j := range src {
					src[j] = v
				}
				b, c := p.copyPub(uint64(g), nil, src)
				out <- held{b, c, v}
			}
		}()
	}
	go func() { wg.Wait(); close(out) }()
	var window []held // released late, as a commit group would be
	for h := range out {
		window = append(window, h)
		if len(window) < 100 {
			continue
		}
		for _, w := range window[:50] {
			for _, x := range w.b {
				if x != w.want {
					t.Fatalf("a copy was overwritten before its release")
				}
			}
			w.c.release()
		}
		window = append(window[:0], window[50:]...)
	}
	if made := p.made.Load(); made > 20 {
		t.Fatalf("%d chunks made for 20,000 copies released in windows of 100", made)
	}
}

// Published messages go through the recycled copies: every message is stored and delivered
// with its own payload while its chunk is reused: publishes completed one by one use one
// chunk, carved again from its start each time it fills.
func TestPublishCopiesRecycled(t *testing.T) {
	bus := &dataBus{}
	s := newEngineOn(t, bus)
	s.step(op{kind: opConnect, reply: "r", data: marshal(&stanpb.ConnectRequest{ClientID: "c1", HeartbeatInbox: "hb", Protocol: 1, ConnID: []byte("conn")})})
	s.step(op{kind: opSubscribe, reply: "r", data: marshal(&stanpb.SubscriptionRequest{ClientID: "c1", Subject: "foo", Inbox: "in", MaxInFlight: 1 << 20, AckWaitInSecs: 30})})
	payload := func(i int) []byte { return bytes.Repeat([]byte{byte(i)}, 1000+i%7) }
	const n = 500
	for i := 1; i <= n; i++ {
		pub := marshal(&stanpb.PubMsg{ClientID: "c1", Guid: fmt.Sprint("g", i), Subject: "foo", Data: payload(i), ConnID: []byte("conn")})
		s.step(s.pubBufs.publishOp([]byte(fmt.Sprint("ack.", i)), pub, 0))
	}
	var got int
	for _, sm := range bus.sent {
		if sm.subject != "in" {
			continue
		}
		var m stanpb.MsgProto
		if err := proto.Unmarshal(sm.data, &m); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(m.Data, payload(int(m.Sequence))) {
			t.Fatalf("message %d delivered with another's payload", m.Sequence)
		}
		got++
	}
	if got != n {
		t.Fatalf("%d messages delivered, want %d", got, n)
	}
	var m stores.Msg
	for i := 1; i <= n; i++ {
		if err := s.channels["foo"].store.Msgs.Load(uint64(i), &m); err != nil || !bytes.Equal(m.Data, payload(i)) {
			t.Fatalf("message %d stored wrong (%v)", i, err)
		}
	}
	if made := s.pubBufs.made.Load(); made != 1 {
		t.Fatalf("%d chunks made for %d publishes completed one by one, want 1", made, n)
	}
}
