package core

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
)

// A client that also subscribes to a wildcard covering its request inbox still gets the 503
// of a request nobody answers on the inbox subscription nats.go's Request waits on. The
// status went to whichever matching subscription the scan of the client's subscriptions
// met first, in map order: half the time to "_INBOX.>", and the request timed out.
func TestNoRespondersOnTheRequestInbox(t *testing.T) {
	s := startMesh(t, 1, nil)[0]
	nc, err := nats.Connect(s.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	wide := make(chan *nats.Msg, 64)
	if _, err := nc.ChanSubscribe("_INBOX.>", wide); err != nil {
		t.Fatal(err)
	}
	for i := range 20 {
		if _, err := nc.Request("nobody.home", nil, 500*time.Millisecond); !errors.Is(err, nats.ErrNoResponders) {
			t.Fatalf("request %d: %v, want no responders", i, err)
		}
	}
	if len(wide) != 0 {
		t.Fatalf("%d statuses went to _INBOX.>", len(wide))
	}
}

// Of the publisher's plain subscriptions matching the reply, the most specific takes the
// status: at the first token where two differ, a literal before '*' before '>'. Queue
// subscriptions never do.
func TestNoRespondersMostSpecificSubscription(t *testing.T) {
	s := startMesh(t, 1, nil)[0]
	ic := mustConnect(t, s)
	got := ""
	subs := map[string]*Subscription{}
	for _, subj := range []string{"r.>", "r.*.b", "r.a.*", "r.a.b"} {
		sub, err := ic.Subscribe(subj, "", func(m Msg) {
			if string(m.Header[:12]) == "NATS/1.0 503" {
				got = subj
			}
		})
		if err != nil {
			t.Fatal(err)
		}
		subs[subj] = sub
	}
	if _, err := ic.Subscribe("r.a.b", "q", func(Msg) { got = "queue" }); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"r.a.b", "r.a.*", "r.*.b", "r.>"} {
		for range 10 {
			got = ""
			if err := ic.Publish("nobody", "r.a.b", nil, nil); err != nil {
				t.Fatal(err)
			}
			if got != want {
				t.Fatalf("status on %q, want %q", got, want)
			}
		}
		if err := subs[want].Unsubscribe(); err != nil {
			t.Fatal(err)
		}
	}
}

// BenchmarkNoResponders is the cost of answering an unanswered request: it was a scan of
// all the publisher's subscriptions with a string conversion of the reply (an allocation
// past 32 bytes, as nats.go's inboxes are) for each.
func BenchmarkNoResponders(b *testing.B) {
	for _, n := range []int{1, 100, 10000} {
		b.Run(fmt.Sprintf("subs=%d", n), func(b *testing.B) {
			s := startMesh(b, 1, nil)[0]
			ic := mustConnect(b, s)
			for i := range n - 1 {
				if _, err := ic.Subscribe(fmt.Sprintf("app.sub.%d", i), "", func(Msg) {}); err != nil {
					b.Fatal(err)
				}
			}
			inbox := "_INBOX.Q9c2Y5oQx4fMr1nZkVbT0w"
			if _, err := ic.Subscribe(inbox+".*", "", func(Msg) {}); err != nil {
				b.Fatal(err)
			}
			subj, reply := []byte("nobody.home"), []byte(inbox+".Ab3dE6gH")
			b.ReportAllocs()
			b.ResetTimer()
			for range b.N {
				ic.c.noResponders(subj, reply)
			}
		})
	}
}
