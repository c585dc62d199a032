package tests

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/stan.go"
)

// The §4 fault scenarios of the streaming cluster, short versions (make test); the soak
// build tag runs the long ones (soak_stancluster_test.go).

// envInt is $name as a positive integer, else def.
func envInt(t *testing.T, name string, def int) int {
	t.Helper()
	s := os.Getenv(name)
	if s == "" {
		return def
	}
	v, err := strconv.Atoi(s)
	if err != nil || v < 1 {
		t.Fatalf("%s=%q: want a positive integer", name, s)
	}
	return v
}

// leaderKills runs cycles of: SIGKILL of the leader under async publish load with a
// durable and a durable queue group subscribed, the failover timed (the kill to the first
// PubAck on a surviving node), the load acknowledged on the new leader, the killed node
// restarted and every node converged. checkLoad runs every checkEvery cycles and at the
// end. It returns the tally and the failover times.
func leaderKills(t *testing.T, cycles, checkEvery int) (tally loadTally, failovers, elections []time.Duration) {
	c := startStanCluster(t)
	l := newStanLoad(t, c.nodes, "kills", 500)
	defer l.close() // before the cleanups of nodes restarted since, which run first
	l.waitAcked(200, 20*time.Second)
	for i := range cycles {
		lead := c.leader(10 * time.Second)
		probe, closeProbe := loadConn(t, c.followers(lead)[:1], fmt.Sprintf("probe-%d", i), stan.PubAckWait(100*time.Millisecond))
		publishRetry(t, probe, "probe", []byte("p"), 10*time.Second)
		start := time.Now()
		end := l.fault(start)
		elected := watchElection(c.followers(lead), start)
		lead.kill()
		d := probeFailover(t, probe, start, 20*time.Second)
		end()
		failovers = append(failovers, d)
		elections = append(elections, elected())
		closeProbe()
		l.waitAcked(200, 20*time.Second)
		lead.restart()
		if (i+1)%checkEvery == 0 || i == cycles-1 {
			tally = l.checkLoad(c)
			t.Logf("cycle %d: killed %s, elected after %v, failover %v; %v", i+1, lead.name, elections[i], d, tally)
		} else {
			l.pause(30 * time.Second)
			c.converged(30 * time.Second)
			l.resume()
			t.Logf("cycle %d: killed %s, elected after %v, failover %v", i+1, lead.name, elections[i], d)
		}
		if t.Failed() {
			break
		}
	}
	return tally, failovers, elections
}

// watchElection polls nodes from now on until one says it leads; the returned func waits
// for that and returns how long after start it was.
func watchElection(nodes []*node, start time.Time) func() time.Duration {
	done := make(chan time.Duration, 1)
	go func() {
		for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
			for _, n := range nodes {
				if z, err := n.serverz(false); err == nil && z.Role == "Leader" {
					done <- time.Since(start)
					return
				}
			}
		}
		done <- -1
	}()
	return func() time.Duration { return <-done }
}

// TestStanClusterLeaderKills: §4.1, leader SIGKILL under load, $STAN_KILL_CYCLES cycles (2;
// 100 in `make soak`).
func TestStanClusterLeaderKills(t *testing.T) {
	tally, failovers, elections := leaderKills(t, envInt(t, "STAN_KILL_CYCLES", 2), 2)
	t.Logf("%d leader kills: %v; failover p50 %v p99 %v max %v (a new leader known after p50 %v p99 %v)", len(failovers), tally,
		percentile(failovers, 50), percentile(failovers, 99), percentile(failovers, 100), percentile(elections, 50), percentile(elections, 99))
	if p := percentile(failovers, 99); p > 5*time.Second {
		t.Errorf("failover p99 %v", p)
	}
}

// TestStanClusterRollingRestart: §4.2, each node in turn (followers first, the leader
// last, as an operator would) stopped with SIGTERM under load and restarted, the cluster
// converging before the next: the only failed publishes are those in flight to the leader
// as it hands over (at most the publisher's window), all retried; no client loses its
// streaming connection (loadConn fails the test then).
func TestStanClusterRollingRestart(t *testing.T) {
	c := startStanCluster(t)
	l := newStanLoad(t, c.nodes, "rolling", 500)
	defer l.close() // before the cleanups of nodes restarted since, which run first
	l.waitAcked(200, 20*time.Second)
	lead := c.leader(10 * time.Second)
	for _, n := range append(c.followers(lead), lead) {
		start := time.Now()
		end := l.fault(start)
		n.terminate()
		stopped := time.Since(start)
		l.waitAcked(200, 20*time.Second)
		end()
		acked := time.Since(start)
		n.restart()
		restarted := time.Since(start)
		l.pause(30 * time.Second)
		c.converged(30 * time.Second)
		l.resume()
		t.Logf("%s: SIGTERM to exit %v, 200 acknowledged by %v, restarted by %v, converged by %v", n.name, stopped, acked, restarted, time.Since(start))
	}
	tally := l.checkLoad(c)
	t.Logf("rolling restart: %v", tally)
	if tally.failed > 256 {
		t.Errorf("%d publish attempts failed: more than the one window in flight at the leader's handover", tally.failed)
	}
}

// followerStop runs §4.3: a follower SIGSTOPped for d under load (the clients on the other
// two nodes): no election (the term stays on every node), the majority acknowledges
// meanwhile, and after SIGCONT the follower catches up.
func followerStop(t *testing.T, d time.Duration, rate int) {
	c := startStanCluster(t)
	lead := c.leader(10 * time.Second)
	fs := c.followers(lead)
	stopped, other := fs[0], fs[1]
	l := newStanLoad(t, []*node{lead, other}, "fstop", rate)
	defer l.close() // before the cleanups of nodes restarted since, which run first
	l.waitAcked(200, 20*time.Second)
	z, err := lead.serverz(false)
	must(t, err)
	term := z.Raft.Term
	stopped.stop()
	t.Cleanup(func() { _ = syscall.Kill(stopped.p.cmd.Process.Pid, syscall.SIGCONT) })
	before := l.ackedCount()
	for end := time.Now().Add(d); time.Now().Before(end); time.Sleep(200 * time.Millisecond) {
		for _, n := range []*node{lead, other} {
			z, err := n.serverz(false)
			must(t, err)
			if z.Raft.Term != term || z.Leader != lead.name {
				t.Fatalf("%s stopped: %s sees term %d leader %q, was term %d leader %s", stopped.name, n.name, z.Raft.Term, z.Leader, term, lead.name)
			}
		}
	}
	acked := l.ackedCount() - before
	if acked < 100 {
		t.Errorf("%d acknowledged in %v with a follower stopped", acked, d)
	}
	stopped.cont()
	start := time.Now()
	tally := l.checkLoad(c)
	t.Logf("follower %s stopped %v: %d acknowledged meanwhile; caught up and converged %v after SIGCONT; %v", stopped.name, d, acked, time.Since(start), tally)
	for _, n := range c.nodes {
		z, err := n.serverz(false)
		must(t, err)
		if z.Raft.Term != term || z.Leader != lead.name {
			t.Errorf("after SIGCONT %s sees term %d leader %q, was term %d leader %s", n.name, z.Raft.Term, z.Leader, term, lead.name)
		}
	}
}

// TestStanClusterFollowerStop: §4.3, short ($STAN_FOLLOWER_STOP_SECONDS, default 3; 30 in
// soak), at 300 messages a second: under heavier load the leader sometimes loses its lease
// with no fault at all (TestSoakStanClusterSteady), which this test would take for an
// election caused by the stopped follower.
func TestStanClusterFollowerStop(t *testing.T) {
	followerStop(t, time.Duration(envInt(t, "STAN_FOLLOWER_STOP_SECONDS", 3))*time.Second, 300)
}

// leaderAmong waits until one of nodes leads (by its own serverz) and returns it.
func leaderAmong(t *testing.T, timeout time.Duration, nodes ...*node) *node {
	t.Helper()
	var lead *node
	waitFor(t, timeout, func() error {
		for _, n := range nodes {
			if z, err := n.serverz(false); err == nil && z.Role == "Leader" {
				lead = n
				return nil
			}
		}
		return errors.New("no leader among them")
	})
	return lead
}

// TestStanClusterLeaderStop: §4.4, the leader SIGSTOPped for 5 s under load: the
// followers elect a new leader and serve; a publisher connected to the old leader alone
// keeps sending, so that on SIGCONT the old leader reads publishes before it learns of the
// new term — it must acknowledge none it did not commit (everything its clients saw
// acknowledged is stored), and steps down.
func TestStanClusterLeaderStop(t *testing.T) {
	c := startStanCluster(t)
	old := c.leader(10 * time.Second)
	fs := c.followers(old)
	l := newStanLoad(t, fs, "lstop", 500)
	defer l.close() // before the cleanups of nodes restarted since, which run first
	stale := newStanPublisher(t, []*node{old}, "lstop", "s", 200)
	defer stale.close() // before the cleanups of nodes restarted since, which run first
	l.waitAcked(200, 20*time.Second)
	stale.waitAcked(100, 20*time.Second)
	staleBefore := stale.ackedCount()
	start := time.Now()
	end, endStale := l.fault(start), stale.fault(start)
	old.stop()
	t.Cleanup(func() { _ = syscall.Kill(old.p.cmd.Process.Pid, syscall.SIGCONT) })
	lead := leaderAmong(t, 10*time.Second, fs...)
	t.Logf("old leader %s stopped: %s leads after %v", old.name, lead.name, time.Since(start))
	l.waitAcked(200, 20*time.Second)
	time.Sleep(time.Until(start.Add(5 * time.Second))) // the fault lasts 5 s
	old.cont()
	resumed := time.Now()
	waitFor(t, 10*time.Second, func() error {
		z, err := old.serverz(false)
		if err != nil {
			return err
		}
		if z.Role == "Leader" {
			return errors.New("the old leader still leads")
		}
		return nil
	})
	t.Logf("%s stepped down %v after SIGCONT", old.name, time.Since(resumed))
	end()
	endStale()
	tally := l.checkLoad(c, stale)
	staleTally := stale.checkLoad(c, l)
	t.Logf("load: %v; publisher on the old leader: %v (%d acknowledged since the stop)", tally, staleTally, staleTally.acked-staleBefore)
}

// TestStanClusterTwoDown: §4.6, two of three nodes killed: the survivor acknowledges
// nothing and /healthz says why; one back: a PubAck within 2 s, and nothing acknowledged
// before is lost.
func TestStanClusterTwoDown(t *testing.T) {
	c := startStanCluster(t)
	lead := c.leader(10 * time.Second)
	fs := c.followers(lead)
	survivor, back := fs[0], fs[1]
	l := newStanLoad(t, []*node{survivor}, "twodown", 300)
	defer l.close() // before the cleanups of nodes restarted since, which run first
	probe, closeProbe := loadConn(t, []*node{survivor}, "probe", stan.PubAckWait(100*time.Millisecond))
	defer closeProbe()
	l.waitAcked(200, 20*time.Second)
	start := time.Now()
	end := l.fault(start)
	lead.kill()
	back.kill()
	waitFor(t, 10*time.Second, func() error {
		if code, err := survivor.healthz(); err != nil || code == http.StatusOK {
			return fmt.Errorf("healthz %d %v", code, err)
		}
		return nil
	})
	reason := healthzBody(t, survivor)
	if !strings.Contains(reason, "no leader") {
		t.Errorf("healthz of the survivor: %s", reason)
	}
	acked := l.ackedCount()
	time.Sleep(2 * time.Second) // the outage: nothing may be acknowledged in it
	if n := l.ackedCount() - acked; n > 0 {
		t.Errorf("%d publishes acknowledged with two of three nodes down", n)
	}
	restart := time.Now()
	back.restart()
	resume := probeFailover(t, probe, restart, 20*time.Second)
	end()
	t.Logf("two down for %v; one restarted: first PubAck %v after its start", restart.Sub(start), resume)
	if resume > 2*time.Second {
		t.Errorf("service resumed %v after the node's restart (want < 2s)", resume)
	}
	lead.restart()
	t.Logf("%v", l.checkLoad(c))
}

// healthzBody is /healthz of n as text.
func healthzBody(t *testing.T, n *node) string {
	t.Helper()
	resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/healthz", n.mport))
	must(t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	must(t, err)
	return resp.Status + " " + string(b)
}

// TestStanClusterDurableResume: §4.10, a durable and a durable queue group, each having
// received 100 messages and acked the first 60, are closed (kept); the leader is killed
// and 100 more published on the new one; on resume each gets 61–100 flagged redelivered
// and 101–200 unflagged in order, and never 1–60.
func TestStanClusterDurableResume(t *testing.T) {
	c := startStanCluster(t)
	lead := c.leader(10 * time.Second)
	pub, closePub := loadConn(t, c.nodes, "pub")
	defer closePub()
	for i := 1; i <= 100; i++ {
		publishRetry(t, pub, "resume", msgf("r-%03d", i), 10*time.Second)
	}
	type member struct {
		name  string
		sub   stan.Subscription
		close func()
		got   chan *stan.Msg
	}
	subscribe := func(id, queue string) member {
		sc, closer := loadConn(t, c.nodes, id)
		t.Cleanup(closer)
		m := member{name: id, close: closer, got: make(chan *stan.Msg, 1024)}
		h := func(msg *stan.Msg) {
			if msg.Sequence <= 60 {
				_ = msg.Ack()
			}
			m.got <- msg
		}
		opts := []stan.SubscriptionOption{stan.DurableName("d"), stan.SetManualAckMode(), stan.AckWait(30 * time.Second), stan.DeliverAllAvailable()}
		var err error
		if queue == "" {
			m.sub, err = sc.Subscribe("resume", h, opts...)
		} else {
			m.sub, err = sc.QueueSubscribe("resume", queue, h, opts...)
		}
		must(t, err)
		return m
	}
	drain := func(ms []member, n int) []*stan.Msg {
		var out []*stan.Msg
		timeout := time.After(20 * time.Second)
		for len(out) < n {
			select {
			case m := <-ms[0].got:
				out = append(out, m)
			case m := <-ms[len(ms)-1].got:
				out = append(out, m)
			case <-timeout:
				t.Fatalf("%s: %d of %d messages", ms[0].name, len(out), n)
			}
		}
		return out
	}
	dur := []member{subscribe("dur", "")}
	queue := []member{subscribe("q1", "grp"), subscribe("q2", "grp")}
	drain(dur, 100)
	drain(queue, 100)
	// The acks of 1–60 are in: 40 pending for each, on the leader, and all nodes agree.
	waitFor(t, 10*time.Second, func() error {
		pending := map[string]int{}
		for _, s := range channelSubs(t, fmt.Sprintf("http://127.0.0.1:%d", lead.mport), "resume") {
			kind := "durable"
			if s.QueueName != "" {
				kind = "queue" // "d:grp": the durable's name, then the group's
			}
			pending[kind] += s.PendingCount
		}
		if pending["durable"] != 40 || pending["queue"] != 40 {
			return fmt.Errorf("pending %v", pending)
		}
		return nil
	})
	for _, m := range append(dur, queue...) {
		must(t, m.sub.Close()) // the durable stays
		m.close()
	}
	c.converged(10 * time.Second)
	lead.kill()
	for i := 101; i <= 200; i++ {
		publishRetry(t, pub, "resume", msgf("r-%03d", i), 20*time.Second)
	}
	t.Logf("killed %s; %s leads", lead.name, c.leader(10*time.Second).name)
	check := func(who string, msgs []*stan.Msg) {
		seen := map[uint64]bool{}
		var next uint64 = 101
		for _, m := range msgs {
			switch {
			case m.Sequence <= 60:
				t.Errorf("%s: acked seq %d delivered again (redelivered=%v)", who, m.Sequence, m.Redelivered)
			case m.Sequence <= 100:
				if !m.Redelivered {
					t.Errorf("%s: pending seq %d redelivered unflagged", who, m.Sequence)
				}
			case m.Redelivered:
				t.Errorf("%s: new seq %d flagged redelivered", who, m.Sequence)
			case m.Sequence != next:
				t.Errorf("%s: seq %d after %d", who, m.Sequence, next-1)
				next = m.Sequence + 1
			default:
				next++
			}
			seen[m.Sequence] = true
		}
		for s := uint64(61); s <= 200; s++ {
			if !seen[s] {
				t.Errorf("%s: seq %d not delivered", who, s)
				break
			}
		}
	}
	check("durable", drain([]member{subscribe("dur", "")}, 140))
	check("durable queue", drain([]member{subscribe("q1", "grp")}, 140))
	lead.restart()
	c.converged(20 * time.Second)
}

// raftMesh is a streaming cluster whose raft traffic goes through a linkProxy per ordered
// pair of nodes (--cluster_raft_peer_addrs): links[i][j] carries what node i dials of j.
// The routes stay whole, so clients on any node reach the leader.
type raftMesh struct {
	*stanCluster
	links [3][3]*linkProxy
}

func startRaftMesh(t *testing.T) *raftMesh {
	t.Helper()
	m := &raftMesh{}
	m.stanCluster = startStanClusterWith(t, func(c *stanCluster, i int) []string {
		var addrs []string
		for j, peer := range c.nodes {
			if j != i {
				m.links[i][j] = newLinkProxy(t, peer.raftAddr())
				addrs = append(addrs, peer.name+"="+m.links[i][j].addr())
			}
		}
		return []string{"--cluster_raft_peer_addrs", strings.Join(addrs, ",")}
	})
	return m
}

// isolate cuts n's raft links both ways to every other node; heal restores all links.
func (m *raftMesh) isolate(n *node) {
	i := slices.Index(m.nodes, n)
	for j := range m.nodes {
		if j != i {
			m.links[i][j].partition()
			m.links[j][i].partition()
		}
	}
}

func (m *raftMesh) heal() {
	for i := range m.links {
		for _, l := range m.links[i] {
			if l != nil {
				l.heal()
			}
		}
	}
}

// TestStanClusterPartition: §4.5, raft traffic through proxies. The leader isolated: it
// stops serving within its lease (plus raft's check interval), the majority elects another
// and serves the load; a publisher connected to the isolated node only sees nothing
// acknowledged that is not stored. After healing all converge. Then a follower isolated:
// the majority serves on, and it converges after healing.
func TestStanClusterPartition(t *testing.T) {
	m := startRaftMesh(t)
	old := m.leader(10 * time.Second)
	fs := m.followers(old)
	l := newStanLoad(t, fs, "part", 500)
	defer l.close() // before the cleanups of nodes restarted since, which run first
	stale := newStanPublisher(t, []*node{old}, "part", "s", 200)
	defer stale.close() // before the cleanups of nodes restarted since, which run first
	l.waitAcked(200, 20*time.Second)
	stale.waitAcked(100, 20*time.Second)

	start := time.Now()
	end, endStale := l.fault(start), stale.fault(start)
	m.isolate(old)
	waitFor(t, 10*time.Second, func() error {
		z, err := old.serverz(false)
		if err != nil {
			return err
		}
		if z.Role == "Leader" {
			return errors.New("the isolated node still leads")
		}
		return nil
	})
	stepDown := time.Since(start)
	lead := leaderAmong(t, 10*time.Second, fs...)
	elected := time.Since(start)
	l.waitAcked(300, 20*time.Second)
	t.Logf("leader %s isolated: it stepped down after %v; %s elected by %v; the majority acknowledges", old.name, stepDown, lead.name, elected)
	if stepDown > time.Second {
		t.Errorf("the isolated leader served %v (lease 250ms)", stepDown)
	}
	healed := time.Now()
	m.heal()
	end()
	endStale()
	t.Logf("healed: load %v; publisher on the isolated node %v (converged %v after healing)", l.checkLoad(m.stanCluster, stale), stale.checkLoad(m.stanCluster, l), time.Since(healed))

	lead = m.leader(10 * time.Second)
	f := m.followers(lead)[0]
	start = time.Now()
	end = l.fault(start)
	m.isolate(f)
	l.waitAcked(500, 20*time.Second)
	m.heal()
	end()
	if now := m.leader(10 * time.Second); now != lead {
		t.Logf("follower %s isolated: leadership moved from %s to %s", f.name, lead.name, now.name)
	}
	t.Logf("follower %s isolated %v: %v", f.name, time.Since(start), l.checkLoad(m.stanCluster, stale))
}

// TestStanClusterSnapshotCatchUp: §4.7, a follower away while the others take snapshots
// and compact their logs past it (small threshold and trailing logs), and while the
// channel's limit removes messages it holds: back, it must install a snapshot, fetch the
// messages the snapshot does not carry (the bulk fetch), and end identical to the leader,
// serving the same messages once it leads.
func TestStanClusterSnapshotCatchUp(t *testing.T) {
	const maxMsgs = 300
	c := startStanCluster(t, "--cluster_snapshot_threshold", "32", "--cluster_trailing_logs", "8",
		"--cluster_snapshot_interval", "200ms", "--max_msgs", fmt.Sprint(maxMsgs), "--cluster_raft_logging")
	lead := c.leader(10 * time.Second)
	away := c.followers(lead)[0]
	pub, closePub := loadConn(t, []*node{lead}, "pub")
	defer closePub()
	for i := range 100 {
		publishRetry(t, pub, "snap", msgf("a-%04d", i), 10*time.Second)
	}
	c.converged(10 * time.Second)
	away.kill()
	z0, err := lead.serverz(false)
	must(t, err)
	for i := range 1000 {
		publishRetry(t, pub, "snap", msgf("b-%04d", i), 10*time.Second)
	}
	// Enough entries for several snapshots past the absent node's last index.
	waitFor(t, 10*time.Second, func() error {
		z, err := lead.serverz(false)
		if err != nil {
			return err
		}
		if z.Raft.CommitIndex < z0.Raft.CommitIndex+200 {
			return fmt.Errorf("commit index %d", z.Raft.CommitIndex)
		}
		return nil
	})
	time.Sleep(time.Second) // a snapshot interval or more: the leader compacts its log
	away.restart()
	converged := func() error {
		var digests []string
		for _, n := range c.nodes {
			z, err := n.serverz(true)
			if err != nil {
				return err
			}
			digests = append(digests, n.name+"="+z.Digest)
		}
		if digests[0][3:] != digests[1][3:] || digests[0][3:] != digests[2][3:] {
			return fmt.Errorf("state digests differ: %v", digests)
		}
		return nil
	}
	if err := poll(20*time.Second, converged); err != nil {
		t.Fatalf("%s back from its absence does not converge: %v", away.name, err)
	}
	var ch struct {
		Msgs     int    `json:"msgs"`
		FirstSeq uint64 `json:"first_seq"`
		LastSeq  uint64 `json:"last_seq"`
	}
	must(t, c.leader(10*time.Second).monGet("/streaming/channelsz?channel=snap", &ch))
	if ch.Msgs != maxMsgs || ch.LastSeq != 1100 || ch.FirstSeq != 1100-maxMsgs+1 {
		t.Errorf("channel after catch-up: %+v, want %d messages up to 1100", ch, maxMsgs)
	}
	// The node that was away serves the channel once it leads.
	for lead := c.leader(10 * time.Second); lead != away; lead = c.leader(10 * time.Second) {
		lead.terminate()
		lead.restart()
	}
	got := storedFrom(t, away, "snap", ch.FirstSeq, ch.LastSeq)
	for i, d := range got {
		if want := fmt.Sprintf("b-%04d", 1000-maxMsgs+i); d != want {
			t.Fatalf("seq %d on %s: %q, want %q", ch.FirstSeq+uint64(i), away.name, d, want)
		}
	}
}
