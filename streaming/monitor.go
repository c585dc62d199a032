package streaming

import (
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/hashicorp/raft"

	"github.com/starling-io/starling/core"
	"github.com/starling-io/starling/raftlog"
	"github.com/starling-io/starling/stores"
)

// Monitoring data (spec §16) with the reference's JSON names. The engine owns the state, so
// a snapshot is taken on the engine goroutine: the request is an op with a reply channel.

// Serverz is /streaming/serverz.
type Serverz struct {
	ClusterID     string    `json:"cluster_id"`
	ServerID      string    `json:"server_id"`
	Version       string    `json:"version"`
	GoVersion     string    `json:"go"`
	State         string    `json:"state"`
	Role          string    `json:"role,omitempty"`
	NodeID        string    `json:"node_id,omitempty"`
	Leader        string    `json:"leader,omitempty"` // clustered: the leader's node ID, "" when none is known
	Raft          *RaftInfo `json:"raft,omitempty"`   // clustered
	Digest        string    `json:"digest,omitempty"` // with ?digest=1: StateDigest
	Now           time.Time `json:"now"`
	Start         time.Time `json:"start_time"`
	Uptime        string    `json:"uptime"`
	Clients       int       `json:"clients"`
	Subscriptions int       `json:"subscriptions"`
	Channels      int       `json:"channels"`
	TotalMsgs     int       `json:"total_msgs"`
	TotalBytes    uint64    `json:"total_bytes"`
	InMsgs        uint64    `json:"in_msgs"`
	InBytes       uint64    `json:"in_bytes"`
	OutMsgs       uint64    `json:"out_msgs"`
	OutBytes      uint64    `json:"out_bytes"`
	OpenFDs       int       `json:"open_fds,omitempty"` // the process's, filled in by the HTTP handler
	MaxFDs        int       `json:"max_fds,omitempty"`
	// DigestParts, with ?digest=parts (and Digest): StateDigestParts, which tells the part
	// of the state that differs between nodes whose digests differ.
	DigestParts map[string]string `json:"digest_parts,omitempty"`
}

// RaftInfo is a clustered node's place in the replicated log.
type RaftInfo struct {
	Group        string   `json:"group"`
	Term         uint64   `json:"term"`
	LastIndex    uint64   `json:"last_index"`
	CommitIndex  uint64   `json:"commit_index"`
	AppliedIndex uint64   `json:"applied_index"`
	Voters       []string `json:"voters,omitempty"`  // the group's node IDs
	Stopped      string   `json:"stopped,omitempty"` // why the node stopped applying the log
	// SnapshotError is why the latest raft snapshot failed, until one succeeds: meanwhile
	// the raft log grows.
	SnapshotError string `json:"snapshot_error,omitempty"`
	// LastContact is, on a follower, how long ago it last heard from the leader, as a Go
	// duration ("12.5ms"; "never"): past the heartbeat timeout it starts an election.
	LastContact string `json:"last_contact,omitempty"`
	// TakeoverError is, while this node leads the raft group but its streaming engine
	// cannot take over (so nobody serves), why its latest takeover failed;
	// TakeoverFailures counts those in a row (it gives leadership up after a few).
	TakeoverError    string `json:"takeover_error,omitempty"`
	TakeoverFailures int    `json:"takeover_failures,omitempty"`
	// CatchingUp is set while the node restores a snapshot and fetches the messages it names
	// from the others: the counts show what arrived so far.
	CatchingUp bool `json:"catching_up,omitempty"`
}

// Channelz describes one channel.
type Channelz struct {
	Name          string           `json:"name"`
	Msgs          int              `json:"msgs"`
	Bytes         uint64           `json:"bytes"`
	FirstSeq      uint64           `json:"first_seq"`
	LastSeq       uint64           `json:"last_seq"`
	SubsCount     int              `json:"subs_count"`
	Subscriptions []*Subscriptionz `json:"subscriptions,omitempty"`
}

// Subscriptionz describes one subscription.
type Subscriptionz struct {
	ClientID     string `json:"client_id"`
	Inbox        string `json:"inbox"`
	AckInbox     string `json:"ack_inbox"`
	DurableName  string `json:"durable_name,omitempty"`
	QueueName    string `json:"queue_name,omitempty"`
	IsDurable    bool   `json:"is_durable"`
	IsOffline    bool   `json:"is_offline"`
	MaxInflight  int    `json:"max_inflight"`
	AckWait      int    `json:"ack_wait"`
	LastSent     uint64 `json:"last_sent"`
	PendingCount int    `json:"pending_count"`
	IsStalled    bool   `json:"is_stalled"`
}

// Clientz describes one client.
type Clientz struct {
	ID            string                      `json:"id"`
	HBInbox       string                      `json:"hb_inbox"`
	SubsCount     int                         `json:"subs_count"`
	Subscriptions map[string][]*Subscriptionz `json:"subscriptions,omitempty"`
}

// snapshot is everything monitoring reads, copied on the engine goroutine.
type snapshot struct {
	clients  []*Clientz
	channels []*Channelz
	leader   bool // the engine's role
	changes  int  // role changes seen
	pending  int  // commit groups not yet completed and what waits for a commit

	viewChans int // channels in the engine's own view (none on a follower)
}

// Why a monitoring snapshot could not be taken. Monitoring then reports the error, never an
// empty server: a server that shows no clients, channels or messages while it has them
// raises false alerts, and its counters go back to a scraper.
var (
	// ErrEngineBusy: the engine did not answer in time (snapshotWait), or too many
	// monitoring requests wait for it already (maxQueuedSnapshots).
	ErrEngineBusy = errors.New("streaming engine busy")
	// ErrShutDown: the streaming server is shut down, or shutting down.
	ErrShutDown = errors.New("streaming server shut down")
)

// snapshotWait bounds the wait for the engine's answer to a monitoring request.
const snapshotWait = 5 * time.Second

// snapshot asks the engine for a copy of its state (subs: include subscriptions). It
// fails with ErrEngineBusy or ErrShutDown when the engine cannot answer.
func (s *Server) snapshot(subs bool) (*snapshot, error) {
	s.mu.Lock()
	closed := s.closed
	s.mu.Unlock()
	if closed {
		return nil, ErrShutDown
	}
	// Past the queue's limits too: refused, it would wait behind a flood's backlog. Only so
	// many at once: a stalled engine must not collect one per monitoring request.
	if s.snapsQueued.Add(1) > maxQueuedSnapshots {
		s.snapsQueued.Add(-1)
		return nil, fmt.Errorf("%w: %d monitoring requests wait for it already", ErrEngineBusy, maxQueuedSnapshots)
	}
	ch := make(chan *snapshot, 1)
	s.push(op{kind: opSnapshot, snap: ch, subsToo: subs})
	wait := time.Duration(s.snapWait.Load())
	if wait <= 0 {
		wait = snapshotWait
	}
	t := time.NewTimer(wait)
	defer t.Stop()
	select {
	case sn := <-ch:
		return sn, nil
	case <-s.done:
		return nil, ErrShutDown
	case <-t.C:
		return nil, fmt.Errorf("%w: no answer to a monitoring request within %v", ErrEngineBusy, wait)
	}
}

// maxQueuedSnapshots bounds the monitoring requests waiting for the engine.
const maxQueuedSnapshots = 64

func (s *Server) processSnapshot(o *op) {
	s.snapsQueued.Add(-1)
	sn := &snapshot{leader: s.leader, changes: int(s.leaderChanges.Load()), pending: s.commit.groups + len(s.waiting),
		viewChans: len(s.channels)}
	if s.replicated && !s.leader {
		sn.channels, sn.clients = s.sm.monitorView(o.subsToo) // no view here (monitor_replica.go)
		o.snap <- sn
		return
	}
	for _, c := range s.clients {
		cz := &Clientz{ID: c.id, HBInbox: c.hbInbox, SubsCount: len(c.subs)}
		if o.subsToo {
			for sub := range c.subs {
				if cz.Subscriptions == nil {
					cz.Subscriptions = map[string][]*Subscriptionz{}
				}
				cz.Subscriptions[sub.ch.name] = append(cz.Subscriptions[sub.ch.name], sub.monitor())
			}
		}
		sn.clients = append(sn.clients, cz)
	}
	for _, ch := range s.channels {
		cz := channelz(ch.name, ch.store.Msgs.State())
		each := func(sub *subState) {
			cz.SubsCount++
			if o.subsToo {
				cz.Subscriptions = append(cz.Subscriptions, sub.monitor())
			}
		}
		for sub := range ch.subs {
			each(sub)
		}
		for _, d := range ch.durables {
			if d.offline {
				each(d)
			}
		}
		for _, g := range ch.queues {
			for _, m := range g.members {
				each(m)
			}
			if g.shadow != nil {
				each(g.shadow)
			}
		}
		sn.channels = append(sn.channels, cz)
	}
	o.snap <- sn
}

func (sub *subState) monitor() *Subscriptionz {
	z := &Subscriptionz{ClientID: sub.clientID, Inbox: sub.inbox, AckInbox: sub.ackInbox,
		IsDurable: sub.durable != "", IsOffline: sub.offline, MaxInflight: sub.maxInFlight,
		AckWait: int(sub.ackWait / time.Second), LastSent: sub.position(), PendingCount: sub.pending.Len(),
		IsStalled: sub.stalled()}
	if sub.group != nil {
		z.QueueName = sub.group.key
	} else {
		z.DurableName = sub.durable
	}
	return z
}

// Serverz returns server-wide figures. When the engine cannot be asked (ServerzErr's
// error) the figures it owns (clients, channels, subscriptions, messages) are zero:
// monitoring uses ServerzErr.
func (s *Server) Serverz() *Serverz {
	z, _ := s.ServerzErr()
	return z
}

// ServerzErr returns server-wide figures, or with ErrEngineBusy or ErrShutDown the figures
// that need no engine (identity, state, raft, traffic counters) and zero for the others.
func (s *Server) ServerzErr() (*Serverz, error) {
	sn, err := s.snapshot(false)
	if err != nil {
		sn = &snapshot{}
	}
	now := time.Now()
	z := &Serverz{ClusterID: s.opts.ClusterID, ServerID: s.id, Version: core.Version, GoVersion: goVersion(),
		Now: now.UTC(), Start: s.start.UTC(), Uptime: uptime(now.Sub(s.start)),
		Clients: len(sn.clients), Channels: len(sn.channels)}
	st, ok := s.RaftStats()
	z.State = s.state(st, ok)
	if ok {
		// Replicated: the node's role as raft sees it, as nats-streaming-server shows it.
		z.Role, z.NodeID, z.Leader = st.Role.String(), st.NodeID, st.LeaderID
		z.Raft = &RaftInfo{Group: st.Group, Term: st.Term, LastIndex: st.LastLogIndex, CommitIndex: st.CommitIndex, AppliedIndex: st.AppliedIndex, Voters: st.Voters}
		if st.Stopped != nil {
			z.Raft.Stopped = st.Stopped.Error()
		}
		if st.SnapshotErr != nil {
			z.Raft.SnapshotError = st.SnapshotErr.Error()
		}
		z.Raft.CatchingUp = s.sm.catchingUp.Load()
		if f := s.failingTakeOver(); f != nil {
			z.Raft.TakeoverError, z.Raft.TakeoverFailures = f.err.Error(), f.attempts
		}
		switch {
		case st.LastContact < 0:
			z.Raft.LastContact = "never"
		case st.Role != raft.Leader:
			z.Raft.LastContact = st.LastContact.Round(time.Microsecond).String()
		}
	}
	for _, ch := range sn.channels {
		z.TotalMsgs += ch.Msgs
		z.TotalBytes += ch.Bytes
		z.Subscriptions += ch.SubsCount
	}
	s.mu.Lock()
	z.InMsgs, z.InBytes, z.OutMsgs, z.OutBytes = s.stats.InMsgs, s.stats.InBytes, s.stats.OutMsgs, s.stats.OutBytes
	s.mu.Unlock()
	return z, err
}

// State is the server's state as /streaming/serverz shows it, with nats-streaming-server's
// names (spec §16): "SHUTDOWN" once Shutdown was called; "FAILED" when the replicated log's
// node stopped applying it (serverz's raft.stopped says why), else "CLUSTERED" over a
// replicated log; "STANDALONE" otherwise. It asks nothing of the engine.
func (s *Server) State() string {
	st, ok := s.RaftStats()
	return s.state(st, ok)
}

func (s *Server) state(st raftlog.Stats, clustered bool) string {
	s.mu.Lock()
	closed := s.closed
	s.mu.Unlock()
	switch {
	case closed:
		return "SHUTDOWN"
	case clustered && st.Stopped != nil:
		return "FAILED"
	case clustered:
		return "CLUSTERED"
	}
	return "STANDALONE"
}

// RaftStats returns the replication log's figures, and false when the server replicates
// nothing (standalone).
func (s *Server) RaftStats() (raftlog.Stats, bool) {
	if rl, ok := s.rlog.(interface{ Stats() raftlog.Stats }); ok {
		return rl.Stats(), true
	}
	return raftlog.Stats{}, false
}

// Health says why the streaming layer cannot acknowledge anything now, or nil: shut down,
// or — replicated — its node stopped (an op it does not know, a corrupt entry, a log or store
// that could not write), no leader is known (no majority of the group reachable), or this
// node leads but its engine cannot take over (takeOverFailed). For /healthz.
func (s *Server) Health() error {
	s.mu.Lock()
	closed := s.closed
	s.mu.Unlock()
	if closed {
		return errors.New("streaming: shut down")
	}
	st, ok := s.RaftStats()
	switch {
	case !ok:
		return nil
	case st.Stopped != nil:
		return fmt.Errorf("streaming: raft group %s stopped: %v", st.Group, st.Stopped)
	case st.LeaderID == "":
		return fmt.Errorf("streaming: raft group %s has no leader (no majority reachable): nothing can be acknowledged", st.Group)
	}
	if f := s.failingTakeOver(); f != nil {
		return fmt.Errorf("streaming: this node leads raft group %s but cannot take over as streaming leader (%d attempts in a row): %v", st.Group, f.attempts, f.err)
	}
	return nil
}

// failingTakeOver is the takeover that keeps failing while the log still leads, or nil.
func (s *Server) failingTakeOver() *takeOverFailure {
	f := s.takeOverErr.Load()
	if f == nil || !s.rlog.IsLeader() {
		return nil
	}
	return f
}

// LeaderChanges returns how many times this server's engine gained or lost leadership.
func (s *Server) LeaderChanges() int64 { return s.leaderChanges.Load() }

// Channels returns the channels sorted by name (with subscriptions when subs); none when
// the engine cannot be asked (ChannelsErr's error): monitoring uses ChannelsErr.
func (s *Server) Channels(subs bool) []*Channelz {
	chans, _ := s.ChannelsErr(subs)
	return chans
}

// ChannelsErr returns the channels sorted by name (with subscriptions when subs), or
// ErrEngineBusy or ErrShutDown.
func (s *Server) ChannelsErr(subs bool) ([]*Channelz, error) {
	sn, err := s.snapshot(subs)
	if err != nil {
		return nil, err
	}
	sort.Slice(sn.channels, func(i, j int) bool { return sn.channels[i].Name < sn.channels[j].Name })
	return sn.channels, nil
}

// Clients returns the clients sorted by ID (with subscriptions when subs); none when the
// engine cannot be asked (ClientsErr's error): monitoring uses ClientsErr.
func (s *Server) Clients(subs bool) []*Clientz {
	clients, _ := s.ClientsErr(subs)
	return clients
}

// ClientsErr returns the clients sorted by ID (with subscriptions when subs), or
// ErrEngineBusy or ErrShutDown.
func (s *Server) ClientsErr(subs bool) ([]*Clientz, error) {
	sn, err := s.snapshot(subs)
	if err != nil {
		return nil, err
	}
	sort.Slice(sn.clients, func(i, j int) bool { return sn.clients[i].ID < sn.clients[j].ID })
	return sn.clients, nil
}

// ServerID returns the streaming server's ID (a NUID, not the NATS server's ID).
func (s *Server) ServerID() string { return s.id }

// LimitsInEffect returns the channel limits this node applies, for /streaming/storez: the
// replicated ones once a leader shared them (clustered, they may differ from this node's
// configuration), else its configured ones.
func (s *Server) LimitsInEffect() *stores.LimitsSet {
	if ls := s.sm.replicatedLimits(); ls != nil {
		return ls
	}
	return s.opts.Limits.Clone()
}

// StoreType names the store for /streaming/storez.
func (s *Server) StoreType() string { return strings.ToUpper(s.store.Name()) }

// uptime renders like the reference: "1d2h3m4s".
func uptime(d time.Duration) string {
	sec := int64(d / time.Second)
	days, sec := sec/86400, sec%86400
	h, sec := sec/3600, sec%3600
	m, sec := sec/60, sec%60
	var b strings.Builder
	if days > 0 {
		b.WriteString(strconv.FormatInt(days, 10) + "d")
	}
	if days > 0 || h > 0 {
		b.WriteString(strconv.FormatInt(h, 10) + "h")
	}
	if days > 0 || h > 0 || m > 0 {
		b.WriteString(strconv.FormatInt(m, 10) + "m")
	}
	b.WriteString(strconv.FormatInt(sec, 10) + "s")
	return b.String()
}
