package tests

import (
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
)

// replayAll reads the channel to its end: a copy stored after the last new payload (a
// duplicate, which checkAcked must count) is part of what it returns.
func TestReplayAllReadsToTheEnd(t *testing.T) {
	n := &node{t: t, name: "solo", port: freePort(t), mport: freePort(t)}
	n.p = startProc(t, starlingBinary(t), "-a", "127.0.0.1", "-p", fmt.Sprint(n.port), "-m", fmt.Sprint(n.mport))
	waitFor(t, 10*time.Second, func() error {
		nc, err := nats.Connect(n.url(), nats.NoReconnect())
		if err != nil {
			return err
		}
		defer nc.Close()
		_, err = n.routez()
		return err
	})
	nc, err := nats.Connect(n.url())
	must(t, err)
	defer nc.Close()
	pub := stanConnectRetry(t, nc, "pub")
	defer pub.Close()
	stored := []string{"m-1", "m-2", "m-3", "m-3"} // the last one stored twice
	for _, d := range stored {
		must(t, pub.Publish("dup", []byte(d)))
	}
	if got := replayAll(t, n, "dup", 3); !slices.Equal(got, stored) {
		t.Fatalf("replayAll read %v, the channel holds %v", got, stored)
	}
}
