package storetest

import (
	"errors"
	"testing"

	"github.com/starling-io/starling/stores"
)

// testCreateChannels: CreateChannels creates each channel as CreateChannelAfter would, in
// order, refusing only the names that must be (a name existing or earlier in the batch, past
// MaxChannels), and the ones created are durable together (after a crash too).
func (s *suite) testCreateChannels(t *testing.T) {
	st, dir := s.fresh(t)
	l := stores.DefaultLimits()
	l.MaxChannels = 5
	setLimits(t, st, &stores.LimitsSet{Global: l})
	appendOK(t, create(t, st, "old", 1).Msgs, genBatch(1, 3))
	if err := st.DeleteChannel("old"); err != nil {
		t.Fatal(err)
	}
	create(t, st, "exists", 2)
	cs := []stores.NewChannel{
		{Name: "a", ID: 3},
		{Name: "exists", ID: 4},
		{Name: "a", ID: 5},
		{Name: "old", ID: 6},            // continues after its tombstone: 3
		{Name: "b", ID: 7, After: 10},   // after 10
		{Name: "c", ID: 8},              // the fifth channel
		{Name: "d", ID: 9},              // one too many
		{Name: "old", ID: 10, After: 1}, // earlier in the batch
	}
	out, errs := stores.CreateChannels(st, cs)
	if len(out) != len(cs) || len(errs) != len(cs) {
		t.Fatalf("CreateChannels returned %d channels and %d errors for %d", len(out), len(errs), len(cs))
	}
	wantErr := []error{nil, stores.ErrExists, stores.ErrExists, nil, nil, nil, stores.ErrTooManyChannels, stores.ErrExists}
	for i, c := range cs {
		if !errors.Is(errs[i], wantErr[i]) || (wantErr[i] == nil) != (errs[i] == nil) {
			t.Fatalf("CreateChannels: %s (ID %d): error %v, want %v", c.Name, c.ID, errs[i], wantErr[i])
		}
		if (out[i] != nil) != (errs[i] == nil) {
			t.Fatalf("CreateChannels: %s (ID %d): channel %v with error %v", c.Name, c.ID, out[i], errs[i])
		}
		if out[i] != nil && (out[i].Name != c.Name || out[i].ID != c.ID || out[i].Msgs == nil || out[i].Subs == nil) {
			t.Fatalf("CreateChannels: %s (ID %d) = %+v", c.Name, c.ID, out[i])
		}
	}
	checkState(t, out[0].Msgs, stores.ChannelState{First: 1})
	checkState(t, out[3].Msgs, stores.ChannelState{First: 4, Last: 3})
	checkState(t, out[4].Msgs, stores.ChannelState{First: 11, Last: 10})
	appendOK(t, out[5].Msgs, genBatch(1, 2))
	if err := out[5].Msgs.Sync(); err != nil {
		t.Fatal(err)
	}
	if out, errs := stores.CreateChannels(st, []stores.NewChannel{{Name: "e", ID: 11}}); out[0] != nil || !errors.Is(errs[0], stores.ErrTooManyChannels) {
		t.Fatalf("a sixth channel: %v, %v", out[0], errs[0])
	}
	if !s.caps.Durable {
		return
	}
	st = s.afterCrash(t, st, dir) // durable when it returned: no Close needed
	rs, err := st.Recover()
	if err != nil || rs == nil {
		t.Fatalf("Recover = %v, %v", rs, err)
	}
	ids := map[string]uint64{}
	for _, rc := range rs.Channels {
		ids[rc.Channel.Name] = rc.Channel.ID
	}
	want := map[string]uint64{"exists": 2, "a": 3, "old": 6, "b": 7, "c": 8}
	if len(ids) != len(want) {
		t.Fatalf("recovered %v, want %v", ids, want)
	}
	for n, id := range want {
		if ids[n] != id {
			t.Fatalf("recovered %v, want %v", ids, want)
		}
	}
	checkState(t, recovered(t, st, "old").Channel.Msgs, stores.ChannelState{First: 4, Last: 3})
	checkState(t, recovered(t, st, "b").Channel.Msgs, stores.ChannelState{First: 11, Last: 10})
	checkState(t, recovered(t, st, "c").Channel.Msgs, stateOf("c", 2, genBatch(1, 2)))
}

// testDeleteChannels: DeleteChannels deletes each channel as DeleteChannel would, in order
// (a name deleted earlier in the batch is not found), durable together (after a crash too).
func (s *suite) testDeleteChannels(t *testing.T) {
	st, dir := s.fresh(t)
	a := create(t, st, "a", 1)
	appendOK(t, a.Msgs, genBatch(1, 3))
	create(t, st, "b", 2)
	create(t, st, "c", 3)
	if err := a.Msgs.Sync(); err != nil {
		t.Fatal(err)
	}
	names := []string{"a", "x", "b", "a"}
	errs := stores.DeleteChannels(st, names)
	want := []error{nil, stores.ErrNotFound, nil, stores.ErrNotFound}
	if len(errs) != len(names) {
		t.Fatalf("DeleteChannels returned %d errors for %d", len(errs), len(names))
	}
	for i := range names {
		if (want[i] == nil) != (errs[i] == nil) || !errors.Is(errs[i], want[i]) {
			t.Fatalf("DeleteChannels: %s: %v, want %v", names[i], errs[i], want[i])
		}
	}
	if err := a.Msgs.Append(genBatch(4, 1)); !errors.Is(err, stores.ErrChannelDeleted) {
		t.Fatalf("Append to a deleted channel: %v", err)
	}
	if !s.caps.Durable {
		return
	}
	st = s.afterCrash(t, st, dir)
	rs, err := st.Recover()
	if err != nil || rs == nil {
		t.Fatalf("Recover = %v, %v", rs, err)
	}
	if len(rs.Channels) != 1 || rs.Channels[0].Channel.Name != "c" || rs.Deleted["a"] != 3 {
		t.Fatalf("recovered %d channels, deleted %v; want c, and a at 3", len(rs.Channels), rs.Deleted)
	}
	checkState(t, create(t, st, "a", 4).Msgs, stores.ChannelState{First: 4, Last: 3})
}

// afterCrash opens dir again as after a crash of st (a reopen where the store cannot crash).
func (s *suite) afterCrash(t *testing.T, st stores.Store, dir string) stores.Store {
	t.Helper()
	if s.caps.Crash == nil {
		return s.reopen(t, st, dir, nil)
	}
	s.caps.Crash(st)
	st = s.open(t, dir)
	t.Cleanup(func() { st.Close() })
	return st
}
