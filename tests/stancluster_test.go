package tests

import (
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/stan.go"
)

// TestStanClusterFailover: three starling processes, one streaming cluster. A stan.go
// publisher and a durable subscriber on a follower work through the routes; the leader is
// killed (SIGKILL) and another takes over with the replicated clients, subscriptions and
// cursors: the publisher continues on the same connection, the durable receives every
// message, none acknowledged is lost, and once the killed node is back all three hold the
// same state. Then the new leader is stopped with SIGTERM: it hands leadership over first,
// so service pauses for a transfer, not an election.
func TestStanClusterFailover(t *testing.T) {
	c := startStanCluster(t)
	lead := c.leader(10 * time.Second)
	f := c.followers(lead)[0]

	pub := stanOn(t, f, "pub")
	subConn := stanOn(t, f, "sub")
	var mu sync.Mutex
	received := map[string]int{}
	var order []string
	_, err := subConn.Subscribe("orders", func(m *stan.Msg) {
		mu.Lock()
		if received[string(m.Data)] == 0 {
			order = append(order, string(m.Data))
		}
		received[string(m.Data)]++
		mu.Unlock()
		_ = m.Ack()
	}, stan.DurableName("dur"), stan.SetManualAckMode(), stan.AckWait(2*time.Second), stan.DeliverAllAvailable())
	must(t, err)

	var acked []string
	attempts := map[string]int{}
	publish := func(from, to int) {
		for i := from; i < to; i++ {
			d := fmt.Sprintf("m-%05d", i)
			attempts[d] += 1 + publishRetry(t, pub, "orders", []byte(d), 20*time.Second)
			acked = append(acked, d)
		}
	}
	publish(0, 300)

	// Leader killed: the first PubAck from the new leader ends the failover. A publish in
	// flight to a dead leader is never answered, so the probe waits briefly for each.
	probe := stanOn(t, f, "probe", stan.PubAckWait(200*time.Millisecond))
	killed := lead
	start := time.Now()
	killed.kill()
	publishRetry(t, probe, "probe", []byte("p"), 20*time.Second)
	failover := time.Since(start)
	t.Logf("SIGKILL failover: first PubAck after %v", failover)
	if failover > 5*time.Second {
		t.Errorf("failover took %v", failover)
	}
	publish(300, 600)
	lead = c.leader(10 * time.Second)
	if lead == killed {
		t.Fatal("the killed node leads")
	}

	waitFor(t, 20*time.Second, func() error {
		mu.Lock()
		defer mu.Unlock()
		if len(received) < len(acked) {
			return fmt.Errorf("durable has %d of %d", len(received), len(acked))
		}
		return nil
	})
	mu.Lock()
	for i := 1; i < len(order); i++ {
		if order[i] < order[i-1] {
			t.Errorf("durable got %s after %s", order[i], order[i-1])
			break
		}
	}
	mu.Unlock()

	t.Logf("killed %s", killed.name)
	killed.restart()
	c.converged(20 * time.Second)
	checkAcked(t, replayAll(t, killed, "orders", len(acked)), acked, attempts)
	checkFollowerChannelsz(t, c.followers(c.leader(10 * time.Second))[0], "orders", uint64(len(acked)), "dur")

	// SIGTERM on the leader: leadership is handed over before it stops. The probe is on a
	// node that stays up.
	lead = c.leader(10 * time.Second)
	probe2 := stanOn(t, c.followers(lead)[0], "probe2", stan.PubAckWait(200*time.Millisecond))
	publishRetry(t, probe2, "probe", []byte("p"), 5*time.Second)
	start = time.Now()
	lead.terminate()
	publishRetry(t, probe2, "probe", []byte("p"), 20*time.Second)
	pause := time.Since(start)
	t.Logf("SIGTERM handover: first PubAck %v after the signal", pause)
	if pause > 2*time.Second {
		t.Errorf("handover took %v", pause)
	}
	lead.restart()
	c.converged(20 * time.Second)
}

// checkFollowerChannelsz: a follower's /streaming/channelsz shows the replicated channel, at
// least want messages in it, and its durable among its subscriptions; its /metrics leave the
// replicated state to the leader's (a dashboard sums over nodes).
func checkFollowerChannelsz(t *testing.T, f *node, channel string, want uint64, durable string) {
	t.Helper()
	var chz struct {
		Channels []struct {
			Name          string `json:"name"`
			LastSeq       uint64 `json:"last_seq"`
			Subscriptions []struct {
				DurableName string `json:"durable_name"`
			} `json:"subscriptions"`
		} `json:"channels"`
	}
	must(t, f.monGet("/streaming/channelsz?subs=1", &chz))
	for _, ch := range chz.Channels {
		if ch.Name != channel {
			continue
		}
		hasDurable := false
		for _, sub := range ch.Subscriptions {
			hasDurable = hasDurable || sub.DurableName == durable
		}
		if ch.LastSeq < want || !hasDurable {
			t.Fatalf("follower %s's channelsz of %s: %+v", f.name, channel, ch)
		}
		checkFollowerMetrics(t, f)
		return
	}
	t.Fatalf("follower %s's channelsz has no %s: %+v", f.name, channel, chz)
}

// checkFollowerMetrics: a follower's /metrics carry its raft figures and leave the replicated
// state to the leader's.
func checkFollowerMetrics(t *testing.T, f *node) {
	t.Helper()
	resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/metrics", f.mport))
	must(t, err)
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	must(t, err)
	if m := string(body); !strings.Contains(m, "starling_streaming_raft_leader{") ||
		strings.Contains(m, "starling_streaming_channel_messages{") || strings.Contains(m, "\nstarling_streaming_channels ") {
		t.Fatalf("follower %s exports the replicated state in /metrics or no raft figures", f.name)
	}
}

// TestStanClusterPeersDisagree: a node started with other --cluster_peers than the rest is
// named in a log line on the nodes that reach it.
func TestStanClusterPeersDisagree(t *testing.T) {
	var nodes []*node
	for _, id := range []string{"n1", "n2", "n3"} {
		n := newNode(t, id)
		n.stan = true
		n.rport = nodePorts(t)[0] // as startStanCluster: a kernel-picked raft port took another node's monitor port in CI
		nodes = append(nodes, n)
	}
	for i, n := range nodes {
		peers := "n1,n2,n3"
		if i == 2 {
			peers = "n1,n3,n4"
		}
		args := append(n.clusterArgs("stan", nodes...), "--store", "file", "--dir", t.TempDir(), "--clustered",
			"--cluster_node_id", n.name, "--cluster_peers", peers, "--cluster_raft_listen", n.raftAddr())
		n.start(append(args, raftTimingArgs...)...)
	}
	waitFor(t, 15*time.Second, func() error {
		for _, n := range nodes[:2] {
			if strings.Contains(n.p.out.String(), "a peer was started with other cluster peers") &&
				strings.Contains(n.p.out.String(), "its_peers=n1,n3,n4") {
				return nil
			}
		}
		return fmt.Errorf("no node logged n3's other peers")
	})
}

// Three processes configured with different channel limits (--max_msgs 5, 8, 12) hold the
// same messages: the leader's limits are replicated, every node trims by them, and the
// others log that their own differ. Before, each trimmed by its own and the state digests
// differed for good.
func TestStanClusterLimitsDisagree(t *testing.T) {
	maxMsgs := []int{5, 8, 12}
	c := startStanClusterWith(t, func(_ *stanCluster, i int) []string {
		return []string{"--max_msgs", fmt.Sprint(maxMsgs[i])}
	})
	lead := c.leader(10 * time.Second)
	sc := stanOn(t, lead, "pub")
	for i := range 20 {
		publishRetry(t, sc, "limited", []byte(fmt.Sprint("m", i)), 10*time.Second)
	}
	c.converged(10 * time.Second)
	keep := maxMsgs[slices.Index(c.nodes, lead)]
	if got := replayAll(t, lead, "limited", keep); got[0] != fmt.Sprint("m", 20-keep) {
		t.Fatalf("the channel starts at %q, want m%d (the leader's max_msgs %d)", got[0], 20-keep, keep)
	}
	for _, n := range c.followers(lead) {
		if !strings.Contains(n.p.out.String(), "the leader's channel limits differ from this node's configuration") {
			t.Errorf("%s did not log that the leader's limits differ from its own", n.name)
		}
	}
	// storez shows the limits each node applies, the leader's: it showed each node's own.
	for _, n := range c.nodes {
		var z struct {
			Limits struct {
				MaxMsgs int `json:"max_msgs"`
			} `json:"limits"`
		}
		if err := n.monGet("/streaming/storez", &z); err != nil || z.Limits.MaxMsgs != keep {
			t.Errorf("%s's storez shows max_msgs %d (%v), want the applied %d", n.name, z.Limits.MaxMsgs, err, keep)
		}
	}
}
