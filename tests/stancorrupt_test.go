package tests

import (
	"bytes"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/stan.go"
)

// §4.9: damage on a follower's disk — a torn tail of the raft log, a flipped bit in a logged
// message, a damaged snapshot. The node must log a clear problem and never serve wrong
// data: refusing to start is acceptable when its message names the damaged file; if it
// runs, the cluster must converge with every message intact.

// knownBug fails the test with $STAN_KNOWN_BUGS set, else skips it saying why: a server
// bug the test reproduces, reported and not fixed here.
func knownBug(t *testing.T, msg string) {
	t.Helper()
	if os.Getenv("STAN_KNOWN_BUGS") != "" {
		t.Fatal("KNOWN BUG: " + msg)
	}
	t.Skip("KNOWN BUG (STAN_KNOWN_BUGS=1 fails instead): " + msg)
}

// raftGroupDir is the node's raft directory (--dir D: D/raft/<group>).
func (n *node) raftGroupDir() string {
	i := slices.Index(n.extra, "--dir")
	return filepath.Join(n.extra[i+1], "raft", "test-cluster")
}

// tryRestart starts the node again; it returns the output and false when the process
// exits before it accepts clients.
func (n *node) tryRestart() (string, bool) {
	n.t.Helper()
	bin := starlingBinary(n.t)
	n.p = startProc(n.t, bin, n.args...)
	n.logOnFailure(bin)
	var exited bool
	waitFor(n.t, readyTimeout, func() error {
		select {
		case err := <-n.p.done:
			n.p.done <- err
			exited = true
			return nil
		default:
		}
		nc, err := nats.Connect(n.url(), nats.Timeout(time.Second), nats.NoReconnect())
		if err != nil {
			return err
		}
		nc.Close()
		// Clustered, core accepts clients before the raft log opens (a node restoring a
		// snapshot fetches over the routes): monitoring, started last, says it is up.
		_, err = n.routez()
		return err
	})
	return n.p.out.String(), !exited
}

// corruptCase runs one damage: publish (more until ready, if given, finds the follower
// ready for the damage), the follower stopped, damage applied to its raft directory
// (returns the damaged file's name), restart; then either a refusal that names the file, or
// convergence and every message intact on every node as it leads.
func corruptCase(t *testing.T, ready func(f *node) error, damage func(t *testing.T, c *stanCluster, f *node) string, extra ...string) {
	c := startStanCluster(t, extra...)
	lead := c.leader(10 * time.Second)
	f := c.followers(lead)[0]
	pub, closePub := loadConn(t, c.nodes, "pub")
	defer closePub()
	var want []string
	publish := func(n int) { want = publishNumbered(t, pub, want, n) }
	publish(300)
	c.converged(10 * time.Second)
	if ready != nil {
		waitFor(t, 20*time.Second, func() error {
			err := ready(f)
			if err != nil {
				publish(20)
			}
			return err
		})
	}
	f.terminate()
	file := damage(t, c, f)
	out, up := f.tryRestart()
	if !up {
		if !strings.Contains(out, file) {
			t.Fatalf("%s refused to start without naming %s:\n%s", f.name, file, out[:min(len(out), 3000)])
		}
		t.Logf("%s refuses to start, naming %s: %s", f.name, file, lastLines(out, 2))
		return
	}
	t.Logf("%s started on a damaged %s", f.name, file)
	publish(100)
	c.converged(20 * time.Second)
	// Every node, as it leads, serves every message intact.
	for range c.nodes {
		lead := c.leader(10 * time.Second)
		if got := servedOnce(t, lead); !slices.Equal(got, want) {
			t.Fatalf("%s serves %d messages, differing from the %d published: %v", lead.name, len(got), len(want), firstDiff(got, want))
		}
		lead.terminate()
		lead.restart()
	}
}

func firstDiff(got, want []string) string {
	for i := range min(len(got), len(want)) {
		if got[i] != want[i] {
			return fmt.Sprintf("seq %d: %q, want %q", i+1, got[i], want[i])
		}
	}
	return fmt.Sprintf("lengths %d and %d", len(got), len(want))
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}

// raftLogFiles are a node's raft log files (its segments, oldest first) and the path its
// refusal names (the log's directory).
func raftLogFiles(t *testing.T, n *node) ([]string, string) {
	t.Helper()
	dir := filepath.Join(n.raftGroupDir(), "log")
	segs, err := filepath.Glob(filepath.Join(dir, "*.seg"))
	must(t, err)
	if len(segs) == 0 {
		t.Fatalf("no raft log segment in %s", dir)
	}
	return segs, dir
}

// TestStanClusterCorruptTornLog: the raft log's newest segment loses a quarter, then half of
// its records (a torn tail, cut at open; the node catches up).
func TestStanClusterCorruptTornLog(t *testing.T) {
	for _, keep := range []int64{3, 2} {
		t.Run(fmt.Sprintf("keep_%d_of_4", keep), func(t *testing.T) {
			corruptCase(t, nil, func(t *testing.T, c *stanCluster, f *node) string {
				segs, _ := raftLogFiles(t, f)
				p := segs[len(segs)-1]
				b, err := os.ReadFile(p)
				must(t, err)
				used := int64(len(bytes.TrimRight(b, "\x00")))
				size := used * keep / 4
				must(t, os.Truncate(p, size))
				t.Logf("%s cut from %d bytes of records to %d", filepath.Base(p), used, size)
				return "the raft log"
			})
		})
	}
}

// TestStanClusterCorruptFlippedBit: a bit flipped in a message's payload inside a
// follower's raft log, a follower that would later lead and replicate its log to a node
// that lacks the entry: it must detect the damage (raftlog's entry checksums: it stops
// applying, says so, and /healthz too) — or at least the message must never come back
// changed. The intact nodes then serve every message as published.
func TestStanClusterCorruptFlippedBit(t *testing.T) {
	c := startStanCluster(t)
	lead := c.leader(10 * time.Second)
	fs := c.followers(lead)
	a, b := fs[0], fs[1]
	pub, closePub := loadConn(t, c.nodes, "pub")
	defer closePub()
	var want []string
	publish := func(n int) { want = publishNumbered(t, pub, want, n) }
	publish(10)
	c.converged(10 * time.Second)
	b.terminate() // b will lack what follows
	publish(100)
	waitFor(t, 10*time.Second, func() error { // a has applied everything
		za, err := a.serverz(false)
		if err != nil {
			return err
		}
		zl, err := lead.serverz(false)
		if err != nil {
			return err
		}
		if za.Raft.AppliedIndex != zl.Raft.AppliedIndex {
			return fmt.Errorf("a applied %d, the leader %d", za.Raft.AppliedIndex, zl.Raft.AppliedIndex)
		}
		return nil
	})
	a.terminate()
	segs, logDir := raftLogFiles(t, a)
	target := []byte("c-00050")
	n := 0
	for _, p := range segs {
		b, err := os.ReadFile(p)
		must(t, err)
		if k := bytes.Count(b, target); k > 0 {
			n += k
			must(t, os.WriteFile(p, bytes.ReplaceAll(b, target, []byte("c-00051")), 0o600)) // 0x30 -> 0x31: one bit
		}
	}
	if n == 0 {
		t.Fatalf("%s not found in %s: entries are not stored as written", target, logDir)
	}
	t.Logf("flipped a bit in %d copies of %s in %s's raft log", n, target, a.name)
	lead.kill() // a, with the longer log, must lead b
	out, up := a.tryRestart()
	if !up {
		if !strings.Contains(out, logDir) {
			t.Fatalf("%s refused to start without naming %s:\n%s", a.name, logDir, tail(out, 3000))
		}
		t.Logf("%s refuses to start: %s", a.name, lastLines(out, 2))
		return
	}
	b.restart()
	// Either a detects the damage when it reaches the entry (it stops applying and says
	// so), or a and b elect a leader and b takes the entry from a.
	const corrupt = "the entry is corrupt"
	var detected bool
	must(t, poll(10*time.Second, func() error {
		if detected = strings.Contains(a.p.out.String(), corrupt); detected {
			return nil
		}
		_, err := leaderOf(a, b)
		return err
	}))
	if detected {
		t.Logf("%s: %s", a.name, lastLineWith(a.p.out.String(), corrupt))
		if code, err := a.healthz(); err != nil || code == http.StatusOK {
			t.Errorf("/healthz of %s, which stopped applying: %d %v", a.name, code, err)
		}
		// The intact nodes serve without it, every message as published.
		lead.restart()
		good := []*node{lead, b}
		var l *node
		if err := poll(10*time.Second, func() (err error) { l, err = leaderOf(good...); return err }); err != nil {
			knownBug(t, fmt.Sprintf("%s detects the corrupt entry only when applying it: it won the election first (longest "+
				"log), replicated the entry to %s, and still votes after it stopped; %s stopped at the same entry "+
				"(stopped: %v), and the intact %s cannot win (its pre-votes are refused: its log is behind theirs): %v; "+
				"no wrong data is served, but the group has no leader until both are repaired", a.name, b.name, b.name,
				strings.Contains(b.p.out.String(), corrupt), lead.name, err))
		}
		must(t, poll(20*time.Second, func() error { return digestsEqual(good...) }))
		if got := servedOnce(t, l); !slices.Equal(got, want) {
			t.Fatalf("%s serves wrong data: %v", l.name, firstDiff(got, want))
		}
		return
	}
	lead.restart()
	if err := c.convergedErr(5 * time.Second); err != nil {
		// Which node serves what: each in turn leads.
		for range c.nodes {
			l := c.leader(10 * time.Second)
			if got := servedOnce(t, l); !slices.Equal(got, want) {
				err = fmt.Errorf("%w; %s, leading, serves %s", err, l.name, firstDiff(got, want))
				break
			}
			l.terminate()
			l.restart()
		}
		knownBug(t, "a bit flipped in a raft log entry is replicated as is: no checksum guards a log entry, so a "+
			"node that catches up from the damaged log stores the changed message (§3: damage mid-log must "+
			"make the node refuse to vote until repaired): "+err.Error())
	}
	for range c.nodes {
		l := c.leader(10 * time.Second)
		if got := servedOnce(t, l); !slices.Equal(got, want) {
			t.Fatalf("%s serves wrong data: %v", l.name, firstDiff(got, want))
		}
		l.terminate()
		l.restart()
	}
}

// leaderOf returns the node of nodes that leads, if they agree on one.
func leaderOf(nodes ...*node) (*node, error) {
	var lead *node
	for _, n := range nodes {
		z, err := n.serverz(false)
		if err != nil {
			return nil, err
		}
		if z.Role == "Leader" {
			lead = n
		}
	}
	if lead == nil {
		return nil, errors.New("no leader")
	}
	for _, n := range nodes {
		if z, err := n.serverz(false); err != nil || z.Leader != lead.name {
			return nil, fmt.Errorf("%s does not see %s lead", n.name, lead.name)
		}
	}
	return lead, nil
}

// digestsEqual reports whether the nodes hold the same state.
func digestsEqual(nodes ...*node) error {
	var ds []string
	for _, n := range nodes {
		z, err := n.serverz(true)
		if err != nil {
			return err
		}
		ds = append(ds, z.Digest)
	}
	for _, d := range ds[1:] {
		if d != ds[0] {
			return fmt.Errorf("state digests differ: %v", ds)
		}
	}
	return nil
}

func lastLineWith(s, sub string) string {
	lines := strings.Split(s, "\n")
	for i := len(lines) - 1; i >= 0; i-- {
		if strings.Contains(lines[i], sub) {
			return lines[i]
		}
	}
	return ""
}

// TestStanClusterCorruptSnapshot: a byte flipped in the middle of each of a follower's
// snapshots (small threshold, so that several exist).
func TestStanClusterCorruptSnapshot(t *testing.T) {
	snapshots := func(f *node) ([]string, error) {
		snaps, err := filepath.Glob(filepath.Join(f.raftGroupDir(), "snapshots", "*", "state.bin"))
		if err == nil && len(snaps) == 0 {
			err = errors.New("no snapshot on the follower yet")
		}
		return snaps, err
	}
	// 300 publishes may take fewer than the threshold's 16 entries (they are batched), or
	// end before the follower's first snapshot check (every 200–400 ms).
	ready := func(f *node) error { _, err := snapshots(f); return err }
	corruptCase(t, ready, func(t *testing.T, c *stanCluster, f *node) string {
		snaps, err := snapshots(f)
		must(t, err)
		for _, p := range snaps {
			b, err := os.ReadFile(p)
			must(t, err)
			b[len(b)/2] ^= 0x10
			must(t, os.WriteFile(p, b, 0o600))
		}
		t.Logf("damaged %d snapshots", len(snaps))
		return f.raftGroupDir()
	}, "--cluster_snapshot_threshold", "16", "--cluster_snapshot_interval", "200ms")
}

// servedOnce is channel dmg as n serves it, without the copies a retried publish stored:
// a publish whose leader changed before it was answered fails with its outcome unknown, and
// publishNumbered sends it again (at least once, as nats-streaming-server on a failover).
// The payloads are numbered and sent one at a time, so a copy is the one right after the
// original; anything else (a payload missing, changed or out of order) stays a difference.
func servedOnce(t *testing.T, n *node) []string {
	t.Helper()
	return slices.Compact(storedPayloads(t, n, "dmg"))
}

// publishNumbered publishes n more numbered payloads ("c-00000", ...) to channel dmg until
// each is acknowledged, and returns want with them appended.
func publishNumbered(t *testing.T, pub stan.Conn, want []string, n int) []string {
	t.Helper()
	for range n {
		d := fmt.Sprintf("c-%05d", len(want))
		publishRetry(t, pub, "dmg", []byte(d), 20*time.Second)
		want = append(want, d)
	}
	return want
}
