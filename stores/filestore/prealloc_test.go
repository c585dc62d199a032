package filestore

import (
	"bytes"
	"log/slog"
	"os"
	"strings"
	"testing"

	"github.com/starling-io/starling/stores"
)

// A synced tail is preallocated past its records; sealing and a clean close cut it back, and
// after a crash the next open cuts the zeros without calling them torn, keeping every
// synced message.
func TestPreallocatedTail(t *testing.T) {
	dir := t.TempDir()
	var logs bytes.Buffer
	opts := Options{Logger: slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))}
	s, ch := openWithFoo(t, dir, opts)
	const n = 50
	for i, m := range genMsgs(1, n) {
		if err := ch.Msgs.Append([]stores.Msg{m}); err != nil {
			t.Fatal(err)
		}
		if err := ch.Msgs.Sync(); err != nil {
			t.Fatalf("sync %d: %v", i, err)
		}
	}
	ms := ch.Msgs.(*msgStore)
	ms.mu.RLock()
	seg := ms.segs[len(ms.segs)-1]
	written, alloc := seg.size, seg.alloc
	ms.mu.RUnlock()
	fi, err := os.Stat(seg.path)
	if err != nil {
		t.Fatal(err)
	}
	if alloc == 0 {
		t.Skipf("the file system under %s does not preallocate: %s", dir, logs.String())
	}
	if fi.Size() != alloc || alloc <= written {
		t.Fatalf("tail file %d bytes, allocated %d, written %d", fi.Size(), alloc, written)
	}

	// A crash: the zeros stay; verify finds nothing wrong, and the next open cuts them
	// quietly and keeps all n messages.
	s.abandon()
	rep, err := Verify(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Problems) > 0 {
		t.Fatalf("verify of a preallocated tail after a crash: %+v", rep.Problems)
	}
	logs.Reset()
	s, err = Open(dir, opts)
	if err != nil {
		t.Fatal(err)
	}
	rs, err := s.Recover()
	if err != nil {
		t.Fatal(err)
	}
	if got := rs.Channels[0].Channel.Msgs.State(); got.Msgs != n || got.Last != n {
		t.Fatalf("after the crash: %+v, want %d messages", got, n)
	}
	if out := logs.String(); strings.Contains(out, "torn tail") || !strings.Contains(out, "zero tail cut") {
		t.Fatalf("recovery of a preallocated tail logged:\n%s", out)
	}
	if fi, _ := os.Stat(seg.path); fi.Size() != written {
		t.Fatalf("after recovery the tail is %d bytes, want %d", fi.Size(), written)
	}

	// Appends after recovery preallocate again; a clean close leaves the records only.
	ch = rs.Channels[0].Channel
	if err := ch.Msgs.Append(genMsgs(n+1, 1)); err != nil {
		t.Fatal(err)
	}
	if err := ch.Msgs.Sync(); err != nil {
		t.Fatal(err)
	}
	ms = ch.Msgs.(*msgStore)
	ms.mu.RLock()
	seg = ms.segs[len(ms.segs)-1]
	written, alloc = seg.size, seg.alloc
	ms.mu.RUnlock()
	if alloc <= written {
		t.Fatalf("not preallocated again: allocated %d, written %d", alloc, written)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	fi, _ = os.Stat(seg.path)
	if fi.Size() < written || fi.Size() >= alloc {
		t.Fatalf("after a clean close the tail is %d bytes (written %d, allocated %d)", fi.Size(), written, alloc)
	}
	logs.Reset()
	s, err = Open(dir, opts)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if _, err := s.Recover(); err != nil {
		t.Fatal(err)
	}
	if out := logs.String(); strings.Contains(out, "tail cut") {
		t.Fatalf("a cleanly closed tail was cut at open:\n%s", out)
	}
}

// Sealing a preallocated tail cuts it to its records: a sealed segment's size is checked
// against its index.
func TestPreallocatedTailSealed(t *testing.T) {
	dir := t.TempDir()
	s, ch := openWithFoo(t, dir, Options{SegmentMsgs: 10})
	defer s.Close()
	for _, m := range genMsgs(1, 35) {
		if err := ch.Msgs.Append([]stores.Msg{m}); err != nil {
			t.Fatal(err)
		}
		if err := ch.Msgs.Sync(); err != nil {
			t.Fatal(err)
		}
	}
	ms := ch.Msgs.(*msgStore)
	ms.mu.RLock()
	defer ms.mu.RUnlock()
	for _, seg := range ms.segs[:len(ms.segs)-1] {
		fi, err := os.Stat(seg.path)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Size() != seg.size {
			t.Errorf("sealed %s: %d bytes on disk, %d written", seg.path, fi.Size(), seg.size)
		}
	}
}
