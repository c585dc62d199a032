package tests

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/stan.go"
)

// TestStreamingThroughImports: streaming serves account STAN; a stan.go client of account
// APP reaches it only through imports of STAN's exports — its requests as service imports
// (replies mapped back), deliveries and heartbeats as a stream import of the inboxes.
func TestStreamingThroughImports(t *testing.T) {
	path := filepath.Join(t.TempDir(), "stan-imports.conf")
	must(t, os.WriteFile(path, []byte(`accounts {
  STAN {
    users: [ {user: s, password: s} ]
    exports: [
      {service: "_STAN.discover.test-cluster"}
      {service: "_STAN.*.test-cluster"}
      {service: "_STAN.pub.test-cluster.>"}
      {service: "_STAN.hb.>"}
      {service: "_STAN.check.>"}
      {service: "_INBOX.>"}
      {stream: "_INBOX.>"}
    ]
  }
  APP {
    users: [ {user: a, password: a} ]
    imports: [
      {service: {account: STAN, subject: "_STAN.discover.test-cluster"}}
      {service: {account: STAN, subject: "_STAN.*.test-cluster"}}
      {service: {account: STAN, subject: "_STAN.pub.test-cluster.>"}}
      {service: {account: STAN, subject: "_STAN.hb.>"}}
      {service: {account: STAN, subject: "_STAN.check.>"}}
      {service: {account: STAN, subject: "_INBOX.>"}}
      {stream: {account: STAN, subject: "_INBOX.>"}}
    ]
  }
}
no_auth_user: s
streaming { account: STAN }
`), 0o600))
	_, url, _ := startBinary(t, "-c", path)
	sc, err := stan.Connect("test-cluster", "app-client", stan.NatsURL(url), stan.NatsOptions(nats.UserInfo("a", "a")),
		stan.ConnectWait(5*time.Second))
	must(t, err)
	defer sc.Close()
	must(t, sc.Publish("orders", []byte("through imports")))
	got := make(chan *stan.Msg, 4)
	sub, err := sc.Subscribe("orders", func(m *stan.Msg) { got <- m; _ = m.Ack() }, stan.DeliverAllAvailable(),
		stan.SetManualAckMode(), stan.DurableName("d"))
	must(t, err)
	select {
	case m := <-got:
		if string(m.Data) != "through imports" || m.Redelivered {
			t.Fatalf("got %q (redelivered %v)", m.Data, m.Redelivered)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("nothing delivered through the stream import")
	}
	must(t, sub.Close())
}
