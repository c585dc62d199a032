package raftlog

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
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
	// partial is a command arriving in fragments (format 3 entries), as far as they came;
	// partialLen its length once whole, partialTerm the raft term its entries were written
	// in (a proposal's entries are all of one term). nil: none. A snapshot carries it.
	partial     []byte
	partialLen  uint64
	partialTerm uint64

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
		if err := f.decode(l.Data, l.Term); err != nil {
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
func (f *fsm) decode(entry []byte, term uint64) error {
	r, err := readEntry(entry)
	if err != nil {
		return err
	}
	if r.frag != nil {
		return f.fragment(&r, term)
	}
	f.partial = nil // a command left in fragments was abandoned (its leader lost office)
	for r.more() {
		data, err := r.next()
		if err != nil {
			return err
		}
		if err := f.add(data); err != nil {
			return fmt.Errorf("command %d of %d: %w", r.i, r.n, err)
		}
	}
	return r.end()
}

// fragment adds a fragment (of an entry of term) to the command it continues, and decodes
// the command once whole. A fragment that continues none — the rest of a command whose
// proposer lost leadership part way, and whose next entries a new leader replaced — is
// skipped, and so is the partial command. Continuing means the same term too: a new
// leader's orphan fragments (a proposal whose first entry raft refused) of a command as
// long as an abandoned one would otherwise complete it with another command's bytes.
func (f *fsm) fragment(r *entryReader, term uint64) error {
	switch {
	case r.offset == 0:
		// Sized for the whole command, but not trusting a length before the bytes came.
		f.partial, f.partialLen, f.partialTerm = make([]byte, 0, min(r.total, 1<<20)), r.total, term
	case f.partial == nil || r.total != f.partialLen || r.offset != uint64(len(f.partial)) || term != f.partialTerm:
		f.partial = nil
		return nil
	}
	f.partial = append(f.partial, r.frag...)
	if uint64(len(f.partial)) < f.partialLen {
		return nil
	}
	data := f.partial[:len(f.partial):len(f.partial)]
	f.partial = nil // never written again: the state machine may keep parts of data
	if err := f.add(data); err != nil {
		return fmt.Errorf("a command of %d bytes in fragments: %w", len(data), err)
	}
	return nil
}

// add decodes a command and appends it; an ignorable op is appended with its skip reason.
func (f *fsm) add(data []byte) error {
	c, err := f.sm.Decode(data)
	if err != nil && (!errors.Is(err, ErrIgnorableOp) || errors.Is(err, ErrUnknownOp)) {
		return err
	}
	f.cmds = append(f.cmds, c)
	f.skip = append(f.skip, err)
	return nil
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
// Format 2 adds a command arriving in fragments at the snapshot: its length once whole
// (8 bytes), the length that came (8 bytes) and those bytes. Without one, format 1 is
// written, which earlier versions read.
const (
	snapMagic     = "RLSN"
	snapFormat    = 1
	snapFormatFrg = 2
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
	// partial is never written in place again (fragment appends past its length), so
	// Persist may read it beside later Applies.
	return &fsmSnapshot{index: f.index, partial: f.partial, partialLen: f.partialLen, partialTerm: f.partialTerm,
		s: s, done: f.snapshotted}, nil
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
	v := h[len(snapMagic)]
	if v != snapFormat && v != snapFormatFrg {
		return fmt.Errorf("raftlog: snapshot format %d, want %d or %d (written by a newer version, or corrupt)", v, snapFormat, snapFormatFrg)
	}
	index := binary.BigEndian.Uint64(h[len(snapMagic)+1:])
	var partial []byte
	var partialLen, partialTerm uint64
	if v == snapFormatFrg {
		var err error
		if partial, partialLen, partialTerm, err = readPartial(rc); err != nil {
			return err
		}
	}
	if f.current && index == f.index && partialLen == f.partialLen && partialTerm == f.partialTerm && bytes.Equal(partial, f.partial) {
		// The state it holds already: a leader whose InstallSnapshot timed out while this
		// node restored (a restore that fetches messages can outlast the RPC's timeout)
		// sends the same snapshot again. Commands are numbered alike everywhere, so the
		// same index is the same state — with the same partial command: fragments move
		// raft's index, not the command index.
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
	f.partial, f.partialLen, f.partialTerm = partial, partialLen, partialTerm
	f.published.Store(index)
	if f.restored != nil {
		f.restored()
	}
	return nil
}

// readPartial reads a format 2 snapshot's partial command. Memory grows with the bytes
// that arrive, not with a length read before them.
func readPartial(r io.Reader) (partial []byte, whole, term uint64, err error) {
	var h [24]byte
	if _, err := io.ReadFull(r, h[:]); err != nil {
		return nil, 0, 0, fmt.Errorf("raftlog: snapshot header, the command in fragments: %w", io.ErrUnexpectedEOF)
	}
	whole, have, term := binary.BigEndian.Uint64(h[:8]), binary.BigEndian.Uint64(h[8:]), binary.BigEndian.Uint64(h[16:])
	if have == 0 || have >= whole || have > math.MaxInt64 {
		return nil, 0, 0, fmt.Errorf("raftlog: snapshot header: %d bytes of a command of %d in fragments", have, whole)
	}
	var b bytes.Buffer
	if _, err := io.CopyN(&b, r, int64(have)); err != nil {
		return nil, 0, 0, fmt.Errorf("raftlog: snapshot header, the command in fragments: %w", io.ErrUnexpectedEOF)
	}
	return b.Bytes(), whole, term, nil
}

// fsmSnapshot writes the header, then the state machine's snapshot. Persist runs on raft's
// snapshot goroutine, concurrently with ApplyBatch; it reads only what Snapshot captured.
type fsmSnapshot struct {
	index       uint64
	partial     []byte // fsm.partial
	partialLen  uint64
	partialTerm uint64
	s           Snapshot
	done        func(error) // fsm.snapshotted
}

func (s *fsmSnapshot) Persist(sink raft.SnapshotSink) error {
	h := make([]byte, snapHeaderLen, snapHeaderLen+24)
	copy(h, snapMagic)
	h[len(snapMagic)] = snapFormat
	binary.BigEndian.PutUint64(h[len(snapMagic)+1:], s.index)
	if s.partial != nil {
		h[len(snapMagic)] = snapFormatFrg
		h = binary.BigEndian.AppendUint64(h, s.partialLen)
		h = binary.BigEndian.AppendUint64(h, uint64(len(s.partial)))
		h = binary.BigEndian.AppendUint64(h, s.partialTerm)
	}
	_, err := sink.Write(h)
	if err == nil && s.partial != nil {
		_, err = sink.Write(s.partial)
	}
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
