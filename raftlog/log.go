package raftlog

import (
	"context"
	"io"
	"time"
)

// Command is one state change proposed by the state machine's owner. Data is the encoded op,
// which the replicated implementation writes to its log and every replica decodes with
// StateMachine.Decode; Value is the in-memory op, which Local hands to Apply as it is, without
// encoding (so Data may be nil for Local, and Value is ignored by the replicated log).
type Command struct {
	Data  []byte
	Value any
}

// Log is the replication seam: the one path by which the state machine's owner changes
// replicated state. Implementations are safe for concurrent use.
type Log interface {
	// Propose submits one command and returns its Future, which resolves once the command
	// has been applied (or is known not to be). A proposal that fails resolves with index 0 and
	// an error: ErrNotLeader, ErrClosed, ErrTimeout, or ctx.Err() if ctx ends first. With a
	// replicated log a ctx error after the command was handed to raft leaves its outcome
	// unknown to the caller (it may still be applied), as does ErrLeadershipLost; ErrStopped
	// means the replica stopped applying. Local checks ctx once, before applying, so for Local
	// a ctx error means "not applied".
	Propose(ctx context.Context, c Command) Future
	// ProposeBatch submits cs as one unit (one raft entry when replicated, or several
	// contiguous ones when it is large): the commands are
	// applied together, contiguously and in order, and the one Future carries a result per
	// command. An empty batch resolves at once with index 0 and no error. The log does not
	// keep cs after ProposeBatch returns.
	ProposeBatch(ctx context.Context, cs []Command) Future
	// IsLeader reports whether this replica is the leader now: the only replica whose
	// proposals succeed and that should perform leader-only effects (acks, deliveries).
	IsLeader() bool
	// Leadership returns the channel on which leadership changes are reported: true when this
	// replica becomes leader, false when it stops. It holds only the latest unread value (a
	// newer value replaces an unread older one) and the final state is never dropped, so a
	// reader that falls behind sees the current state, not the history. Every call returns the
	// same channel; it has one reader.
	Leadership() <-chan bool
	// Barrier returns once every command committed before the call has been applied — what a
	// new leader waits for before serving from its state. It fails with ErrNotLeader,
	// ErrClosed or ctx.Err().
	Barrier(ctx context.Context) error
	// Lease returns a time before which no other replica can have been elected leader: what
	// a leader checks before a leader-only effect that must not happen twice, such as a
	// delivery, since a leader that was paused (SIGSTOP, a frozen VM) past its lease may
	// resume after its successor repeated that effect. A lease that has lapsed is renewed
	// by confirming leadership with a majority (a round trip). It fails with ErrNotLeader
	// when this replica does not lead, or ctx.Err().
	Lease(ctx context.Context) (time.Time, error)
	// TransferLeadership hands leadership to another replica, if this one leads and another
	// can take over, and returns once it no longer leads (or ctx ends): what a leader does
	// before it shuts down, so that service pauses for a transfer, not an election timeout.
	TransferLeadership(ctx context.Context) error
	// Close stops the log. Later proposals fail with ErrClosed. It does not close the state
	// machine, which belongs to the caller.
	Close() error
}

// Snapshot is a point-in-time copy of the state machine taken by StateMachine.Snapshot.
// Persist may run concurrently with Apply; Release is called once it is no longer needed.
type Snapshot interface {
	Persist(w io.Writer) error
	Release()
}

// StateMachine is the replicated state, implemented by the log's owner (streaming).
type StateMachine interface {
	// Decode turns a command's Data back into a Command with Value set; the replicated
	// implementation calls it on every replica before Apply. For an op type it does not
	// know it returns an error wrapping ErrUnknownOp (the log stops applying: state must not
	// diverge) or, when the encoding flags the op as ignorable, one wrapping ErrIgnorableOp
	// (the log skips the command). Local never calls Decode.
	Decode(data []byte) (Command, error)
	// Apply applies cmds, in log order, and returns one result per command: nil, an error
	// (the command was rejected — that is also what the proposer's Future.Wait returns), or a
	// value for the proposer (Future.Result), such as the state the command created. It may
	// instead return nil when every result is nil; any other length is a bug and panics.
	//
	// Indexes count commands from 1 with no gaps: cmds[i] is at index+i and the next call
	// starts at index+len(cmds). Apply is called on one goroutine at a time, in index order;
	// with Local that is the proposer's goroutine, holding Local's lock, so Apply must not
	// call back into the Log. cmds is valid only during the call and must not be modified
	// (with Local it is the proposer's slice); the returned slice is read before Apply is
	// called again, so the state machine may reuse it.
	//
	// Apply must be deterministic — the same commands on the same state give the same state
	// and results on every replica — so it never reads the clock or other local state: values
	// such as sequences and timestamps are chosen by the proposer and carried in the command.
	Apply(index uint64, cmds []Command) []any
	// Snapshot captures the state for Persist. It runs between Apply calls and should be
	// quick: the expensive writing happens in Persist.
	Snapshot() (Snapshot, error)
	// Restore replaces the whole state with one written by Snapshot.Persist.
	Restore(r io.Reader) error
}
