package raftlog

import (
	"errors"
	"fmt"
)

var (
	// ErrNotLeader is returned by a proposal made on a replica that is not the leader. The
	// command was not applied; the caller redirects or retries once a leader is known. Node
	// returns it as a *NotLeaderError naming the leader when it knows one.
	ErrNotLeader = errors.New("raftlog: not the leader")
	// ErrClosed is returned by a proposal or Barrier after Close. The command was not applied
	// by this replica. (A Node's proposal still in flight when it closes may have been
	// committed before: the other replicas then apply it.)
	ErrClosed = errors.New("raftlog: log closed")
	// ErrTimeout is returned when a replicated log could not even enqueue a proposal in time
	// (the leader is overloaded). The command was not applied.
	ErrTimeout = errors.New("raftlog: timed out enqueuing the proposal")
	// ErrLeadershipLost is returned by a Node's proposal when this replica stopped being the
	// leader after accepting it and before it was applied here. Its outcome is unknown: a
	// new leader may still commit it, and then every other replica applies it.
	ErrLeadershipLost = errors.New("raftlog: leadership lost before the proposal was applied; its outcome is unknown")
	// ErrStopped is wrapped, with the cause, by everything a Node refuses after it stopped
	// applying because of an op it cannot apply (see ErrUnknownOp) or a corrupt entry, or
	// because its log store failed a write (a full disk).
	ErrStopped = errors.New("raftlog: stopped applying")
	// ErrUnknownOp is wrapped by StateMachine.Decode for an op type this version does not know.
	// A replica that skipped a state change would diverge from the others, so the replicated
	// implementation stops applying rather than carry on.
	ErrUnknownOp = errors.New("raftlog: unknown op type")
	// ErrIgnorableOp is wrapped by StateMachine.Decode for an unknown op type that its encoding
	// flags as safe to skip (an op added by a newer version that older replicas may ignore
	// during a rolling upgrade). The replicated implementation skips the command and carries on.
	ErrIgnorableOp = errors.New("raftlog: unknown ignorable op type")
	// ErrReplicaFailed is wrapped by a StateMachine.Apply result when the command could not
	// be applied for a reason of this replica's own (a full disk, an I/O error), not one every
	// replica shares. The replica would diverge from the others if it went on, so the Node
	// stops applying, as for an unknown op: it leaves the group (a leader steps down) until it
	// is restarted, and then replays the log from its last snapshot. The state machine must
	// not apply the commands after the failed one in the same Apply call.
	ErrReplicaFailed = errors.New("raftlog: this replica failed to apply a command")
)

// NotLeaderError is the ErrNotLeader of a Node: it names the leader when this replica knows
// one, so that the caller can forward to it. errors.Is(err, ErrNotLeader) holds.
type NotLeaderError struct {
	LeaderID   string // "" when no leader is known
	LeaderAddr string // the leader's transport address, "" when unknown
}

func (e *NotLeaderError) Error() string {
	if e.LeaderID == "" {
		return ErrNotLeader.Error() + " (no leader known)"
	}
	return fmt.Sprintf("%s (the leader is %s at %s)", ErrNotLeader, e.LeaderID, e.LeaderAddr)
}

func (e *NotLeaderError) Unwrap() error { return ErrNotLeader }
