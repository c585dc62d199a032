package boltstore

import (
	"path/filepath"
	"testing"
	"time"

	"github.com/starling-io/starling/stores/storetest"
)

// The whole suite with an fdatasync every millisecond beside the commits.
func TestSuiteAutoSync(t *testing.T) {
	storetest.Run(t, open(Options{NoSync: true, AutoSync: time.Millisecond}), storetest.Caps{Durable: true, Crash: crash})
}

// With NoSync and AutoSync the file is fdatasynced by itself within about the interval
// after a commit; without AutoSync never.
func TestAutoSyncWithinInterval(t *testing.T) {
	const interval = 200 * time.Millisecond
	synced := make(chan time.Time, 100)
	s, err := Open(filepath.Join(t.TempDir(), "s.db"), Options{NoSync: true, AutoSync: interval,
		Hooks: Hooks{AfterAutoSync: func(err error) {
			if err != nil {
				t.Error(err)
			}
			synced <- time.Now()
		}}})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ch, err := s.CreateChannel("foo", 1)
	if err != nil {
		t.Fatal(err)
	}
	if err := ch.Msgs.Append(batchAt(1, 10)); err != nil {
		t.Fatal(err)
	}
	if err := ch.Msgs.Sync(); err != nil {
		t.Fatal(err)
	}
	committed := time.Now()
	if d := (<-synced).Sub(committed); d > interval+2*time.Second {
		t.Fatalf("fdatasync %v after the commit, interval %v", d, interval)
	}

	s2, err := Open(filepath.Join(t.TempDir(), "s.db"), Options{NoSync: true,
		Hooks: Hooks{AfterAutoSync: func(error) { t.Error("AutoSync 0 synced") }}})
	if err != nil {
		t.Fatal(err)
	}
	if s2.stopSync != nil {
		t.Fatal("AutoSync 0 started a goroutine")
	}
	s2.Close()
}
