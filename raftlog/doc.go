// Package raftlog is the replication seam: the one path by which replicated state changes,
// whether or not the server is clustered. It imports nothing of ours; the state machine
// (streaming) implements StateMachine and owns a Log.
//
// Every state change — a publish batch, a connect or close, a subscription created or
// removed, a batch of sent and acked sequences, a channel created or deleted — goes
//
//	encode → Log.Propose → StateMachine.Apply → leader-only effects after the Future resolves
//
// The proposer builds a Command, chooses every value Apply needs (sequences, timestamps), and
// proposes it. Apply changes the state on every replica, identically, in log order, and
// returns a result per command (an error, or a value such as the state it created) that
// reaches the proposer through the Future without a second lookup. Only once the Future
// resolves does the leader act outside the state: PubAcks, deliveries, replies.
//
// Two implementations, one interface, so the state machine has no "if clustered" branch:
//
//   - Local, standalone: Propose applies Command.Value in the proposer's goroutine under a
//     mutex and returns a resolved Future. No encoding, no goroutine hop, no allocation — the
//     seam costs nothing.
//   - Node, clustered (hashicorp/raft; its log in segment files of ours, package seglog, and
//     its term and vote in raft-boltdb/v2): a proposal is one raft entry
//     (several past Config.MaxEntryBytes) holding its commands' Data; once a majority has it every replica Decodes and Applies
//     it, in batches, and the leader's Future resolves then, several entries being in flight
//     at once. The raft log is the write-ahead log: the store may sync lazily, and must be
//     synced before a snapshot is taken or the log compacted. NewTCPTransport gives raft its
//     own listener; raftlogtest runs groups in-process for tests. DESIGN.md has the entry and
//     snapshot formats and what the caller must do.
//
// Indexes count commands, from 1, with no gaps, the same on every replica. A proposal that is
// not applied resolves with index 0 and an error (ErrNotLeader, ErrClosed, ErrTimeout or the
// context's); Node adds ErrLeadershipLost and the context's once raft has the entry, whose
// outcome is then unknown, and ErrStopped.
//
// Unknown op types stop the node: a replica that skipped a state change the others applied
// would diverge. StateMachine.Decode reports one with an error wrapping ErrUnknownOp — unless
// the op's encoding flags it as ignorable (added for rolling upgrades), when it wraps
// ErrIgnorableOp and the command is skipped (keeping its index, so that numbering does not
// depend on the version).
//
// Leadership is reported on a channel holding the latest value: a newer state replaces an
// unread older one, and the final state is never dropped.
package raftlog
