package tests

import (
	"cmp"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/stan.go"
)

// The streaming cluster tests run three real starling processes, routed together, each a
// node of one Raft group with its own file store, and drive them with stan.go.

// stanCluster is a three-node streaming cluster.
type stanCluster struct {
	t     *testing.T
	nodes []*node // node i has node ID nodes[i].name
}

// raftTimingArgs keep elections short but safe on a loaded 2-core machine (the defaults,
// spelled out; the lease is left to its default, a hair under the heartbeat timeout, which
// the election nudge needs).
var raftTimingArgs = []string{"--cluster_raft_heartbeat_timeout", "500ms", "--cluster_raft_election_timeout", "500ms"}

// startStanCluster starts nodes n1, n2, n3 with extra flags and waits for a leader.
func startStanCluster(t *testing.T, extra ...string) *stanCluster {
	t.Helper()
	return startStanClusterWith(t, nil, extra...)
}

// startStanClusterWith is startStanCluster with flags for node i from perNode (nil: none),
// called once every node's ports are chosen.
func startStanClusterWith(t *testing.T, perNode func(c *stanCluster, i int) []string, extra ...string) *stanCluster {
	t.Helper()
	c := &stanCluster{t: t}
	ids := []string{"n1", "n2", "n3"}
	for _, id := range ids {
		n := newNode(t, id)
		n.stan = true
		// A fixed raft port, never handed out to another node: a free one picked by the
		// kernel could be a port nodePorts gave a node that has not bound it yet.
		n.rport = nodePorts(t)[0]
		c.nodes = append(c.nodes, n)
	}
	for i, n := range c.nodes {
		args := n.clusterArgs("stan", c.nodes...)
		args = append(args, "--store", "file", "--dir", t.TempDir(), "--clustered", "--cluster_node_id", ids[i],
			"--cluster_peers", strings.Join(ids, ","), "--cluster_raft_listen", n.raftAddr())
		args = append(args, raftTimingArgs...)
		if perNode != nil {
			args = append(args, perNode(c, i)...)
		}
		if os.Getenv("STAN_RAFT_LOGGING") != "" { // hashicorp/raft's own lines, to debug a failure

			args = append(args, "--cluster_raft_logging")
		}
		n.start(append(args, extra...)...)
	}
	lead := c.leader(10 * time.Second)
	if z, err := lead.serverz(false); err != nil || strings.Join(z.Raft.Voters, ",") != strings.Join(ids, ",") {
		t.Fatalf("serverz of the leader: voters %v (%v), want %v", z.Raft.Voters, err, ids)
	}
	return c
}

// stanServerz is the part of /streaming/serverz the cluster tests read.
type stanServerz struct {
	ServerID string `json:"server_id"`
	State    string `json:"state"`
	Role     string `json:"role"`
	NodeID   string `json:"node_id"`
	Leader   string `json:"leader"`
	Digest   string `json:"digest"`
	Raft     struct {
		Term         uint64   `json:"term"`
		CommitIndex  uint64   `json:"commit_index"`
		AppliedIndex uint64   `json:"applied_index"`
		LastIndex    uint64   `json:"last_index"`
		Voters       []string `json:"voters"`
		LastContact  string   `json:"last_contact"`
		Stopped      string   `json:"stopped"`
	} `json:"raft"`
	TotalMsgs   int               `json:"total_msgs"`
	DigestParts map[string]string `json:"digest_parts"`
}

// raftAddr is the node's raft listener.
func (n *node) raftAddr() string { return fmt.Sprintf("127.0.0.1:%d", n.rport) }

func (n *node) serverz(digest bool) (stanServerz, error) {
	var z stanServerz
	path := "/streaming/serverz"
	if digest {
		path += "?digest=1"
	}
	err := n.monGet(path, &z)
	return z, err
}

// up reports whether the node's process runs.
func (n *node) up() bool {
	select {
	case err := <-n.p.done:
		n.p.done <- err
		return false
	default:
		return true
	}
}

// crashed is the exit error of a node whose process exited by itself with a failure (a
// panic, a fatal error), nil while it runs or when it stopped on a signal the test sent
// (kill's SIGKILL; SIGTERM makes it exit cleanly).
func (n *node) crashed() error {
	select {
	case err := <-n.p.done:
		n.p.done <- err
		if ee := (*exec.ExitError)(nil); errors.As(err, &ee) && ee.Exited() {
			return err
		}
	default:
	}
	return nil
}

// leader waits until exactly one running node leads and the others agree, and returns it.
func (c *stanCluster) leader(timeout time.Duration) *node {
	c.t.Helper()
	var lead *node
	waitFor(c.t, timeout, func() error {
		lead = nil
		var ids []string
		for _, n := range c.nodes {
			if !n.up() {
				continue
			}
			z, err := n.serverz(false)
			if err != nil {
				return err
			}
			if z.Role == "Leader" {
				if lead != nil {
					return fmt.Errorf("two leaders: %s and %s", lead.name, n.name)
				}
				lead = n
			}
			ids = append(ids, z.Leader)
		}
		if lead == nil {
			return errors.New("no leader")
		}
		for _, id := range ids {
			if id != lead.name {
				return fmt.Errorf("nodes see leaders %v, %s leads", ids, lead.name)
			}
		}
		return nil
	})
	return lead
}

// followers returns the running nodes that do not lead.
func (c *stanCluster) followers(lead *node) []*node {
	var out []*node
	for _, n := range c.nodes {
		if n != lead && n.up() {
			out = append(out, n)
		}
	}
	return out
}

// converged waits until every running node has applied the same log and holds the same
// state (equal digests: every message, sequence, timestamp, subscription and cursor). A
// node the test took down is left out; one that exited by itself fails it.
func (c *stanCluster) converged(timeout time.Duration) {
	c.t.Helper()
	if err := c.convergedErr(timeout); err != nil {
		c.t.Fatalf("not converged after %v: %v", timeout, err)
	}
}

// replayed is converged for a node just restarted: every running node has also applied the
// same raft index. Until it has replayed its log (which waits for a leader's commit index),
// a restarted node shows what its store recovered, equal to the others' state as often as
// not: converged alone then proves nothing about the replay.
func (c *stanCluster) replayed(timeout time.Duration) {
	c.t.Helper()
	if err := c.convergedIndexErr(timeout, true); err != nil {
		c.t.Fatalf("not converged after %v: %v", timeout, err)
	}
}

// convergedErr is converged returning the last difference after timeout.
func (c *stanCluster) convergedErr(timeout time.Duration) error {
	c.t.Helper()
	return c.convergedIndexErr(timeout, false)
}

// convergedIndexErr is convergedErr, requiring equal applied indexes too if applied is set.
func (c *stanCluster) convergedIndexErr(timeout time.Duration, applied bool) error {
	c.t.Helper()
	digestsDiffered := false
	err := poll(timeout, func() error {
		digestsDiffered = false
		var digests, indexes []string // for the error: name(server ID)=digest, name=index
		var digest0 string
		var index0 uint64
		digestsDiffer, indexesDiffer := false, false
		for _, n := range c.nodes {
			if !n.up() {
				if err := n.crashed(); err != nil {
					return fmt.Errorf("%s exited by itself (%v), not converged", n.name, err)
				}
				continue // taken down by the test
			}
			z, err := n.serverz(true)
			if err != nil {
				return err
			}
			if len(digests) == 0 {
				digest0, index0 = z.Digest, z.Raft.AppliedIndex
			}
			digestsDiffer = digestsDiffer || z.Digest != digest0
			indexesDiffer = indexesDiffer || z.Raft.AppliedIndex != index0
			digests = append(digests, n.name+"("+z.ServerID+")="+z.Digest)
			indexes = append(indexes, fmt.Sprintf("%s=%d", n.name, z.Raft.AppliedIndex))
		}
		if applied && indexesDiffer {
			return fmt.Errorf("applied indexes differ: %v", indexes)
		}
		if digestsDiffer {
			digestsDiffered = true
			return fmt.Errorf("state digests differ: %v", digests)
		}
		return nil
	})
	if err != nil && digestsDiffered {
		err = fmt.Errorf("%w%s", err, c.digestDiff())
	}
	return err
}

// digestDiff describes, for an error, where the running nodes' states differ: each node's
// place in the log, and every part of the state (StateDigestParts) not the same on all of
// them, at most 20. The parts are read after the digests compared: a node still applying
// may have moved on meanwhile.
func (c *stanCluster) digestDiff() string {
	var b strings.Builder
	var names []string
	parts := map[string]map[string]string{} // part -> node -> its description
	for _, n := range c.nodes {
		if !n.up() {
			continue
		}
		var z stanServerz
		if err := n.monGet("/streaming/serverz?digest=parts", &z); err != nil {
			fmt.Fprintf(&b, "\n  %s: %v", n.name, err)
			continue
		}
		names = append(names, n.name)
		r := z.Raft
		fmt.Fprintf(&b, "\n  %s: %s term %d last %d commit %d applied %d", n.name, z.Role, r.Term, r.LastIndex, r.CommitIndex, r.AppliedIndex)
		if r.Stopped != "" {
			fmt.Fprintf(&b, ", stopped: %s", r.Stopped)
		}
		for k, v := range z.DigestParts {
			if parts[k] == nil {
				parts[k] = map[string]string{}
			}
			parts[k][n.name] = v
		}
	}
	var differ []string
	for k, byNode := range parts {
		same := len(byNode) == len(names)
		for _, v := range byNode {
			same = same && v == byNode[names[0]]
		}
		if !same {
			differ = append(differ, k)
		}
	}
	slices.Sort(differ)
	for i, k := range differ {
		if i == 20 {
			fmt.Fprintf(&b, "\n  … %d parts differ in all", len(differ))
			break
		}
		fmt.Fprintf(&b, "\n  %s:", k)
		for _, name := range names {
			v, ok := parts[k][name]
			if !ok {
				v = "(none)"
			}
			fmt.Fprintf(&b, "\n    %s: %s", name, v)
		}
	}
	return b.String()
}

// poll calls cond until it returns nil or timeout passes, and returns its last error.
func poll(timeout time.Duration, cond func() error) error {
	deadline := time.Now().Add(timeout)
	for {
		err := cond()
		if err == nil || time.Now().After(deadline) {
			return err
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// terminate sends SIGTERM and waits for the process to exit.
func (n *node) terminate() {
	n.t.Helper()
	_ = n.p.cmd.Process.Signal(syscall.SIGTERM)
	_ = n.p.wait(n.t, 15*time.Second)
}

// stanOn connects a stan.go client to node n, within its ConnectWait (5 s unless opts say
// otherwise): see stanConnectWithin.
func stanOn(t *testing.T, n *node, clientID string, opts ...stan.Option) stan.Conn {
	t.Helper()
	opts = append([]stan.Option{stan.NatsURL(n.url()), stan.ConnectWait(5 * time.Second), stan.PubAckWait(3 * time.Second)}, opts...)
	start := time.Now()
	sc, attempts, err := stanConnectWithin(clientID, opts...)
	if err != nil {
		t.Fatalf("stan connect to %s: %v (%d attempts in %v)", n.name, err, attempts, time.Since(start).Round(time.Millisecond))
	}
	if attempts > 1 {
		t.Logf("stan connect to %s: nobody served at first; connected at attempt %d, after %v", n.name, attempts, time.Since(start).Round(time.Millisecond))
	}
	t.Cleanup(func() { _ = sc.Close() })
	return sc
}

// stanConnectWithin connects as stan.Connect does, but gives the cluster the whole
// ConnectWait to answer, and reports how many connect requests it sent. A node that raft
// just elected (as /streaming/serverz's role shows it) serves a moment later, once its engine
// has taken over (streaming/leader.go, takeOver: the barrier, then the protocol
// subscriptions): a connect request meanwhile finds nobody on the discover subject and
// fails at once with no responders, which stan.go reports as ErrConnectReqTimeout. A single
// attempt would then not wait its ConnectWait at all. So such a failure is tried again
// until ConnectWait has passed since the first attempt; a request that found a responder
// and timed out used the rest of it and is not repeated (its client ID may be registered).
func stanConnectWithin(clientID string, opts ...stan.Option) (stan.Conn, int, error) {
	var o stan.Options // only to read the ConnectWait the options set (stan.go's default if none)
	for _, opt := range opts {
		if err := opt(&o); err != nil {
			return nil, 0, err
		}
	}
	budget, start := cmp.Or(o.ConnectTimeout, stan.DefaultConnectWait), time.Now()
	for attempts := 1; ; attempts++ {
		left := budget - time.Since(start)
		sc, err := stan.Connect("test-cluster", clientID, append(slices.Clone(opts), stan.ConnectWait(max(left, time.Millisecond)))...)
		if err == nil || !errors.Is(err, stan.ErrConnectReqTimeout) || time.Since(start)+stanRetryGap >= budget {
			return sc, attempts, err
		}
		time.Sleep(stanRetryGap)
	}
}

// stanRetryGap separates stanConnectWithin's attempts.
const stanRetryGap = 20 * time.Millisecond

// publishRetry publishes data until a PubAck confirms it, retrying failures (a publish in
// flight across a leader change may fail without its outcome being known): at-least-once.
// It returns how many attempts failed.
func publishRetry(t *testing.T, sc stan.Conn, channel string, data []byte, deadline time.Duration) int {
	t.Helper()
	end := time.Now().Add(deadline)
	failed := 0
	for {
		err := sc.Publish(channel, data)
		if err == nil {
			return failed
		}
		failed++
		if time.Now().After(end) {
			t.Fatalf("publish %q not acknowledged within %v (%d attempts): %v", data, deadline, failed, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// replayAll reads channel from sequence 1 on n until it has want distinct payloads and has
// reached the channel's last sequence on n (copies stored after the last new payload are
// part of the replay), and returns the payloads in sequence order.
func replayAll(t *testing.T, n *node, channel string, want int) []string {
	t.Helper()
	// A node just restarted may still be settling a duplicate route to a peer (both dialled
	// at once; the tie-break closes one), and a request or reply already written to the
	// closed one is lost (at most once, as in NATS): the connect or the subscribe then times
	// out. Another client tries again (with a channel of its own: a failed attempt's
	// subscription may have received messages before it was closed).
	var got chan *stan.Msg
	var sub stan.Subscription
	for attempt := 1; ; attempt++ {
		ch := make(chan *stan.Msg, want*2)
		sc, err := stan.Connect("test-cluster", fmt.Sprintf("replay-%d", time.Now().UnixNano()),
			stan.NatsURL(n.url()), stan.ConnectWait(5*time.Second), stan.PubAckWait(3*time.Second))
		if err == nil {
			t.Cleanup(func() { _ = sc.Close() })
			sub, err = sc.Subscribe(channel, func(m *stan.Msg) { ch <- m }, stan.DeliverAllAvailable(), stan.MaxInflight(4096))
			if err == nil {
				got = ch
				break
			}
			_ = sc.Close()
		}
		if attempt == 3 {
			t.Fatalf("replay on %s: %v (attempt %d)", n.name, err, attempt)
		}
		t.Logf("replay on %s: %v; trying again", n.name, err)
	}
	defer sub.Close()
	last, err := channelLastSeq(n, channel)
	must(t, err)
	var out []string
	var seq uint64
	seen := map[string]bool{}
	timeout := time.After(30 * time.Second)
	for len(seen) < want || seq < last {
		select {
		case m := <-got:
			out = append(out, string(m.Data))
			seen[string(m.Data)] = true
			seq = max(seq, m.Sequence)
		case <-timeout:
			t.Fatalf("replay of %s on %s: %d distinct of %d, up to sequence %d of %d", channel, n.name, len(seen), want, seq, last)
		}
	}
	return out
}

// checkAcked verifies that every acknowledged payload is in the replay, and that none
// appears more often than it was attempted.
func checkAcked(t *testing.T, replay []string, acked []string, attempts map[string]int) {
	t.Helper()
	count := map[string]int{}
	for _, d := range replay {
		count[d]++
	}
	var lost []string
	for _, d := range acked {
		if count[d] == 0 {
			lost = append(lost, d)
		}
		if max := attempts[d]; count[d] > max {
			t.Errorf("%q stored %d times, published %d times", d, count[d], max)
		}
	}
	if len(lost) > 0 {
		slices.Sort(lost)
		t.Fatalf("%d acknowledged messages lost, e.g. %v", len(lost), lost[:min(5, len(lost))])
	}
}
