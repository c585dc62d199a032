package raftlog

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"slices"
	"sync/atomic"

	"github.com/hashicorp/raft"
)

var _ raft.BatchingFSM = (*fsm)(nil)

// fsm is what raft applies committed entries to: it splits each entry into its commands,
// decodes them with the state machine, applies them with as few Apply calls as the batch
// allows, and numbers the commands. raft calls ApplyBatch, Snapshot and Restore on one
// goroutine, never concurrently, so the fields below need no lock; what other goroutines
// read is published through atomics.
type fsm struct {
	sm   StateMachine
	halt func(error) // asks the Node to stop: called at most once, must not block
	// restored empties raft's log cache after a snapshot is restored: raft goes on after the
	// snapshot, and the segment log drops the older entries (at the next append, past a gap)
	// without the cache knowing. nil: nothing to empty.
	restored func()
	// snapshotted hears how each snapshot ended: nil, or why it failed (Node.snapshotted);
	// nil: nobody.
	snapshotted func(error)

	index   uint64 // the last command's index
	stopErr error  // set once an entry could not be applied: nothing is applied after it
	// current: the state machine holds the state at index, having restored a snapshot (and
	// applied the commands after it). Not before the first restore, nor after a failed one.
	current bool

	published atomic.Uint64 // index, for Stats

	// Reused by ApplyBatch: cmds holds the batch's commands, skip why a command is skipped
	// (nil: it is applied), res the results, spans each entry's commands.
	cmds  []Command
	skip  []error
	res   []any
	spans []span
}

// span is an entry's commands within the batch: cmds[start:start+n].
type span struct{ start, n int }

// ApplyBatch applies a batch of committed entries. Every command of every entry is decoded
// first; then the commands are applied in order with one StateMachine.Apply per run of
// applicable commands (a skipped ignorable op splits a run), and each entry's outcome is
// built from its share of the results. Commands are numbered across entries with no gaps,
// a skipped command included. An entry that cannot be decoded (an unknown op, a corrupt
// entry) stops the node: it and every later entry resolve with ErrStopped, unapplied.
func (f *fsm) ApplyBatch(logs []*raft.Log) []any {
	resp := make([]any, len(logs))
	outs := make([]outcome, len(logs)) // one allocation for the batch's outcomes
	f.spans = f.spans[:0]
	stopAt := len(logs)
	if f.stopErr != nil {
		stopAt = 0
	}
	for i := 0; i < stopAt; i++ {
		l := logs[i]
		start := len(f.cmds)
		if l.Type != raft.LogCommand {
			f.spans = append(f.spans, span{start, 0})
			continue
		}
		if err := f.decode(l.Data); err != nil {
			f.cmds, f.skip = f.cmds[:start], f.skip[:start] // the entry applies whole or not at all
			f.stop(fmt.Errorf("%w: raft entry %d (term %d): %w", ErrStopped, l.Index, l.Term, err))
			stopAt = i
			break
		}
		f.spans = append(f.spans, span{start, len(f.cmds) - start})
	}

	base := f.index + 1
	f.apply(base)
	for i, s := range f.spans {
		if logs[i].Type != raft.LogCommand {
			continue
		}
		outs[i] = applied(base+uint64(s.start), s.n, f.res[s.start:s.start+s.n])
		resp[i] = &outs[i]
	}
	f.index += uint64(len(f.cmds))
	f.published.Store(f.index)
	for i := stopAt; i < len(logs); i++ {
		if logs[i].Type == raft.LogCommand {
			outs[i] = refused(f.stopErr)
			resp[i] = &outs[i]
		}
	}

	// Drop the references to this batch's commands and results.
	clear(f.cmds)
	clear(f.res)
	f.cmds, f.skip, f.res = f.cmds[:0], f.skip[:0], f.res[:0]
	return resp
}

// decode appends an entry's commands to f.cmds (and their skip reasons to f.skip). It fails
// on a corrupt entry and on any Decode error but an ignorable op's.
func (f *fsm) decode(entry []byte) error {
	r, err := readEntry(entry)
	if err != nil {
		return err
	}
	for r.more() {
		data, err := r.next()
		if err != nil {
			return err
		}
		c, err := f.sm.Decode(data)
		if err != nil && (!errors.Is(err, ErrIgnorableOp) || errors.Is(err, ErrUnknownOp)) {
			return fmt.Errorf("command %d of %d: %w", r.i, r.n, err)
		}
		f.cmds = append(f.cmds, c)
		f.skip = append(f.skip, err)
	}
	return r.end()
}

// apply applies f.cmds, the first at index base, and fills f.res with one result per
// command; a skipped command's result is its Decode error.
func (f *fsm) apply(base uint64) {
	f.res = slices.Grow(f.res[:0], len(f.cmds))[:len(f.cmds)]
	clear(f.res)
	for start := 0; start < len(f.cmds); {
		if f.skip[start] != nil {
			f.res[start] = f.skip[start]
			start++
			continue
		}
		end := start + 1
		for end < len(f.cmds) && f.skip[end] == nil {
			end++
		}
		rs := f.sm.Apply(base+uint64(start), f.cmds[start:end])
		if rs != nil {
			if len(rs) != end-start {
				panic(fmt.Sprintf("raftlog: StateMachine.Apply returned %d results for %d commands", len(rs), end-start))
			}
			copy(f.res[start:end], rs) // before the next Apply, which may reuse rs
			for _, r := range rs {
				if err, ok := r.(error); ok && errors.Is(err, ErrReplicaFailed) {
					f.stop(fmt.Errorf("%w: command %d: %w", ErrStopped, base+uint64(start), err))
					break
				}
			}
		}
		start = end
	}
}

// stop records why nothing more is applied and tells the Node, once.
func (f *fsm) stop(err error) {
	if f.stopErr == nil {
		f.stopErr = err
		f.halt(err)
	}
}

// Apply is raft's single-entry path; with BatchingFSM raft does not use it.
func (f *fsm) Apply(l *raft.Log) any {
	return f.ApplyBatch([]*raft.Log{l})[0]
}

// The snapshot header: magic, format, then the index of the last command the state covers.
const (
	snapMagic     = "RLSN"
	snapFormat    = 1
	snapHeaderLen = len(snapMagic) + 1 + 8
)

// Snapshot takes the state machine's snapshot and the command index it covers.
func (f *fsm) Snapshot() (raft.FSMSnapshot, error) {
	if f.stopErr != nil {
		return nil, f.stopErr
	}
	s, err := f.sm.Snapshot()
	if err == nil && s == nil {
		err = errors.New("nil Snapshot")
	}
	if err != nil {
		err = fmt.Errorf("raftlog: state machine snapshot: %w", err)
		if f.snapshotted != nil {
			f.snapshotted(err)
		}
		return nil, err
	}
	return &fsmSnapshot{index: f.index, s: s, done: f.snapshotted}, nil
}

// Restore replaces the state with a snapshot's: the header's command index, then the state
// machine's bytes. A short or foreign header is an error naming what is wrong.
func (f *fsm) Restore(rc io.ReadCloser) error {
	var h [snapHeaderLen]byte
	if _, err := io.ReadFull(rc, h[:]); err != nil {
		if err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		return fmt.Errorf("raftlog: snapshot header: %w", err)
	}
	if string(h[:len(snapMagic)]) != snapMagic {
		return fmt.Errorf("raftlog: snapshot header: magic %q, want %q: not a raftlog snapshot", h[:len(snapMagic)], snapMagic)
	}
	if v := h[len(snapMagic)]; v != snapFormat {
		return fmt.Errorf("raftlog: snapshot format %d, want %d (written by a newer version, or corrupt)", v, snapFormat)
	}
	index := binary.BigEndian.Uint64(h[len(snapMagic)+1:])
	if f.current && index == f.index {
		// The state it holds already: a leader whose InstallSnapshot timed out while this
		// node restored (a restore that fetches messages can outlast the RPC's timeout)
		// sends the same snapshot again. Commands are numbered alike everywhere, so the
		// same index is the same state.
		if f.restored != nil {
			f.restored()
		}
		return nil
	}
	f.current = false
	if err := f.sm.Restore(rc); err != nil {
		return fmt.Errorf("raftlog: restoring the state machine from a snapshot at command %d: %w", index, err)
	}
	f.index, f.current = index, true
	f.published.Store(index)
	if f.restored != nil {
		f.restored()
	}
	return nil
}

// fsmSnapshot writes the header, then the state machine's snapshot. Persist runs on raft's
// snapshot goroutine, concurrently with ApplyBatch; it reads only what Snapshot captured.
type fsmSnapshot struct {
	index uint64
	s     Snapshot
	done  func(error) // fsm.snapshotted
}

func (s *fsmSnapshot) Persist(sink raft.SnapshotSink) error {
	var h [snapHeaderLen]byte
	copy(h[:], snapMagic)
	h[len(snapMagic)] = snapFormat
	binary.BigEndian.PutUint64(h[len(snapMagic)+1:], s.index)
	_, err := sink.Write(h[:])
	if err == nil {
		err = s.s.Persist(sink)
	}
	if err != nil {
		_ = sink.Cancel()
	} else {
		err = sink.Close()
	}
	if err != nil {
		err = fmt.Errorf("raftlog: persisting the snapshot at command %d: %w", s.index, err)
	}
	if s.done != nil {
		s.done(err)
	}
	return err
}

func (s *fsmSnapshot) Release() { s.s.Release() }
