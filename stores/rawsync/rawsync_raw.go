//go:build linux && (amd64 || arm64)

// The raw calls' arguments (pwrite64's offset in one register, fstat filling a Stat_t as the
// kernel's struct stat) hold on 64-bit amd64 and arm64 Linux only: 32-bit ports pass the
// offset in a register pair and use fstat64, loong64 has no fstat. Elsewhere rawsync_other.go.

package rawsync

import (
	"io"
	"os"
	"runtime"
	"sync/atomic"
	"syscall"
	"time"
	"unsafe"
)

// Fsync is f.Sync, as a raw fsync(2) when the policy allows (package comment).
func Fsync(f *os.File) error {
	if !acquire() {
		return f.Sync()
	}
	errno, ok := the.run(f, the.fsync)
	release()
	if !ok {
		return f.Sync()
	}
	if errno != 0 {
		return &os.PathError{Op: "sync", Path: f.Name(), Err: errno}
	}
	return nil
}

// Fdatasync is fdatasync(2) of f, as a raw call when the policy allows; its error is an
// *os.PathError with Op "fdatasync".
func Fdatasync(f *os.File) error {
	if acquire() {
		errno, ok := the.run(f, the.fdatasync)
		release()
		if ok {
			if errno != 0 {
				return &os.PathError{Op: "fdatasync", Path: f.Name(), Err: errno}
			}
			return nil
		}
	}
	if err := syscall.Fdatasync(int(f.Fd())); err != nil {
		return &os.PathError{Op: "fdatasync", Path: f.Name(), Err: err}
	}
	return nil
}

// Size is f.Stat().Size(), as a raw fstat(2) when the policy allows.
func Size(f *os.File) (int64, error) {
	if acquire() {
		errno, ok := the.run(f, the.fstat)
		size := the.st.Size
		release()
		if ok {
			if errno != 0 {
				return 0, &os.PathError{Op: "stat", Path: f.Name(), Err: errno}
			}
			return size, nil
		}
	}
	fi, err := f.Stat()
	if err != nil {
		return 0, err
	}
	return fi.Size(), nil
}

// WriteAt is f.WriteAt, as raw pwrite(2)s when the policy allows: it writes all of b at off
// (a short write is continued, EINTR retried) or returns an *os.PathError with Op "write"
// (io.ErrUnexpectedEOF if a pwrite wrote nothing) and, as f.WriteAt does then, n = 0 even
// if part of b was written (os's loop drops the count of a failed internal/poll Pwrite).
func WriteAt(f *os.File, b []byte, off int64) (int, error) {
	if len(b) == 0 || off < 0 { // off < 0: f.WriteAt's own error
		return f.WriteAt(b, off)
	}
	n, ok, err := rawWrite(f, b, off, the.pwrite)
	switch {
	case !ok:
		return f.WriteAt(b, off)
	case err != nil:
		return 0, err
	}
	return n, nil
}

// maxRawWrite: a larger Write is the ordinary call. The raw writes are for a commit pass's
// flush (at most a tail's buffer, 256 KiB by default); a log's rewrite or a carried segment
// (MiBs) is not on the publish path, and a large write is where writeback throttling may
// hold the call (and, raw, a stop of the world) for long.
const maxRawWrite = 1 << 20

// Write is f.Write, as raw write(2)s at f's offset when the policy allows and b is at most
// maxRawWrite: it writes all of b (a short write is continued, EINTR retried) or returns
// the bytes written and an *os.PathError with Op "write" (io.ErrUnexpectedEOF if a write
// wrote nothing), as f.Write does.
func Write(f *os.File, b []byte) (int, error) {
	if len(b) == 0 || len(b) > maxRawWrite {
		return f.Write(b)
	}
	n, ok, err := rawWrite(f, b, 0, the.write)
	if !ok {
		return f.Write(b)
	}
	return n, err
}

// rawWrite makes do, the pwrite (at off) or write loop over b, as a raw call if the policy
// allows (!ok: it made none, and the caller makes the ordinary call); it returns the bytes
// written and the loop's error as an *os.PathError with Op "write".
func rawWrite(f *os.File, b []byte, off int64, do func(fd uintptr)) (n int, ok bool, err error) {
	if !acquire() {
		return 0, false, nil
	}
	the.b, the.off, the.n = b, off, 0
	errno, ok := the.run(f, do)
	n = the.n
	the.b = nil
	release()
	switch {
	case !ok:
		return 0, false, nil
	case errno == errWroteNothing:
		return n, true, &os.PathError{Op: "write", Path: f.Name(), Err: io.ErrUnexpectedEOF}
	case errno != 0:
		return n, true, &os.PathError{Op: "write", Path: f.Name(), Err: errno}
	}
	return n, true, nil
}

// RawCalls counts the raw calls made (each call of this package that took the raw path).
func RawCalls() uint64 { return rawCalls.Load() }

// SetSlow sets the slow-call threshold and ends a back-off under way; it returns the
// previous threshold. For tests (a loaded machine's slow fsync must not switch a test to
// the ordinary call, or a test wants every call to be slow).
func SetSlow(d time.Duration) time.Duration {
	prev := time.Duration(slow.Swap(int64(d)))
	ordinaryUntil.Store(0)
	return prev
}

var (
	slow          atomic.Int64  // the slow-call threshold, ns
	ordinaryUntil atomic.Int64  // Unix ns: until then, the ordinary call
	busy          atomic.Bool   // a raw call is under way: "the" is in use
	rawCalls      atomic.Uint64 // raw calls made
	the           caller        // the one raw call's state (busy)
)

func init() { slow.Store(int64(20 * time.Millisecond)) }

const slowBackoff = 10 * time.Second

// holdP tells whether a call may keep its P now.
func holdP() bool {
	return runtime.GOMAXPROCS(0) >= 2 && time.Now().UnixNano() >= ordinaryUntil.Load()
}

// acquire takes the raw call's slot if the policy allows a raw call now; the caller then
// calls the.run, reads the results and releases the slot.
func acquire() bool {
	return holdP() && busy.CompareAndSwap(false, true)
}

func release() { busy.Store(false) }

// errWroteNothing is the write loops' report of a pwrite or write that wrote nothing.
const errWroteNothing = ^syscall.Errno(0)

// caller is the raw call's state, reused so that a call allocates nothing: f's RawConn
// (kept while the same file is used again), the callbacks bound once, the arguments and
// results. One, as one raw call runs at a time (busy).
type caller struct {
	f  *os.File
	rc syscall.RawConn

	fsync, fdatasync, fstat, pwrite, write func(fd uintptr)

	b     []byte // pwrite's and write's
	off   int64  // pwrite's
	n     int
	st    syscall.Stat_t // fstat's
	errno syscall.Errno
}

// run calls do with f's descriptor, which the RawConn's Control holds open for the call,
// and times it; it returns the call's errno, or !ok if f's RawConn refused (a closed
// file): the caller then makes the ordinary call, which reports that.
func (c *caller) run(f *os.File, do func(fd uintptr)) (errno syscall.Errno, ok bool) {
	if c.f != f {
		rc, err := f.SyscallConn()
		if err != nil {
			return 0, false
		}
		c.f, c.rc = f, rc
	}
	c.errno = 0
	start := time.Now()
	err := c.rc.Control(do)
	if time.Since(start) > time.Duration(slow.Load()) {
		ordinaryUntil.Store(time.Now().Add(slowBackoff).UnixNano())
	}
	if err != nil {
		c.f, c.rc = nil, nil
		return 0, false
	}
	rawCalls.Add(1)
	return c.errno, true
}

func (c *caller) bind() {
	c.fsync = func(fd uintptr) { c.errno = rawRetry(syscall.SYS_FSYNC, fd, 0) }
	c.fdatasync = func(fd uintptr) { c.errno = rawRetry(syscall.SYS_FDATASYNC, fd, 0) }
	c.fstat = func(fd uintptr) { c.errno = rawRetry(syscall.SYS_FSTAT, fd, uintptr(unsafe.Pointer(&c.st))) }
	c.pwrite = func(fd uintptr) { c.writeAll(fd, true) }
	c.write = func(fd uintptr) { c.writeAll(fd, false) }
}

func init() { the.bind() }

// rawRetry makes the raw call trap(a1, a2), again while it fails with EINTR.
func rawRetry(trap, a1, a2 uintptr) syscall.Errno {
	for {
		_, _, e := syscall.RawSyscall(trap, a1, a2, 0)
		if e != syscall.EINTR {
			return e
		}
	}
}

// maxRW caps one pwrite or write, as os does (internal/poll: some systems fail larger ones).
const maxRW = 1 << 30

// writeAll writes all of c.b, at c.off with pwrite (at) or at the file's offset with write, as
// internal/poll's loops do: a short write is continued, EINTR retried, a call writing nothing
// stops it (errWroteNothing). c.n counts the bytes written.
func (c *caller) writeAll(fd uintptr, at bool) {
	b, off := c.b, c.off
	for len(b) > 0 {
		m := min(len(b), maxRW)
		var r uintptr
		var e syscall.Errno
		if at {
			r, _, e = syscall.RawSyscall6(syscall.SYS_PWRITE64, fd, uintptr(unsafe.Pointer(&b[0])), uintptr(m), uintptr(off), 0, 0)
		} else {
			r, _, e = syscall.RawSyscall(syscall.SYS_WRITE, fd, uintptr(unsafe.Pointer(&b[0])), uintptr(m))
		}
		if e == syscall.EINTR {
			continue
		}
		if e != 0 {
			c.errno = e
			return
		}
		if r == 0 {
			c.errno = errWroteNothing
			return
		}
		c.n += int(r)
		b = b[r:]
		off += int64(r)
	}
}
