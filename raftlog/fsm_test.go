package raftlog

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"testing"

	"github.com/hashicorp/raft"
)

// callSM records each Apply call; data "u…" is an unknown op, "i…" an ignorable one, "e…"
// is rejected by Apply.
type callSM struct {
	calls  [][2]uint64 // index, count
	values []string
	state  string // Restore's input
}

func (s *callSM) Decode(d []byte) (Command, error) {
	switch {
	case bytes.HasPrefix(d, []byte("u")):
		return Command{}, fmt.Errorf("%w: %q", ErrUnknownOp, d)
	case bytes.HasPrefix(d, []byte("i")):
		return Command{}, fmt.Errorf("%w: %q", ErrIgnorableOp, d)
	}
	return Command{Data: d, Value: string(d)}, nil
}

func (s *callSM) Apply(index uint64, cmds []Command) []any {
	s.calls = append(s.calls, [2]uint64{index, uint64(len(cmds))})
	var res []any
	for i, c := range cmds {
		s.values = append(s.values, c.Value.(string))
		if strings.HasPrefix(c.Value.(string), "e") {
			if res == nil {
				res = make([]any, len(cmds))
			}
			res[i] = errors.New("rejected")
		}
	}
	return res
}

type bytesSnapshot []byte

func (b bytesSnapshot) Persist(w io.Writer) error { _, err := w.Write(b); return err }
func (b bytesSnapshot) Release()                  {}

func (s *callSM) Snapshot() (Snapshot, error) { return bytesSnapshot(strings.Join(s.values, ",")), nil }

func (s *callSM) Restore(r io.Reader) error {
	b, err := io.ReadAll(r)
	s.state = string(b)
	return err
}

func entry(index uint64, data ...string) *raft.Log {
	cs := make([]Command, len(data))
	for i, d := range data {
		cs[i].Data = []byte(d)
	}
	return &raft.Log{Index: index, Term: 1, Type: raft.LogCommand, Data: encodeEntry(cs)}
}

func outcomeOf(t *testing.T, r any) outcome {
	t.Helper()
	o, ok := r.(*outcome)
	if !ok {
		t.Fatalf("response %T, want *outcome", r)
	}
	return *o
}

// TestApplyBatchNumbering: commands are numbered across entries, a skipped ignorable op keeps
// its index and splits the Apply calls, other entry types take none.
func TestApplyBatchNumbering(t *testing.T) {
	sm := &callSM{}
	var halted error
	f := &fsm{sm: sm, halt: func(err error) { halted = err }}
	resp := f.ApplyBatch([]*raft.Log{
		entry(2, "a", "b"),
		{Index: 3, Type: raft.LogConfiguration},
		entry(4, "c", "i-skip", "d"),
		entry(5, "e-rejected"),
	})
	if halted != nil {
		t.Fatal(halted)
	}
	if want := [][2]uint64{{1, 3}, {5, 2}}; fmt.Sprint(sm.calls) != fmt.Sprint(want) {
		t.Fatalf("Apply calls (index, count) %v, want %v", sm.calls, want)
	}
	if resp[1] != nil {
		t.Fatalf("a configuration entry's response: %v", resp[1])
	}
	if o := outcomeOf(t, resp[0]); o.index != 1 || o.err() != nil {
		t.Fatalf("entry 1: %+v", o)
	}
	o := outcomeOf(t, resp[2])
	if o.index != 3 || !errors.Is(o.err(), ErrIgnorableOp) || o.at(0) != nil || o.at(2) != nil {
		t.Fatalf("entry with the skipped op: index %d, err %v, results %v", o.index, o.err(), o.v)
	}
	if o := outcomeOf(t, resp[3]); o.index != 6 || o.err() == nil {
		t.Fatalf("rejected entry: %+v", o)
	}
	if f.index != 6 || f.published.Load() != 6 {
		t.Fatalf("command index %d, want 6", f.index)
	}
}

// TestApplyBatchStops: an unknown op or a corrupt entry stops applying at that entry — the
// entries before it are applied, it and every later one are not, now or in later batches —
// and names the entry.
func TestApplyBatchStops(t *testing.T) {
	for _, tc := range []struct {
		name string
		bad  *raft.Log
		want string
	}{
		{"unknown op", entry(8, "x", "u-new"), "raft entry 8 (term 1): command 2 of 2: raftlog: unknown op type"},
		{"corrupt", &raft.Log{Index: 8, Term: 1, Type: raft.LogCommand, Data: []byte{entryFormatV1, 3, 1}}, "raft entry 8 (term 1): command count 3"},
		{"newer format", &raft.Log{Index: 8, Term: 1, Type: raft.LogCommand, Data: []byte{9}}, "entry format 9"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sm := &callSM{}
			halts := 0
			f := &fsm{sm: sm, halt: func(error) { halts++ }}
			resp := f.ApplyBatch([]*raft.Log{entry(7, "a"), tc.bad, entry(9, "b")})
			if halts != 1 || f.stopErr == nil || !errors.Is(f.stopErr, ErrStopped) || !strings.Contains(f.stopErr.Error(), tc.want) {
				t.Fatalf("halts %d, stopErr %v; want one halt and an error containing %q", halts, f.stopErr, tc.want)
			}
			if fmt.Sprint(sm.values) != "[a]" || f.index != 1 {
				t.Fatalf("applied %v up to %d, want [a] up to 1", sm.values, f.index)
			}
			for i, r := range resp[1:] {
				if o := outcomeOf(t, r); o.index != 0 || !errors.Is(o.err(), ErrStopped) {
					t.Fatalf("entry %d after the stop: %+v", i+1, o)
				}
			}
			resp = f.ApplyBatch([]*raft.Log{entry(10, "c")})
			if o := outcomeOf(t, resp[0]); o.index != 0 || len(sm.values) != 1 || halts != 1 {
				t.Fatalf("a later batch: %+v, applied %v", o, sm.values)
			}
			if _, err := f.Snapshot(); !errors.Is(err, ErrStopped) {
				t.Fatalf("Snapshot of a stopped fsm: %v", err)
			}
		})
	}
}

type bufSink struct {
	bytes.Buffer
	closed, cancelled bool
}

func (s *bufSink) ID() string    { return "test" }
func (s *bufSink) Close() error  { s.closed = true; return nil }
func (s *bufSink) Cancel() error { s.cancelled = true; return nil }

// TestSnapshotHeader: the command index travels before the state machine's bytes, and a
// snapshot that is not ours fails with an error that says why.
func TestSnapshotHeader(t *testing.T) {
	sm := &callSM{}
	f := &fsm{sm: sm, halt: func(error) {}}
	f.ApplyBatch([]*raft.Log{entry(1, "a", "b", "c")})
	snap, err := f.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	var sink bufSink
	if err := snap.Persist(&sink); err != nil || !sink.closed {
		t.Fatalf("Persist: %v, closed %v", err, sink.closed)
	}
	snap.Release()

	sm2 := &callSM{}
	f2 := &fsm{sm: sm2, halt: func(error) {}}
	if err := f2.Restore(io.NopCloser(bytes.NewReader(sink.Bytes()))); err != nil {
		t.Fatal(err)
	}
	if f2.index != 3 || sm2.state != "a,b,c" {
		t.Fatalf("restored index %d, state %q", f2.index, sm2.state)
	}
	f2.ApplyBatch([]*raft.Log{entry(9, "d")})
	if sm2.calls[0][0] != 4 {
		t.Fatalf("after the restore the next command is at %d, want 4", sm2.calls[0][0])
	}

	good := sink.Bytes()
	for _, tc := range []struct {
		name string
		b    []byte
		want string
	}{
		{"empty", nil, "snapshot header: unexpected EOF"},
		{"short", good[:7], "snapshot header: unexpected EOF"},
		{"magic", append([]byte("XXXX"), good[4:]...), `magic "XXXX"`},
		{"format", append(append([]byte(snapMagic), 7), good[5:]...), "snapshot format 7"},
	} {
		f3 := &fsm{sm: &callSM{}, halt: func(error) {}}
		err := f3.Restore(io.NopCloser(bytes.NewReader(tc.b)))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want an error containing %q", tc.name, err, tc.want)
		}
		if f3.index != 0 {
			t.Errorf("%s: a failed restore set the index to %d", tc.name, f3.index)
		}
	}
}

// TestRestoreSkipsTheStateItHolds: a snapshot at the command index the state machine holds
// after a restore is not restored again; one at another index is, and so is any after a
// restore that failed (the state machine may hold part of it).
func TestRestoreSkipsTheStateItHolds(t *testing.T) {
	src := &fsm{sm: &callSM{}, halt: func(error) {}}
	src.ApplyBatch([]*raft.Log{entry(1, "a", "b", "c")})
	snap, err := src.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	var sink bufSink
	if err := snap.Persist(&sink); err != nil {
		t.Fatal(err)
	}
	good := sink.Bytes()
	sm := &callSM{}
	restored := 0
	f := &fsm{sm: sm, halt: func(error) {}, restored: func() { restored++ }}
	restore := func(b []byte, r io.Reader) error {
		return f.Restore(io.NopCloser(io.MultiReader(bytes.NewReader(b), r)))
	}
	check := func(what, state string) {
		t.Helper()
		if sm.state != state {
			t.Fatalf("%s: state %q, want %q", what, sm.state, state)
		}
	}
	if err := restore(good, bytes.NewReader(nil)); err != nil {
		t.Fatal(err)
	}
	check("first restore", "a,b,c")
	sm.state = "held"
	if err := restore(good, bytes.NewReader(nil)); err != nil {
		t.Fatal(err)
	}
	check("the same snapshot again", "held")
	if restored != 2 {
		t.Fatalf("the log cache was emptied %d times, want 2", restored)
	}

	// A failed restore of another: the next one restores, whatever its index.
	other := slices.Clone(good[:snapHeaderLen])
	binary.BigEndian.PutUint64(other[len(snapMagic)+1:], 5)
	if err := restore(other, iotestErrReader{}); err == nil {
		t.Fatal("a failing restore succeeded")
	}
	sm.state = "held"
	if err := restore(good, bytes.NewReader(nil)); err != nil {
		t.Fatal(err)
	}
	check("after a failed restore", "a,b,c")

	// Commands applied since: the snapshot is older than the state.
	f.ApplyBatch([]*raft.Log{entry(9, "d")})
	sm.state = "held"
	if err := restore(good, bytes.NewReader(nil)); err != nil {
		t.Fatal(err)
	}
	check("an older snapshot", "a,b,c")
}

type iotestErrReader struct{}

func (iotestErrReader) Read([]byte) (int, error) { return 0, errors.New("read failed") }

// fragments returns the entries, from raft index first, that carry data in fragments of
// at most limit bytes.
func fragments(first uint64, data string, limit int) []*raft.Log {
	var logs []*raft.Log
	for i, p := range appendFragments(nil, []byte(data), limit) {
		logs = append(logs, &raft.Log{Index: first + uint64(i), Term: 1, Type: raft.LogCommand, Data: p.data})
	}
	return logs
}

// TestApplyBatchFragments: a command in fragments is applied once whole, at the index after
// the command before it, whichever batches its fragments come in and across a snapshot taken
// between them; one left part way (its leader lost office) is dropped, with its rest.
func TestApplyBatchFragments(t *testing.T) {
	big := strings.Repeat("0123456789", 30)
	frags := fragments(2, big, fragHeaderMax+minFragment) // 5 entries
	if len(frags) != 5 {
		t.Fatalf("%d fragments", len(frags))
	}
	sm := &callSM{}
	f := &fsm{sm: sm, halt: func(error) {}}
	resp := f.ApplyBatch(append([]*raft.Log{entry(1, "a")}, frags[:2]...))
	if o := outcomeOf(t, resp[1]); o.index != 2 {
		t.Fatalf("a first fragment's outcome at %d, want 2 (the command's)", o.index)
	}
	snap, err := f.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	var sink bufSink
	if err := snap.Persist(&sink); err != nil {
		t.Fatal(err)
	}
	if sink.Bytes()[len(snapMagic)] != snapFormatFrg {
		t.Fatalf("a snapshot between fragments in format %d", sink.Bytes()[len(snapMagic)])
	}
	rest := append(frags[2:], entry(7, "b"))
	check := func(name string, sm *callSM, values []string, index uint64) {
		t.Helper()
		if !slices.Equal(sm.values, values) || sm.calls[len(sm.calls)-1][0] != index {
			t.Fatalf("%s: applied %q, the last Apply at %v", name, sm.values, sm.calls)
		}
	}
	resp = f.ApplyBatch(rest)
	if o := outcomeOf(t, resp[2]); o.index != 2 || o.at(0) != nil {
		t.Fatalf("the last fragment's outcome: index %d, result %v", o.index, o.at(0))
	}
	check("in order", sm, []string{"a", big, "b"}, 2)

	sm2 := &callSM{}
	f2 := &fsm{sm: sm2, halt: func(error) {}}
	if err := f2.Restore(io.NopCloser(bytes.NewReader(sink.Bytes()))); err != nil {
		t.Fatal(err)
	}
	f2.ApplyBatch(rest)
	check("after a snapshot between fragments", sm2, []string{big, "b"}, 2)

	// Abandoned after two fragments: the next command takes index 2, the rest is skipped.
	sm3 := &callSM{}
	f3 := &fsm{sm: sm3, halt: func(error) {}}
	f3.ApplyBatch(append([]*raft.Log{entry(1, "a")}, frags[:2]...))
	f3.ApplyBatch([]*raft.Log{entry(4, "c")})
	f3.ApplyBatch(frags[2:])
	f3.ApplyBatch([]*raft.Log{entry(8, "d")})
	check("abandoned", sm3, []string{"a", "c", "d"}, 3)
	if f3.index != 3 {
		t.Fatalf("index %d after an abandoned command, want 3", f3.index)
	}
}

// A snapshot at the command index the state machine holds is skipped only if it also holds
// the same partial command. Fragments advance raft's index but not the command index, so a
// leader's newer snapshot taken between fragments has the index of one taken before them:
// skipping it left the follower without the fragments before it, and the rest of the
// command was then skipped as continuing nothing — applied on every replica but this one.
func TestRestoreSkipsOnlyTheSamePartial(t *testing.T) {
	big := strings.Repeat("0123456789", 30)
	frags := fragments(2, big, fragHeaderMax+minFragment)
	persist := func(f *fsm) []byte {
		t.Helper()
		snap, err := f.Snapshot()
		if err != nil {
			t.Fatal(err)
		}
		var sink bufSink
		if err := snap.Persist(&sink); err != nil {
			t.Fatal(err)
		}
		return slices.Clone(sink.Bytes())
	}
	leader := &fsm{sm: &callSM{}, halt: func(error) {}}
	leader.ApplyBatch([]*raft.Log{entry(1, "a")})
	before := persist(leader) // command 1, no partial
	leader.ApplyBatch(frags[:2])
	between := persist(leader) // command 1, two fragments of command 2

	sm := &callSM{}
	f := &fsm{sm: sm, halt: func(error) {}}
	if err := f.Restore(io.NopCloser(bytes.NewReader(before))); err != nil {
		t.Fatal(err)
	}
	if err := f.Restore(io.NopCloser(bytes.NewReader(between))); err != nil {
		t.Fatal(err)
	}
	f.ApplyBatch(append(frags[2:], entry(9, "b")))
	if want := []string{big, "b"}; sm.state != "a" || !slices.Equal(sm.values, want) {
		t.Fatalf("restored %q and applied %q after the newer snapshot, want %q and %q", sm.state, sm.values, "a", want)
	}
}

// A fragment continues only a partial command of its own term. Leader 1 wrote the first
// fragment of A and lost office; leader 2 wrote its no-op, then the fragments of Q, as
// long as A, without Q's first (raft refused it). Before, Q's fragments completed A: every
// replica applied a command nobody proposed, A's first bytes and Q's rest.
func TestFragmentsOfAnotherTermDoNotContinue(t *testing.T) {
	a, q := strings.Repeat("A", 300), strings.Repeat("Q", 300)
	fa := fragments(1, a, fragHeaderMax+minFragment)
	fq := fragments(3, q, fragHeaderMax+minFragment)
	for _, l := range fq {
		l.Term = 2
	}
	noop := &raft.Log{Index: 2, Term: 2, Type: raft.LogNoop}
	sm := &callSM{}
	f := &fsm{sm: sm, halt: func(error) {}}
	f.ApplyBatch(append([]*raft.Log{fa[0], noop}, fq[1:]...))
	f.ApplyBatch([]*raft.Log{entry(9, "b")})
	if want := []string{"b"}; !slices.Equal(sm.values, want) {
		t.Fatalf("applied %q, want %q", sm.values, want)
	}

	// Across a snapshot taken between the fragments: the term is carried.
	f2 := &fsm{sm: &callSM{}, halt: func(error) {}}
	f2.ApplyBatch(fa[:1])
	snap, err := f2.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	var sink bufSink
	if err := snap.Persist(&sink); err != nil {
		t.Fatal(err)
	}
	sm3 := &callSM{}
	f3 := &fsm{sm: sm3, halt: func(error) {}}
	if err := f3.Restore(io.NopCloser(bytes.NewReader(sink.Bytes()))); err != nil {
		t.Fatal(err)
	}
	f3.ApplyBatch(append([]*raft.Log{noop}, fq[1:]...))
	f3.ApplyBatch(fa[1:]) // the rest of A in its own term (as if leader 1 had kept office)
	if len(sm3.values) != 0 {
		t.Fatalf("after a restore: applied %q, want nothing (A's partial was dropped by Q's fragments)", sm3.values)
	}
	sm4 := &callSM{}
	f4 := &fsm{sm: sm4, halt: func(error) {}}
	if err := f4.Restore(io.NopCloser(bytes.NewReader(sink.Bytes()))); err != nil {
		t.Fatal(err)
	}
	f4.ApplyBatch(fa[1:])
	if want := []string{a}; !slices.Equal(sm4.values, want) {
		t.Fatalf("after a restore, A's own rest: applied %d commands, want A", len(sm4.values))
	}
}
