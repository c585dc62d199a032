package filestore_test

import (
	"errors"
	"fmt"
	"path/filepath"
	"testing"

	"github.com/starling-io/starling/stores"
	"github.com/starling-io/starling/stores/filestore"
)

// TestDeleteChannelSyncFailsKeepsChannel: a DeleteChannel whose sync of meta.log fails
// leaves the channel, and what it acknowledges afterwards survives a crash. Before, meta.log
// could hold the X record (appended, its fsync failed; or in a rewrite renamed into place
// before the store directory's fsync failed) while the channel kept taking messages: a crash
// before the next commit of meta.log had Open remove its directory, acknowledged messages and
// all. If meta.log cannot be made to name the channel again at once, the channel refuses
// writes until a commit of meta.log succeeds.
func TestDeleteChannelSyncFailsKeepsChannel(t *testing.T) {
	for _, tc := range []struct {
		name string
		// broken: meta.log's commit of a client record fails first, so the deletion's sync
		// rewrites it.
		broken bool
		// fail reports whether an fsync of p (relative to the store) fails, n counting the
		// failures so far.
		fail func(p string, n int) bool
		// persistent: the failure outlasts DeleteChannel: the channel must refuse messages
		// until a later commit of meta.log succeeds: its Rollback's, or (heal) the Store's.
		persistent bool
		heal       func(s *filestore.Store, ch *stores.Channel) error
	}{
		{name: "append", fail: func(p string, n int) bool { return p == "meta.log" && n == 0 }},
		{name: "rewrite-dir-fsync", broken: true, fail: func(p string, n int) bool { return p == "." && n == 0 }},
		{name: "persistent-rollback", fail: metaFails, persistent: true,
			heal: func(_ *filestore.Store, ch *stores.Channel) error { return ch.Msgs.Rollback() }},
		{name: "persistent-store-sync", fail: metaFails, persistent: true,
			heal: func(s *filestore.Store, _ *stores.Channel) error { return s.Sync() }},
	} {
		t.Run(tc.name, func(t *testing.T) { deleteSyncFails(t, tc.broken, tc.fail, tc.heal) })
	}
}

// metaFails fails every fsync of meta.log, its rewrite and the store directory.
func metaFails(p string, _ int) bool { return p == "." || p == "meta.log" || p == "meta.log.tmp" }

func deleteSyncFails(t *testing.T, broken bool, fail func(string, int) bool, heal func(*filestore.Store, *stores.Channel) error) {
	persistent := heal != nil
	dir := t.TempDir()
	armed, breaking, failed := false, false, 0
	opts := filestore.Options{Hooks: filestore.Hooks{BeforeSync: func(p string) error {
		rel, _ := filepath.Rel(dir, p)
		if breaking && rel == "meta.log" || armed && fail(rel, failed) {
			failed++
			return fmt.Errorf("injected: %s", rel)
		}
		return nil
	}}}
	s := openInit(t, dir, opts)
	ch, err := s.CreateChannel("a", 1)
	if err != nil {
		t.Fatal(err)
	}
	seq := uint64(0)
	publish := func() error {
		if err := ch.Msgs.Append([]stores.Msg{{Seq: seq + 1, Time: 1, Data: []byte("x")}}); err != nil {
			return err
		}
		if err := ch.Msgs.Sync(); err != nil {
			return err
		}
		seq++
		return nil
	}
	if err := publish(); err != nil {
		t.Fatal(err)
	}
	if broken {
		if err := s.AddClient(stores.ClientInfo{ID: "c1", HbInbox: "hb"}); err != nil {
			t.Fatal(err)
		}
		if err := s.Flush(); err != nil {
			t.Fatal(err)
		}
		breaking = true
		err := s.SyncFlushed()
		breaking = false
		if err == nil {
			t.Fatal("meta.log's commit did not fail")
		}
	}
	armed, failed = true, 0
	if err := s.DeleteChannel("a"); err == nil {
		t.Fatal("DeleteChannel: no error with meta.log's sync failing")
	}
	if failed == 0 {
		t.Fatal("no fsync failed")
	}
	if !persistent {
		armed = false
	}
	if err := publish(); persistent && err == nil {
		t.Fatal("a message was acknowledged while meta.log may not name its channel")
	} else if !persistent && err != nil {
		t.Fatalf("publish after the failed deletion: %v", err)
	}
	if persistent {
		if err := ch.Msgs.Rollback(); err == nil {
			t.Fatal("Rollback succeeded while meta.log still fails")
		}
		armed = false
		if err := publish(); err == nil {
			t.Fatal("a message was acknowledged before meta.log was committed")
		}
		if err := ch.Subs.CreateSub(&stores.SubState{ID: 1, Inbox: "i"}); err == nil {
			t.Fatal("a subscription was taken before meta.log was committed")
		}
		if err := heal(s, ch); err != nil {
			t.Fatalf("meta.log's commit after the failure: %v", err)
		}
		if err := publish(); err != nil {
			t.Fatalf("publish once meta.log is committed: %v", err)
		}
	}
	if err := publish(); err != nil {
		t.Fatal(err)
	}
	filestore.Abandon(s) // a crash: nothing more is written

	s2, err := filestore.Open(dir, filestore.Options{})
	if err != nil {
		t.Fatalf("reopen: %v", err)
	}
	defer s2.Close()
	rs, err := s2.Recover()
	if err != nil {
		t.Fatal(err)
	}
	for _, rc := range rs.Channels {
		if rc.Channel.Name == "a" {
			if st := rc.Channel.Msgs.State(); st.Last != seq {
				t.Fatalf("channel a recovered at Last %d, acknowledged %d", st.Last, seq)
			}
			return
		}
	}
	t.Fatalf("channel a lost after the crash, %d messages acknowledged", seq)
}

// TestDeleteChannelFilesLeftIsADeletion: once meta.log holds the deletion, a failure to
// remove the channel's files does not undo it: DeleteChannel says so with
// stores.ErrDeletedUncleaned (callers take the channel as deleted), and the next Open
// removes the files left.
func TestDeleteChannelFilesLeftIsADeletion(t *testing.T) {
	dir := t.TempDir()
	fail := true
	s, err := filestore.Open(dir, filestore.Options{Hooks: filestore.Hooks{Change: func(op, p string, _ int64, do func() error) error {
		if fail && op == filestore.ChangeRemove && filepath.Ext(p) == ".deleted" {
			return fmt.Errorf("injected: %s %s", op, p)
		}
		return do()
	}}})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Init(stores.ServerInfo{ClusterID: "c"}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.CreateChannel("a", 1); err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteChannel("a"); !errors.Is(err, stores.ErrDeletedUncleaned) {
		t.Fatalf("deletion with its files left: %v", err)
	}
	if err := s.DeleteChannel("a"); !errors.Is(err, stores.ErrNotFound) {
		t.Fatalf("deleting it again: %v", err)
	}
	fail = false
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	left, _ := filepath.Glob(filepath.Join(dir, "*.deleted"))
	if len(left) == 0 {
		t.Fatal("the injected failure left nothing to clean up")
	}
	s, err = filestore.Open(dir, filestore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if st, err := s.Recover(); err != nil || len(st.Channels) != 0 {
		t.Fatalf("after reopening: %v %v", st, err)
	}
	if left, _ := filepath.Glob(filepath.Join(dir, "*.deleted")); len(left) != 0 {
		t.Fatalf("left after reopening: %v", left)
	}
}
