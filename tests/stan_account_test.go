package tests

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/stan.go"
)

// TestStreamingServesOneAccount: with streaming { account: STAN }, streaming lives in that
// account's subject space: a stan.go client of a STAN user works; a client of another
// account finds no streaming server (its subjects are another space), and a subscriber on
// `>` there sees none of streaming's traffic.
func TestStreamingServesOneAccount(t *testing.T) {
	path := filepath.Join(t.TempDir(), "stan-account.conf")
	must(t, os.WriteFile(path, []byte(`accounts {
  STAN { users: [ {user: s, password: s} ] }
  OTHER { users: [ {user: o, password: o} ] }
}
no_auth_user: s
streaming { account: STAN }
`), 0o600))
	_, url, _ := startBinary(t, "-c", path)
	spy, err := nats.Connect(url, nats.UserInfo("o", "o"))
	must(t, err)
	defer spy.Close()
	seen := chanSub(t, spy, ">")

	sc, err := stan.Connect("test-cluster", "in-stan", stan.NatsURL(url), stan.NatsOptions(nats.UserInfo("s", "s")))
	must(t, err)
	defer sc.Close()
	must(t, sc.Publish("orders", []byte("in STAN")))
	got := make(chan *stan.Msg, 1)
	sub, err := sc.Subscribe("orders", func(m *stan.Msg) { got <- m }, stan.DeliverAllAvailable())
	must(t, err)
	defer sub.Close()
	select {
	case msg := <-got:
		if string(msg.Data) != "in STAN" {
			t.Fatalf("got %q", msg.Data)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("nothing delivered to a client of the streaming account")
	}

	if other, err := stan.Connect("test-cluster", "in-other", stan.NatsURL(url),
		stan.NatsOptions(nats.UserInfo("o", "o")), stan.ConnectWait(500*time.Millisecond)); err == nil {
		other.Close()
		t.Fatal("a client of another account reached streaming without an import")
	}
	for {
		select {
		case msg := <-seen:
			if msg.Subject != "_STAN.discover.test-cluster" && !isOwnInbox(msg.Subject) {
				t.Fatalf("account OTHER saw streaming traffic: %s", msg.Subject)
			}
		case <-time.After(200 * time.Millisecond):
			return
		}
	}
}

// isOwnInbox: the other account's own connect attempt (its discover request's inbox).
func isOwnInbox(subject string) bool { return len(subject) > 7 && subject[:7] == "_INBOX." }
