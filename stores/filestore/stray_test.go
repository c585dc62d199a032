package filestore

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// keepMeta rewrites meta.log with only the records keep accepts (as a cut or damaged file
// whose later framing is intact would read).
func keepMeta(t *testing.T, dir string, keep func(rec []byte) bool) {
	t.Helper()
	path := filepath.Join(dir, "meta.log")
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	ld, err := parseLog(path, magicMeta, data)
	if err != nil {
		t.Fatal(err)
	}
	var recs [][]byte
	for _, r := range ld.recs {
		if keep(r) {
			recs = append(recs, r)
		}
	}
	if err := writeLog(path, magicMeta, recs, &Options{}); err != nil {
		t.Fatal(err)
	}
}

// TestMetaLogLostChannelKeepsDir: meta.log cut after its server info, or missing the record
// of one channel, no longer names channel directories that hold messages and
// subscriptions. Open took them for strays of DeleteChannel and deleted them; now it fails
// naming the directory and deletes nothing, Verify reports it, Repair refuses it, and with
// Quarantine moves it into <store>/quarantine/, after which the store opens.
func TestMetaLogLostChannelKeepsDir(t *testing.T) {
	for name, keep := range map[string]func([]byte) bool{
		"cut after server info": func(r []byte) bool { return r[0] == metaInfo },
		"channel record lost":   func(r []byte) bool { return !(r[0] == metaChannel && strings.Contains(string(r), "foo")) },
	} {
		t.Run(name, func(t *testing.T) {
			dir, _ := build(t, 100)
			foo := chanDirOf(t, dir, "foo")
			keepMeta(t, dir, keep)
			for round := 0; round < 2; round++ {
				s, err := Open(dir, Options{SegmentBytes: 1000})
				if err == nil {
					s.Close()
				}
				if !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), foo) {
					t.Fatalf("open: %v", err)
				}
				if segs, _ := filepath.Glob(filepath.Join(foo, "*.seg")); len(segs) == 0 {
					t.Fatalf("the segments of %s were deleted", foo)
				}
			}
			rep, err := Verify(dir, Options{})
			if err != nil || rep.OK() {
				t.Fatalf("verify: %v %+v", err, rep)
			}
			found := false
			for _, p := range rep.Problems {
				found = found || p.File == foo && p.Kind == ProblemStray
			}
			if !found {
				t.Fatalf("verify: %+v", rep.Problems)
			}
			if _, err := Repair(dir, Options{}); !errors.Is(err, ErrCorrupt) {
				t.Fatalf("repair: %v", err)
			}
			if segs, _ := filepath.Glob(filepath.Join(foo, "*.seg")); len(segs) == 0 {
				t.Fatalf("repair deleted the segments of %s", foo)
			}
			rep, err = Repair(dir, Options{Quarantine: true})
			if err != nil {
				t.Fatal(err)
			}
			moved := filepath.Join(dir, "quarantine", filepath.Base(foo))
			if segs, _ := filepath.Glob(filepath.Join(moved, "*.seg")); len(segs) == 0 {
				t.Fatalf("%s not quarantined: %+v", foo, rep)
			}
			s, err := Open(dir, Options{SegmentBytes: 1000})
			if err != nil {
				t.Fatal(err)
			}
			s.Close()
			if segs, _ := filepath.Glob(filepath.Join(moved, "*.seg")); len(segs) == 0 {
				t.Fatalf("Open deleted the quarantined %s", moved)
			}
		})
	}
}

// TestDeleteChannelCrashRemovesDir: a crash between the deletion's record and the removal
// of the channel's directory leaves it holding data; the record names the directory, so
// the next open removes it (and its tombstone keeps Last).
func TestDeleteChannelCrashRemovesDir(t *testing.T) {
	dir, _ := build(t, 100)
	foo := chanDirOf(t, dir, "foo")
	opts := Options{SegmentBytes: 1000}
	crash := false
	opts.Hooks.Change = func(op, path string, size int64, do func() error) error {
		if crash && strings.HasPrefix(path, foo) && (op == ChangeRemove || op == ChangeRename) {
			return errors.New("crash")
		}
		return do()
	}
	s, err := Open(dir, opts)
	if err != nil {
		t.Fatal(err)
	}
	crash = true // the power fails once the deletion's record is durable
	if err := s.DeleteChannel("foo"); err == nil {
		t.Fatal("the directory's removal did not fail")
	}
	s.abandon()
	if segs, _ := filepath.Glob(filepath.Join(foo, "*.seg")); len(segs) == 0 {
		t.Fatal("no stray directory left")
	}
	if rep, err := Verify(dir, Options{}); err != nil || !rep.OK() {
		t.Fatalf("verify: %v %+v", err, rep.Problems)
	}
	s, err = Open(dir, Options{SegmentBytes: 1000})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if _, err := os.Stat(foo); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("deleted channel's directory kept: %v", err)
	}
	rs, _ := s.Recover()
	if len(rs.Channels) != 1 || rs.Channels[0].Channel.Name != "bar" {
		t.Fatalf("channels %+v", rs.Channels)
	}
	ch, err := s.CreateChannel("foo", 3)
	if err != nil {
		t.Fatal(err)
	}
	if st := ch.Msgs.State(); st.Last != 100 {
		t.Fatalf("recreated foo starts after %d, want 100", st.Last)
	}
}

// TestCreateChannelKeepsDirWithData: CreateChannel removed whatever directory held the
// number it takes; one holding messages is now left alone and the create refused.
func TestCreateChannelKeepsDirWithData(t *testing.T) {
	dir, _ := build(t, 100)
	s, err := Open(dir, Options{SegmentBytes: 1000})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	next := s.chanDir(s.nextDir)
	if err := os.MkdirAll(next, 0o755); err != nil {
		t.Fatal(err)
	}
	seg := filepath.Join(next, segName(1)+".seg")
	if err := os.WriteFile(seg, []byte("STRSEG data"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := s.CreateChannel("baz", 3); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("create: %v", err)
	}
	if _, err := os.Stat(seg); err != nil {
		t.Fatalf("%s removed: %v", seg, err)
	}
}
