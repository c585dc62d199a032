package boltstore

import (
	"bytes"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/starling-io/starling/boltcheck"
)

// A bit flipped in a meta page: bbolt silently opens at the other one. When the flipped one
// held the newest commit, that commit's messages are gone (here 6..10, acknowledged by
// their Sync) — a torn meta write from a crash looks the same, so the store cannot refuse
// the file, but it used to say nothing at all. Open now logs a warning naming the file and
// the page, and Verify reports it.
func TestInvalidMetaPageWarned(t *testing.T) {
	for _, newest := range []bool{true, false} {
		name := map[bool]string{true: "newest", false: "older"}[newest]
		t.Run(name, func(t *testing.T) {
			s, path, ch := openFoo(t, Options{NoSync: true}, 1)
			appendSync(t, ch.Msgs, 1, 5)
			appendSync(t, ch.Msgs, 6, 5)
			s.crash() // the last commit is the one of 6..10
			data, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			r, err := boltcheck.Inspect(data)
			if err != nil || r.Warning != "" {
				t.Fatalf("before: %+v %v", r, err)
			}
			page := r.MetaPage
			if !newest {
				page = 1 - page
			}
			data[page*r.PageSize+16+60] ^= 1 // in the meta's checksum
			if err := os.WriteFile(path, data, 0o600); err != nil {
				t.Fatal(err)
			}
			wantMsg := "meta page " + string(rune('0'+page)) + " is invalid (bad checksum"

			rep, err := Verify(path, 0)
			if err != nil || len(rep.Warnings) != 1 || !strings.Contains(rep.Warnings[0], wantMsg) {
				t.Fatalf("Verify = %+v, %v; want a warning about meta page %d", rep, err, page)
			}
			// Verify left it as it was; Open warns, names the file, and opens.
			var log bytes.Buffer
			s, err = Open(path, Options{NoSync: true, Logger: slog.New(slog.NewTextHandler(&log, nil))})
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			if out := log.String(); !strings.Contains(out, "level=WARN") || !strings.Contains(out, wantMsg) ||
				!strings.Contains(out, "file="+path) {
				t.Fatalf("Open logged %q, want a warning naming %s and meta page %d", out, filepath.Base(path), page)
			}
			last := uint64(10)
			if newest {
				last = 5 // the lost commit
			}
			checkRange(t, s.channels["foo"].msgs, 1, last)
		})
	}
}
