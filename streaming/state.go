package streaming

import (
	"sort"
	"time"

	"github.com/starling-io/starling/stores"
)

// client is a registered streaming client.
type client struct {
	id           string
	hbInbox      string
	connID       []byte
	protocol     int32
	pingInterval int32
	pingMaxOut   int32
	nats         uint64 // cid of the NATS connection it is bound to (0: none yet, after a restart)
	user         string // the authenticated user that registered it ("" without auth)
	subs         map[*subState]struct{}
	hbOut        bool  // a heartbeat is outstanding
	hbSent       int64 // when (engineClock.mono): an answer after hb_timeout counts as none
	hbFails      int
}

// channel is one message log and its subscriptions.
type channel struct {
	name      string
	id        uint64
	store     *stores.Channel
	subs      map[*subState]struct{}  // online plain and durable subscriptions
	durables  map[durableID]*subState // online or offline
	queues    map[queueID]*queueGroup
	nextSubID uint64
	clock     chanClock // its timestamps' and MaxAge's time (clock.go)
	synced    uint64    // the last sequence known durable: deliveries stop there (commit.go)
	assigned  uint64    // the proposer's last sequence: the next batch starts after it
	limits    stores.Limits
	ageTimer  *time.Timer // one per channel with MaxAge: the next message to expire
	ageAt     int64
	idleTimer *time.Timer // one per channel with MaxInactivity
	active    int64       // engineClock.mono of the last publish or subscription change
	deleted   bool
	events    []stores.SubEvent // sent/ack events waiting for flushSentAcks
	broken    bool              // a store write failed: roll back before the next append (durable.go)
	healTimer *time.Timer       // while broken: heal again, lest the channel wait for a publish
}

// subState is one subscription (or queue member).
type subState struct {
	id          uint64
	ch          *channel
	clientID    string
	inbox       string
	ackInbox    string
	ack         ackKey // the last token of ackInbox, decoded
	owner       *client
	user        string // the user that owns it (durables outlive their client)
	durable     string // durable name ("" for none)
	qgroup      string // queue name as the client gave it
	maxInFlight int
	ackWait     time.Duration
	lastSent    uint64 // plain/durable subscriptions; queue members use group.lastSent
	group       *queueGroup
	offline     bool
	gone        bool   // removed: a reply still waiting for its commit must not start it
	uncertain   uint64 // after a crash, sequences up to this may have been sent already (flag them)
	restoredDue int64  // engineClock.mono: pending messages restored due by then are redelivered to this member

	pending  pendingSet
	expiries []expiry // deadlines in order from expHead (expPush); acked entries skipped lazily
	expHead  int
	timer    *time.Timer
	timerAt  int64  // the engine's deadline time (engineClock.mono) the timer is armed for; 0: none
	ready    bool   // response sent: delivery may start
	heir     bool   // not ready when members that left handed it the group (forgetSub)
	held     bool   // its destination is backlogged: first deliveries wait for opRetryHeld
	lookAt   uint64 // look at its destination's backlog once the engine's sentBytes reach this
	resuming bool   // in the engine's resumes: an ack unstalled it (processAck)
}

type pendingMsg struct {
	expiry int64 // engineClock.mono
	count  uint32
}

type expiry struct {
	seq uint64
	at  int64
}

// queueID names a queue group within its channel: a group belongs to the user whose
// clients formed it, so another user's member can never take its messages.
type queueID struct{ user, key string }

// queueKey is a queue group's name within its channel: the queue name, or
// "durable:queue" for a durable queue group (the durable name cannot contain ':').
func queueKey(queue, durable string) string {
	if durable != "" {
		return durable + ":" + queue
	}
	return queue
}

// queueGroup is the shared state of a queue group on one channel.
type queueGroup struct {
	id        queueID
	key       string // queue name, or "durable:queue" for durable groups
	durable   bool
	members   []*subState
	lastSent  uint64
	shadow    *subState   // durable group with no member: its last member's state, offline
	uncertain uint64      // as subState.uncertain, for the group's cursor
	orphans   []*subState // restore only: members whose client is gone
}

// stalled: as many messages pending as it may have in flight.
func (sub *subState) stalled() bool { return sub.pending.Len() >= sub.maxInFlight }

// position returns the last sequence sent to the subscription (or its group).
func (sub *subState) position() uint64 {
	if sub.group != nil {
		return sub.group.lastSent
	}
	return sub.lastSent
}

// durableID names a durable subscription within its channel: it belongs to a client ID
// (spec §7.4) and to the user that created it, so neither a client ID nor a durable name
// containing a separator can reach another's durable (audit finding 14), nor one user
// another user's.
type durableID struct{ user, clientID, name string }

func (sub *subState) durableID() durableID {
	return durableID{user: sub.user, clientID: sub.clientID, name: sub.durable}
}

// The deadline FIFO reuses its array: popping advances a head that resets when the queue
// empties, so steady-state sending does not allocate.

func (sub *subState) expLen() int { return len(sub.expiries) - sub.expHead }

func (sub *subState) expFront() expiry { return sub.expiries[sub.expHead] }

func (sub *subState) expPop() {
	sub.expHead++
	if sub.expHead == len(sub.expiries) {
		sub.expiries, sub.expHead = sub.expiries[:0], 0
	} else if sub.expHead > 1024 && sub.expHead > len(sub.expiries)/2 {
		n := copy(sub.expiries, sub.expiries[sub.expHead:])
		sub.expiries, sub.expHead = sub.expiries[:n], 0
	}
}

// expPush adds a deadline. They mostly come in order (now + ack wait): appended. One due
// sooner than the last (a leaving queue member's message, due reassignDelay later; a resend
// put off by retrySendsAfter) goes to its place, so that the front stays the earliest due:
// behind a later one, processRedeliver and armTimer would not see it until that one.
func (sub *subState) expPush(e expiry) {
	n := len(sub.expiries)
	if n == sub.expHead || sub.expiries[n-1].at <= e.at {
		sub.expiries = append(sub.expiries, e)
		return
	}
	i := sub.expHead + sort.Search(n-sub.expHead, func(k int) bool { return sub.expiries[sub.expHead+k].at > e.at })
	sub.expiries = append(sub.expiries, expiry{})
	copy(sub.expiries[i+1:], sub.expiries[i:n])
	sub.expiries[i] = e
}

// clampExpiries makes every deadline later than at due at at (armTimer), dropping the
// entries of acked or re-queued messages on the way; the order stays.
func (sub *subState) clampExpiries(at int64) {
	n := len(sub.expiries)
	i := sub.expHead + sort.Search(n-sub.expHead, func(k int) bool { return sub.expiries[sub.expHead+k].at > at })
	j := i
	for _, e := range sub.expiries[i:n] {
		p, ok := sub.pending.Get(e.seq)
		if !ok || p.expiry != e.at {
			continue
		}
		p.expiry = at
		sub.pending.Set(e.seq, p)
		sub.expiries[j] = expiry{seq: e.seq, at: at}
		j++
	}
	sub.expiries = sub.expiries[:j]
	if sub.expHead == j {
		sub.expReset()
	}
}

func (sub *subState) expReset() { sub.expiries, sub.expHead = sub.expiries[:0], 0 }
