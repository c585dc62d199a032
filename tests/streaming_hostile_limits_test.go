package tests

import (
	"bytes"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/stan.go"
	"google.golang.org/protobuf/proto"

	"github.com/starling-io/starling/proto/stanpb"
	"github.com/starling-io/starling/stores"
	"github.com/starling-io/starling/streaming"
)

// These tests use streaming.Options.QueueBytes and MaxClients, which 67c13ea does not
// have: this file does not compile there (it had no byte bound and no client limit).

// A burst of large publishes beyond Options.QueueBytes gets "server is overloaded"
// PubAcks instead of growing the queue: each a well-formed PubAck naming its publish's
// GUID (stan.go drops a PubAck whose GUID it does not know, and its publish then times
// out); the refusal is logged (rate-limited: once here); every acknowledged message is
// stored, no refused one is, and the server stays healthy. Raw publishers first, then
// stan.go publishers.
func TestHostileQueueBytesBound(t *testing.T) {
	const (
		queueBytes = 512 << 10
		size       = 128 << 10
		conns      = 4
		perConn    = 48
	)
	// The store holds the engine's first Append until the first refusal arrives: how far
	// the queue fills otherwise depends on the machine (a loaded one publishes so slowly
	// that the engine keeps up and nothing is refused). Open, it stores what was queued.
	var gated *gatedStore
	s := startHostileStore(t, nil, func(o *streaming.Options) { o.QueueBytes = queueBytes },
		func(st stores.Store) stores.Store { gated = newGatedStore(st); return gated })
	t.Cleanup(gated.open)
	results := make([]struct{ ok, overloaded []string }, conns)
	var malformed, noGUID atomic.Int32
	var wg sync.WaitGroup
	start := make(chan struct{}) // closed once every client is registered: the engine is held then
	for i := range conns {
		nc := natsDial(t, s.url)
		c := rawRegister(t, nc, s.discover, fmt.Sprintf("blast%d", i))
		acks := make(chan *nats.Msg, perConn)
		reply := fmt.Sprintf("_INBOX.blast%d.acks", i)
		_, err := nc.ChanSubscribe(reply, acks)
		must(t, err)
		must(t, nc.Flush())
		msgs := make([][]byte, perConn)
		for j := range msgs {
			guid := fmt.Sprintf("b%d-%d", i, j)
			data := append([]byte(guid+"|"), bytes.Repeat([]byte{'x'}, size)...)
			msgs[j], _ = proto.Marshal(&stanpb.PubMsg{ClientID: c.id, Guid: guid, Subject: "burst", Data: data, ConnID: c.connID})
		}
		wg.Add(1)
		go func() { // fire and forget, then collect every PubAck
			defer wg.Done()
			<-start
			for _, m := range msgs {
				if err := nc.PublishRequest(stanPubPrefix+".burst", reply, m); err != nil {
					t.Errorf("publish: %v", err)
					return
				}
			}
			timeout := time.After(10 * time.Second)
			for range perConn {
				select {
				case m := <-acks:
					a := &stanpb.PubAck{}
					if err := proto.Unmarshal(m.Data, a); err != nil {
						malformed.Add(1)
						continue
					}
					if a.Guid == "" {
						noGUID.Add(1)
					}
					switch a.Error {
					case "":
						results[i].ok = append(results[i].ok, a.Guid)
					case "stan: server is overloaded":
						results[i].overloaded = append(results[i].overloaded, a.Guid)
						gated.open()
					default:
						t.Errorf("PubAck error %q", a.Error)
					}
				case <-timeout:
					t.Errorf("blast%d: PubAcks missing", i)
					return
				}
			}
		}()
	}
	close(start)
	wg.Wait()
	gated.open() // for the stan.go publishers below, even if nothing was refused
	if malformed.Load() > 0 || noGUID.Load() > 0 {
		t.Errorf("%d malformed PubAcks, %d without a GUID", malformed.Load(), noGUID.Load())
	}
	acked := map[string]bool{}
	overloaded := 0
	for _, r := range results {
		for _, g := range r.ok {
			acked[g] = true
		}
		overloaded += len(r.overloaded)
	}
	t.Logf("raw: %d acknowledged, %d refused as overloaded", len(acked), overloaded)
	if overloaded == 0 || len(acked) == 0 {
		t.Fatalf("%d acknowledged, %d overloaded: want both (queue bound %d B, %d x %d B sent)", len(acked), overloaded, queueBytes, conns*perConn, size)
	}
	wantLogLines(t, s.logs, 1, `msg="streaming queue full, refusing publishes"`)

	// Exactly the acknowledged messages are stored.
	check := stanConnectURL(t, s.url, "check")
	stored := make(chan string, conns*perConn)
	_, err := check.Subscribe("burst", func(m *stan.Msg) {
		stored <- string(m.Data[:bytes.IndexByte(m.Data, '|')])
	}, stan.DeliverAllAvailable())
	must(t, err)
	for range len(acked) {
		select {
		case g := <-stored:
			if !acked[g] {
				t.Fatalf("stored %s, which was not acknowledged", g)
			}
			delete(acked, g)
		case <-time.After(5 * time.Second):
			t.Fatalf("%d acknowledged messages not stored: %v", len(acked), acked)
		}
	}
	select {
	case g := <-stored:
		t.Fatalf("stored %s, which was not acknowledged", g)
	case <-time.After(100 * time.Millisecond):
	}

	// stan.go publishers see the refusal as the error of their publish, not a timeout.
	var mu sync.Mutex
	outcomes := map[string]int{}
	for i := range conns {
		sc := stanConnectURL(t, s.url, fmt.Sprintf("sgo%d", i), stan.PubAckWait(3*time.Second))
		wg.Add(1)
		go func() {
			defer wg.Done()
			done := make(chan struct{}, perConn)
			data := bytes.Repeat([]byte{'y'}, size)
			for range perConn {
				_, err := sc.PublishAsync("burst2", data, func(_ string, err error) {
					text := "ok"
					if err != nil {
						text = err.Error()
					}
					mu.Lock()
					outcomes[text]++
					mu.Unlock()
					done <- struct{}{}
				})
				if err != nil {
					t.Errorf("PublishAsync: %v", err)
					return
				}
			}
			for range perConn {
				<-done
			}
		}()
	}
	wg.Wait()
	t.Logf("stan.go: %v", outcomes)
	for text := range outcomes {
		if text != "ok" && text != "stan: server is overloaded" {
			t.Errorf("stan.go publishes ended with %q (%d times)", text, outcomes[text])
		}
	}
	// Healthy: an ordinary client publishes and receives.
	got := newCollector()
	_, err = check.Subscribe("after", got.handler)
	must(t, err)
	must(t, check.Publish("after", []byte("ok")))
	got.seqs(t, 1, hostileWait)
}

// MaxClients: 2 registered clients; the third connect is refused with "stan: too many
// clients" and logged, and fits again once one client closes.
func TestHostileMaxClients(t *testing.T) {
	s := startHostile(t, nil, func(o *streaming.Options) { o.MaxClients = 2 })
	nc := natsDial(t, s.url)
	first := rawRegister(t, nc, s.discover, "c1")
	rawRegister(t, nc, s.discover, "c2")
	if _, err := stan.Connect("test-cluster", "c3", stan.NatsURL(s.url)); err == nil || err.Error() != "stan: too many clients" {
		t.Fatalf("third client: %v", err)
	}
	wantLogLines(t, s.logs, 1, `msg="connect refused"`, "client_id=c3 ", "max_clients")
	if !nc.IsConnected() {
		t.Fatal("connection closed")
	}
	if r := first.closeClient("c1"); r.Error != "" {
		t.Fatal(r.Error)
	}
	stanConnectURL(t, s.url, "c3")
	if ids := clientIDs(t, s.mon); strings.Join(ids, ",") != "c2,c3" {
		t.Fatalf("clients %v", ids)
	}
}
