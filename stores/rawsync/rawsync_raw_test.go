//go:build linux && (amd64 || arm64)

package rawsync

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"
)

// quick makes every call quick for the test (a loaded machine's slow fsync must not switch
// it to the ordinary call) with two Ps, and undoes that after it.
func quick(t *testing.T) {
	prevProcs := runtime.GOMAXPROCS(2)
	prev := SetSlow(time.Hour)
	t.Cleanup(func() { SetSlow(prev); runtime.GOMAXPROCS(prevProcs) })
}

func tempFile(t *testing.T) *os.File {
	f, err := os.Create(filepath.Join(t.TempDir(), "f"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return f
}

// rawly runs call and requires it to have taken the raw path (raw) or not.
func rawly(t *testing.T, what string, raw bool, call func()) {
	t.Helper()
	before := RawCalls()
	call()
	if got := RawCalls() - before; got != 0 != raw || got > 1 {
		t.Fatalf("%s: %d raw calls, want raw %v", what, got, raw)
	}
}

// TestRawCalls: each call takes the raw path and does what the ordinary one does.
func TestRawCalls(t *testing.T) {
	quick(t)
	f := tempFile(t)
	data := bytes.Repeat([]byte("0123456789abcdef"), 40000) // 640,000 bytes: several pages
	rawly(t, "WriteAt", true, func() {
		if n, err := WriteAt(f, data, 4096); n != len(data) || err != nil {
			t.Fatalf("WriteAt = %d, %v", n, err)
		}
	})
	rawly(t, "Size", true, func() {
		if size, err := Size(f); size != int64(4096+len(data)) || err != nil {
			t.Fatalf("Size = %d, %v; want %d", size, err, 4096+len(data))
		}
	})
	rawly(t, "Fdatasync", true, func() {
		if err := Fdatasync(f); err != nil {
			t.Fatal(err)
		}
	})
	rawly(t, "Fsync", true, func() {
		if err := Fsync(f); err != nil {
			t.Fatal(err)
		}
	})
	got, err := os.ReadFile(f.Name())
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got[4096:], data) || !bytes.Equal(got[:4096], make([]byte, 4096)) {
		t.Fatal("the file does not hold what WriteAt wrote")
	}
}

// TestRawErrors: a raw call's error is the ordinary call's, *os.PathError and errno alike.
func TestRawErrors(t *testing.T) {
	quick(t)
	path := filepath.Join(t.TempDir(), "ro")
	if err := os.WriteFile(path, []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	ro, err := os.Open(path) // read-only: pwrite fails with EBADF
	if err != nil {
		t.Fatal(err)
	}
	defer ro.Close()
	_, want := ro.WriteAt([]byte("y"), 0)
	rawly(t, "WriteAt on a read-only file", true, func() {
		n, err := WriteAt(ro, []byte("y"), 0)
		var pe *os.PathError
		if n != 0 || !errors.As(err, &pe) || pe.Op != "write" || !errors.Is(err, syscall.EBADF) || err.Error() != want.Error() {
			t.Fatalf("WriteAt = %d, %v; want 0, %v", n, err, want)
		}
	})
	// A closed file: the raw path cannot take it (its RawConn refuses) and makes the
	// ordinary call, whose error it returns.
	f := tempFile(t)
	f.Close()
	_, want = f.WriteAt([]byte("y"), 0)
	rawly(t, "WriteAt on a closed file", false, func() {
		if _, err := WriteAt(f, []byte("y"), 0); !errors.Is(err, os.ErrClosed) || err.Error() != want.Error() {
			t.Fatalf("WriteAt = %v, want %v", err, want)
		}
	})
	_, want = f.Stat()
	if _, err := Size(f); !errors.Is(err, os.ErrClosed) || err.Error() != want.Error() {
		t.Fatalf("Size = %v, want %v", err, want)
	}
	if err := Fsync(f); !errors.Is(err, os.ErrClosed) {
		t.Fatalf("Fsync = %v, want os.ErrClosed", err)
	}
	if err := Fdatasync(f); !errors.Is(err, syscall.EBADF) { // as bbolt's syscall.Fdatasync(int(f.Fd()))
		t.Fatalf("Fdatasync = %v, want EBADF", err)
	}
	if _, err := WriteAt(tempFile(t), []byte("y"), -1); err == nil {
		t.Fatal("WriteAt at a negative offset did not fail")
	}
}

// TestOneRawCallAtATime: while a raw call is under way, and with a single P, the calls are
// the ordinary ones.
func TestOneRawCallAtATime(t *testing.T) {
	quick(t)
	f := tempFile(t)
	if !acquire() {
		t.Fatal("the slot is taken")
	}
	rawly(t, "Fdatasync beside a raw call", false, func() {
		if err := Fdatasync(f); err != nil {
			t.Fatal(err)
		}
	})
	rawly(t, "Size beside a raw call", false, func() {
		if _, err := Size(f); err != nil {
			t.Fatal(err)
		}
	})
	release()
	runtime.GOMAXPROCS(1)
	rawly(t, "Fsync with one P", false, func() {
		if err := Fsync(f); err != nil {
			t.Fatal(err)
		}
	})
	runtime.GOMAXPROCS(2)
	rawly(t, "Fsync with two Ps", true, func() {
		if err := Fsync(f); err != nil {
			t.Fatal(err)
		}
	})
}

// TestSlowCallLetsThePGo: after a raw call slower than the threshold (a stalling disk,
// during which a stop of the world would wait), the calls are the ordinary ones for
// slowBackoff.
func TestSlowCallLetsThePGo(t *testing.T) {
	quick(t)
	f := tempFile(t)
	if !holdP() {
		t.Fatal("the P is not held at the start")
	}
	if err := Fsync(f); err != nil || !holdP() {
		t.Fatalf("after a quick fsync: %v, holdP %v", err, holdP())
	}
	slow.Store(0) // every call is slow now
	rawly(t, "a slow WriteAt", true, func() {
		if _, err := WriteAt(f, []byte("x"), 0); err != nil {
			t.Fatal(err)
		}
	})
	if holdP() {
		t.Fatal("the P is still held after a slow call")
	}
	if left := time.Until(time.Unix(0, ordinaryUntil.Load())); left < slowBackoff-time.Second || left > slowBackoff {
		t.Fatalf("ordinary calls for %v more, want about %v", left, slowBackoff)
	}
	rawly(t, "Fsync after a slow call", false, func() {
		if err := Fsync(f); err != nil {
			t.Fatal(err)
		}
	})
}

// limitFileSize sets the process's file size limit (RLIMIT_FSIZE) to limit bytes for the
// test, or skips it where that cannot be done. The limit is the whole process's: a
// -test.cpuprofile or -test.trace file written meanwhile would fail past it.
func limitFileSize(t *testing.T, limit uint64) {
	t.Helper()
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_FSIZE, &lim); err != nil {
		t.Fatal(err)
	}
	if lim.Max < limit {
		t.Skipf("RLIMIT_FSIZE hard limit %d", lim.Max)
	}
	small := lim
	small.Cur = limit
	if err := syscall.Setrlimit(syscall.RLIMIT_FSIZE, &small); err != nil {
		t.Skip(err)
	}
	t.Cleanup(func() { syscall.Setrlimit(syscall.RLIMIT_FSIZE, &lim) })
}

// TestShortWrite: a pwrite that writes part of its buffer is continued, and a write that
// cannot go on returns the error and n = 0 — as f.WriteAt does, though part of the buffer
// was written. The file size limit (RLIMIT_FSIZE; Go ignores its SIGXFSZ) makes the kernel
// write only what fits, then fail the rest with EFBIG.
func TestShortWrite(t *testing.T) {
	quick(t)
	const limit = 10000
	limitFileSize(t, limit)
	data := bytes.Repeat([]byte("x"), 8192)
	ordinary, raw := tempFile(t), tempFile(t)
	wantN, wantErr := ordinary.WriteAt(data, 4096)
	var n int
	var err error
	rawly(t, "a short WriteAt", true, func() { n, err = WriteAt(raw, data, 4096) })
	if !errors.Is(wantErr, syscall.EFBIG) {
		t.Fatalf("f.WriteAt = %d, %v: the limit did not cut the write", wantN, wantErr)
	}
	for _, f := range []*os.File{ordinary, raw} {
		if fi, err := f.Stat(); err != nil || fi.Size() != limit {
			t.Fatalf("%s: size %v, %v; want %d (the part that fit written)", f.Name(), fi.Size(), err, limit)
		}
	}
	if n != wantN || err == nil || err.Error() != strings.Replace(wantErr.Error(), ordinary.Name(), raw.Name(), 1) {
		t.Fatalf("WriteAt = %d, %v; f.WriteAt = %d, %v", n, err, wantN, wantErr)
	}
}

// TestRawWrite: Write is a raw write(2) at the file's offset, which it shares with the
// ordinary calls around it; its errors, and its count when cut short, are f.Write's.
func TestRawWrite(t *testing.T) {
	quick(t)
	f := tempFile(t)
	data := bytes.Repeat([]byte("0123456789abcdef"), 40000)
	if _, err := f.Write([]byte("abc")); err != nil {
		t.Fatal(err)
	}
	rawly(t, "Write", true, func() {
		if n, err := Write(f, data); n != len(data) || err != nil {
			t.Fatalf("Write = %d, %v", n, err)
		}
	})
	if _, err := f.Write([]byte("xyz")); err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(f.Name())
	if err != nil {
		t.Fatal(err)
	}
	if want := append(append([]byte("abc"), data...), "xyz"...); !bytes.Equal(got, want) {
		t.Fatalf("the file holds %d bytes, not abc, the data and xyz in order", len(got))
	}

	path := filepath.Join(t.TempDir(), "ro")
	if err := os.WriteFile(path, []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	ro, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer ro.Close()
	_, want := ro.Write([]byte("y"))
	rawly(t, "Write on a read-only file", true, func() {
		n, err := Write(ro, []byte("y"))
		if n != 0 || !errors.Is(err, syscall.EBADF) || err.Error() != want.Error() {
			t.Fatalf("Write = %d, %v; want 0, %v", n, err, want)
		}
	})
	// A write larger than maxRawWrite (a log's rewrite) is the ordinary call.
	rawly(t, "a Write over maxRawWrite", false, func() {
		if n, err := Write(f, make([]byte, maxRawWrite+1)); n != maxRawWrite+1 || err != nil {
			t.Fatalf("Write = %d, %v", n, err)
		}
	})
	closed := tempFile(t)
	closed.Close()
	_, want = closed.Write([]byte("y"))
	rawly(t, "Write on a closed file", false, func() {
		if _, err := Write(closed, []byte("y")); !errors.Is(err, os.ErrClosed) || err.Error() != want.Error() {
			t.Fatalf("Write = %v, want %v", err, want)
		}
	})
}

// TestShortRawWrite: a write cut short by the file size limit (see TestShortWrite) returns
// what f.Write returns: the bytes that fit and EFBIG.
func TestShortRawWrite(t *testing.T) {
	quick(t)
	const limit = 10000
	limitFileSize(t, limit)
	data := bytes.Repeat([]byte("x"), 12288)
	ordinary, raw := tempFile(t), tempFile(t)
	wantN, wantErr := ordinary.Write(data)
	var n int
	var err error
	rawly(t, "a short Write", true, func() { n, err = Write(raw, data) })
	if wantN != limit || !errors.Is(wantErr, syscall.EFBIG) {
		t.Fatalf("f.Write = %d, %v: the limit did not cut the write", wantN, wantErr)
	}
	if n != wantN || err == nil || err.Error() != strings.Replace(wantErr.Error(), ordinary.Name(), raw.Name(), 1) {
		t.Fatalf("Write = %d, %v; f.Write = %d, %v", n, err, wantN, wantErr)
	}
}
