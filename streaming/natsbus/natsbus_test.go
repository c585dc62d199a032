package natsbus

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/starling-io/starling/core"
)

// Once FlushSubscriptions returns, the server routes to the subscriptions made before it:
// a request from another connection finds them at once (nats.go sends a SUB
// asynchronously; without the round trip the request could come first and get no
// responders, as a stan.go connect did right after the streaming server said it was ready).
func TestFlushSubscriptionsMakesThemReachable(t *testing.T) {
	cs, err := core.New(core.Options{Host: "127.0.0.1", Port: -1})
	if err != nil {
		t.Fatal(err)
	}
	if err := cs.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = cs.Shutdown(ctx)
	})
	nc, err := nats.Connect(cs.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	other, err := nats.Connect(cs.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	b := New(nc)
	for i := range 50 {
		subj := fmt.Sprint("svc.", i)
		if _, err := b.Subscribe(subj, "", func(m core.Msg) { _ = b.Publish(string(m.Reply), "", nil, []byte("ok")) }); err != nil {
			t.Fatal(err)
		}
		if err := b.FlushSubscriptions(); err != nil {
			t.Fatal(err)
		}
		if _, err := other.Request(subj, nil, 5*time.Second); err != nil {
			t.Fatalf("request %d right after FlushSubscriptions: %v", i, err)
		}
	}
}
