package app

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// logFiles returns the rotated files of path (oldest first) and then path itself, with
// their contents.
func logFiles(t *testing.T, path string) (names []string, contents []string) {
	t.Helper()
	l := &logFile{path: path}
	old, err := l.backups()
	check(t, err)
	for _, n := range append(old, path) {
		b, err := os.ReadFile(n)
		check(t, err)
		names, contents = append(names, n), append(contents, string(b))
	}
	return names, contents
}

func record(i int) string { return fmt.Sprintf("record %04d of the log, 30 B\n", i) }

// Rotation keeps every file within the limit and never splits a record; with maxNum the
// oldest files go and maxNum remain, the current one included; what remains is the end of
// what was written, in order.
func TestLogFileRotates(t *testing.T) {
	for _, tc := range []struct {
		name   string
		maxNum int
		files  int
	}{{"keep 3", 3, 3}, {"keep 1", 1, 1}, {"keep all", 0, 10}} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "starling.log")
			var errOut bytes.Buffer
			l, err := openLogFile(path, 100, tc.maxNum, &errOut)
			check(t, err)
			var all strings.Builder
			for i := range 30 { // 3 records of 29 bytes fit in 100: 10 files
				r := record(i)
				all.WriteString(r)
				if _, err := l.Write([]byte(r)); err != nil {
					t.Fatal(err)
				}
			}
			check(t, l.Close())
			names, contents := logFiles(t, path)
			if len(names) != tc.files || errOut.Len() != 0 {
				t.Fatalf("files %q, errors %q", names, errOut.String())
			}
			for i, c := range contents {
				if len(c) > 100 || len(c) == 0 || !strings.HasSuffix(c, "B\n") {
					t.Errorf("%s: %d bytes %q", names[i], len(c), c)
				}
				if i < len(names)-1 && !strings.HasPrefix(filepath.Base(names[i]), "starling.log.20") {
					t.Errorf("backup name %s", names[i])
				}
			}
			if kept := strings.Join(contents, ""); !strings.HasSuffix(all.String(), kept) || !strings.HasSuffix(kept, record(29)) {
				t.Errorf("kept is not the end of what was written:\n%s", kept)
			}
		})
	}
}

// No limit, no rotation; a file already past the limit rotates at the first write; a
// record larger than the limit gets a file of its own.
func TestLogFileLimits(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "a.log")
	l, err := openLogFile(path, 0, 2, &bytes.Buffer{})
	check(t, err)
	for i := range 50 {
		_, _ = l.Write([]byte(record(i)))
	}
	check(t, l.Close())
	if names, _ := logFiles(t, path); len(names) != 1 {
		t.Fatalf("rotated without a limit: %q", names)
	}

	held := 50 * len(record(0))
	l, err = openLogFile(path, int64(held)-100, 0, &bytes.Buffer{}) // already past the limit
	check(t, err)
	_, _ = l.Write([]byte("small\n"))
	big := strings.Repeat("x", held) + "\n"
	_, _ = l.Write([]byte(big))
	_, _ = l.Write([]byte("after\n"))
	check(t, l.Close())
	_, contents := logFiles(t, path)
	if len(contents) != 4 || len(contents[0]) != held || contents[1] != "small\n" || contents[2] != big || contents[3] != "after\n" {
		t.Fatalf("%d files: %q", len(contents), contents)
	}
}

// A failed rotation is reported on errOut, logging goes on in the same file, and it is tried
// again once another limit's worth has been written.
func TestLogFileRotationFailure(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "logs")
	check(t, os.Mkdir(dir, 0o755))
	path := filepath.Join(dir, "a.log")
	var errOut bytes.Buffer
	l, err := openLogFile(path, 100, 0, &errOut)
	check(t, err)
	defer l.Close()
	_, _ = l.Write([]byte(record(0)))
	check(t, os.RemoveAll(dir)) // neither rename nor create can work (even as root)
	for i := 1; i < 6; i++ {    // 29 bytes each: one attempt, before the 4th (next: 87+100)
		if _, err := l.Write([]byte(record(i))); err != nil {
			t.Fatal(err)
		}
	}
	if n := strings.Count(errOut.String(), "rotating the log file"); n != 1 {
		t.Fatalf("%d reports: %q", n, errOut.String())
	}
	check(t, os.Mkdir(dir, 0o755))
	for i := 6; i < 9; i++ { // the next attempt, before the 7th, starts a new file
		_, _ = l.Write([]byte(record(i)))
	}
	if cur, _ := os.ReadFile(path); string(cur) != record(6)+record(7)+record(8) || strings.Count(errOut.String(), "rotating") != 1 {
		t.Fatalf("current %q, errors %q", cur, errOut.String())
	}
}

// Reopen starts a new file under the same name after the old one was moved away (an
// external logrotate and SIGUSR1).
func TestLogFileReopen(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "a.log")
	l, err := openLogFile(path, 0, 0, &bytes.Buffer{})
	check(t, err)
	defer l.Close()
	_, _ = l.Write([]byte("one\n"))
	check(t, os.Rename(path, path+".1"))
	_, _ = l.Write([]byte("two\n")) // still the moved file
	check(t, l.Reopen())
	_, _ = l.Write([]byte("three\n"))
	moved, _ := os.ReadFile(path + ".1")
	cur, _ := os.ReadFile(path)
	if string(moved) != "one\ntwo\n" || string(cur) != "three\n" {
		t.Fatalf("moved %q, current %q", moved, cur)
	}
}
