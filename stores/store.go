package stores

// Store is a streaming server's whole storage: server identity, clients, and channels.
// See the package documentation for the durability contract and concurrency rules.
//
// The lifecycle is: open (implementation-specific), SetLimits with the configured limits,
// Recover; on a fresh store (Recover returns nil, nil) Init; then use; Close.
type Store interface {
	// Name is the store type shown by monitoring: "MEMORY", "FILE" or "BOLT".
	Name() string

	// Init records the server identity. It is durable when it returns. Calling it again
	// replaces the identity.
	Init(info ServerInfo) error

	// Recover returns everything the store holds: right after open, what a previous run
	// left (the Channels with their MsgStores and SubStores opened); later, the current
	// state (for Raft snapshots and monitoring). It returns nil, nil if Init has never
	// been called. The *Channel values are the store's own, the same on every call.
	Recover() (*RecoveredState, error)

	// CreateChannel creates an empty channel with the caller's ID and the limits
	// LimitsSet.For(name). ErrExists if it exists; ErrTooManyChannels if MaxChannels
	// channels exist. A channel previously deleted with that name continues its sequence:
	// the new channel's State is {First: last+1, Last: last}. Durable when it returns.
	CreateChannel(name string, id uint64) (*Channel, error)

	// CreateChannelAfter is CreateChannel for a channel that continues after sequence
	// after at least: its State is {First: n+1, Last: n} with n the larger of after and
	// the last sequence the store remembers for the name. A replicated cluster creates
	// channels with it, so that every replica starts a channel where the replicated state
	// says (a replica restored from a snapshot remembers no deletion it did not see).
	CreateChannelAfter(name string, id, after uint64) (*Channel, error)

	// DeleteChannel removes a channel with its messages and subscriptions (ErrNotFound
	// if unknown). Its MsgStore and SubStore then fail with ErrChannelDeleted. The store
	// remembers its last sequence for a later CreateChannel. Durable when it returns.
	DeleteChannel(name string) error

	// AddClient registers a client, replacing one with the same ID.
	AddClient(c ClientInfo) error

	// DeleteClient unregisters a client (ErrNotFound if unknown).
	DeleteClient(id string) error

	// SetLimits validates and installs the limits (the store keeps a copy), and applies
	// them to existing channels: LimitsSet.For(name) for each, effective at its next
	// Append, Expire or CreateSub. A fresh store has {Global: DefaultLimits()}.
	SetLimits(l *LimitsSet) error

	// Sync makes the metadata changes made so far (clients) durable. Channel messages
	// and subscriptions are synced by their own MsgStore.Sync and SubStore.Sync. A durable
	// store also implements SplitSyncer for its client records (Flush, then SyncFlushed on
	// another goroutine), so that they ride the same group commit as messages.
	//
	// If writing client records fails, the store keeps every change in memory and the next
	// successful Sync (or Flush and SyncFlushed) writes them all: a failure is never
	// sticky and the records on disk never contradict the ones in memory once a Sync
	// succeeds.
	Sync() error

	// Close syncs and closes the store and all its channels; later calls fail with
	// ErrClosed. Close is idempotent.
	Close() error
}

// MsgStore is one channel's message log.
type MsgStore interface {
	// Append stores a batch of messages (copying Data and Reply) and then applies
	// MaxMsgs and MaxBytes. The batch must continue the channel (see ErrBadSequence and
	// ErrBadTime); otherwise nothing is stored. An empty batch does nothing. The messages
	// are visible to Load and State on return and durable after the next Sync.
	Append(batch []Msg) error

	// Sync is the group-commit point: after it returns nil, every message appended (and
	// every removal made) before it is durable as the store promises.
	Sync() error

	// Load copies message seq into into (Seq, Time, Reply, and Data reusing into.Data's
	// capacity). ErrNotFound if seq is outside [First, Last].
	Load(seq uint64, into *Msg) error

	// SeqAtTime returns the sequence of the first stored message with Time >= ns, or
	// Last+1 if there is none (including when the channel is empty). O(log n).
	SeqAtTime(ns int64) uint64

	// State returns the current sequence range, count and bytes.
	State() ChannelState

	// SetLimits replaces the channel's limits (only MaxMsgs, MaxBytes and MaxAge matter
	// to a MsgStore), effective at the next Append or Expire.
	SetLimits(l Limits)

	// Expire removes every message whose age is MaxAge or more (Time+MaxAge <= now), and
	// enforces MaxMsgs and MaxBytes as Append does. It returns how many messages it
	// removed and the unix-ns time when the oldest remaining message expires (0 when
	// MaxAge is 0 or the channel is empty).
	Expire(now int64) (removed int, next int64)

	// Rollback makes a failed channel usable again. Once Append, Sync, Flush or
	// SyncFlushed has failed (a full disk, an I/O error), the store refuses every later
	// write and sync with that error — so nothing appended after the failure can be
	// reported durable — until Rollback. Rollback returns the channel to exactly what its
	// last successful Sync or SyncFlushed made durable: messages appended since are
	// dropped (State().Last may go back: those sequences were never durable, so never
	// acknowledged nor delivered, and are used again), and the failure is cleared. If the
	// store cannot do that yet it returns the error and stays failed; the caller tries
	// again later. On a healthy store it does nothing and returns nil. Call it from the
	// writer, with no SyncFlushed running or due to run for what was flushed before.
	Rollback() error

	// Close syncs and releases the channel's store; later calls fail with ErrClosed. The
	// Store's Close and DeleteChannel close it too; Close is idempotent.
	Close() error
}

// SplitSyncer is implemented by a MsgStore, a SubStore or a Store (for its client records)
// whose group commit splits in two, so that the durable write of one batch can overlap the
// changes of the next (a pipelined commit):
//
//   - Flush hands everything written so far to the OS, in order (or, for a store that
//     commits transactions, stages it for the next commit). It is called by the writer,
//     like Append, CreateSub, Record or AddClient.
//   - SyncFlushed makes durable everything flushed before it was called, as Sync would. It
//     may run on another goroutine, concurrently with the writer's changes, Flush and
//     reads, but not with another SyncFlushed, Sync or Close of the same store.
//
// Flush then SyncFlushed is Sync: a change is durable (and may be acknowledged) once a
// SyncFlushed that started after the Flush following it returns nil.
type SplitSyncer interface {
	Flush() error
	SyncFlushed() error
}

// CommitCoalescer is implemented by a Store whose every commit has a large fixed cost
// (bolt: two fdatasyncs and a meta page, ~0.3 ms of CPU). CoalesceCommits true lets the
// streaming engine hold a commit back until most of the publishers' window of PubAcks is
// queued, so that one commit covers it (streaming/DESIGN.md). A store that commits by
// appending (the file store: one fdatasync) gains no CPU from it and does not implement it.
type CommitCoalescer interface {
	CoalesceCommits() bool
}

// SubStore is one channel's subscriptions with their pending (sent, not acknowledged)
// sequences.
type SubStore interface {
	// CreateSub stores a new subscription with the caller's ID (ErrExists if in use;
	// ErrTooManySubs if the channel holds MaxSubs subscriptions, counting offline ones).
	CreateSub(s *SubState) error

	// UpdateSub replaces a subscription's state (a durable resumed with a new inbox, a
	// closed flag, a new LastSent); its pending set is kept. ErrNotFound if unknown.
	UpdateSub(s *SubState) error

	// DeleteSub removes a subscription and its pending set. ErrNotFound if unknown.
	DeleteSub(id uint64) error

	// Record applies a batch of events in order: a sent sequence becomes pending and
	// raises LastSent to at least it; an acked one stops being pending. Events naming an
	// unknown subscription are ignored, so a batch is never half-applied.
	Record(events []SubEvent) error

	// Sync makes every change made before it durable. A durable store also implements
	// SplitSyncer. As for client records, a failed write is never sticky: the store keeps
	// the state in memory and the next successful Sync writes it all.
	Sync() error

	// Subs returns every subscription with its pending set, by ID: after a restart, what
	// was recovered; later, the current state.
	Subs() ([]RecoveredSub, error)

	// Close syncs and releases the subscription store; later calls fail with ErrClosed.
	Close() error
}
