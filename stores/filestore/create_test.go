package filestore_test

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/starling-io/starling/stores"
	"github.com/starling-io/starling/stores/filestore"
	"github.com/starling-io/starling/stores/filestore/crashtest"
)

// syncNames returns the Options' BeforeSync hook recording each fsynced path relative to
// dir ("." for the store directory) into *got.
func syncNames(dir string, got *[]string) func(string) error {
	return func(p string) error {
		rel, err := filepath.Rel(dir, p)
		if err != nil {
			rel = p
		}
		*got = append(*got, filepath.ToSlash(rel))
		return nil
	}
}

// TestCreateChannelFsyncs: creating a channel fsyncs the store directory (its new
// directory) and meta.log (its record), nothing else, and creates no file in the channel's
// directory; subs.log is created by the first flush that writes it (a rewrite: the new file
// and the directory fsynced), and the first message creates the tail without an fsync on the
// writer's goroutine: its commit fsyncs the directory, then the segment.
func TestCreateChannelFsyncs(t *testing.T) {
	dir := t.TempDir()
	var got []string
	s := openInit(t, dir, filestore.Options{Hooks: filestore.Hooks{BeforeSync: syncNames(dir, &got)}})
	defer s.Close()
	var chans []*stores.Channel
	for i := 1; i <= 3; i++ {
		got = nil
		ch, err := s.CreateChannel(fmt.Sprint("c", i), uint64(i))
		if err != nil {
			t.Fatal(err)
		}
		chans = append(chans, ch)
		if want := []string{".", "meta.log"}; !slices.Equal(got, want) {
			t.Fatalf("CreateChannel fsynced %v, want %v", got, want)
		}
		cd := fmt.Sprintf("ch%08d", i)
		if ents, err := os.ReadDir(filepath.Join(dir, cd)); err != nil || len(ents) != 0 {
			t.Fatalf("%s after CreateChannel: %v %v", cd, ents, err)
		}
	}
	got = nil
	if err := chans[0].Msgs.Append([]stores.Msg{{Seq: 1, Time: 1, Data: []byte("x")}}); err != nil {
		t.Fatal(err)
	}
	if err := chans[0].Msgs.(stores.SplitSyncer).Flush(); err != nil {
		t.Fatal(err)
	}
	if len(got) != 0 {
		t.Fatalf("the first message's Append and Flush fsynced %v", got)
	}
	if err := chans[0].Msgs.(stores.SplitSyncer).SyncFlushed(); err != nil {
		t.Fatal(err)
	}
	if want := []string{"ch00000001", "ch00000001/00000000000000000001.seg"}; !slices.Equal(got, want) {
		t.Fatalf("first message fsynced %v, want %v", got, want)
	}
	got = nil
	for i := uint64(1); i <= 2; i++ {
		if err := chans[1].Subs.CreateSub(&stores.SubState{ID: i, ClientID: "c", Inbox: "in"}); err != nil {
			t.Fatal(err)
		}
		if err := chans[1].Subs.Sync(); err != nil {
			t.Fatal(err)
		}
	}
	if want := []string{"ch00000002/subs.log.tmp", "ch00000002", "ch00000002/subs.log"}; !slices.Equal(got, want) {
		t.Fatalf("first two subscriptions of a channel without messages fsynced %v, want %v", got, want)
	}
}

// TestCreateChannelPowerLossAtEachStep cuts the power at every write, file change and fsync
// of a channel's creation, its first message and its first subscription (in both orders),
// then two more messages in one batch (two rolls: one message per segment), also losing all
// or a random part
// of the directory entries whose directory was not fsynced since they were made (the crash
// layer keeps them): the store opens with the channel absent, or present with at least what
// a returned call made durable and nothing else, never damaged, and Verify agrees. A
// channel absent can be created again.
func TestCreateChannelPowerLossAtEachStep(t *testing.T) {
	for _, subFirst := range []bool{false, true} {
		t.Run(fmt.Sprint("subFirst=", subFirst), func(t *testing.T) {
			n := createCutRun(t, subFirst, -1, 0, 0)
			if n < 10 {
				t.Fatalf("only %d steps", n)
			}
			for k := 0; k <= n; k++ {
				for seed := range uint64(2) {
					for lose := range 3 {
						createCutRun(t, subFirst, k, seed, lose)
					}
				}
			}
		})
	}
}

// createCutRun creates a store with channel "old" holding one message, then creates "foo",
// appends and syncs a message and creates and syncs a subscription (subFirst: in the other
// order; messages synced by Sync, else by Flush and SyncFlushed), then two more messages in
// one batch, cutting the power before the cut-th hooked operation of
// that sequence (-1: no cut). Directory entries made since their directory's last fsync
// are then kept (lose 0), lost (1), or each lost or kept at random (2). It returns how many
// operations the sequence made.
func createCutRun(t *testing.T, subFirst bool, cut int, seed uint64, lose int) int {
	t.Helper()
	dir := t.TempDir()
	disk := crashtest.New()
	opts := filestore.Options{SegmentMsgs: 1}
	disk.Install(&opts)
	inner := opts.Hooks
	step, counting := 0, false
	// entries: paths (files and the channel directory) whose directory entry is not yet
	// durable; an fsync of a directory makes those in it durable.
	entries := map[string]bool{}
	var log []string
	tick := func(what string) {
		if !counting {
			return
		}
		log = append(log, what)
		if step == cut {
			disk.Freeze()
		}
		step++
	}
	opts.Hooks.Write = func(path string, p []byte, write func([]byte) (int, error)) (int, error) {
		tick("write " + path)
		return inner.Write(path, p, write)
	}
	opts.Hooks.Change = func(op, path string, size int64, do func() error) error {
		tick(op + " " + path)
		err := inner.Change(op, path, size, do)
		if err == nil && (op == filestore.ChangeCreate || op == filestore.ChangeRename) {
			entries[path] = true
		}
		return err
	}
	opts.Hooks.BeforeSync = func(path string) error {
		tick("sync " + path)
		if err := inner.BeforeSync(path); err != nil {
			return err
		}
		if fi, err := os.Stat(path); err == nil && fi.IsDir() {
			for p := range entries {
				if filepath.Dir(p) == path {
					delete(entries, p)
				}
			}
		}
		return nil
	}
	s := openInit(t, dir, opts)
	old, err := s.CreateChannel("old", 1)
	if err == nil {
		err = old.Msgs.Append([]stores.Msg{{Seq: 1, Time: 1, Data: []byte("old")}})
	}
	if err == nil {
		err = old.Msgs.Sync()
	}
	if err != nil {
		t.Fatal(err)
	}
	clear(entries)
	fooDir := filepath.Join(dir, "ch00000002")
	entries[fooDir] = true // made by an os.MkdirAll the hooks do not see
	counting = true
	created, subDurable := false, false
	msgsDurable := uint64(0)
	func() {
		ch, err := s.CreateChannel("foo", 2)
		if err != nil {
			return
		}
		created = true
		msg := func(n int) bool {
			var batch []stores.Msg
			for seq := msgsDurable + 1; len(batch) < n; seq++ {
				batch = append(batch, stores.Msg{Seq: seq, Time: 2, Data: fmt.Appendf(nil, "m%d", seq)})
			}
			if ch.Msgs.Append(batch) != nil {
				return false
			}
			if subFirst { // Sync; else the engine's split commit
				if ch.Msgs.Sync() != nil {
					return false
				}
			} else if sp := ch.Msgs.(stores.SplitSyncer); sp.Flush() != nil || sp.SyncFlushed() != nil {
				return false
			}
			msgsDurable += uint64(n)
			return true
		}
		sub := func() bool {
			return ch.Subs.CreateSub(&stores.SubState{ID: 7, ClientID: "c", Inbox: "in"}) == nil && ch.Subs.Sync() == nil
		}
		// The subscription is durable once its Sync returns, whatever fails after it.
		ok := false
		if subFirst {
			subDurable = sub()
			ok = subDurable && msg(1)
		} else {
			ok = msg(1)
			subDurable = ok && sub()
		}
		if ok && subDurable {
			msg(2) // two rolls: the first of the new segments is sealed before any sync
		}
	}()
	counting = false
	if cut < 0 {
		if !created || msgsDurable != 3 || !subDurable || disk.Frozen() {
			t.Fatalf("without a cut: created %v, messages %d, subscription %v", created, msgsDurable, subDurable)
		}
		s.Close()
		return step
	}
	at := "after the last operation"
	if cut < len(log) {
		at = "before " + log[cut]
	}
	what := fmt.Sprintf("cut %d (%s), seed %d, lose %v", cut, at, seed, lose)
	filestore.Abandon(s)
	if err := disk.PowerLoss(dir, rand.New(rand.NewPCG(seed, uint64(cut)))); err != nil {
		t.Fatal(err)
	}
	lrng := rand.New(rand.NewPCG(seed, 7))
	for p := range entries { // no entry in this sequence replaces an older file: losing it removes the file
		if lose == 1 || lose == 2 && lrng.IntN(2) == 0 {
			os.RemoveAll(p)
		}
	}
	disk.Thaw()
	rep, err := filestore.Verify(dir, filestore.Options{})
	if err != nil {
		t.Fatalf("%s: Verify: %v", what, err)
	}
	for _, p := range rep.Problems {
		if !p.Repairable {
			t.Fatalf("%s: Verify: %+v", what, p)
		}
	}
	s, err = filestore.Open(dir, filestore.Options{SegmentMsgs: 1})
	if err != nil {
		t.Fatalf("%s: Open: %v", what, err)
	}
	defer s.Close()
	if d := s.Damaged(); len(d) != 0 {
		t.Fatalf("%s: damaged %v", what, d)
	}
	rs, err := s.Recover()
	if err != nil || rs == nil {
		t.Fatalf("%s: Recover: %v %v", what, rs, err)
	}
	var foo *stores.RecoveredChannel
	for _, rc := range rs.Channels {
		switch rc.Channel.Name {
		case "old":
			if st := rc.Channel.Msgs.State(); st.Last != 1 || st.Msgs != 1 {
				t.Fatalf("%s: old %+v", what, st)
			}
		case "foo":
			foo = rc
		default:
			t.Fatalf("%s: channel %q", what, rc.Channel.Name)
		}
	}
	if foo == nil {
		if created {
			t.Fatalf("%s: foo gone after CreateChannel returned", what)
		}
		if _, err := s.CreateChannel("foo", 2); err != nil {
			t.Fatalf("%s: CreateChannel again: %v", what, err)
		}
		return step
	}
	st := foo.Channel.Msgs.State()
	if st.Last > 3 || st.Msgs != st.Last || st.Last < msgsDurable {
		t.Fatalf("%s: foo %+v (messages durable: %d)", what, st, msgsDurable)
	}
	var m stores.Msg
	for seq := uint64(1); seq <= st.Last; seq++ {
		if err := foo.Channel.Msgs.Load(seq, &m); err != nil || string(m.Data) != fmt.Sprint("m", seq) {
			t.Fatalf("%s: foo's message %d: %v %q", what, seq, err, m.Data)
		}
	}
	if len(foo.Subs) > 1 || subDurable && len(foo.Subs) != 1 || len(foo.Subs) == 1 && foo.Subs[0].State.ID != 7 {
		t.Fatalf("%s: foo's subscriptions %+v (durable: %v)", what, foo.Subs, subDurable)
	}
	if err := foo.Channel.Msgs.Append([]stores.Msg{{Seq: st.Last + 1, Time: 3, Data: []byte("n")}}); err != nil {
		t.Fatalf("%s: append: %v", what, err)
	}
	if err := foo.Channel.Msgs.Sync(); err != nil && !errors.Is(err, stores.ErrClosed) {
		t.Fatalf("%s: sync: %v", what, err)
	}
	return step
}

// BenchmarkCreateChannel: one durable CreateChannel per op, on the test's disk.
func BenchmarkCreateChannel(b *testing.B) {
	s := openInit(b, b.TempDir(), filestore.Options{Limits: &stores.LimitsSet{Global: stores.Limits{}}})
	defer s.Close()
	b.ResetTimer()
	for i := range b.N {
		if _, err := s.CreateChannel(fmt.Sprint("c", i), uint64(i+1)); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkFirstAppend: what the writer's goroutine spends on a new channel's first message
// (Append and Flush, the tail's creation included); its commit (SyncFlushed) and the
// creation are not timed.
func BenchmarkFirstAppend(b *testing.B) {
	s := openInit(b, b.TempDir(), filestore.Options{Limits: &stores.LimitsSet{Global: stores.Limits{}}})
	defer s.Close()
	msg := []stores.Msg{{Seq: 1, Time: 1, Data: []byte("x")}}
	b.ResetTimer()
	for i := range b.N {
		b.StopTimer()
		ch, err := s.CreateChannel(fmt.Sprint("c", i), uint64(i+1))
		if err != nil {
			b.Fatal(err)
		}
		sp := ch.Msgs.(stores.SplitSyncer)
		b.StartTimer()
		if err := ch.Msgs.Append(msg); err != nil {
			b.Fatal(err)
		}
		if err := sp.Flush(); err != nil {
			b.Fatal(err)
		}
		b.StopTimer()
		if err := sp.SyncFlushed(); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
	}
}

// TestCreateAndDeleteAtMetaRewrite: a creation or deletion whose sync of meta.log rewrites it
// (compaction due) is in the rewrite. Before, the rewrite's snapshot was taken before the
// channel was added (or removed) in memory and replaced its record: a channel created then
// was missing from meta.log after a crash (its directory, holding messages, then refused the
// store as stray data), and one deleted then was still named, its directory gone (damage).
func TestCreateAndDeleteAtMetaRewrite(t *testing.T) {
	dir := t.TempDir()
	opts := filestore.Options{CompactBytes: 300}
	s := openInit(t, dir, opts)
	want := map[string]bool{}
	for i := 1; i <= 60; i++ {
		name := fmt.Sprint("a-channel-with-a-long-name-", i)
		ch, err := s.CreateChannel(name, uint64(i))
		if err != nil {
			t.Fatal(err)
		}
		if err := ch.Msgs.Append([]stores.Msg{{Seq: 1, Time: 1, Data: []byte("x")}}); err != nil {
			t.Fatal(err)
		}
		if err := ch.Msgs.Sync(); err != nil {
			t.Fatal(err)
		}
		want[name] = true
		if i%3 == 0 {
			del := fmt.Sprint("a-channel-with-a-long-name-", i-1)
			if err := s.DeleteChannel(del); err != nil {
				t.Fatal(err)
			}
			delete(want, del)
		}
	}
	filestore.Abandon(s) // no Close: as after a crash (everything above was synced)
	s2, err := filestore.Open(dir, opts)
	if err != nil {
		t.Fatalf("reopen: %v", err)
	}
	defer s2.Close()
	rs, err := s2.Recover()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]bool{}
	for _, rc := range rs.Channels {
		got[rc.Channel.Name] = true
	}
	if len(got) != len(want) {
		t.Fatalf("recovered %d channels, want %d", len(got), len(want))
	}
	for n := range want {
		if !got[n] {
			t.Fatalf("channel %s lost", n)
		}
	}
	if d := s2.Damaged(); len(d) > 0 {
		t.Fatalf("damaged: %v", d)
	}
	_ = s.Close()
}

// TestCreateChannelsFsyncs: CreateChannels of several channels fsyncs the store directory
// once and meta.log once, as one creation does; a name it refuses costs nothing.
func TestCreateChannelsFsyncs(t *testing.T) {
	dir := t.TempDir()
	var got []string
	s := openInit(t, dir, filestore.Options{Hooks: filestore.Hooks{BeforeSync: syncNames(dir, &got)}})
	defer s.Close()
	got = nil
	var cs []stores.NewChannel
	for i := 1; i <= 20; i++ {
		cs = append(cs, stores.NewChannel{Name: fmt.Sprint("c", i), ID: uint64(i)})
	}
	cs = append(cs, stores.NewChannel{Name: "c1", ID: 21})
	out, errs := s.CreateChannels(cs)
	for i := range 20 {
		if errs[i] != nil || out[i] == nil {
			t.Fatalf("%s: %v", cs[i].Name, errs[i])
		}
	}
	if !errors.Is(errs[20], stores.ErrExists) {
		t.Fatalf("c1 twice: %v", errs[20])
	}
	if want := []string{".", "meta.log"}; !slices.Equal(got, want) {
		t.Fatalf("CreateChannels of 20 fsynced %v, want %v", got, want)
	}
	got = nil
	if _, errs := s.CreateChannels(cs[:3]); !errors.Is(errs[0], stores.ErrExists) || len(got) != 0 {
		t.Fatalf("CreateChannels of existing names: %v, fsynced %v", errs, got)
	}
}

// TestCreateChannelsSyncFails: a failed fsync of meta.log refuses every channel of the
// batch, leaves none in the store, and the next CreateChannels creates them.
func TestCreateChannelsSyncFails(t *testing.T) {
	dir := t.TempDir()
	fail := false
	s, err := filestore.Open(dir, filestore.Options{Hooks: filestore.Hooks{BeforeSync: func(p string) error {
		if fail && filepath.Base(p) == "meta.log" {
			return errors.New("injected")
		}
		return nil
	}}})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if err := s.Init(stores.ServerInfo{ClusterID: "c"}); err != nil {
		t.Fatal(err)
	}
	cs := []stores.NewChannel{{Name: "a", ID: 1}, {Name: "b", ID: 2}}
	fail = true
	out, errs := s.CreateChannels(cs)
	for i := range cs {
		if out[i] != nil || errs[i] == nil {
			t.Fatalf("%s with meta.log failing: %v, %v", cs[i].Name, out[i], errs[i])
		}
	}
	if rs, _ := s.Recover(); len(rs.Channels) != 0 {
		t.Fatalf("%d channels after a failed creation", len(rs.Channels))
	}
	fail = false
	if _, errs := s.CreateChannels(cs); errs[0] != nil || errs[1] != nil {
		t.Fatalf("after the failure: %v", errs)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s2, err := filestore.Open(dir, filestore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Close()
	if rs, _ := s2.Recover(); len(rs.Channels) != 2 {
		t.Fatalf("%d channels after reopening, want 2", len(rs.Channels))
	}
}

// BenchmarkCreateChannels64: 64 channels per op, created by one CreateChannels (batch) or
// by 64 CreateChannel (single); ns/op is per channel.
func BenchmarkCreateChannels64(b *testing.B) {
	for _, batch := range []bool{false, true} {
		b.Run(map[bool]string{false: "single", true: "batch"}[batch], func(b *testing.B) {
			s := openInit(b, b.TempDir(), filestore.Options{Limits: &stores.LimitsSet{Global: stores.Limits{}}})
			defer s.Close()
			cs := make([]stores.NewChannel, 64)
			id := uint64(0)
			b.ResetTimer()
			for done := 0; done < b.N; done += len(cs) {
				for i := range cs {
					id++
					cs[i] = stores.NewChannel{Name: fmt.Sprint("c", id), ID: id}
				}
				if batch {
					if _, errs := s.CreateChannels(cs); errs[0] != nil {
						b.Fatal(errs[0])
					}
					continue
				}
				for _, c := range cs {
					if _, err := s.CreateChannel(c.Name, c.ID); err != nil {
						b.Fatal(err)
					}
				}
			}
		})
	}
}

// TestDeleteChannelsFsyncs: DeleteChannels of several channels fsyncs meta.log once, as one
// deletion does.
func TestDeleteChannelsFsyncs(t *testing.T) {
	dir := t.TempDir()
	var got []string
	s := openInit(t, dir, filestore.Options{Hooks: filestore.Hooks{BeforeSync: syncNames(dir, &got)}})
	defer s.Close()
	var names []string
	for i := 1; i <= 10; i++ {
		names = append(names, fmt.Sprint("c", i))
		if _, err := s.CreateChannel(names[i-1], uint64(i)); err != nil {
			t.Fatal(err)
		}
	}
	got = nil
	for i, err := range s.DeleteChannels(names) {
		if err != nil {
			t.Fatalf("%s: %v", names[i], err)
		}
	}
	if want := []string{"meta.log"}; !slices.Equal(got, want) {
		t.Fatalf("DeleteChannels of 10 fsynced %v, want %v", got, want)
	}
	if ents, err := os.ReadDir(dir); err != nil || len(ents) != 2 || ents[0].Name() != "LOCK" || ents[1].Name() != "meta.log" {
		t.Fatalf("store directory after the deletions: %v %v, want LOCK and meta.log", ents, err)
	}
}

// openInit opens a file store in dir, initialised for cluster "c".
func openInit(tb testing.TB, dir string, opts filestore.Options) *filestore.Store {
	tb.Helper()
	s, err := filestore.Open(dir, opts)
	if err != nil {
		tb.Fatal(err)
	}
	if err := s.Init(stores.ServerInfo{ClusterID: "c"}); err != nil {
		tb.Fatal(err)
	}
	return s
}
