package tests

import (
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/stan.go"
)

// A second server started on a file store directory in use is refused with a line naming
// the directory, and the first goes on serving with nothing lost. Before, the second
// opened the store and appended to the same files as the first (bolt's file and raft.db
// were locked; the file store was not).
func TestSecondServerOnAFileStoreIsRefused(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	_, url, _ := startBinary(t, "--store", "file", "--dir", dir)
	sc, err := stan.Connect("test-cluster", "first", stan.NatsURL(url))
	must(t, err)
	defer sc.Close()
	for i := range 10 {
		must(t, sc.Publish("orders", []byte(fmt.Sprint("before-", i))))
	}

	second := startProc(t, starlingBinary(t), "-a", "127.0.0.1", "-p", fmt.Sprint(freePort(t)), "-m", "0",
		"--store", "file", "--dir", dir)
	if err := second.wait(t, 10*time.Second); err == nil {
		t.Fatalf("the second server exited 0; output:\n%s", second.out.String())
	}
	if out := second.out.String(); !strings.Contains(out, "in use by another process") || !strings.Contains(out, dir) {
		t.Fatalf("the second server's refusal does not say the store in %s is in use:\n%s", dir, out)
	}

	for i := range 10 {
		must(t, sc.Publish("orders", []byte(fmt.Sprint("after-", i))))
	}
	got := make(chan uint64, 20)
	sub, err := sc.Subscribe("orders", func(m *stan.Msg) { got <- m.Sequence }, stan.DeliverAllAvailable())
	must(t, err)
	defer sub.Unsubscribe()
	for want := uint64(1); want <= 20; want++ {
		select {
		case seq := <-got:
			if seq != want {
				t.Fatalf("got sequence %d, want %d", seq, want)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("no message %d from the first server", want)
		}
	}
}
