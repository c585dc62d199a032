package tests

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/stan.go"

	"github.com/starling-io/starling/core"
	"github.com/starling-io/starling/raftlog"
	"github.com/starling-io/starling/stores"
	"github.com/starling-io/starling/stores/filestore"
	"github.com/starling-io/starling/stores/filestore/crashtest"
	"github.com/starling-io/starling/streaming"
)

// TestStanFailedInactiveDeletionKeepsAckedMessages: the deletion of an inactive channel
// whose fsync of meta.log fails leaves the channel; a message stan.go then publishes to it
// (PubAck without error) survives a crash. Before, the failed sync left the X record in
// meta.log, and the restarted server removed the channel's directory: the subscriber got
// nothing.
func TestStanFailedInactiveDeletionKeepsAckedMessages(t *testing.T) {
	// The next fsync of meta.log is the deletion's: no other client change.
	f := failIdleDeletion(t, func(rel string, n int64) bool { return rel == "meta.log" && n == 1 })
	dir, limits, s, sc, disk, stop := f.dir, f.limits, f.s, f.sc, f.disk, f.stop
	found := false
	for _, ch := range s.st.Channels(false) {
		found = found || ch.Name == "idle"
	}
	if !found {
		t.Fatal("channel gone after its deletion failed")
	}
	publishN(t, sc, "idle", 3, 3) // acknowledged
	disk.Freeze()                 // a crash: nothing more reaches the files
	stop()
	disk.Thaw()

	s2, _ := startFileStan(t, dir, filestore.Options{Limits: limits}, limits)
	col := newCollector()
	_, err := stanConnect(t, s2, "sub").Subscribe("idle", col.handler, stan.DeliverAllAvailable())
	must(t, err)
	if got := col.seqs(t, 3, 5*time.Second); !equalSeqs(got, seqRange(1, 3)) {
		t.Fatalf("after the crash: %v, want 1..3", got)
	}
}

// TestStanFailedDeletionFenceHeals: the deletion of an inactive channel fails and meta.log
// keeps failing, so the store cannot name the channel again: stan.go's publishes to it get
// errors, never a PubAck that a crash could then lose. Once meta.log's fsyncs work again,
// publishing works again (the engine's heal commits meta.log, or its next deletion attempt
// succeeds and the publish creates the channel again), and after a crash every message
// acknowledged since is there.
func TestStanFailedDeletionFenceHeals(t *testing.T) {
	f := failIdleDeletion(t, func(rel string, _ int64) bool {
		return rel == "." || rel == "meta.log" || rel == "meta.log.tmp"
	})
	dir, limits, sc, disk, stop := f.dir, f.limits, f.sc, f.disk, f.stop
	if _, err := sc.PublishAsync("idle", []byte("x"), nil); err != nil {
		t.Fatal(err)
	}
	if err := sc.Publish("idle", []byte("refused")); err == nil {
		t.Fatal("PubAck while meta.log cannot name the channel")
	}
	f.armed.Store(false)
	var acked []string
	waitFor(t, 10*time.Second, func() error {
		m := fmt.Sprint("after-", len(acked))
		if err := sc.Publish("idle", []byte(m)); err != nil {
			return err
		}
		acked = append(acked, m)
		return nil
	})
	publishN(t, sc, "idle", 100, 101)
	acked = append(acked, "m100", "m101")
	disk.Freeze()
	stop()
	disk.Thaw()

	s2, _ := startFileStan(t, dir, filestore.Options{Limits: limits}, limits)
	col := newCollector()
	_, err := stanConnect(t, s2, "sub").Subscribe("idle", col.handler, stan.DeliverAllAvailable())
	must(t, err)
	var got []string
	for len(got) == 0 || got[len(got)-1] != "m101" {
		select {
		case m := <-col.ch:
			got = append(got, string(m.Data))
		case <-time.After(5 * time.Second):
			t.Fatalf("after the crash: %q, want %q at the end", got, acked)
		}
	}
	if len(got) < len(acked) || !slices.Equal(got[len(got)-len(acked):], acked) {
		t.Fatalf("after the crash: %q, want %q at the end", got, acked)
	}
}

// failedDeletion is a file-store server whose inactive channel "idle" (2 messages) just
// failed to be deleted: an injected fsync failure, while armed.
type failedDeletion struct {
	dir    string
	limits *stores.LimitsSet
	s      *stanServer
	stop   func()
	sc     stan.Conn
	disk   *crashtest.Disk
	armed  *atomic.Bool
}

// failIdleDeletion starts a server on a crashtest disk whose channels are deleted after 1 s
// of inactivity, publishes messages 1 and 2 to "idle", then fails the fsyncs for which
// fail(path relative to the store, how many failed so far + 1) is true, and returns once
// one failed.
func failIdleDeletion(t *testing.T, fail func(rel string, n int64) bool) *failedDeletion {
	t.Helper()
	f := &failedDeletion{dir: t.TempDir(), limits: &stores.LimitsSet{Global: stores.DefaultLimits()},
		disk: crashtest.New(), armed: new(atomic.Bool)}
	f.limits.Global.MaxInactivity = time.Second
	var failed atomic.Int64
	opts := filestore.Options{Limits: f.limits, Hooks: filestore.Hooks{BeforeSync: func(p string) error {
		rel, _ := filepath.Rel(f.dir, p)
		if f.armed.Load() && fail(rel, failed.Load()+1) {
			failed.Add(1)
			return errors.New("injected fsync failure")
		}
		return nil
	}}}
	f.disk.Install(&opts)
	f.s, f.stop = startFileStan(t, f.dir, opts, f.limits)
	f.sc = stanConnect(t, f.s, "pub")
	publishN(t, f.sc, "idle", 1, 2)
	f.armed.Store(true)
	waitFor(t, 10*time.Second, func() error {
		if failed.Load() == 0 {
			return errors.New("no deletion attempted")
		}
		return nil
	})
	return f
}

// startFileStan starts a server on the file store in dir; stop shuts it down (also at the
// end of the test).
func startFileStan(t *testing.T, dir string, opts filestore.Options, limits *stores.LimitsSet) (*stanServer, func()) {
	t.Helper()
	cs, err := core.New(core.Options{Host: "127.0.0.1", Port: -1})
	must(t, err)
	must(t, cs.Start())
	conn, err := cs.Connect("_STARLING-test")
	must(t, err)
	store, err := filestore.Open(dir, opts)
	must(t, err)
	st, err := streaming.New(streaming.InProcess(conn), store, raftlog.Standalone,
		streaming.Options{ClusterID: "test-cluster", Limits: limits})
	must(t, err)
	must(t, st.Start())
	stopped := false
	stop := func() {
		if stopped {
			return
		}
		stopped = true
		_ = st.Shutdown()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = cs.Shutdown(ctx)
	}
	t.Cleanup(stop)
	return &stanServer{core: cs, st: st, url: cs.ClientURL()}, stop
}
