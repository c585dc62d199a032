package tests

import (
	"strings"
	"testing"
	"time"

	"github.com/nats-io/stan.go"
)

// Divergences found by TestStanDiffCluster (stan_diff_cluster_test.go).

// A subscription refused for max_subs must stay refused on a node that restarts. The node
// replays its raft log onto a store synced past it, and the store's subscriptions that
// were created later count against max_subs early in the replay: there S was refused (T
// and E already filling the channel), T was then removed, and so the subscribe that every
// node had refused (S and E filling it) found room. That node kept a subscription the
// others never had, and the state digests differed for good (TestStanDiffCluster, seed
// 325043042, after a leader's SIGTERM).
//
// The queue case: the refused subscription is a new queue group's first member.
func TestStanClusterRefusedSubNotRevivedByReplay(t *testing.T) {
	t.Run("plain", func(t *testing.T) { refusedSubNotRevived(t, false) })
	t.Run("queue", func(t *testing.T) { refusedSubNotRevived(t, true) })
}

func refusedSubNotRevived(t *testing.T, queue bool) {
	c := startStanCluster(t, "-msu", "2")
	lead := c.leader(10 * time.Second)
	sc := stanOn(t, lead, "c")
	sub := func() (stan.Subscription, error) { return sc.Subscribe("b", func(*stan.Msg) {}) }
	tsub, err := sub()
	must(t, err)
	s, err := sub()
	must(t, err)
	must(t, tsub.Unsubscribe())
	_, err = sub() // E
	must(t, err)
	refused := sub
	if queue {
		refused = func() (stan.Subscription, error) { return sc.QueueSubscribe("b", "q", func(*stan.Msg) {}) }
	}
	if _, err := refused(); err == nil || !strings.Contains(err.Error(), "too many subscriptions") {
		t.Fatalf("third subscription: %v, want refused for max_subs", err)
	}
	must(t, s.Unsubscribe())
	c.converged(10 * time.Second)
	for _, n := range c.nodes { // each node in turn: the leader's SIGTERM hands over first
		n.terminate()
		c.leader(10 * time.Second)
		n.restart()
		c.replayed(10 * time.Second)
	}
}
