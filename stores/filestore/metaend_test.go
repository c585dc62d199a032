package filestore

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/starling-io/starling/stores"
)

// metaBatches returns the offsets of meta.log's batch frames.
func metaBatches(t *testing.T, path string) []int {
	t.Helper()
	offs, types := frames(t, path, magicMeta)
	var out []int
	for i, ty := range types {
		if ty == recBatch {
			out = append(out, offs[i])
		}
	}
	return out
}

// cleanStore leaves a store closed cleanly: foo with messages and a subscription, a client,
// then bar, an empty channel created last (its C record in the batch before Close's).
func cleanStore(t *testing.T, opts Options) string {
	t.Helper()
	dir := t.TempDir()
	s, ch := openWithFoo(t, dir, opts)
	if err := ch.Msgs.Append(genMsgs(1, 5)); err != nil {
		t.Fatal(err)
	}
	sub := stores.SubState{ID: 1, ClientID: "c", DurableName: "d", IsDurable: true, Inbox: "in"}
	if err := ch.Subs.CreateSub(&sub); err != nil {
		t.Fatal(err)
	}
	if err := s.AddClient(stores.ClientInfo{ID: "c", HbInbox: "hb"}); err != nil {
		t.Fatal(err)
	}
	if err := s.Sync(); err != nil {
		t.Fatal(err)
	}
	if _, err := s.CreateChannel("bar", 2); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	return dir
}

// TestCleanCloseMetaLogCutIsDamage: after a clean close meta.log was fsynced whole (its clean
// batch too), so one found shorter — its T, L and Z records lost, cut inside them, a
// channel's creation lost, emptied, cut inside its header, or gone — lost records: Open
// refuses the store naming meta.log, at every open, instead of cutting it as a crash's torn
// tail (before, the store opened: a channel created last, empty, vanished with its
// directory, and the cut tails and logs were no longer checked). Verify reports it; Repair
// refuses it without Quarantine and with it keeps a copy and opens again.
func TestCleanCloseMetaLogCutIsDamage(t *testing.T) {
	cuts := map[string]func(t *testing.T, meta string) error{
		"clean batch lost": func(t *testing.T, meta string) error {
			b := metaBatches(t, meta)
			return os.Truncate(meta, int64(b[len(b)-1]))
		},
		"clean batch cut": func(t *testing.T, meta string) error {
			b := metaBatches(t, meta)
			return os.Truncate(meta, int64(b[len(b)-1]+12))
		},
		"channel lost": func(t *testing.T, meta string) error {
			b := metaBatches(t, meta)
			return os.Truncate(meta, int64(b[len(b)-2]))
		},
		"emptied":    func(_ *testing.T, meta string) error { return os.Truncate(meta, 0) },
		"header cut": func(_ *testing.T, meta string) error { return os.Truncate(meta, 5) },
		"removed":    func(_ *testing.T, meta string) error { return os.Remove(meta) },
	}
	for name, cut := range cuts {
		t.Run(name, func(t *testing.T) {
			dir := cleanStore(t, Options{})
			meta := filepath.Join(dir, "meta.log")
			if err := cut(t, meta); err != nil {
				t.Fatal(err)
			}
			for round := 0; round < 2; round++ {
				s, err := Open(dir, Options{})
				if err == nil {
					s.Close()
				}
				var de *DamageError
				if !errors.As(err, &de) || de.File != meta || !errors.Is(err, ErrCorrupt) {
					t.Fatalf("round %d: open: %v, want meta.log refused", round, err)
				}
			}
			rep, err := Verify(dir, Options{})
			if err != nil || rep.OK() || rep.Problems[0].File != meta || rep.Problems[0].Kind != ProblemCorrupt {
				t.Fatalf("verify: %v %+v", err, rep)
			}
			if _, err := Repair(dir, Options{}); !errors.Is(err, ErrCorrupt) {
				t.Fatalf("repair without quarantine: %v", err)
			}
			rep, err = Repair(dir, Options{Quarantine: true})
			if err != nil {
				t.Fatal(err)
			}
			if name != "removed" {
				if _, err := os.Stat(filepath.Join(dir, "quarantine", "meta.log")); err != nil {
					t.Fatalf("no copy of the cut meta.log: %v (quarantined %v)", err, rep.Quarantined)
				}
			}
			s, err := Open(dir, Options{})
			if err != nil {
				t.Fatal(err)
			}
			s.Close()
		})
	}
}

// TestCrashMetaLogTornTailStillCut: without a clean stop since meta.log was last written, a
// torn tail of it is cut at open as before: a crash that never closed cleanly, one after a
// run that opened a cleanly closed store (meta.end then speaks of a meta.log rewritten
// since), a store written before meta.end existed (none), one closed with NoSync (none
// written), and a meta.end that is not a whole record (a close cut short writing it).
func TestCrashMetaLogTornTailStillCut(t *testing.T) {
	// crash runs a store that adds clients, three synced and one flushed, then is killed.
	crash := func(t *testing.T, dir string) {
		s := openInit(t, dir, Options{})
		for i := range 4 {
			if err := s.AddClient(stores.ClientInfo{ID: fmt.Sprint("k", i), HbInbox: strings.Repeat("h", 100)}); err != nil {
				t.Fatal(err)
			}
			sync := s.Sync
			if i == 3 {
				sync = s.Flush
			}
			if err := sync(); err != nil {
				t.Fatal(err)
			}
		}
		s.abandon()
	}
	cases := map[string]func(t *testing.T) string{
		"never closed": func(t *testing.T) string {
			dir := t.TempDir()
			crash(t, dir)
			return dir
		},
		"crash after a clean close": func(t *testing.T) string {
			dir := cleanStore(t, Options{})
			crash(t, dir)
			return dir
		},
		"no meta.end": func(t *testing.T) string {
			dir := cleanStore(t, Options{})
			if err := os.Remove(filepath.Join(dir, "meta.end")); err != nil {
				t.Fatal(err)
			}
			return dir
		},
		"NoSync": func(t *testing.T) string {
			dir := cleanStore(t, Options{NoSync: true})
			if _, err := os.Stat(filepath.Join(dir, "meta.end")); !errors.Is(err, os.ErrNotExist) {
				t.Fatalf("NoSync wrote meta.end: %v", err)
			}
			return dir
		},
		"meta.end torn": func(t *testing.T) string {
			dir := cleanStore(t, Options{})
			if err := os.Truncate(filepath.Join(dir, "meta.end"), 20); err != nil {
				t.Fatal(err)
			}
			return dir
		},
	}
	for name, mk := range cases {
		t.Run(name, func(t *testing.T) {
			dir := mk(t)
			meta := filepath.Join(dir, "meta.log")
			b := metaBatches(t, meta)
			if err := os.Truncate(meta, int64(b[len(b)-1]+12)); err != nil {
				t.Fatal(err)
			}
			var buf bytes.Buffer
			s, err := Open(dir, Options{Logger: slog.New(slog.NewTextHandler(&buf, nil))})
			if err != nil {
				t.Fatalf("open: %v", err)
			}
			defer s.Close()
			if !strings.Contains(buf.String(), "torn tail cut") {
				t.Fatalf("log lacks the cut:\n%s", buf.String())
			}
			if name == "meta.end torn" && !strings.Contains(buf.String(), "clean close record ignored") {
				t.Fatalf("log lacks the ignored meta.end:\n%s", buf.String())
			}
			// The crashed runs' fourth client (never synced) is cut; the earlier ones stay.
			want := map[string]int{"never closed": 3, "crash after a clean close": 4}
			if rs, _ := s.Recover(); want[name] > 0 && len(rs.Clients) != want[name] {
				t.Fatalf("%d clients, want %d", len(rs.Clients), want[name])
			}
		})
	}
}

// An Open refused at meta.log (or at meta.end) stops the writeback goroutine it started.
// Before, every such refusal left one behind: 50 refused Opens, 50 goroutines more.
func TestRefusedOpenLeavesNoGoroutine(t *testing.T) {
	dir := t.TempDir()
	if err := os.Mkdir(filepath.Join(dir, metaEndName), 0o755); err != nil { // unreadable as a file
		t.Fatal(err)
	}
	before := runtime.NumGoroutine()
	for range 50 {
		if s, err := Open(dir, Options{}); err == nil {
			s.Close()
			t.Fatal("a store whose meta.end is a directory opened")
		}
	}
	time.Sleep(50 * time.Millisecond)
	if after := runtime.NumGoroutine(); after > before+5 {
		t.Fatalf("%d goroutines before 50 refused Opens, %d after", before, after)
	}
}
