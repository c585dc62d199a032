package tests

import (
	"fmt"
	"syscall"
	"testing"
	"time"

	stan "github.com/nats-io/stan.go"
)

// TestRestartAppliesCountLimits: a server restarted with a lower max_msgs or max_bytes
// (or on a store imported from nss, which the import leaves unlimited) trims its channels
// when it starts, as nss does: a subscriber asking for everything is not sent what the
// limits dropped, before any new publish.
func TestRestartAppliesCountLimits(t *testing.T) {
	for name, limit := range map[string][]string{"max_msgs": {"-mm", "3"}, "max_bytes": {"-mb", "1"}} {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			p, url, _ := startBinary(t, "-cid", "test-cluster", "--store", "file", "--dir", dir)
			sc, err := stan.Connect("test-cluster", "pub", stan.NatsURL(url))
			must(t, err)
			for i := 1; i <= 10; i++ {
				must(t, sc.Publish("orders", []byte(fmt.Sprint("order ", i))))
			}
			must(t, sc.Close())
			must(t, p.cmd.Process.Signal(syscall.SIGTERM))
			if err := p.wait(t, 10*time.Second); err != nil {
				t.Fatalf("exit after SIGTERM: %v\n%s", err, p.out.String())
			}

			_, url, _ = startBinary(t, append([]string{"-cid", "test-cluster", "--store", "file", "--dir", dir}, limit...)...)
			sc, err = stan.Connect("test-cluster", "sub", stan.NatsURL(url))
			must(t, err)
			defer sc.Close()
			col := newStanMsgs()
			_, err = sc.Subscribe("orders", col.add, stan.DeliverAllAvailable())
			must(t, err)
			want := uint64(8) // max_msgs 3: 8, 9, 10
			if name == "max_bytes" {
				want = 10 // the last message stays
			}
			// Deliveries come in order: once the subscriber has it, it has everything it
			// was sent of what was stored before.
			col.waitN(t, 1, 10*time.Second)
			must(t, sc.Publish("orders", []byte("order 11")))
			var got []uint64
			for _, m := range col.waitN(t, int(12-want), 10*time.Second) {
				got = append(got, m.Sequence)
				if m.Sequence == 11 {
					break
				}
			}
			if got[0] != want || len(got) != int(12-want) {
				t.Fatalf("after the restart with %v: delivered %v; want %d to 11", limit, got, want)
			}
		})
	}
}
