package filestore

import (
	"errors"
	"testing"
)

// A store's directory is locked while it is open: a second Open (another server on the
// same directory), Verify or Repair is refused with ErrInUse and changes nothing; once it
// is closed, or its process dies (abandon stands for it), the directory opens again.
// Before, a second server on the directory opened it and appended beside the first.
func TestOpenLocksTheDirectory(t *testing.T) {
	dir := t.TempDir()
	s := openInit(t, dir, Options{})
	if _, err := Open(dir, Options{}); !errors.Is(err, ErrInUse) {
		t.Fatalf("second Open of a store in use: %v, want ErrInUse", err)
	}
	if _, err := Verify(dir, Options{}); !errors.Is(err, ErrInUse) {
		t.Fatalf("Verify of a store in use: %v, want ErrInUse", err)
	}
	if _, err := Repair(dir, Options{}); !errors.Is(err, ErrInUse) {
		t.Fatalf("Repair of a store in use: %v, want ErrInUse", err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if r, err := Verify(dir, Options{}); err != nil || len(r.Problems) != 0 {
		t.Fatalf("Verify once closed: %v %v", err, r.Problems)
	}
	s, err := Open(dir, Options{})
	if err != nil {
		t.Fatalf("Open once closed: %v", err)
	}
	s.abandon() // a killed process: its lock goes with it
	s, err = Open(dir, Options{})
	if err != nil {
		t.Fatalf("Open after a crash: %v", err)
	}
	_ = s.Close()
}
