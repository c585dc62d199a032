package core

import "testing"

// An auto-unsubscribe limit set while deliveries run on other goroutines can be passed
// without any delivery seeing it reached: UNSUB checks the count, a publisher that loaded
// the old limit (none) counts past the new one, then UNSUB stores it. The next delivery
// sees the count above the limit: it must remove the subscription, not only refuse the
// message, or the subscription stayed in the index (and its interest on the routes) for
// good, refusing every message.
func TestAutoUnsubscribePassedLimitRemoves(t *testing.T) {
	s := startMesh(t, 1, nil)[0]
	ic, err := s.Connect("internal")
	if err != nil {
		t.Fatal(err)
	}
	got := 0
	sub, err := ic.Subscribe("auto", "", func(Msg) { got++ })
	if err != nil {
		t.Fatal(err)
	}
	// The interleaving above, frozen: 5 delivered while the limit of 3 was being set.
	sub.delivered.Store(5)
	sub.max.Store(3)
	if err := ic.Publish("auto", "", nil, nil); err != nil {
		t.Fatal(err)
	}
	if got != 0 || s.NumSubscriptions() != 0 {
		t.Fatalf("delivered %d, %d subscriptions left", got, s.NumSubscriptions())
	}
}
