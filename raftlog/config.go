package raftlog

import (
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"time"

	"github.com/hashicorp/raft"

	"github.com/starling-io/starling/raftlog/seglog"
)

// Config configures a Node. Zero durations and counts take the defaults below (those of
// ../shared/RAFT-NOTES.md §4); NewNode validates the rest.
type Config struct {
	// Group is the raft group's ID. Every name the Node makes is scoped by it — its directory
	// (Dir/Group), its log attributes — so that several groups can share a process and a
	// data directory. Required; a single path element.
	Group string
	// NodeID is this replica's ID, unique in the group and stable across restarts. Required.
	NodeID string
	// Peers are the IDs of the group's voters, bootstrapped on a fresh cluster (no raft state
	// in Dir/Group yet) and ignored afterwards. NodeID is added if missing; the order does not
	// matter. Empty: a group of this node alone.
	Peers []string
	// Dir holds the group's raft state: Dir/Group/log (the segment log), Dir/Group/raft.db
	// (the stable store: term and vote; and the log, LogStoreBolt) and Dir/Group/snapshots.
	// Required.
	Dir string

	// Transport carries raft's RPCs: NewTCPTransport's (its own listener, never the client
	// routes) or raft.NewInmemTransport in tests. NewNode takes it over: it is closed with the
	// Node, or at once if NewNode fails.
	Transport raft.Transport
	// Resolve maps a node ID to its transport address, for the one place the Node needs an
	// address itself: a NotLeaderError's LeaderAddr when raft has not heard the leader's.
	// Optional. The raft configuration holds node IDs as addresses (the same on every node,
	// and valid after an address changes); the transport resolves them when it dials:
	// NewTCPTransport with the same provider, raft.InmemTransports named by the IDs.
	Resolve raft.ServerAddressProvider
	// BeforeStart, when set, runs once NewNode has opened and checked its log, stable and
	// snapshot stores, and before raft starts and restores its newest snapshot into the
	// state machine. An error stops NewNode. The application starts what a restore needs
	// here (a restore may fetch messages from peers over the client routes), so that a node
	// whose raft directory is refused never starts them.
	BeforeStart func() error

	HeartbeatTimeout   time.Duration // a follower without contact this long starts an election; default 500ms
	ElectionTimeout    time.Duration // a candidate without a quorum this long retries; default 500ms
	LeaderLeaseTimeout time.Duration // a leader without a quorum this long steps down; ≤ HeartbeatTimeout; default HeartbeatTimeout less 1µs (equal to it disables the election nudge)
	CommitTimeout      time.Duration // longest wait before replicating a commit index with no new entry; default 50ms (raft's own)
	MaxAppendEntries   int           // entries per AppendEntries RPC and per ApplyBatch; ≤ 1024; default 256 (× MaxEntryBytes: 8 MiB a request)
	SnapshotInterval   time.Duration // how often to check whether to snapshot; default 30s
	SnapshotThreshold  uint64        // entries since the last snapshot that make a snapshot; default 4096
	TrailingLogs       uint64        // entries kept after a snapshot, for followers slightly behind; default 8192
	SnapshotRetain     int           // snapshots kept on disk; default 2
	LogCacheSize       int           // most recent entries kept in memory; default 512
	LogCacheBytes      int           // and at most this many of their bytes; default 64 MiB
	// MaxEntryBytes bounds an entry: a batch larger than this is proposed as several
	// contiguous entries, split between commands, and a command larger than this in
	// fragments — so that MaxAppendEntries entries (an AppendEntries, the log cache) are a
	// bounded number of bytes whatever the messages' size. Chosen for raft-boltdb
	// (LogStoreBolt), which rewrites the values of the log's last leaf, up to four entries,
	// on every commit: one large entry per commit costs bolt four to five times its size in
	// writes, the same bytes as several entries about twice (DESIGN.md, "Entry size").
	// Default 32 KiB.
	MaxEntryBytes int

	// LogStore is where entries are kept: LogStoreSegments (""), our segment log with one
	// fdatasync per commit, or LogStoreBolt, raft-boltdb's log in raft.db with two. A node
	// whose log an earlier version kept in raft.db keeps it there either way.
	LogStore string
	// LogSegmentBytes is where the segment log seals a segment and begins the next; default
	// seglog.DefaultSegmentSize (64 MiB). Compaction deletes whole segments.
	LogSegmentBytes int64
	// LogHook, for tests, sees every change the segment log makes to its files (a simulated
	// power cut: tests/stancluster_power_test.go). nil: none.
	LogHook seglog.Hook

	// NoSync skips fsync on the log and stable store: faster, and unsafe — a crash of a
	// majority can lose entries that were acknowledged. The default syncs.
	NoSync bool

	// Logger receives the Node's messages, and raft's own, with group and node attributes.
	// nil: slog.Default().
	Logger *slog.Logger
	// RaftLogLevel is the lowest level of raft's own messages that reach Logger (default
	// Info); NoRaftLog drops them all. The Node's own messages are not affected.
	RaftLogLevel slog.Level
	NoRaftLog    bool

	snapshotOpened func(id string) // tests: called as a snapshot file is opened (and read through)
	handingOffTo   func(id string) // tests: called as HandOff turns to the next voter
	handOffStarts  func(id string) // tests: called as HandOff, still leading, starts a transfer
}

// withDefaults returns c with defaults filled in, or why it cannot be used.
func (c Config) withDefaults() (Config, error) {
	errs := c.checkRequired()
	errs = append(errs, c.setPeers()...)
	c.fillDefaults()
	errs = append(errs, c.checkValues()...)
	if len(errs) == 0 {
		if err := raft.ValidateConfig(c.raftConfig(nil, nil)); err != nil {
			errs = append(errs, err)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return c, fmt.Errorf("raftlog: config: %w", err)
	}
	return c, nil
}

// checkRequired refuses a Config without its required fields.
func (c *Config) checkRequired() []error {
	var errs []error
	if err := checkName("Group", c.Group); err != nil {
		errs = append(errs, err)
	}
	if err := checkName("NodeID", c.NodeID); err != nil {
		errs = append(errs, err)
	}
	if c.Dir == "" {
		errs = append(errs, errors.New("a directory (Dir) is required"))
	}
	if c.Transport == nil {
		errs = append(errs, errors.New("a transport (Transport) is required"))
	}
	return errs
}

// setPeers makes Peers the set of voters NodeID included, sorted, and refuses empty IDs.
func (c *Config) setPeers() []error {
	var errs []error
	peers := []string{c.NodeID}
	for _, p := range c.Peers {
		if p == "" {
			errs = append(errs, errors.New("an empty node ID in Peers"))
			continue
		}
		if !slices.Contains(peers, p) {
			peers = append(peers, p)
		}
	}
	// Sorted, so that every node bootstraps the same configuration entry.
	slices.Sort(peers)
	c.Peers = peers
	return errs
}

// fillDefaults sets every zero duration, count, LogStore and Logger to its default.
func (c *Config) fillDefaults() {
	def := func(d *time.Duration, v time.Duration) {
		if *d == 0 {
			*d = v
		}
	}
	def(&c.HeartbeatTimeout, 500*time.Millisecond)
	def(&c.ElectionTimeout, 500*time.Millisecond)
	// As long as the heartbeat timeout, less a microsecond: a shorter lease made leaders of a
	// loaded 2-core machine step down under load (a follower's answer late by a GC pause or an
	// fsync); the microsecond is the room the election nudge needs (nudge.go).
	def(&c.LeaderLeaseTimeout, c.HeartbeatTimeout-time.Microsecond)
	def(&c.CommitTimeout, 50*time.Millisecond) // an idle leader's empty appends: every 50-100 ms
	def(&c.SnapshotInterval, 30*time.Second)
	if c.MaxAppendEntries == 0 {
		c.MaxAppendEntries = 256
	}
	if c.SnapshotThreshold == 0 {
		c.SnapshotThreshold = 4096
	}
	if c.TrailingLogs == 0 {
		c.TrailingLogs = 8192
	}
	if c.SnapshotRetain == 0 {
		c.SnapshotRetain = 2
	}
	if c.LogCacheSize == 0 {
		c.LogCacheSize = 512
	}
	if c.LogCacheBytes == 0 {
		c.LogCacheBytes = 64 << 20
	}
	if c.MaxEntryBytes == 0 {
		c.MaxEntryBytes = 32 << 10
	}
	if c.LogStore == "" {
		c.LogStore = LogStoreSegments
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
}

// checkValues refuses an unknown LogStore and sizes that are not positive.
func (c *Config) checkValues() []error {
	var errs []error
	if c.LogStore != LogStoreSegments && c.LogStore != LogStoreBolt {
		errs = append(errs, fmt.Errorf("LogStore %q is neither %q nor %q", c.LogStore, LogStoreSegments, LogStoreBolt))
	}
	if c.SnapshotRetain < 1 || c.LogCacheSize < 1 || c.LogCacheBytes < 1 || c.MaxEntryBytes < 1 {
		errs = append(errs, fmt.Errorf("SnapshotRetain %d, LogCacheSize %d, LogCacheBytes %d and MaxEntryBytes %d must be positive",
			c.SnapshotRetain, c.LogCacheSize, c.LogCacheBytes, c.MaxEntryBytes))
	}
	return errs
}

// checkName refuses IDs that cannot name a directory or would escape Dir.
func checkName(field, v string) error {
	switch {
	case v == "":
		return fmt.Errorf("a %s is required", field)
	case v == "." || v == ".." || strings.ContainsAny(v, `/\`+"\x00"):
		return fmt.Errorf("%s %q: not a single path element", field, v)
	}
	return nil
}

// raftConfig is the raft configuration c describes; notify receives leadership changes.
func (c *Config) raftConfig(logger *hcLogger, notify chan<- bool) *raft.Config {
	rc := raft.DefaultConfig()
	rc.LocalID = raft.ServerID(c.NodeID)
	rc.HeartbeatTimeout = c.HeartbeatTimeout
	rc.ElectionTimeout = c.ElectionTimeout
	rc.LeaderLeaseTimeout = c.LeaderLeaseTimeout
	rc.CommitTimeout = c.CommitTimeout
	rc.MaxAppendEntries = c.MaxAppendEntries
	rc.SnapshotInterval = c.SnapshotInterval
	rc.SnapshotThreshold = c.SnapshotThreshold
	rc.TrailingLogs = c.TrailingLogs
	// Proposals queue in raft's buffer instead of waiting for the leader loop to finish its
	// current write: several entries in flight, the proposer never stalled behind an fsync.
	rc.BatchApplyCh = true
	rc.NotifyCh = notify
	rc.NoLegacyTelemetry = true
	if logger != nil {
		rc.Logger = logger
	}
	return rc
}

// bootstrap is the configuration a fresh cluster starts with: every peer a voter, its node
// ID standing for its address.
func (c *Config) bootstrap() raft.Configuration {
	var conf raft.Configuration
	for _, id := range c.Peers {
		conf.Servers = append(conf.Servers, raft.Server{Suffrage: raft.Voter, ID: raft.ServerID(id), Address: raft.ServerAddress(id)})
	}
	return conf
}
