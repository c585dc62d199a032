package tests

// Divergences from nats-streaming-server found by the differential test (stan_diff_test.go).

import (
	"fmt"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/stan.go"
)

// A durable stalled at MaxInflight on messages that the channel's max_msgs limit then
// removed, across a server restart: the restart's first redelivery pass finds them gone,
// takes them as acknowledged and the subscriber gets the next messages at once, as with nss
// (performRedeliveryOnStartup: every pending message is looked up, a missing one acked, then
// available messages are sent). Starling ran that pass before the client had reconnected,
// found nobody listening and put it off by an ack wait (a minute here). Not run against nss:
// its pass races with the client's reconnection, and sends into the void when it wins.
func TestStanRestartDropsEvictedPending(t *testing.T) {
	d := startDiffProc(t, starlingBinary(t)) // max_msgs 20
	sc, err := stan.Connect("test-cluster", "c", stan.NatsURL(d.url),
		stan.NatsOptions(nats.ReconnectWait(20*time.Millisecond), nats.MaxReconnects(-1)))
	must(t, err)
	defer sc.Close()
	col := newCollector()
	_, err = sc.Subscribe("ch", col.handler, stan.DurableName("d"), stan.DeliverAllAvailable(),
		stan.SetManualAckMode(), stan.MaxInflight(2), stan.AckWait(time.Minute))
	must(t, err)
	for i := 1; i <= 24; i++ { // 1-4 removed; 1 and 2 pending
		must(t, sc.Publish("ch", []byte(fmt.Sprint(i))))
	}
	if got := col.seqs(t, 2, 5*time.Second); !equalSeqs(got, []uint64{1, 2}) {
		t.Fatalf("got %v, want [1 2]", got)
	}
	d.restart(false)
	m := nextStanMsg(t, col, 10*time.Second)
	if m.Sequence != 5 || m.Redelivered {
		t.Fatalf("after the restart got %d (redelivered %v), want 5 first delivered", m.Sequence, m.Redelivered)
	}
}

// A durable queue subscription whose durable name has a ':' is refused, but nss creates its
// channel first (processSubscriptionRequest looks up or creates the channel, then checks
// the name), so with max_channels 1 a publish to another channel then gets "too many
// channels". Starling refused the name before creating the channel. Run against both.
func TestStanDurableColonCreatesChannel(t *testing.T) {
	port := freePort(t)
	startProc(t, nssBinary(t), "-cid", "test-cluster", "-a", "127.0.0.1", "-p", fmt.Sprint(port), "-mc", "1")
	nssURL := fmt.Sprintf("nats://127.0.0.1:%d", port)
	waitNATS(t, nssURL)
	lim := diffLimits()
	lim.Global.MaxChannels = 1
	for i, url := range []string{nssURL, startStan(t, lim, nil).url} {
		name := [...]string{"nss", "starling"}[i]
		sc, err := stan.Connect("test-cluster", "c", stan.NatsURL(url))
		must(t, err)
		_, err = sc.QueueSubscribe("x", "q", func(*stan.Msg) {}, stan.DurableName("d:x"))
		if got := errStr(err); got != "error: stan: durable name of a durable queue subscriber can't contain the character ':'" {
			t.Fatalf("%s: subscribe: %s", name, got)
		}
		if got := errStr(sc.Publish("y", []byte("m"))); got != "error: too many channels" {
			t.Fatalf("%s: publish to a second channel: %s, want too many channels (x exists)", name, got)
		}
		must(t, sc.Publish("x", []byte("m")))
		_ = sc.Close()
	}
}
