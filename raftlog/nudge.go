package raftlog

import (
	"math/rand/v2"
	"time"

	"github.com/hashicorp/raft"
)

// Election nudge. hashicorp/raft's follower looks for a silent leader only when its timer
// fires, every HeartbeatTimeout to 2×HeartbeatTimeout; and a follower that still knows a
// leader refuses to (pre-)vote for anyone else. So after a leader dies, the first follower
// notices 0–1 heartbeat timeouts late, and its election waits until the second one notices
// too: measured over SIGKILLs of the leader, a new leader 0.85–1.8 s after the kill with
// the 500 ms default.
//
// The nudge lets each follower notice on time: once the leader has been silent for the
// heartbeat timeout plus a jitter of its own (0–1/4 of it, so that the two followers rarely
// stand at once and split the vote), it lowers the heartbeat timeout by a nanosecond and
// restores it. Lowering it is what makes raft's follower loop check at once (ReloadConfig
// notifies it; api.go), and its check then finds the leader silent past the timeout, as its
// own next timer would have. It changes when an election starts, never whether: a leader
// that is heard from again in time is never deserted (pre-vote keeps one follower's
// impatience from disturbing the others).

// nudgePoll is how often, in heartbeat timeouts, a node that is not a follower in contact
// looks again; a follower in contact is looked at when its silence would be due.
const nudgePoll = 20

type nudger struct {
	jitter time.Duration // this silence's share of the random delay
	done   time.Time     // the last contact a nudge was already made for
	reload raft.ReloadableConfig
}

func newNudger(c Config) *nudger {
	return &nudger{jitter: nudgeJitter(c.HeartbeatTimeout), reload: raft.ReloadableConfig{
		TrailingLogs: c.TrailingLogs, SnapshotInterval: c.SnapshotInterval, SnapshotThreshold: c.SnapshotThreshold,
		HeartbeatTimeout: c.HeartbeatTimeout, ElectionTimeout: c.ElectionTimeout,
	}}
}

// nudgeable: the nudge needs room to lower the heartbeat timeout; raft refuses a lease longer
// than it.
func nudgeable(c Config) bool { return c.LeaderLeaseTimeout < c.HeartbeatTimeout }

func nudgeJitter(hb time.Duration) time.Duration { return rand.N(hb/4 + 1) }

// due reports whether a follower last contacted at last should be nudged now, and how long
// to wait before looking again: until the silence would be due, so that two followers
// nudge when their own jitters say, not on a shared tick (which split their votes). A node
// that never heard from a leader (just started) is left to raft's own timer: nudging all of
// a starting group at once would split its first vote.
func (g *nudger) due(last, now time.Time) (bool, time.Duration) {
	hb, poll := g.reload.HeartbeatTimeout, g.poll()
	if last.IsZero() || last.Equal(g.done) {
		return false, poll
	}
	if wait := last.Add(hb + g.jitter).Sub(now); wait > 0 {
		return false, wait
	}
	g.done = last
	g.jitter = nudgeJitter(hb)
	return true, poll
}

// poll is how long a node not due for a nudge waits before looking again.
func (g *nudger) poll() time.Duration { return g.reload.HeartbeatTimeout / nudgePoll }

// nudge makes raft's follower loop look at its last contact now.
func (n *Node) nudge(g *nudger) {
	lower := g.reload
	lower.HeartbeatTimeout--
	if err := n.raft.ReloadConfig(lower); err != nil {
		n.log.Warn("raftlog: election nudge", "err", err)
		return
	}
	if err := n.raft.ReloadConfig(g.reload); err != nil {
		n.log.Warn("raftlog: election nudge: restoring the heartbeat timeout", "err", err)
	}
}

// nudgeTick is watch's look at a follower's last contact; it returns when to look again.
func (n *Node) nudgeTick(g *nudger) time.Duration {
	if n.raft.State() != raft.Follower || n.stopped() != nil || n.isClosed.Load() {
		return g.poll()
	}
	now, wait := g.due(n.raft.LastContact(), time.Now())
	if now {
		n.nudge(g)
	}
	return wait
}
