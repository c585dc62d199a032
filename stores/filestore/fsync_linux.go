package filestore

import (
	"os"
	"runtime"
	"sync/atomic"
	"syscall"
	"time"
)

// syncHoldingP fsyncs f as a raw system call, which keeps the goroutine's P for its duration,
// instead of f.Sync's ordinary one, which lends the P away while the call blocks.
//
// Why: a commit pass's fsync takes ~0.3-0.5 ms here, and while the engine and a client's
// reader keep the other P busy, the runtime's sysmon takes the syncing goroutine's P away
// (retake, after 20-40 µs in the call): it wakes or starts a thread to run it, and when the
// fsync returns, its thread finds no P and parks the goroutine for another thread to pick
// up; sysmon, having found work, keeps polling every 20 µs. Each of those thread switches
// costs 15-30 µs of CPU on the 2-core VM this was measured on. With the file store's async
// 1 KiB publishes (stan-bench, 120,000 messages, one pass per ~180 messages): the server's
// context switches fell from ~94 to ~50-58 per 1,000 messages, futex calls from ~27 to
// ~9-12, sysmon's nanosleeps from ~35 to ~8-11, and the server's CPU per message by ~20 %.
//
// The cost: during the fsync the P runs nothing else, and a stop of the world (a GC phase)
// waits for the fsync to return — with every other P already stopped for it, so the whole
// process waits. Hence: only one raw fsync at a time (a pass syncing several channels side
// by side makes the others ordinary calls, so at least one P stays free and they still
// reach the disk together); with a single P, always the ordinary call; and after an fsync
// slower than slowFsync (a disk that stalls), the ordinary call for slowBackoff. A stall
// that begins during a raw fsync still holds the process up at the next GC until that
// fsync returns: once per stall at most.
func syncHoldingP(f *os.File) error {
	if !holdP() || !rawBusy.CompareAndSwap(false, true) {
		return f.Sync()
	}
	start := time.Now()
	err := raw.sync(f)
	if time.Since(start) > slowFsync {
		ordinaryUntil.Store(time.Now().Add(slowBackoff).UnixNano())
	}
	rawBusy.Store(false)
	return err
}

// holdP tells whether a commit's fsync may keep its P now.
func holdP() bool {
	return runtime.GOMAXPROCS(0) >= 2 && time.Now().UnixNano() >= ordinaryUntil.Load()
}

var (
	slowFsync     = 20 * time.Millisecond // a var for tests
	ordinaryUntil atomic.Int64            // Unix ns: until then, the ordinary call
)

const slowBackoff = 10 * time.Second

// rawSyncer is the raw fsync's state, reused so that an fsync allocates nothing: f's
// RawConn (kept while the same file is synced again) and the callback bound once. One, as
// one raw fsync runs at a time (rawBusy).
type rawSyncer struct {
	f     *os.File
	rc    syscall.RawConn
	do    func(fd uintptr)
	errno syscall.Errno
}

var (
	raw     rawSyncer
	rawBusy atomic.Bool // raw is in use
)

func (s *rawSyncer) fsync(fd uintptr) {
	for {
		_, _, e := syscall.RawSyscall(syscall.SYS_FSYNC, fd, 0, 0)
		if e != syscall.EINTR {
			s.errno = e
			return
		}
	}
}

// sync fsyncs f; the RawConn's Control holds f open during the call (a roll may close the
// tail meanwhile: f.Sync then reports os.ErrClosed, as syncPoint expects).
func (s *rawSyncer) sync(f *os.File) error {
	if s.do == nil {
		s.do = s.fsync
	}
	if s.f != f {
		rc, err := f.SyscallConn()
		if err != nil {
			return f.Sync()
		}
		s.f, s.rc = f, rc
	}
	s.errno = 0
	if err := s.rc.Control(s.do); err != nil {
		s.f, s.rc = nil, nil
		return f.Sync()
	}
	if s.errno != 0 {
		return &os.PathError{Op: "sync", Path: f.Name(), Err: s.errno}
	}
	return nil
}
