package raftlog

import (
	"errors"
	"fmt"

	"github.com/hashicorp/raft"

	"github.com/starling-io/starling/raftlog/seglog"
)

// failStop is the log store as raft sees it. raft treats a failed write as something to
// retry: a leader whose log cannot store an entry steps down, and — its log being as long as
// anyone's — is elected again, and steps down again, for as long as the disk stays full (in
// a test, four times in 1.6 s). The segment log takes no more writes after a failed one
// anyway (what reached the disk is unknown until it is reopened). So the first failure
// halts the node instead: it leaves the group until it is restarted, the others elect a
// leader among themselves at once, and the node's health names the cause.
type failStop struct {
	raft.LogStore
	fail func(error) // nil until the Node exists (a bootstrap writes before it does)
}

func (s *failStop) StoreLog(l *raft.Log) error { return s.check(s.LogStore.StoreLog(l)) }

func (s *failStop) StoreLogs(ls []*raft.Log) error { return s.check(s.LogStore.StoreLogs(ls)) }

func (s *failStop) DeleteRange(min, max uint64) error {
	if min > max {
		return nil // an empty range: fsm.restored empties the log cache above with one
	}
	return s.check(s.LogStore.DeleteRange(min, max))
}

// GetLog halts the node on an entry found damaged as it is read (damage since the log was
// opened): raft only logs the error and retries the read for ever, so the node went on
// leading and voting, and a follower that needed the entry never caught up.
func (s *failStop) GetLog(index uint64, l *raft.Log) error {
	err := s.LogStore.GetLog(index, l)
	if err != nil && errors.Is(err, seglog.ErrDamaged) {
		s.check(err)
	}
	return err
}

func (s *failStop) check(err error) error {
	if err != nil && s.fail != nil {
		s.fail(err)
	}
	return err
}

// logFailed halts the node after its log store failed a write (failStop). It runs on
// raft's goroutines, so like halt it only records why and wakes watch.
func (n *Node) logFailed(err error) {
	if n.isClosed.Load() {
		return // closing: the store refuses writes by design
	}
	if errors.Is(err, seglog.ErrDamaged) {
		n.stop(fmt.Errorf("%w: the raft log holds a damaged entry: %w", ErrStopped, err),
			"raftlog: STOPPED: the raft log holds a damaged entry; the node leaves the group until it is restarted, "+
				"which refuses the damaged log (move it aside to rejoin)")
		return
	}
	n.stop(fmt.Errorf("%w: the raft log could not store entries: %w", ErrStopped, err),
		"raftlog: STOPPED: the raft log could not store entries (a full disk, an I/O error); "+
			"the node leaves the group, so that it is not elected again, until it is restarted once the cause is fixed")
}
