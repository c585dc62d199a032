package app

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"
)

// backupLayout is the time stamp of a rotated log file, nats-server's:
// starling.log.2025.01.31.23.59.59.123456789. Zero-padded, so names sort in time order.
const backupLayout = "2006.01.02.15.04.05.000000000"

// logFile is the log file (-l): an io.Writer that rotates by size and reopens on demand
// (SIGUSR1, for an external logrotate). The log handler writes one record per Write, so a
// record is never split across files.
//
// Rotation happens before a write that would take the file past limit: the file is renamed
// to <path>.<backupLayout> and a new one created; then, with maxNum, the oldest rotated
// files are removed so that maxNum files remain, the current one included (nats-server's
// logfile_max_num). A rotation that fails is reported on errOut (the log cannot report its
// own failure) and tried again once another limit's worth has been written.
type logFile struct {
	mu     sync.Mutex
	path   string
	f      *os.File
	size   int64 // of the current file
	next   int64 // rotate before size passes this; 0: never
	limit  int64 // 0: never rotate
	maxNum int   // files kept, the current one included; 0: all
	errOut io.Writer
}

func openLogFile(path string, limit int64, maxNum int, errOut io.Writer) (*logFile, error) {
	l := &logFile{path: path, errOut: errOut}
	if err := l.open(); err != nil {
		return nil, err
	}
	l.setLimits(limit, maxNum)
	return l, nil
}

// open (re)opens path, appending; l.mu is held or l not shared yet.
func (l *logFile) open() error {
	f, err := os.OpenFile(l.path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	st, err := f.Stat()
	if err != nil {
		_ = f.Close()
		return err
	}
	if l.f != nil {
		_ = l.f.Close()
	}
	l.f, l.size = f, st.Size()
	return nil
}

// setLimits changes the size limit and the number of files kept (a reload); they apply
// from the next write.
func (l *logFile) setLimits(limit int64, maxNum int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.limit, l.maxNum, l.next = limit, maxNum, limit
}

// Write appends p, rotating first if p would take the file past the limit (a record alone
// larger than the limit gets a file of its own).
func (l *logFile) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.next > 0 && l.size > 0 && l.size+int64(len(p)) > l.next {
		l.rotate()
	}
	n, err := l.f.Write(p)
	l.size += int64(n)
	return n, err
}

// rotate renames the file aside and starts a new one; l.mu is held.
func (l *logFile) rotate() {
	backup := l.backupName(time.Now())
	err := os.Rename(l.path, backup)
	if err == nil || os.IsNotExist(err) { // gone (deleted, or moved by hand): just start a new one
		err = l.open() // on failure keeps writing to the renamed file
	}
	if err != nil {
		l.next = l.size + l.limit
		fmt.Fprintf(l.errOut, "starling: rotating the log file %s: %v (next attempt after %d more bytes)\n", l.path, err, l.limit)
		return
	}
	l.next = l.limit
	l.purge()
}

// backupName is path.<time>, later by a nanosecond if that name is taken.
func (l *logFile) backupName(t time.Time) string {
	for {
		name := l.path + "." + t.Format(backupLayout)
		if _, err := os.Lstat(name); os.IsNotExist(err) {
			return name
		}
		t = t.Add(time.Nanosecond)
	}
}

// backups returns the rotated files of path, oldest first.
func (l *logFile) backups() ([]string, error) {
	dir, base := filepath.Split(l.path)
	entries, err := os.ReadDir(filepath.Clean(dir))
	if err != nil {
		return nil, err
	}
	var out []string
	for _, e := range entries {
		stamp, ok := strings.CutPrefix(e.Name(), base+".")
		if !ok || e.IsDir() {
			continue
		}
		if _, err := time.Parse(backupLayout, stamp); err == nil {
			out = append(out, filepath.Join(dir, e.Name()))
		}
	}
	slices.Sort(out)
	return out, nil
}

// purge removes the oldest rotated files beyond maxNum-1; l.mu is held.
func (l *logFile) purge() {
	if l.maxNum <= 0 {
		return
	}
	old, err := l.backups()
	if err != nil {
		fmt.Fprintf(l.errOut, "starling: removing old log files: %v\n", err)
		return
	}
	for _, name := range old[:max(len(old)-(l.maxNum-1), 0)] {
		if err := os.Remove(name); err != nil {
			fmt.Fprintf(l.errOut, "starling: removing an old log file: %v\n", err)
		}
	}
}

// Reopen closes the file and opens path again: after an external tool moved it aside,
// logging goes on in a new file of that name.
func (l *logFile) Reopen() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.open()
}

// Close closes the file; later writes fail.
func (l *logFile) Close() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.f.Close()
}
