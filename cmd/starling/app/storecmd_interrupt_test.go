package app

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestStoreImportInterrupted: Ctrl-C (SIGINT) during `starling store import` leaves no
// temporary directory (a partial copy of the whole store) behind, nor the target it made.
func TestStoreImportInterrupted(t *testing.T) {
	if args := os.Getenv("STARLING_IMPORT_HELPER"); args != "" {
		os.Exit(Execute(context.Background(), strings.Split(args, "\n"), os.Stdout, os.Stderr))
	}
	nss := t.TempDir()
	writeNSSStore(t, nss, 400000)
	parent := t.TempDir()
	target := filepath.Join(parent, "new")
	cmd := exec.Command(os.Args[0], "-test.run=^TestStoreImportInterrupted$")
	cmd.Env = append(os.Environ(), "STARLING_IMPORT_HELPER="+strings.Join([]string{"store", "import", "--from-nss", nss, "--dir", target, "--store", "bolt"}, "\n"))
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	t.Cleanup(func() { _ = cmd.Process.Kill() })
	deadline := time.Now().Add(30 * time.Second)
	for {
		if tmp, _ := filepath.Glob(filepath.Join(target, ".new.import-*")); len(tmp) > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the import did not start")
		}
		time.Sleep(5 * time.Millisecond)
	}
	start := time.Now()
	_ = cmd.Process.Signal(syscall.SIGINT)
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		t.Fatal("the import did not stop")
	}
	t.Logf("stopped in %v", time.Since(start))
	if _, err := os.Stat(target); err == nil {
		t.Skip("the import finished before the signal")
	}
	if left, _ := os.ReadDir(parent); len(left) > 0 { // the target it made, and its temporary directory in it
		t.Fatalf("interrupted import left %v", left)
	}
}
