// Package boltstore is the bbolt implementation of stores.Store: one go.etcd.io/bbolt
// file holds the server identity, the clients, and every channel's messages,
// subscriptions and pending sets.
//
// Layout (top-level buckets):
//
//	meta           "info" → storepb.ServerInfo
//	clients        client ID → storepb.ClientInfo
//	chans          channel name → id (8, big-endian) | last sequence (8)
//	tombs          deleted channel name → its last sequence (8), so a re-created channel continues
//	m.<channel>    sequence (8, big-endian) → time (8) | reply length (4) | reply | data
//	s.<channel>    subscription ID (8) → storepb.SubState
//	p.<channel>    subscription ID (8) | sequence (8) → empty: the pending (unacked) set
//
// Append buffers the encoded messages in memory (Load serves them from there) and
// MsgStore.Sync writes the whole pending batch, and the removals made by limits, in one
// bolt transaction: one fsync per group commit. Each channel also keeps an in-memory
// index of (time, size) per stored message, which serves SeqAtTime (binary search),
// limits and Expire without reading the file. See DESIGN.md.
package boltstore
