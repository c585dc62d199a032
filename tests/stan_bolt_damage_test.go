package tests

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/stan.go"

	"github.com/starling-io/starling/boltcheck"
)

// A bit flipped at rest inside a stored message of the BoltDB store: bbolt does not
// checksum values, and the server used to deliver the damaged message to a subscriber as
// if it were what was published. The store now refuses the record (CRC-32C), so the
// client never receives wrong data; the undamaged messages are delivered.
func TestStanBoltFlippedMessageNotDelivered(t *testing.T) {
	dir := t.TempDir()
	port := freePort(t)
	payload := func(i int) []byte { return []byte(fmt.Sprintf("payload-%05d", i)) }
	s, stop := boltServer(t, dir, port)
	sc, err := stan.Connect("test-cluster", "pub", stan.NatsURL(s.url))
	must(t, err)
	for i := 1; i <= 5; i++ {
		must(t, sc.Publish("dmg", payload(i)))
	}
	_ = sc.Close()
	stop()

	path := filepath.Join(dir, "starling.db")
	data, err := os.ReadFile(path)
	must(t, err)
	i := bytes.Index(data, payload(3))
	if i < 0 || bytes.Contains(data[i+1:], payload(3)) {
		t.Fatal("message 3 is not in the file exactly once")
	}
	data[i+len(payload(3))-1] ^= 1 // "payload-00003" → "payload-00002"
	must(t, os.WriteFile(path, data, 0o600))

	s2, stop2 := boltServer(t, dir, port)
	defer stop2()
	sc2, err := stan.Connect("test-cluster", "sub", stan.NatsURL(s2.url))
	must(t, err)
	defer sc2.Close()
	got := make(chan *stan.Msg, 16)
	_, err = sc2.Subscribe("dmg", func(m *stan.Msg) { got <- m }, stan.DeliverAllAvailable())
	must(t, err)
	seen := map[uint64]bool{}
	deadline := time.After(3 * time.Second)
	for {
		select {
		case m := <-got:
			if !bytes.Equal(m.Data, payload(int(m.Sequence))) {
				t.Fatalf("message %d delivered as %q, published as %q", m.Sequence, m.Data, payload(int(m.Sequence)))
			}
			seen[m.Sequence] = true
			continue
		case <-deadline:
		}
		break
	}
	t.Logf("delivered %v", seen)
	if !seen[1] || !seen[2] || seen[3] {
		t.Fatalf("delivered %v: want 1 and 2, never the damaged 3", seen)
	}
}

// A bit flipped in the newest meta page of the BoltDB store's file: bbolt opens at the
// previous commit, and the messages of the last one — acknowledged to the publisher — are
// gone. A torn meta write looks the same, so the server cannot refuse to start, but it
// used to say nothing at all: it now logs a warning naming the file and the meta page.
func TestStanBoltInvalidMetaPageLogged(t *testing.T) {
	dir := t.TempDir()
	p, url, _ := startBinary(t, "--store", "bolt", "--dir", dir)
	sc, err := stan.Connect("test-cluster", "pub", stan.NatsURL(url))
	must(t, err)
	for i := 1; i <= 5; i++ {
		must(t, sc.Publish("meta", []byte(fmt.Sprintf("m%d", i))))
	}
	must(t, p.cmd.Process.Kill()) // no clean close: the last commit holds a message
	_ = p.wait(t, 10*time.Second)
	sc.Close()

	path := filepath.Join(dir, "starling.db")
	data, err := os.ReadFile(path)
	must(t, err)
	r, err := boltcheck.Inspect(data)
	must(t, err)
	data[r.MetaPage*r.PageSize+16+60] ^= 1 // the newest meta page's checksum
	must(t, os.WriteFile(path, data, 0o600))

	p2, url2, _ := startBinary(t, "--store", "bolt", "--dir", dir)
	sc2, err := stan.Connect("test-cluster", "reader", stan.NatsURL(url2))
	must(t, err)
	defer sc2.Close()
	col := newCollector()
	_, err = sc2.Subscribe("meta", col.handler, stan.DeliverAllAvailable())
	must(t, err)
	got := 0
	for wait := time.After(time.Second); ; got++ {
		select {
		case <-col.ch:
			continue
		case <-wait:
		}
		break
	}
	out := p2.out.String()
	if !strings.Contains(out, "WARN") || !strings.Contains(out, fmt.Sprintf("meta page %d is invalid", r.MetaPage)) ||
		!strings.Contains(out, path) {
		t.Fatalf("restart after the newest meta page was damaged (%d of 5 messages back) logged:\n%s", got, out)
	}
	t.Logf("%d of 5 acknowledged messages back", got)
}
