package monitor

import (
	"testing"
	"time"

	"github.com/nats-io/stan.go"
)

func TestZZProbe(t *testing.T) {
	f := start(t)
	sc1, err := stan.Connect("test-cluster", "c1", stan.NatsURL(f.url))
	check(t, err)
	sc2, err := stan.Connect("test-cluster", "c2", stan.NatsURL(f.url))
	check(t, err)
	for i := 0; i < 5; i++ {
		check(t, sc1.Publish("q", []byte("x")))
	}
	h := func(*stan.Msg) {}
	_, err = sc1.QueueSubscribe("q", "g", h, stan.DurableName("d"), stan.DeliverAllAvailable(), stan.SetManualAckMode(), stan.MaxInflight(2))
	check(t, err)
	_, err = sc2.QueueSubscribe("q", "g", h, stan.DurableName("d"), stan.DeliverAllAvailable(), stan.SetManualAckMode(), stan.MaxInflight(2))
	check(t, err)
	_, err = sc2.Subscribe("q", h, stan.DurableName("solo"), stan.DeliverAllAvailable())
	check(t, err)
	_, err = sc2.Subscribe("q", h, stan.DeliverAllAvailable())
	check(t, err)
	time.Sleep(300 * time.Millisecond)
	dump := func(label string) {
		for _, p := range []string{ServerPath, ChannelsPath + "?subs=1", ClientsPath + "?subs=1"} {
			_, b, _ := f.get(t, p)
			t.Logf("%s %s:\n%s", label, p, b)
		}
	}
	dump("all online")
	check(t, sc1.Close())
	time.Sleep(300 * time.Millisecond)
	dump("c1 closed")
	check(t, sc2.Close())
	time.Sleep(300 * time.Millisecond)
	dump("all closed")
}
