package filestore

import (
	"sync"
	"testing"
	"time"

	"github.com/starling-io/starling/stores"
	"github.com/starling-io/starling/stores/storetest"
)

// The whole suite with a pass every millisecond racing the writers.
func TestSuiteAutoSync(t *testing.T) {
	storetest.Run(t, opener(Options{NoSync: true, AutoSync: time.Millisecond, SegmentBytes: 1500, CompactBytes: 2048}),
		storetest.Caps{Durable: true, Crash: crash})
}

type autoPass struct {
	at  time.Time
	n   int
	err error
}

// With NoSync and AutoSync, what a Sync handed to the OS is fsynced by the next pass,
// within the interval; a pass with nothing written syncs nothing; Close runs a last pass.
func TestAutoSyncWithinInterval(t *testing.T) {
	const interval = 200 * time.Millisecond
	passes := make(chan autoPass, 100)
	// Each pass waits in its hook until the test resumes it, so that a pass cannot run in
	// the middle of the Append and the Sync below, taking part of their files (an Append
	// that rolls segments hands some over before the Sync); closed, passes run freely.
	resume := make(chan struct{})
	var free sync.Once
	runFree := func() { free.Do(func() { close(resume) }) }
	t.Cleanup(runFree)
	s, err := Open(t.TempDir(), Options{NoSync: true, AutoSync: interval, SegmentBytes: 1000,
		Hooks: Hooks{AfterAutoSync: func(n int, err error) {
			passes <- autoPass{time.Now(), n, err}
			<-resume
		}}})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Init(stores.ServerInfo{ClusterID: "c"}); err != nil {
		t.Fatal(err)
	}
	ch, err := s.CreateChannel("foo", 1)
	if err != nil {
		t.Fatal(err)
	}
	// Drain the passes that cover the creation, then one with nothing to do, which is held
	// in its hook until the Sync returned.
	for p := range passes {
		if p.err != nil {
			t.Fatal(p.err)
		}
		if p.n == 0 {
			break
		}
		resume <- struct{}{}
	}
	if err := ch.Msgs.Append(genMsgs(1, 100)); err != nil { // rolls segments (seal, index, dir)
		t.Fatal(err)
	}
	if err := ch.Msgs.Sync(); err != nil {
		t.Fatal(err)
	}
	synced := time.Now()
	resume <- struct{}{}
	p := <-passes
	resume <- struct{}{}
	if p.err != nil || p.n < 4 {
		t.Fatalf("first pass after a Sync: %d synced, %v", p.n, p.err)
	}
	// The pass may run late on a loaded machine; what matters is that it comes by itself
	// within about one interval, not at the next Sync or Close.
	if d := p.at.Sub(synced); d > interval+2*time.Second {
		t.Fatalf("fsynced %v after the Sync, interval %v", d, interval)
	}
	if p := <-passes; p.n != 0 {
		t.Fatalf("idle pass synced %d", p.n)
	}
	runFree()
	if err := ch.Msgs.Append(genMsgs(101, 1)); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	for {
		select {
		case p := <-passes:
			if p.n > 0 {
				return // Close's last pass
			}
		default:
			t.Fatal("Close ran no last pass")
		}
	}
}
