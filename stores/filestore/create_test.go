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
// and the directory fsynced), and the first message creates the tail (the directory and the
// segment fsynced).
func TestCreateChannelFsyncs(t *testing.T) {
	dir := t.TempDir()
	var got []string
	s, err := filestore.Open(dir, filestore.Options{Hooks: filestore.Hooks{BeforeSync: syncNames(dir, &got)}})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if err := s.Init(stores.ServerInfo{ClusterID: "c"}); err != nil {
		t.Fatal(err)
	}
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
	if err := chans[0].Msgs.Sync(); err != nil {
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
// also losing every directory entry whose directory was not fsynced since it was made (the
// crash layer keeps them): the store opens with the channel absent, or present with at
// least what a returned call made durable and nothing else, never damaged, and Verify
// agrees. A channel absent can be created again.
func TestCreateChannelPowerLossAtEachStep(t *testing.T) {
	for _, subFirst := range []bool{false, true} {
		t.Run(fmt.Sprint("subFirst=", subFirst), func(t *testing.T) {
			n := createCutRun(t, subFirst, -1, 0, false)
			if n < 10 {
				t.Fatalf("only %d steps", n)
			}
			for k := 0; k <= n; k++ {
				for seed := range uint64(3) {
					for _, lose := range []bool{false, true} {
						createCutRun(t, subFirst, k, seed, lose)
					}
				}
			}
		})
	}
}

// createCutRun creates a store with channel "old" holding one message, then creates "foo",
// appends and syncs a message and creates and syncs a subscription (subFirst: in the other
// order), cutting the power before the cut-th hooked operation of that sequence (-1: no
// cut). With lose, directory entries made since their directory's last fsync are lost. It
// returns how many operations the sequence made.
func createCutRun(t *testing.T, subFirst bool, cut int, seed uint64, lose bool) int {
	t.Helper()
	dir := t.TempDir()
	disk := crashtest.New()
	var opts filestore.Options
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
	s, err := filestore.Open(dir, opts)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Init(stores.ServerInfo{ClusterID: "c"}); err != nil {
		t.Fatal(err)
	}
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
	created, msgDurable, subDurable := false, false, false
	func() {
		ch, err := s.CreateChannel("foo", 2)
		if err != nil {
			return
		}
		created = true
		msg := func() bool {
			return ch.Msgs.Append([]stores.Msg{{Seq: 1, Time: 2, Data: []byte("m")}}) == nil && ch.Msgs.Sync() == nil
		}
		sub := func() bool {
			return ch.Subs.CreateSub(&stores.SubState{ID: 7, ClientID: "c", Inbox: "in"}) == nil && ch.Subs.Sync() == nil
		}
		if subFirst {
			if subDurable = sub(); subDurable {
				msgDurable = msg()
			}
		} else {
			if msgDurable = msg(); msgDurable {
				subDurable = sub()
			}
		}
	}()
	counting = false
	if cut < 0 {
		if !created || !msgDurable || !subDurable || disk.Frozen() {
			t.Fatalf("without a cut: created %v, message %v, subscription %v", created, msgDurable, subDurable)
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
	if lose { // in this sequence no entry replaces an older file: losing it removes the file
		for p := range entries {
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
	s, err = filestore.Open(dir, filestore.Options{})
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
	if st.Last > 1 || st.Msgs != st.Last || msgDurable && st.Last != 1 {
		t.Fatalf("%s: foo %+v (message durable: %v)", what, st, msgDurable)
	}
	var m stores.Msg
	if st.Last == 1 {
		if err := foo.Channel.Msgs.Load(1, &m); err != nil || string(m.Data) != "m" {
			t.Fatalf("%s: foo's message: %v %q", what, err, m.Data)
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
	s, err := filestore.Open(b.TempDir(), filestore.Options{Limits: &stores.LimitsSet{Global: stores.Limits{}}})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	if err := s.Init(stores.ServerInfo{ClusterID: "c"}); err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	for i := range b.N {
		if _, err := s.CreateChannel(fmt.Sprint("c", i), uint64(i+1)); err != nil {
			b.Fatal(err)
		}
	}
}
