package streaming

import (
	"context"
	"log/slog"
	"runtime"
	"time"

	"github.com/starling-io/starling/stores"
)

func goVersion() string { return runtime.Version() }

// Defaults as nats-streaming-server has them.
const (
	DefaultClusterID      = "test-cluster"
	DefaultDiscoverPrefix = "_STAN.discover"
	DefaultHBInterval     = 30 * time.Second
	DefaultHBTimeout      = 10 * time.Second
	DefaultHBFailCount    = 10
	DefaultIOBatchSize    = 1024
	DefaultQueueLimit     = 1 << 20

	// Limits of ours (the reference has none): they keep one client from exhausting the
	// server's memory.
	DefaultMaxClients = 65536
	DefaultQueueBytes = 128 << 20

	// duplicateCheckWait is how long a live-looking old client has to answer before a
	// duplicate connect replaces it (reference: 500 ms).
	duplicateCheckWait = 500 * time.Millisecond
	// redeliverSlack: messages due within this much are redelivered in the same pass.
	redeliverSlack = 15 * time.Millisecond
	// reassignDelay: how long after a queue member left its pending messages are
	// redelivered to the others (reassign; the reference's 100 ms).
	reassignDelay = 100 * time.Millisecond
)

// Options configures the streaming layer.
type Options struct {
	ClusterID      string
	DiscoverPrefix string
	HBInterval     time.Duration
	HBTimeout      time.Duration
	HBFailCount    int
	IOBatchSize    int
	ReplaceDurable bool
	// Limits are the channel limits (nil: the reference's defaults, stores.DefaultLimits);
	// New installs them in the store, replacing any the store was given. Streaming runs the
	// age and inactivity timers, the store the rest.
	Limits *stores.LimitsSet
	// QueueLimit bounds the requests waiting for the engine; past it publishes are refused
	// with an error PubAck instead of stalling core.
	QueueLimit int
	// QueueBytes bounds the bytes (payloads and subjects) of the requests waiting for the
	// engine, refused likewise past it (0: DefaultQueueBytes).
	QueueBytes int64
	// MaxClients bounds the registered clients (0: DefaultMaxClients; negative:
	// unlimited); past it a connect is refused with an error.
	MaxClients int
	// NodeID is this node's cluster node ID (cluster_node_id), which names it to the other
	// nodes in their logs and errors about catch-up fetches ("": the server ID).
	NodeID string
	Logger *slog.Logger
	// Context, cancelled, abandons the fetches of a snapshot restore under way — in New too,
	// where a replicated log restores its snapshot (a stop asked for while the node starts);
	// Shutdown does the same. nil: never.
	Context context.Context
}

func (o Options) withDefaults() Options {
	if o.ClusterID == "" {
		o.ClusterID = DefaultClusterID
	}
	if o.DiscoverPrefix == "" {
		o.DiscoverPrefix = DefaultDiscoverPrefix
	}
	if o.HBInterval == 0 {
		o.HBInterval = DefaultHBInterval
	}
	if o.HBTimeout == 0 {
		o.HBTimeout = DefaultHBTimeout
	}
	if o.HBFailCount == 0 {
		o.HBFailCount = DefaultHBFailCount
	}
	if o.IOBatchSize == 0 {
		o.IOBatchSize = DefaultIOBatchSize
	}
	if o.QueueLimit == 0 {
		o.QueueLimit = DefaultQueueLimit
	}
	if o.QueueBytes <= 0 {
		o.QueueBytes = DefaultQueueBytes
	}
	if o.MaxClients == 0 {
		o.MaxClients = DefaultMaxClients
	}
	if o.Limits == nil {
		o.Limits = &stores.LimitsSet{Global: stores.DefaultLimits()}
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	return o
}
