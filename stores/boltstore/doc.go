// Package boltstore is the bbolt implementation of stores.Store: one go.etcd.io/bbolt
// file holds the server identity, the clients, and every channel's messages,
// subscriptions and pending sets.
//
// Layout (top-level buckets):
//
//	meta           "info" → storepb.ServerInfo; "clean" → 1 while the store is closed cleanly
//	clients        client ID → storepb.ClientInfo
//	chans          channel name → id (8, big-endian) | last sequence (8) | dead (8): messages
//	               through dead are deleted even if their block is still on disk
//	tombs          deleted channel name → its last sequence (8), so a re-created channel continues
//	m.<channel>    first sequence (8, big-endian) → a bucket whose key "c" holds one commit's
//	               block: records of length (4) | CRC-32C of value then sequence (4) | value;
//	               value: time (8) | reply length (4) | reply | data
//	               (earlier versions: key "b", records without the CRC; or sequence → one value)
//	s.<channel>    subscription ID (8) → storepb.SubState
//	p.<channel>    subscription ID (8) | sequence (8) → empty: the pending (unacked) set of
//	               a subscription with a large one (a small one is inline in its s. record)
//
// Append buffers the encoded records in memory (Load serves them from there); CreateSub,
// UpdateSub, DeleteSub, Record, AddClient and DeleteClient change memory and log the change.
// Every MsgStore, SubStore and the Store (for its client records) implement
// stores.SplitSyncer: Flush hands what changed to the store's one group commit — a
// subscription or client change is encoded right then — and the first SyncFlushed to run
// after it writes everything flushed store-wide (every channel's messages and removals by
// limits, every subscription and client change) in ONE bolt transaction: one fsync per group
// commit, however many channels and subscriptions it touched. Sync is Flush then SyncFlushed.
// Close writes everything and a clean mark in one last transaction (RecoveredState.Clean).
//
// A failed commit fails every channel it held until MsgStore.Rollback, which reloads the
// channel from the file; subscription and client changes it lost are rewritten whole from
// memory by their next Flush. Each channel also keeps an in-memory index of (time, size,
// offset in its block) per stored message, which serves SeqAtTime (binary search), limits
// and Expire without reading the file, and Load with one seek. See DESIGN.md.
package boltstore
