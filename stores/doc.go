// Package stores defines what the streaming layer needs from a message store: the
// interfaces Store, MsgStore and SubStore, the plain domain types they exchange, channel
// limits with wildcard inheritance (LimitsSet), and the sentinel errors. It holds no
// implementation; memstore, filestore and boltstore implement it and stores/storetest
// proves each of them against the same behavioural suite.
//
// # Durability contract
//
// After Sync returns nil, everything appended (or recorded) before that Sync survives
// kill -9 and power loss. Before Sync, a store may buffer: a crash may lose writes made
// after the last successful Sync, but what comes back is always a prefix — a channel
// recovers sequences First..Last with no gap, every message it recovers is intact, and
// sequences are never reused. Concretely:
//
//   - MsgStore: Append may buffer; MsgStore.Sync is the group-commit point for the
//     channel's messages and removals. A crash may resurrect messages removed by limits
//     since the last Sync; the next Append or Expire removes them again.
//   - SubStore: CreateSub, UpdateSub, DeleteSub and Record may buffer; SubStore.Sync makes
//     them durable.
//   - Store: Init, CreateChannel and DeleteChannel are durable when they return (they are
//     rare); AddClient and DeleteClient may buffer until Store.Sync.
//   - Close flushes and syncs whatever is buffered, so a clean shutdown loses nothing;
//     the next Recover reports Clean.
//   - Durable stores split every Sync (stores.SplitSyncer: MsgStore, SubStore and Store's
//     client records), so that one group commit covers messages, subscriptions and clients.
//   - A failed message write is sticky until MsgStore.Rollback, which returns the channel to
//     what is durable; a failed subscription or client write is not: memory stays the truth
//     and the next successful Sync writes it.
//
// The memory store (memstore) survives nothing: everything is in memory only and every
// Sync is a no-op that returns nil.
//
// The streaming layer sends a PubAck only after the batch holding the message has been
// synced (standalone, default sync policy) or committed by a Raft majority (clustered; the
// Raft log is then the write-ahead log and the store may sync lazily, but it must be synced
// before a Raft snapshot is taken or the log compacted).
//
// Stores never read the clock: message times and the "now" of Expire come from the caller,
// so behaviour is deterministic under test and identical on every Raft replica.
//
// # Ownership and concurrency
//
// Every method of Store, MsgStore and SubStore is safe for concurrent use. The intended use
// is one writer per channel — the channel's owner goroutine calls Append, Sync, SetLimits
// and Expire on its MsgStore and all mutating SubStore methods — while other goroutines
// call Load, SeqAtTime and State on the same MsgStore concurrently (delivery, monitoring).
// Store-level methods (channels, clients, limits) may be called from any goroutine.
//
// Memory: Append copies every Msg's Data (and Reply), so the caller may reuse the batch and
// its buffers as soon as Append returns. Load copies into caller-owned memory: into.Data is
// overwritten reusing its capacity (no allocation when it is large enough), so the result
// stays valid after later Appends and removals. CreateSub, UpdateSub and AddClient copy
// what they are given (including ClientInfo.ConnID). Slices returned by Recover and Subs
// are fresh and belong to the caller.
//
// # Sequences, times and limits
//
// The caller assigns sequences and times. A batch must continue the channel: batch[0].Seq
// == Last+1 and sequences contiguous, times non-decreasing and not before the newest stored
// message. A channel that holds no message (fresh, or emptied by MaxAge) may resume at any
// sequence after Last, so a channel deleted for inactivity and recreated — or restored
// from a Raft snapshot — continues where it was; Last never goes back, except by
// Rollback, which drops only messages that never became durable.
//
// Byte accounting (MaxBytes, ChannelState.Bytes) counts MsgSize per message:
// len(Data) + len(Reply) + len(channel name) + MsgOverhead (16). The reference server counts
// the size of the encoded MsgProto; ours is the same order of magnitude and, unlike the
// encoding, the same on every store.
//
// Limits by count and size are applied after each Append (and by Expire): while the
// channel exceeds MaxMsgs or MaxBytes and more than one message remains, the oldest is
// removed — the newest is always kept. MaxAge is applied only by Expire(now), which the
// caller drives from one timer per channel using the next-expiry time it returns.
package stores
