package raftlogtest

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/starling-io/starling/raftlog"
)

// The first byte of a command's data is its op.
const (
	OpPut          = 'p' // appended to the list
	OpReject       = 'r' // rejected by Apply (ErrRejected); the state does not change
	OpNew          = 'n' // an op of a newer version: appended by an SM with NewOps, unknown (ErrUnknownOp) to one without
	OpNewIgnorable = 'i' // likewise, but flagged ignorable: skipped (ErrIgnorableOp) by an SM without NewOps
)

// ErrRejected is Apply's result for an OpReject command.
var ErrRejected = errors.New("raftlogtest: rejected")

// Cmd returns a command whose data is op followed by payload.
func Cmd(op byte, payload string) raftlog.Command {
	return raftlog.Command{Data: append([]byte{op}, payload...)}
}

// Put returns an OpPut command.
func Put(payload string) raftlog.Command { return Cmd(OpPut, payload) }

// Entry is one command the SM appended: its index and its data (op byte included).
type Entry struct {
	Index uint64
	Data  string
}

// SM is a deterministic state machine for tests: an append-only list of the commands it
// applied, with their indexes, and a hash of that list, so that replicas can be compared
// with one number. Apply's result for an appended command is its index. It checks what a
// raftlog.StateMachine is promised: Apply never overlaps itself and indexes only grow.
type SM struct {
	newOps  atomic.Bool // knows OpNew and OpNewIgnorable, as a newer version would
	inApply atomic.Int32
	delay   atomic.Int64 // the next Restore's extra time (DelayNextRestore)

	mu       sync.Mutex
	entries  []Entry
	hash     uint64
	last     uint64 // the last index Apply was given
	calls    int
	restores int
	res      []any
	problem  error    // the first broken promise
	applied  []string // every command Apply appended, Restore notwithstanding
}

// SetNewOps makes the SM know OpNew and OpNewIgnorable (true), as a newer version would, or
// not (false, the default).
func (s *SM) SetNewOps(v bool) { s.newOps.Store(v) }

// Decode implements raftlog.StateMachine.
func (s *SM) Decode(data []byte) (raftlog.Command, error) {
	if len(data) == 0 {
		return raftlog.Command{}, fmt.Errorf("%w: empty command", raftlog.ErrUnknownOp)
	}
	switch data[0] {
	case OpPut, OpReject:
	case OpNew:
		if !s.newOps.Load() {
			return raftlog.Command{}, fmt.Errorf("%w: op %q", raftlog.ErrUnknownOp, data[0])
		}
	case OpNewIgnorable:
		if !s.newOps.Load() {
			return raftlog.Command{}, fmt.Errorf("%w: op %q", raftlog.ErrIgnorableOp, data[0])
		}
	default:
		return raftlog.Command{}, fmt.Errorf("%w: op %q", raftlog.ErrUnknownOp, data[0])
	}
	return raftlog.Command{Data: data, Value: data[0]}, nil
}

// Apply implements raftlog.StateMachine.
func (s *SM) Apply(index uint64, cmds []raftlog.Command) []any {
	if s.inApply.Add(1) != 1 {
		s.fail(errors.New("Apply called while another Apply runs"))
	}
	defer s.inApply.Add(-1)
	s.mu.Lock()
	defer s.mu.Unlock()
	s.calls++
	if index <= s.last && s.problem == nil {
		s.problem = fmt.Errorf("Apply at index %d after index %d", index, s.last)
	}
	s.last = index + uint64(len(cmds)) - 1
	s.res = s.res[:0]
	for i, c := range cmds {
		if c.Value == byte(OpReject) {
			s.res = append(s.res, ErrRejected)
			continue
		}
		idx := index + uint64(i)
		s.applied = append(s.applied, string(c.Data))
		s.entries = append(s.entries, Entry{idx, string(c.Data)})
		s.hash = mix(s.hash, idx, c.Data)
		s.res = append(s.res, idx)
	}
	return s.res
}

func (s *SM) fail(err error) {
	s.mu.Lock()
	if s.problem == nil {
		s.problem = err
	}
	s.mu.Unlock()
}

func mix(h, index uint64, data []byte) uint64 {
	f := fnv.New64a()
	var b [16]byte
	binary.BigEndian.PutUint64(b[:8], h)
	binary.BigEndian.PutUint64(b[8:], index)
	f.Write(b[:])
	f.Write(data)
	return f.Sum64()
}

// Hash returns the hash of the list and its length.
func (s *SM) Hash() (hash uint64, n int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.hash, len(s.entries)
}

// Entries returns a copy of the list.
func (s *SM) Entries() []Entry {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.entries)
}

// Applied returns the data of every command Apply appended since the SM was made, those a
// later Restore replaced included.
func (s *SM) Applied() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.applied)
}

// Calls returns how many times Apply and Restore were called.
func (s *SM) Calls() (applies, restores int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.calls, s.restores
}

// Problem returns the first broken promise the SM noticed, or nil.
func (s *SM) Problem() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.problem
}

// Snapshot implements raftlog.StateMachine: the list so far (its elements never change, so
// sharing the backing array with later appends is safe).
func (s *SM) Snapshot() (raftlog.Snapshot, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return &smSnapshot{entries: s.entries[:len(s.entries):len(s.entries)], hash: s.hash}, nil
}

type smSnapshot struct {
	entries []Entry
	hash    uint64
}

// Persist writes the count, the hash, then each entry as index, length and data.
func (s *smSnapshot) Persist(w io.Writer) error {
	bw := bufio.NewWriter(w)
	var b [binary.MaxVarintLen64]byte
	put := func(v uint64) { bw.Write(b[:binary.PutUvarint(b[:], v)]) }
	put(uint64(len(s.entries)))
	put(s.hash)
	for _, e := range s.entries {
		put(e.Index)
		put(uint64(len(e.Data)))
		bw.WriteString(e.Data)
	}
	return bw.Flush()
}

func (s *smSnapshot) Release() {}

// DelayNextRestore makes the next Restore take d longer, as one that fetches data from other
// nodes may: longer than the leader's InstallSnapshot timeout, say.
func (s *SM) DelayNextRestore(d time.Duration) { s.delay.Store(int64(d)) }

// Restore implements raftlog.StateMachine.
func (s *SM) Restore(r io.Reader) error {
	if d := s.delay.Swap(0); d > 0 {
		time.Sleep(time.Duration(d))
	}
	br := bufio.NewReader(r)
	get := func(what string) (uint64, error) {
		v, err := binary.ReadUvarint(br)
		if err != nil {
			return 0, fmt.Errorf("raftlogtest: snapshot %s: %w", what, err)
		}
		return v, nil
	}
	n, err := get("count")
	if err != nil {
		return err
	}
	hash, err := get("hash")
	if err != nil {
		return err
	}
	var entries []Entry
	for i := uint64(0); i < n; i++ {
		idx, err := get("index")
		if err != nil {
			return err
		}
		l, err := get("length")
		if err != nil {
			return err
		}
		if l > 1<<20 {
			return fmt.Errorf("raftlogtest: snapshot entry %d: length %d", i, l)
		}
		data := make([]byte, l)
		if _, err := io.ReadFull(br, data); err != nil {
			return fmt.Errorf("raftlogtest: snapshot entry %d: %w", i, err)
		}
		entries = append(entries, Entry{idx, string(data)})
	}
	var h uint64
	for _, e := range entries {
		h = mix(h, e.Index, []byte(e.Data))
	}
	if h != hash {
		return fmt.Errorf("raftlogtest: snapshot hash %x, its entries hash to %x", hash, h)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.entries, s.hash = entries, hash
	s.last = 0
	if len(entries) > 0 {
		s.last = entries[len(entries)-1].Index
	}
	s.restores++
	return nil
}
