package tests

import (
	"fmt"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/stan.go"
)

// The mixed-version tests run a streaming cluster of two builds: $STARLING_OLD_BIN, a
// starling built from an older revision (`make upgrade-check` builds one, e04653b unless
// UPGRADE_FROM names another), and the binary under test. They check what a rolling
// upgrade relies on: nodes of both versions share one raft log, snapshots and fetches.
// Skipped without $STARLING_OLD_BIN: building the old binary needs the git history.

// oldStarling returns $STARLING_OLD_BIN, or skips the test.
func oldStarling(t *testing.T) string {
	t.Helper()
	p := os.Getenv("STARLING_OLD_BIN")
	if p == "" {
		t.Skip("STARLING_OLD_BIN not set (make upgrade-check)")
	}
	if _, err := os.Stat(p); err != nil {
		t.Fatalf("STARLING_OLD_BIN: %v", err)
	}
	return p
}

// TestStanClusterRollingUpgrade: three old nodes under load (async and sync publishers, a
// durable and a durable queue group acking), each replaced in turn by the new binary
// (SIGTERM, restart on the same store and raft log), followers first and the leader last,
// then the new leader SIGKILLed once more. Every acknowledged message stored, once unless
// retried, in order, the same state on every node, cursors never back, no node stopped.
func TestStanClusterRollingUpgrade(t *testing.T) {
	old, cur := oldStarling(t), starlingBinary(t)
	c := startStanClusterWith(t, func(c *stanCluster, i int) []string { c.nodes[i].bin = old; return nil }, snapshotArgs...)
	l := newStanLoad(t, c.nodes, "upgrade", 300)
	defer l.close() // before the cleanups of nodes restarted since, which run first
	sp := newSyncPub(t, c.nodes, "upgrade-sync")
	defer sp.close()
	l.waitAcked(200, 20*time.Second)
	sp.waitAcked(20, 20*time.Second)
	check := stepCheck(t, c, l, sp)
	check("3 old nodes", nil)

	upgraded := map[*node]bool{} // not by bin: the check may run with two copies of one build
	for range c.nodes {
		lead := c.leader(10 * time.Second)
		var n *node // the next old node: a follower while there is one
		for _, f := range append(c.followers(lead), lead) {
			if !upgraded[f] {
				n = f
				break
			}
		}
		upgraded[n] = true
		role := "follower"
		if n == lead {
			role = "leader"
		}
		start := time.Now()
		end := l.fault(start)
		n.terminate()
		l.waitAcked(awayAcks, 30*time.Second) // the others snapshot and compact past n meanwhile
		sp.waitAcked(5, 30*time.Second)
		n.bin = cur
		n.restart()
		caughtUp(c, l, sp)
		end() // not before: a node restarted may call an election while it catches up
		check(fmt.Sprintf("%s (%s) upgraded in %v", n.name, role, time.Since(start).Round(time.Millisecond)), n)
		if t.Failed() {
			return
		}
	}

	lead := c.leader(10 * time.Second)
	start := time.Now()
	end := l.fault(start)
	lead.kill()
	c.leader(10 * time.Second)
	l.waitAcked(200, 30*time.Second)
	sp.waitAcked(10, 30*time.Second)
	lead.restart()
	caughtUp(c, l, sp)
	end()
	check(fmt.Sprintf("new leader %s SIGKILLed and restarted", lead.name), lead)
}

// TestStanClusterDowngradeOne: three new nodes under load, one follower replaced by the
// old binary (a downgrade of one node, or an old node joining new ones), then the leader
// stopped so that the others elect (the old node may lead), and restarted.
func TestStanClusterDowngradeOne(t *testing.T) {
	old := oldStarling(t)
	c := startStanCluster(t, snapshotArgs...)
	l := newStanLoad(t, c.nodes, "downgrade", 300)
	defer l.close()
	sp := newSyncPub(t, c.nodes, "downgrade-sync")
	defer sp.close()
	l.waitAcked(200, 20*time.Second)
	check := stepCheck(t, c, l, sp)
	lead := c.leader(10 * time.Second)
	n := c.followers(lead)[0]
	end := l.fault(time.Now())
	n.terminate()
	l.waitAcked(awayAcks, 30*time.Second)
	sp.waitAcked(5, 30*time.Second)
	n.bin = old
	n.restart()
	caughtUp(c, l, sp)
	end()
	check(n.name+" downgraded", n)
	if t.Failed() {
		return
	}
	end = l.fault(time.Now())
	lead.terminate()
	nl := c.leader(10 * time.Second)
	l.waitAcked(awayAcks, 30*time.Second)
	sp.waitAcked(5, 30*time.Second)
	lead.restart()
	caughtUp(c, l, sp)
	end()
	check(fmt.Sprintf("leader %s stopped and restarted; %s led meanwhile (old: %v)", lead.name, nl.name, nl.bin == old), lead)
}

// snapshotArgs make the nodes snapshot and compact their logs often, so that a node
// restarted after a second away installs a snapshot of a node of the other version and
// fetches the messages it names from the others (FetchRequest/FetchReply across versions).
var snapshotArgs = []string{"--cluster_snapshot_interval", "200ms", "--cluster_snapshot_threshold", "16",
	"--cluster_trailing_logs", "16"}

// awayAcks is how many messages the load gets acknowledged while a node is away: enough
// entries for the others to snapshot and compact past it.
const awayAcks = 1000

// fetched says whether n's output tells of a snapshot install with a fetch.
func fetched(n *node) string {
	if n == nil {
		return ""
	}
	if strings.Contains(n.p.out.String(), "fetched the messages a snapshot names") {
		return " (installed a snapshot and fetched)"
	}
	return " (no fetch)"
}

// stepCheck returns the check after each step: checkLoad (every acknowledged message
// stored, in order, equal digests on every node, no cursor violation seen by the
// subscribers), the sync publisher's messages, the durables' last_sent not back, no node
// stopped.
func stepCheck(t *testing.T, c *stanCluster, l *stanLoad, sp *syncPub) func(step string, restarted *node) {
	cur := newCursors(t, l.channel)
	return func(step string, restarted *node) {
		t.Helper()
		sp.pause(30 * time.Second)
		tally := l.checkLoad(c)
		sp.check(c)
		lead := c.leader(10 * time.Second)
		cur.check(lead, step)
		sp.resume()
		noneStopped(t, c)
		t.Logf("%s%s, %s leads: %v; sync %d acked", step, fetched(restarted), lead.name, tally, sp.ackedCount())
	}
}

// caughtUp waits until a node just restarted has caught up with the others (the loads
// paused meanwhile).
func caughtUp(c *stanCluster, l *stanLoad, sp *syncPub) {
	sp.pause(30 * time.Second)
	l.pause(30 * time.Second)
	c.converged(30 * time.Second)
	l.resume()
	sp.resume()
}

// noneStopped fails the test when a node's output says it stopped applying the log (an op
// it does not know, a failed command) or it exited by itself.
func noneStopped(t *testing.T, c *stanCluster) {
	t.Helper()
	for _, n := range c.nodes {
		if err := n.crashed(); err != nil {
			t.Errorf("%s exited by itself: %v", n.name, err)
		}
		out := n.p.out.String()
		for _, s := range []string{"unknown op", "stopped applying", "panic:"} {
			if i := strings.Index(out, s); i >= 0 {
				t.Errorf("%s (%s): %q in its output: %s", n.name, n.bin, s, out[max(0, i-300):min(len(out), i+300)])
			}
		}
	}
}

// cursors follows the durable cursors (last_sent) of a channel on the leader: none may go back.
type cursors struct {
	t       *testing.T
	channel string
	last    map[string]uint64 // durable name/queue name: the greatest last_sent seen
}

func newCursors(t *testing.T, channel string) *cursors {
	return &cursors{t: t, channel: channel, last: map[string]uint64{}}
}

func (c *cursors) check(lead *node, step string) {
	c.t.Helper()
	var z struct {
		Subscriptions []struct {
			DurableName string `json:"durable_name"`
			QueueName   string `json:"queue_name"`
			LastSent    uint64 `json:"last_sent"`
		} `json:"subscriptions"`
	}
	must(c.t, lead.monGet("/streaming/channelsz?subs=1&channel="+c.channel, &z))
	now := map[string]uint64{}
	for _, s := range z.Subscriptions {
		if s.DurableName != "" || s.QueueName != "" { // a durable queue group shows as its queue name
			k := s.DurableName + "/" + s.QueueName
			now[k] = max(now[k], s.LastSent)
		}
	}
	for k, v := range c.last {
		if now[k] < v {
			c.t.Errorf("%s: durable %s on %s at last_sent %d, was %d", step, k, lead.name, now[k], v)
		}
	}
	if len(now) < 2 {
		c.t.Errorf("%s: durables on %s: %v, want dur and qdur", step, lead.name, now)
	}
	for k, v := range now {
		c.last[k] = max(c.last[k], v)
	}
}

// syncPub publishes with the synchronous Publish, one at a time, each payload until acknowledged.
type syncPub struct {
	t        *testing.T
	channel  string
	sc       stan.Conn
	closer   func()
	mu       sync.Mutex
	attempts map[string]int
	acked    []string
	paused   bool
	busy     bool
	stop     chan struct{}
	done     chan struct{}
}

func newSyncPub(t *testing.T, nodes []*node, channel string) *syncPub {
	t.Helper()
	sc, closer := loadConn(t, nodes, "sync-"+channel)
	p := &syncPub{t: t, channel: channel, sc: sc, closer: closer, attempts: map[string]int{},
		stop: make(chan struct{}), done: make(chan struct{})}
	t.Cleanup(p.close)
	go p.run()
	return p
}

func (p *syncPub) run() {
	defer close(p.done)
	for i := 0; ; {
		select {
		case <-p.stop:
			return
		case <-time.After(10 * time.Millisecond):
		}
		p.mu.Lock()
		if p.paused {
			p.mu.Unlock()
			continue
		}
		p.busy = true
		d := fmt.Sprintf("s-%07d", i)
		p.attempts[d]++
		p.mu.Unlock()
		err := p.sc.Publish(p.channel, []byte(d))
		p.mu.Lock()
		p.busy = false
		if err == nil {
			p.acked = append(p.acked, d)
			i++
		}
		p.mu.Unlock()
	}
}

func (p *syncPub) ackedCount() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.acked)
}

func (p *syncPub) waitAcked(n int, timeout time.Duration) {
	p.t.Helper()
	want := p.ackedCount() + n
	waitFor(p.t, timeout, func() error {
		if got := p.ackedCount(); got < want {
			return fmt.Errorf("sync publisher: %d of %d acknowledged", got, want)
		}
		return nil
	})
}

// pause waits until the payload in flight is acknowledged (retried until it is), and
// publishes nothing new until resume.
func (p *syncPub) pause(timeout time.Duration) {
	p.t.Helper()
	p.mu.Lock()
	p.paused = true
	p.mu.Unlock()
	waitFor(p.t, timeout, func() error {
		p.mu.Lock()
		defer p.mu.Unlock()
		if p.busy {
			return fmt.Errorf("sync publish in flight")
		}
		return nil
	})
}

func (p *syncPub) resume() {
	p.mu.Lock()
	p.paused = false
	p.mu.Unlock()
}

// check reads the channel through the leader (the nodes have converged: checkLoad): every
// acknowledged payload once per attempt at most, in order.
func (p *syncPub) check(c *stanCluster) {
	p.t.Helper()
	p.mu.Lock()
	acked, attempts := slices.Clone(p.acked), make(map[string]int, len(p.attempts))
	for d, n := range p.attempts {
		attempts[d] = n
	}
	p.mu.Unlock()
	stored := storedPayloads(p.t, c.leader(10*time.Second), p.channel)
	count := map[string]int{}
	prev := ""
	for _, d := range stored {
		count[d]++
		if d < prev {
			p.t.Errorf("%s: stored %s after %s", p.channel, d, prev)
		}
		prev = max(prev, d)
	}
	for _, d := range acked {
		if count[d] == 0 || count[d] > attempts[d] {
			p.t.Errorf("%s: %s stored %d times, published %d times (acked)", p.channel, d, count[d], attempts[d])
		}
	}
}

func (p *syncPub) close() {
	select {
	case <-p.stop:
		return
	default:
	}
	close(p.stop)
	<-p.done
	p.closer()
}
