package tests

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/stan.go"
)

// A channel refused for max_channels must stay refused on a node that restarts. The node
// replays its raft log onto a store synced past it, whose channels created later count
// against max_channels early in the replay: there S was refused (T and E filling the store),
// T was then deleted, and so the creation of R that every node had refused (S and E filling
// it) found room. That node kept R, and the state digests differed for good.
func TestStanClusterRefusedChannelNotRevivedByReplay(t *testing.T) {
	c := startStanCluster(t, "--max_channels", "2", "--max_inactivity", "1s")
	lead := c.leader(10 * time.Second)
	sc := stanOn(t, lead, "c")
	channels := func(want ...string) {
		t.Helper()
		waitFor(t, 15*time.Second, func() error {
			var z struct {
				Names []string `json:"names"`
			}
			if err := lead.monGet("/streaming/channelsz", &z); err != nil {
				return err
			}
			if slices.Sort(z.Names); !slices.Equal(z.Names, want) {
				return fmt.Errorf("channels %v, want %v", z.Names, want)
			}
			return nil
		})
	}
	must(t, sc.Publish("T", []byte("t"))) // no subscription: deleted once idle
	s, err := sc.Subscribe("S", func(*stan.Msg) {})
	must(t, err)
	channels("S") // T deleted
	_, err = sc.Subscribe("E", func(*stan.Msg) {})
	must(t, err)
	if err := sc.Publish("R", []byte("r")); err == nil || !strings.Contains(err.Error(), "too many channels") {
		t.Fatalf("publish to a third channel: %v, want refused for max_channels", err)
	}
	must(t, s.Unsubscribe())
	channels("E") // S deleted
	c.converged(10 * time.Second)
	for _, n := range c.nodes { // each node in turn: the leader's SIGTERM hands over first
		n.terminate()
		c.leader(10 * time.Second)
		n.restart()
		c.replayed(10 * time.Second)
	}
}
