//go:build linux && (amd64 || arm64)

package boltstore

import (
	"errors"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/starling-io/starling/stores/rawsync"
)

// TestCommitUsesRawCalls: on Linux with two Ps, a commit's pwrites, size check and
// fdatasync are raw system calls (stores/rawsync, through the vendored bbolt's FileOps):
// each growing commit makes at least three.
func TestCommitUsesRawCalls(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("the raw calls are Linux's")
	}
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(2))
	defer rawsync.SetSlow(rawsync.SetSlow(time.Hour)) // a loaded disk must not switch them off
	s, _, ch := openFoo(t, Options{}, 1)
	defer s.Close()
	const commits = 20
	before := rawsync.RawCalls()
	for i := range uint64(commits) {
		if err := ch.Msgs.Append(msgsAt(1+i*50, 50, strings.Repeat("x", 1024))); err != nil {
			t.Fatal(err)
		}
		if err := ch.Msgs.Sync(); err != nil {
			t.Fatal(err)
		}
	}
	if got := rawsync.RawCalls() - before; got < 3*commits {
		t.Fatalf("%d raw calls in %d growing commits, want at least %d", got, commits, 3*commits)
	}
}

// TestFailedRawWriteFailsCommit: a pwrite that fails on the raw path fails the commit with
// the error the ordinary call gives — an *os.PathError wrapping the errno, which the store
// reports as it did. The file size limit (RLIMIT_FSIZE; Go ignores SIGXFSZ) fails every
// page write past it with EFBIG.
func TestFailedRawWriteFailsCommit(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("the raw calls are Linux's")
	}
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(2))
	defer rawsync.SetSlow(rawsync.SetSlow(time.Hour))
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_FSIZE, &lim); err != nil {
		t.Fatal(err)
	}
	errs := map[int]string{}
	for _, procs := range []int{2, 1} { // the raw path, then the ordinary one
		runtime.GOMAXPROCS(procs)
		s, path, ch := openFoo(t, Options{}, 1)
		// Commits enough for bbolt to have freed pages to reuse: the failing commit must
		// not grow the file (its truncate would fail first, an ordinary call).
		for i := range uint64(10) {
			if err := ch.Msgs.Append(msgsAt(1+i, 1, "ok")); err != nil {
				t.Fatal(err)
			}
			if err := ch.Msgs.Sync(); err != nil {
				t.Fatal(err)
			}
		}
		small := lim
		small.Cur = 8192 // the meta pages
		if err := syscall.Setrlimit(syscall.RLIMIT_FSIZE, &small); err != nil {
			t.Skip(err)
		}
		before := rawsync.RawCalls()
		err := ch.Msgs.Append(msgsAt(11, 1, "lost"))
		if err == nil {
			err = ch.Msgs.Sync()
		}
		raw := rawsync.RawCalls() - before
		if err := syscall.Setrlimit(syscall.RLIMIT_FSIZE, &lim); err != nil {
			t.Fatal(err)
		}
		var errno syscall.Errno
		if !errors.Is(err, syscall.EFBIG) || !errors.As(err, &errno) || !strings.Contains(err.Error(), "write "+path) {
			t.Fatalf("GOMAXPROCS %d: the commit = %v, want a failed write of %s (EFBIG)", procs, err, path)
		}
		if (raw > 0) != (procs == 2) {
			t.Fatalf("GOMAXPROCS %d: %d raw calls", procs, raw)
		}
		errs[procs] = strings.ReplaceAll(err.Error(), path, "PATH")
		if err := ch.Msgs.Append(msgsAt(11, 1, "again")); err == nil {
			t.Fatalf("GOMAXPROCS %d: Append after the failed commit succeeded", procs)
		}
		s.Close()
	}
	if errs[1] != errs[2] {
		t.Fatalf("the raw path's error %q, the ordinary one's %q", errs[2], errs[1])
	}
	t.Log(errs[2])
}
