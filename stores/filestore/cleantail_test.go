package filestore

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/starling-io/starling/stores"
)

// TestCleanCloseTailCutIsDamage: after a clean close (with fsyncs) every record of a tail
// was synced, so a tail found shorter than Close left it — emptied, cut inside its header,
// cut at a record boundary or inside a record, or gone — lost acknowledged messages: Open
// fails that channel (the others are served) instead of cutting it and handing its
// sequences out again, Verify reports it, and Repair quarantines it keeping Last. With
// NoSync a clean close proves nothing and the tail is cut as before.
func TestCleanCloseTailCutIsDamage(t *testing.T) {
	cuts := map[string]func(seg string, size int64) error{
		"emptied":      func(seg string, _ int64) error { return os.Truncate(seg, 0) },
		"header cut":   func(seg string, _ int64) error { return os.Truncate(seg, 5) },
		"record cut":   func(seg string, size int64) error { return os.Truncate(seg, size-50) },
		"last records": func(seg string, size int64) error { return os.Truncate(seg, size-200) },
		"tail removed": func(seg string, _ int64) error { return os.Remove(seg) },
	}
	for name, cut := range cuts {
		t.Run(name, func(t *testing.T) {
			dir, _ := build(t, 100)
			segs := segFiles(t, dir, "foo")
			sort.Strings(segs)
			tail := segs[len(segs)-1]
			fi, err := os.Stat(tail)
			if err != nil {
				t.Fatal(err)
			}
			if err := cut(tail, fi.Size()); err != nil {
				t.Fatal(err)
			}
			for round := 0; round < 2; round++ {
				s, err := Open(dir, Options{SegmentBytes: 1000})
				if err != nil {
					t.Fatal(err)
				}
				d := s.Damaged()
				var de *DamageError
				if len(d) != 1 || !errors.As(d[0], &de) || de.Channel != "foo" || de.File != tail || !errors.Is(d[0], ErrCorrupt) {
					t.Fatalf("round %d: damaged: %v", round, d)
				}
				if got := channelNames(t, s); len(got) != 1 || got[0] != "bar" {
					t.Fatalf("channels %v", got)
				}
				s.Close()
			}
			rep, err := Verify(dir, Options{})
			if err != nil || rep.OK() {
				t.Fatalf("verify: %v %+v", err, rep)
			}
			if _, err := Repair(dir, Options{}); !errors.Is(err, ErrCorrupt) {
				t.Fatalf("repair without quarantine: %v", err)
			}
			if _, err := Repair(dir, Options{Quarantine: true}); err != nil {
				t.Fatal(err)
			}
			s, err := Open(dir, Options{SegmentBytes: 1000})
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			if d := s.Damaged(); len(d) != 0 {
				t.Fatalf("damaged after repair: %v", d)
			}
			rs, _ := s.Recover()
			for _, ch := range rs.Channels {
				if ch.Channel.Name == "foo" {
					if st := ch.Channel.Msgs.State(); st.Last != 100 {
						t.Fatalf("Last after repair %d, want 100 (no sequence reused)", st.Last)
					}
				}
			}
		})
	}
	// NoSync: nothing was proven synced; the cut tail is cut, as after a crash.
	dir := t.TempDir()
	s, ch := openWithFoo(t, dir, Options{SegmentBytes: 1000, NoSync: true})
	if err := ch.Msgs.Append(genMsgs(1, 30)); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	segs := segFiles(t, dir, "foo")
	sort.Strings(segs)
	fi, _ := os.Stat(segs[len(segs)-1])
	if err := os.Truncate(segs[len(segs)-1], fi.Size()-50); err != nil {
		t.Fatal(err)
	}
	s, err := Open(dir, Options{SegmentBytes: 1000, NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if d := s.Damaged(); len(d) != 0 {
		t.Fatalf("NoSync: damaged %v", d)
	}
}

// TestCrashCutTailStillCut: after a run that did not close (a crash), a tail cut past what
// was synced is a torn tail, cut silently as before.
func TestCrashCutTailStillCut(t *testing.T) {
	dir := t.TempDir()
	s, ch := openWithFoo(t, dir, Options{SegmentBytes: 1 << 20})
	if err := ch.Msgs.Append(genMsgs(1, 20)); err != nil {
		t.Fatal(err)
	}
	if err := ch.Msgs.Sync(); err != nil {
		t.Fatal(err)
	}
	if err := ch.Msgs.Append(genMsgs(21, 20)); err != nil {
		t.Fatal(err)
	}
	ch.Msgs.(stores.SplitSyncer).Flush()
	s.abandon() // kill -9
	segs := segFiles(t, dir, "foo")
	fi, _ := os.Stat(segs[len(segs)-1])
	if err := os.Truncate(segs[len(segs)-1], fi.Size()-10); err != nil {
		t.Fatal(err)
	}
	s, err := Open(dir, Options{SegmentBytes: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if d := s.Damaged(); len(d) != 0 {
		t.Fatalf("damaged %v", d)
	}
}

// asIfCrashed removes meta.log's clean records (T, Z) from a store a clean Close left: it
// is then the store a kill -9 right after its last sync leaves, whose tail may be torn —
// for the tests of the torn-tail rules that cut or garble a tail.
func asIfCrashed(t *testing.T, dir string) {
	t.Helper()
	if err := dropCleanRecords(filepath.Join(dir, "meta.log"), &Options{}); err != nil {
		t.Fatal(err)
	}
}

// TestCleanCloseSubsLogCutIsDamage: after a clean close (with fsyncs) subs.log was synced
// whole, so one found shorter than Close left it — emptied, cut inside its header, cut inside
// its records, or gone — lost subscription records: a durable gone, or its acknowledged
// position moved back (redeliveries). Open fails that channel instead of cutting the log
// (before, the cut was taken for a torn tail and the loss went unseen), at every open until
// Repair; Verify reports it; Repair refuses it without Quarantine and with it keeps the
// intact records. The channel may hold messages (its tail's journal) or none. With NoSync a
// clean close proves nothing and the cut is cut as before.
func TestCleanCloseSubsLogCutIsDamage(t *testing.T) {
	cuts := map[string]func(p string, size int64) error{
		"emptied":    func(p string, _ int64) error { return os.Truncate(p, 0) },
		"header cut": func(p string, _ int64) error { return os.Truncate(p, 5) },
		"record cut": func(p string, size int64) error { return os.Truncate(p, size-40) },
		"removed":    func(p string, _ int64) error { return os.Remove(p) },
	}
	build := func(t *testing.T, msgs bool, opts Options) string {
		dir := t.TempDir()
		s, ch := openWithFoo(t, dir, opts)
		if _, err := s.CreateChannel("bar", 2); err != nil {
			t.Fatal(err)
		}
		if msgs {
			if err := ch.Msgs.Append(genMsgs(1, 5)); err != nil {
				t.Fatal(err)
			}
			if err := ch.Msgs.Sync(); err != nil {
				t.Fatal(err)
			}
		}
		for id := uint64(1); id <= 3; id++ {
			sub := stores.SubState{ID: id, ClientID: "c", DurableName: fmt.Sprint("d", id), IsDurable: true, Inbox: "in"}
			if err := ch.Subs.CreateSub(&sub); err != nil {
				t.Fatal(err)
			}
			if err := ch.Subs.Sync(); err != nil {
				t.Fatal(err)
			}
		}
		if err := ch.Subs.Record([]stores.SubEvent{{SubID: 3, Seq: 1}, {SubID: 3, Seq: 1, Acked: true}}); err != nil {
			t.Fatal(err)
		}
		if err := ch.Subs.Sync(); err != nil {
			t.Fatal(err)
		}
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
		return dir
	}
	for name, cut := range cuts {
		for _, msgs := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s/messages=%v", name, msgs), func(t *testing.T) {
				dir := build(t, msgs, Options{})
				p := filepath.Join(chanDirOf(t, dir, "foo"), "subs.log")
				fi, err := os.Stat(p)
				if err != nil {
					t.Fatal(err)
				}
				if err := cut(p, fi.Size()); err != nil {
					t.Fatal(err)
				}
				for round := 0; round < 2; round++ {
					s, err := Open(dir, Options{})
					if err != nil {
						t.Fatal(err)
					}
					d := s.Damaged()
					var de *DamageError
					if len(d) != 1 || !errors.As(d[0], &de) || de.Channel != "foo" || de.File != p || !errors.Is(d[0], ErrCorrupt) {
						t.Fatalf("round %d: damaged: %v", round, d)
					}
					if got := channelNames(t, s); len(got) != 1 || got[0] != "bar" {
						t.Fatalf("channels %v", got)
					}
					s.Close()
				}
				rep, err := Verify(dir, Options{})
				if err != nil || rep.OK() {
					t.Fatalf("verify: %v %+v", err, rep)
				}
				if _, err := Repair(dir, Options{}); !errors.Is(err, ErrCorrupt) {
					t.Fatalf("repair without quarantine: %v", err)
				}
				if _, err := Repair(dir, Options{Quarantine: true}); err != nil {
					t.Fatal(err)
				}
				s, err := Open(dir, Options{})
				if err != nil {
					t.Fatal(err)
				}
				defer s.Close()
				if d := s.Damaged(); len(d) != 0 {
					t.Fatalf("damaged after repair: %v", d)
				}
				if got := channelNames(t, s); len(got) != 2 {
					t.Fatalf("channels after repair %v", got)
				}
			})
		}
	}
	// NoSync: nothing was proven synced; the cut log is cut, as after a crash.
	dir := build(t, false, Options{NoSync: true})
	p := filepath.Join(chanDirOf(t, dir, "foo"), "subs.log")
	fi, _ := os.Stat(p)
	if err := os.Truncate(p, fi.Size()-40); err != nil {
		t.Fatal(err)
	}
	s, err := Open(dir, Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if d := s.Damaged(); len(d) != 0 {
		t.Fatalf("NoSync: damaged %v", d)
	}
}

// TestCleanCloseProofCarriesOver: a subs.log the last clean Close fsynced (its L record) and
// this run left unchanged is not fsynced again by this run's Close — a store of many
// channels would otherwise pay one fsync per channel at every shutdown — and its L record
// still holds it: a cut after the second close is damage too. A log written to in between
// is fsynced as before.
func TestCleanCloseProofCarriesOver(t *testing.T) {
	dir := t.TempDir()
	s, ch := openWithFoo(t, dir, Options{})
	if _, err := s.CreateChannel("bar", 2); err != nil {
		t.Fatal(err)
	}
	sub := stores.SubState{ID: 1, ClientID: "c", DurableName: "d", IsDurable: true, Inbox: "in"}
	if err := ch.Subs.CreateSub(&sub); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	var synced []string
	opts := Options{Hooks: Hooks{BeforeSync: func(p string) error {
		if filepath.Base(p) == "subs.log" {
			synced = append(synced, p)
		}
		return nil
	}}}
	s, err := Open(dir, opts)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if len(synced) != 0 {
		t.Fatalf("Close fsynced %d unchanged subs.log(s) proven by the last clean close: %v", len(synced), synced)
	}
	// The third run writes to foo's log: that one is fsynced.
	s, err = Open(dir, opts)
	if err != nil {
		t.Fatal(err)
	}
	rs, err := s.Recover()
	if err != nil {
		t.Fatal(err)
	}
	for _, rc := range rs.Channels {
		if rc.Channel.Name == "foo" {
			sub := stores.SubState{ID: 2, ClientID: "c", Inbox: "in2"}
			if err := rc.Channel.Subs.CreateSub(&sub); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if len(synced) == 0 {
		t.Fatal("a subs.log written to was not fsynced by Close")
	}
	// Still proven after the run that did not fsync it: a cut is damage.
	s, err = Open(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	// bar never had a subscription: no subs.log was ever created for it.
	if _, err := os.Stat(filepath.Join(chanDirOf(t, dir, "bar"), "subs.log")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("bar's subs.log: %v", err)
	}
	p := filepath.Join(chanDirOf(t, dir, "foo"), "subs.log")
	if err := os.Truncate(p, 5); err != nil {
		t.Fatal(err)
	}
	s, err = Open(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if d := s.Damaged(); len(d) != 1 {
		t.Fatalf("a cut subs.log after two clean closes: damaged %v", d)
	}
}

// TestRepairKeepsEveryQuarantinedCopy: a second Repair of a damaged subs.log keeps the copy
// the first one quarantined (it was written over: the evidence of what the first damage
// lost was gone), and each copy is named in the report.
func TestRepairKeepsEveryQuarantinedCopy(t *testing.T) {
	dir := t.TempDir()
	s, ch := openWithFoo(t, dir, Options{})
	for id := uint64(1); id <= 3; id++ {
		sub := stores.SubState{ID: id, ClientID: "c", DurableName: fmt.Sprint("d", id), IsDurable: true, Inbox: "in"}
		if err := ch.Subs.CreateSub(&sub); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(chanDirOf(t, dir, "foo"), "subs.log")
	var kept [][]byte
	for round := range 2 {
		fi, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.Truncate(p, fi.Size()-40); err != nil {
			t.Fatal(err)
		}
		b, _ := os.ReadFile(p)
		kept = append(kept, b)
		rep, err := Repair(dir, Options{Quarantine: true})
		if err != nil || len(rep.Quarantined) != 1 {
			t.Fatalf("round %d: repair: %v, quarantined %v", round, err, rep.Quarantined)
		}
		// A clean run, so that the next cut is damage again.
		s, err := Open(dir, Options{})
		if err != nil {
			t.Fatal(err)
		}
		if d := s.Damaged(); len(d) != 0 {
			t.Fatalf("round %d: damaged after repair: %v", round, d)
		}
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
	}
	qdir := filepath.Join(filepath.Dir(p), "quarantine")
	for i, name := range []string{"subs.log", "subs.log.1"} {
		b, err := os.ReadFile(filepath.Join(qdir, name))
		if err != nil || !bytes.Equal(b, kept[i]) {
			t.Fatalf("quarantine/%s: %v, holds the cut log of round %d: %v", name, err, i, bytes.Equal(b, kept[i]))
		}
	}
}

// TestRefusedLogNotLoggedAsCut: a subs.log cut after a clean close is refused (its channel
// damaged), so the log must not say it was cut as a torn tail or header: it used to, as the
// cut was logged before the clean close's proof refused it.
func TestRefusedLogNotLoggedAsCut(t *testing.T) {
	for name, cut := range map[string]int64{"record cut": -40, "header cut": 5} {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			s, ch := openWithFoo(t, dir, Options{})
			for id := uint64(1); id <= 3; id++ {
				sub := stores.SubState{ID: id, ClientID: "c", DurableName: fmt.Sprint("d", id), IsDurable: true, Inbox: "in"}
				if err := ch.Subs.CreateSub(&sub); err != nil {
					t.Fatal(err)
				}
			}
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}
			p := filepath.Join(chanDirOf(t, dir, "foo"), "subs.log")
			fi, err := os.Stat(p)
			if err != nil {
				t.Fatal(err)
			}
			if cut < 0 {
				cut += fi.Size()
			}
			if err := os.Truncate(p, cut); err != nil {
				t.Fatal(err)
			}
			var buf bytes.Buffer
			s, err = Open(dir, Options{Logger: slog.New(slog.NewTextHandler(&buf, nil))})
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			if d := s.Damaged(); len(d) != 1 {
				t.Fatalf("damaged %v", d)
			}
			out := buf.String()
			if !strings.Contains(out, "channel damaged") || strings.Contains(out, " cut") {
				t.Fatalf("a refused subs.log logged as cut:\n%s", out)
			}
		})
	}
}
