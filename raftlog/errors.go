package raftlog

import "errors"

var (
	// ErrNotLeader is returned by a proposal made on a replica that is not the leader. The
	// command was not applied; the caller redirects or retries once a leader is known.
	ErrNotLeader = errors.New("raftlog: not the leader")
	// ErrClosed is returned by a proposal or Barrier after Close. The command was not applied.
	ErrClosed = errors.New("raftlog: log closed")
	// ErrTimeout is returned when a replicated log could not even enqueue a proposal in time
	// (the leader is overloaded). The command was not applied.
	ErrTimeout = errors.New("raftlog: timed out enqueuing the proposal")
	// ErrUnknownOp is wrapped by StateMachine.Decode for an op type this version does not know.
	// A replica that skipped a state change would diverge from the others, so the replicated
	// implementation stops applying rather than carry on.
	ErrUnknownOp = errors.New("raftlog: unknown op type")
	// ErrIgnorableOp is wrapped by StateMachine.Decode for an unknown op type that its encoding
	// flags as safe to skip (an op added by a newer version that older replicas may ignore
	// during a rolling upgrade). The replicated implementation skips the command and carries on.
	ErrIgnorableOp = errors.New("raftlog: unknown ignorable op type")
)
