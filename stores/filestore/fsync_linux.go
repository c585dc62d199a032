package filestore

import (
	"os"
	"runtime"
	"sync"
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
// The cost: during the fsync the P runs nothing else — the other P does (one pass at a time
// per store: the committer's, or a reader's passHere), and a stop of the world (a GC phase)
// waits for the fsync to return. With a single P that would stop every goroutine for each
// fsync, so there it is the ordinary call.
//
// A disk that stalls would make that wait long: after an fsync slower than slowFsync, the
// ordinary call is used for slowBackoff (a slow disk's fsync dwarfs what the retake costs),
// so one stall at most holds the P.
func syncHoldingP(f *os.File) error {
	if !holdP() {
		return f.Sync()
	}
	start := time.Now()
	s := rawSyncers.Get().(*rawSyncer)
	err := s.sync(f)
	rawSyncers.Put(s)
	if time.Since(start) > slowFsync {
		ordinaryUntil.Store(time.Now().Add(slowBackoff).UnixNano())
	}
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

// rawSyncer is one fsync's state, pooled so that an fsync allocates nothing: f's RawConn
// (kept while the same file is synced again) and the callback bound once.
type rawSyncer struct {
	f     *os.File
	rc    syscall.RawConn
	do    func(fd uintptr)
	errno syscall.Errno
}

var rawSyncers = sync.Pool{New: func() any {
	s := new(rawSyncer)
	s.do = s.fsync
	return s
}}

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
