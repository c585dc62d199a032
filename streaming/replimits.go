package streaming

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"time"

	"github.com/starling-io/starling/proto/raftpb"
	"github.com/starling-io/starling/stores"
)

// Channel limits are part of the replicated state. What Apply does depends on them — a
// publish trims its channel by MaxMsgs and MaxBytes, Expire removes by MaxAge, MaxSubs and
// MaxChannels refuse — so replicas configured with different limits would diverge silently.
// A new leader proposes its configured limits when they differ from the replicated ones
// (cmdSetLimits), every replica installs them in log order, and snapshots carry them. Until
// a leader of this version proposed them, each node applies its own configured limits.

// cmdSetLimits installs the limits every replica applies from its index on.
type cmdSetLimits struct{ limits *stores.LimitsSet }

// installLimits installs replicated limits the caller validated (state machine, under mu).
func (m *stateMachine) installLimits(ls *stores.LimitsSet) error {
	if err := m.store.SetLimits(ls); err != nil {
		return err
	}
	m.limits = ls.Clone()
	if m.onLimits != nil {
		m.onLimits(m.limits)
	}
	return nil
}

// replicatedLimits returns the limits the replicas apply (nil: none replicated yet).
func (m *stateMachine) replicatedLimits() *stores.LimitsSet {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.limits == nil {
		return nil
	}
	return m.limits.Clone()
}

// shareLimits makes a new leader's configured limits the replicated ones, unless they are
// already (engine, at takeover, after the barrier: no other leader proposes meanwhile).
// Bounded by ctx like the barrier: a stalled log must not hold the engine (the takeover is
// tried again).
func (s *Server) shareLimits(ctx context.Context) error {
	have := s.sm.replicatedLimits()
	if have != nil && sameLimits(have, s.opts.Limits) {
		return nil
	}
	f := s.proposeAsync(&cmdSetLimits{limits: s.opts.Limits.Clone()})
	select {
	case <-f.Done():
	case <-ctx.Done():
		return fmt.Errorf("replicating the channel limits: %w", ctx.Err())
	}
	if _, err := outcomeOf(f); err != nil {
		return fmt.Errorf("replicating the channel limits: %w", err)
	}
	if have != nil {
		s.log.Warn("this node's channel limits differ from those the cluster applied: every node now applies this node's; give all nodes the same limits",
			"ours", describeLimits(s.opts.Limits), "before", describeLimits(have))
	}
	return nil
}

// limitsApplied is the state machine's notice of replicated limits: a node whose own
// configuration differs says so, as it now applies the leader's.
func (s *Server) limitsApplied(ls *stores.LimitsSet) {
	if !sameLimits(ls, s.opts.Limits) {
		s.log.Warn("the leader's channel limits differ from this node's configuration: this node applies the leader's; give all nodes the same limits",
			"leader", describeLimits(ls), "ours", describeLimits(s.opts.Limits))
	}
}

func sameLimits(a, b *stores.LimitsSet) bool {
	return a.Global == b.Global && maps.Equal(a.Channels, b.Channels)
}

// describeLimits is a limits set for a log line: the global limits, then each entry.
func describeLimits(ls *stores.LimitsSet) string {
	s := describeOne(ls.Global)
	for _, name := range slices.Sorted(maps.Keys(ls.Channels)) {
		s += fmt.Sprintf("; %s: %s", name, describeOne(ls.Channels[name]))
	}
	return s
}

func describeOne(l stores.Limits) string {
	return fmt.Sprintf("max_channels=%d max_msgs=%d max_bytes=%d max_age=%s max_subs=%d max_inactivity=%s",
		l.MaxChannels, l.MaxMsgs, l.MaxBytes, l.MaxAge, l.MaxSubs, l.MaxInactivity)
}

func limitsSetPB(ls *stores.LimitsSet) *raftpb.SetLimits {
	pb := &raftpb.SetLimits{Global: limitsPB(ls.Global)}
	for _, name := range slices.Sorted(maps.Keys(ls.Channels)) {
		pb.Channels = append(pb.Channels, &raftpb.NamedLimits{Pattern: name, Limits: limitsPB(ls.Channels[name])})
	}
	return pb
}

// limitsSet decodes a replicated limits set; a malformed one is an error (it is never
// half-applied).
func limitsSet(pb *raftpb.SetLimits) (*stores.LimitsSet, error) {
	if pb.Global == nil {
		return nil, fmt.Errorf("limits without global limits")
	}
	ls := &stores.LimitsSet{Global: storeLimits(pb.Global)}
	for _, nl := range pb.Channels {
		if nl.Limits == nil {
			return nil, fmt.Errorf("limits of %q missing", nl.Pattern)
		}
		if ls.Channels == nil {
			ls.Channels = map[string]stores.Limits{}
		}
		ls.Channels[nl.Pattern] = storeLimits(nl.Limits)
	}
	return ls, nil
}

func limitsPB(l stores.Limits) *raftpb.Limits {
	return &raftpb.Limits{MaxChannels: int64(l.MaxChannels), MaxMsgs: int64(l.MaxMsgs), MaxBytes: l.MaxBytes,
		MaxAge: int64(l.MaxAge), MaxSubs: int64(l.MaxSubs), MaxInactivity: int64(l.MaxInactivity)}
}

func storeLimits(l *raftpb.Limits) stores.Limits {
	return stores.Limits{MaxChannels: int(l.MaxChannels), MaxMsgs: int(l.MaxMsgs), MaxBytes: l.MaxBytes,
		MaxAge: time.Duration(l.MaxAge), MaxSubs: int(l.MaxSubs), MaxInactivity: time.Duration(l.MaxInactivity)}
}
