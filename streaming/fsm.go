package streaming

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"sync"
	"sync/atomic"

	"github.com/starling-io/starling/raftlog"
	"github.com/starling-io/starling/stores"
)

// stateMachine is the replicated state: the store, with the clients and channels it holds.
// Every change comes through Apply, in log order, with the values the proposer chose — so
// the leader, a follower applying the log, a restart replaying the store and a snapshot
// restore all arrive at the same state. It has no bus, no timers and no log: replies,
// deliveries and deadlines are the engine's (Server), which learns what a command did from
// its result.
//
// Replicated, Apply runs on the log's goroutine while the engine reads: mu guards the maps
// and the dirty lists (the stores guard themselves). Apply holds it for a whole batch, and
// the engine only briefly.
type stateMachine struct {
	mu         sync.Mutex
	store      stores.Store
	chans      map[string]*stores.Channel
	clients    map[string]stores.ClientInfo
	nextChanID uint64
	// deleted is the last sequence of every deleted channel, by name: replicated (in
	// snapshots too), so that every replica creates the channel again after the same one;
	// a store remembers only the deletions it saw itself.
	deleted map[string]uint64
	// limits are the replicated channel limits (replimits.go): nil until a leader proposed
	// them, and each node applies its configured ones. onLimits hears of each installed set.
	limits   *stores.LimitsSet
	onLimits func(*stores.LimitsSet)
	applyOut []any
	pubs     pubArena // Decode's publish commands, reused once they are applied
	fetch    fetcher  // gets the messages a snapshot names and the store lacks (fetch.go)
	// fetching is cancelled by stopFetching when the server shuts down: a restore waiting for
	// fetches fails at once (raft's Shutdown waits for it), and the next start installs the
	// snapshot again.
	fetching     context.Context
	stopFetching context.CancelFunc
	catchingUp   atomic.Bool // a restore fetches (monitoring)
	// atStart is set while the log restores its newest snapshot as the node starts (New),
	// where raft tries the older ones in turn should it fail; unfetched is what a fetch of
	// those restores failed to get (snapshot.go: fetchMissing).
	atStart   bool
	unfetched *unfetched
	// failed is set, replicated only, once a command failed for a reason of this replica's
	// own (replicaFailure): nothing more is applied, every later command gets it. Standalone,
	// the engine rolls a failed channel back instead (durable.go).
	replicated bool
	failed     error
	// fenced: a restore's deletion failed, and the store may refuse the channel it kept
	// until it commits its metadata (the file store's fence): Apply commits it first.
	fenced bool

	// What changed since the engine last flushed it into a commit (durable.go).
	dirtySubs    []*stores.Channel // channels whose SubStore changed
	clientsDirty bool              // client records changed
}

var _ raftlog.StateMachine = (*stateMachine)(nil)

func newStateMachine(store stores.Store) *stateMachine {
	m := &stateMachine{store: store, chans: map[string]*stores.Channel{}, clients: map[string]stores.ClientInfo{},
		deleted: map[string]uint64{}}
	m.fetching, m.stopFetching = context.WithCancel(context.Background())
	return m
}

// recover loads the state the store holds (nil: a new store).
func (m *stateMachine) recover() (*stores.RecoveredState, error) {
	st, err := m.store.Recover()
	if err != nil || st == nil {
		return st, err
	}
	for _, c := range st.Clients {
		m.clients[c.ID] = c
	}
	for _, rc := range st.Channels {
		m.chans[rc.Channel.Name] = rc.Channel
		m.nextChanID = max(m.nextChanID, rc.Channel.ID)
	}
	maps.Copy(m.deleted, st.Deleted)
	return st, nil
}

func (m *stateMachine) setReplicated(on bool) {
	m.mu.Lock()
	m.replicated = on
	m.mu.Unlock()
}

// nextChannelID is the ID a channel created now gets (the next ones of a batch, the IDs
// after it). An iteration's creations are proposed together and waited for, so no other is
// in flight when the proposer reads it.
func (m *stateMachine) nextChannelID() uint64 {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.nextChanID + 1
}

// Apply implements raftlog.StateMachine: the only place replicated state changes.
func (m *stateMachine) Apply(index uint64, cmds []raftlog.Command) []any {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := m.applyOut[:0] // the log copies results it keeps before the next Apply
	m.liftFence()
	for i := 0; i < len(cmds); i++ {
		if m.failed != nil {
			out = append(out, m.failed)
			continue
		}
		if n, rs := m.channelRun(cmds[i:]); n > 1 {
			for _, r := range rs {
				out = append(out, m.checkFailure(r))
			}
			i += n - 1
			continue
		}
		out = append(out, m.checkFailure(m.applyOne(cmds[i].Value)))
	}
	m.applyOut = out
	m.pubs.stale = true
	return out
}

// channelRun applies together the run of channel creations (one engine iteration's) or
// deletions (idle channels') that cmds starts with, if it holds more than one: one commit
// of the store, each command with the result it would have alone (create.go). n is the
// run's length (0 or 1: nothing applied).
func (m *stateMachine) channelRun(cmds []raftlog.Command) (n int, rs []any) {
	if n = leading[cmdCreateChannel](cmds); n > 1 {
		return n, m.createRun(cmds[:n])
	}
	if n = leading[cmdDeleteChannel](cmds); n > 1 {
		return n, m.deleteRun(cmds[:n])
	}
	return n, nil
}

// dropped forgets a channel the store deleted, remembering its last sequence so that a
// channel created again with the name continues after it.
func (m *stateMachine) dropped(ch *stores.Channel, last uint64) {
	m.forget(ch)
	if last > 0 {
		m.deleted[ch.Name] = max(m.deleted[ch.Name], last)
	}
}

// checkFailure returns r, or once a command failed for a reason of this replica's own (and
// for every command after it), the replica's failure: replicated, nothing more is applied.
func (m *stateMachine) checkFailure(r any) any {
	if m.failed != nil {
		return m.failed
	}
	if err, ok := r.(error); ok && m.replicated && replicaFailure(err) {
		m.failed = fmt.Errorf("%w: %w", raftlog.ErrReplicaFailed, err)
		return m.failed
	}
	return r
}

// replicaFailure reports whether a command's error is this replica's own (a full disk, an
// I/O error, a store that failed) rather than a refusal every replica makes alike (a gap,
// a channel deleted meanwhile, a limit, a record that exists). Replicated, such a failure
// stops this replica (raftlog.ErrReplicaFailed); standalone the engine reports it as before.
func replicaFailure(err error) bool {
	for _, shared := range []error{errNoChannel, errDiscontinuous, stores.ErrExists, stores.ErrNotFound,
		stores.ErrBadSequence, stores.ErrBadTime, stores.ErrTooManyChannels, stores.ErrTooManySubs,
		stores.ErrChannelDeleted, stores.ErrInvalidLimits} {
		if errors.Is(err, shared) {
			return false
		}
	}
	return true
}

// deletedAnyway clears the error of a deletion that is durable though the store could not
// remove the channel's files (it removes them at its next open, and logged it): the channel
// is gone on this replica as on the others.
func deletedAnyway(err error) error {
	if errors.Is(err, stores.ErrDeletedUncleaned) {
		return nil
	}
	return err
}

// applyOne applies one command. Results: nil or an error; the *stores.Channel created by
// cmdCreateChannel; the expireResult of cmdExpire.
func (m *stateMachine) applyOne(v any) any {
	switch c := v.(type) {
	case *cmdConnect:
		if err := m.store.AddClient(c.info); err != nil {
			return err
		}
		m.clients[c.info.ID] = c.info
		m.clientsDirty = true
		return nil
	case *cmdDisconnect:
		if _, ok := m.clients[c.clientID]; !ok {
			return nil
		}
		delete(m.clients, c.clientID)
		m.clientsDirty = true
		return m.store.DeleteClient(c.clientID)
	case *cmdCreateChannel:
		nc := m.newChannel(c)
		st, err := m.store.CreateChannelAfter(nc.Name, nc.ID, nc.After)
		return m.created(nc, st, err)
	case *cmdSetLimits:
		if err := c.limits.Validate(); err != nil {
			return err
		}
		return m.installLimits(c.limits)
	}
	ref, ok := commandRef(v)
	if !ok {
		panic(fmt.Errorf("%w: %T", errUnknownCommand, v))
	}
	ch := m.chans[ref.channel]
	if ch == nil || ch.ID != ref.chanID {
		return fmt.Errorf("%w: %q (ID %d)", errNoChannel, ref.channel, ref.chanID)
	}
	switch c := v.(type) {
	case *cmdPublish:
		return m.appendRun(ch, c.msgs)
	case *cmdSubscribe:
		m.markSubsDirty(ch)
		if err := ch.Subs.CreateSub(&c.state); !errors.Is(err, stores.ErrExists) {
			return err
		}
		return ch.Subs.UpdateSub(&c.state) // replayed: the store kept it
	case *cmdUpdateSub:
		m.markSubsDirty(ch)
		return ch.Subs.UpdateSub(&c.state)
	case *cmdDeleteSub:
		m.markSubsDirty(ch)
		if err := ch.Subs.DeleteSub(c.id); !errors.Is(err, stores.ErrNotFound) {
			return err
		}
		return nil // replayed: already gone
	case *cmdSentAck:
		m.markSubsDirty(ch)
		return ch.Subs.Record(c.events)
	case *cmdExpire:
		if c.last != 0 && ch.Msgs.State().Last > c.last {
			// Replayed onto a store synced past the pass (a restart): the store holds a
			// message appended after it, so it holds what the pass left too (a channel's
			// messages and removals become durable in order). Applied again, the pass would
			// trim those later messages by the limits of its time, lower perhaps than those
			// they were appended under (TestReplayExpiryUnderRaisedLimits). A replica that
			// applies it in turn never holds more than its proposer assigned. An engine
			// that waits for the result has a view behind the store: it resyncs it and
			// finds the next deadline itself (limits.go, expired), as a skipped pass
			// computes none.
			return expireResult{skipped: true}
		}
		removed, next := ch.Msgs.Expire(c.now)
		return expireResult{removed: removed, next: next}
	case *cmdDeleteChannel:
		last := ch.Msgs.State().Last
		if err := deletedAnyway(m.store.DeleteChannel(ch.Name)); err != nil {
			return err
		}
		m.dropped(ch, last)
		return nil
	}
	panic(fmt.Errorf("%w: %T", errUnknownCommand, v))
}

// appendRun appends a publish batch. Every replica refuses a run that does not continue
// the channel (a gap): the proposer keeps its own next sequence, and a proposal made on a
// stale view must not leave a hole in any replica's log. Commands replayed after a restart
// may find messages the store kept (it was synced past the last snapshot): those must be
// the same messages, and only the rest is appended — so replay is idempotent.
func (m *stateMachine) appendRun(ch *stores.Channel, msgs []stores.Msg) error {
	if len(msgs) == 0 {
		return nil
	}
	last := ch.Msgs.State().Last
	if msgs[0].Seq > last+1 {
		return fmt.Errorf("%w: %q: batch starts at %d, last is %d", errDiscontinuous, ch.Name, msgs[0].Seq, last)
	}
	for len(msgs) > 0 && msgs[0].Seq <= last {
		var have stores.Msg
		err := ch.Msgs.Load(msgs[0].Seq, &have)
		switch {
		case errors.Is(err, stores.ErrNotFound): // removed by limits since: nothing to compare
		case err != nil:
			return err
		case have.Time != msgs[0].Time || have.Reply != msgs[0].Reply || string(have.Data) != string(msgs[0].Data):
			return fmt.Errorf("%w: %q: message %d differs from the stored one", errDiscontinuous, ch.Name, msgs[0].Seq)
		}
		msgs = msgs[1:]
	}
	if len(msgs) == 0 {
		return nil
	}
	return ch.Msgs.Append(msgs)
}

// markSubsDirty notes that ch's SubStore changed.
func (m *stateMachine) markSubsDirty(ch *stores.Channel) {
	for _, d := range m.dirtySubs {
		if d == ch {
			return
		}
	}
	m.dirtySubs = append(m.dirtySubs, ch)
}

// forget drops a channel deleted from the store, with its pending flush.
func (m *stateMachine) forget(ch *stores.Channel) {
	delete(m.chans, ch.Name)
	for i, d := range m.dirtySubs {
		if d == ch {
			m.dirtySubs = append(m.dirtySubs[:i], m.dirtySubs[i+1:]...)
			return
		}
	}
}

// remark notes again, after a failed commit, that the client records (ch nil) or ch's
// subscriptions must be flushed, unless ch was deleted meanwhile (engine).
func (m *stateMachine) remark(ch *stores.Channel) {
	m.mu.Lock()
	defer m.mu.Unlock()
	switch {
	case ch == nil:
		m.clientsDirty = true
	case m.chans[ch.Name] == ch:
		m.markSubsDirty(ch)
	}
}

// dirty reports whether records changed since the last takeDirty (engine).
func (m *stateMachine) dirty() bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	return len(m.dirtySubs) > 0 || m.clientsDirty
}

// takeDirty hands the changed stores to the engine's commit (into: reused), forgetting them
// (engine).
func (m *stateMachine) takeDirty(into []*stores.Channel) ([]*stores.Channel, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	into = append(into, m.dirtySubs...)
	clear(m.dirtySubs)
	m.dirtySubs = m.dirtySubs[:0]
	clients := m.clientsDirty
	m.clientsDirty = false
	return into, clients
}
