// Package filestore is the flat-file implementation of stores.Store.
//
// Layout of a store directory:
//
//	meta.log            server info, clients, channels, tombstones: framed records, compacted
//	ch00000001/         one directory per channel (numbered; the name lives in meta.log)
//	  subs.log          subscriptions and pending events: framed records, the checkpoint of the journal
//	  <first>.seg       append-only message records (first = 20-digit sequence of its first record),
//	                    and in the tail the subscription journal
//	  <first>.idx       fixed-width index of the segment: one 24-byte entry per message
//
// Every file starts with a header (6-byte magic, u16 format version, u64 nonce); see
// FORMAT.md. A framed record is [len u32][crc32c u32 of payload][payload]; each flush of a
// log is one batch frame. A message record is a fixed 32-byte header [body len u32]
// [crc32c u32 of header[8:] and body][seq u64][time i64][flags u32][reply len u32]
// followed by reply and data. A record with flag 1 is a marker
// holding the channel's First (seq) and Last (time field): every segment starts with one and
// Sync writes one when limits moved First, so removals are durable with the same fsync as the
// messages. A record with flag 2 is a sync mark: after each successful fsync the next flush
// states how many bytes of the file it covered (logs have sync mark records too), which is
// how recovery tells damage in synced bytes from a torn tail in bytes a power cut may have
// mangled. A record with flag 4 is a journal record: the subscription records of one flush
// (or the whole subscription state), so that one fsync of the tail commits a channel's
// messages and its subscriptions; subs.log is their checkpoint, rewritten once the journal has
// grown, and recovery applies the tail's journal records past it. All integers are
// little-endian.
//
// Group commit: Append writes into a buffered writer; MsgStore.Sync flushes and fsyncs, or
// the pipelined halves Flush and SyncFlushed (stores.SplitSyncer) do; subscription and
// client records split their sync the same way (a SubStore's Flush writes into the tail, its
// SyncFlushed is the tail's: one fsync a commit per channel). A failed message write fails its channel
// until MsgStore.Rollback; a failed log write or fsync makes the next flush rewrite the log
// from memory. The logs compact while running. DESIGN.md explains why and how.
//
// With Options.NoSync, Sync only hands the writes to the OS; Options.AutoSync then bounds
// the window: one goroutine per store fsyncs, at that interval, every file and directory
// whose fsync was skipped since its previous pass (autosync.go).
// On open the last segment of every channel is scanned and its CRCs verified: a torn tail is
// cut and the index rewritten; sealed segments trust their index when it is consistent with
// the segment and are rescanned otherwise. Damage that is not a torn tail fails only its
// channel (Store.Damaged); Verify and Repair are the offline check and fix. What recovery
// drops is logged to Options.Logger.
package filestore
