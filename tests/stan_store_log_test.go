package tests

import (
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	stan "github.com/nats-io/stan.go"
)

// TestStanDamagedChannelLoggedAtStart: the server logs what the file store's recovery found
// — here a channel refused because its tail segment was cut after a clean shutdown — naming
// the file. Before, the binary opened the store without a logger: recovery's lines (channel
// damaged, torn tail cut, index rebuilt) went nowhere, and the operator learnt of the damage
// only from clients' errors.
func TestStanDamagedChannelLoggedAtStart(t *testing.T) {
	dir := t.TempDir()
	p, url, _ := startBinary(t, "-cid", "test-cluster", "--store", "file", "--dir", dir)
	sc, err := stan.Connect("test-cluster", "pub", stan.NatsURL(url))
	must(t, err)
	for i := 1; i <= 5; i++ {
		must(t, sc.Publish("orders", []byte(fmt.Sprint("order ", i))))
	}
	must(t, sc.Close())
	must(t, p.cmd.Process.Signal(syscall.SIGTERM))
	if err := p.wait(t, 10*time.Second); err != nil {
		t.Fatalf("exit after SIGTERM: %v\n%s", err, p.out.String())
	}
	segs, _ := filepath.Glob(filepath.Join(dir, "ch*", "*.seg"))
	if len(segs) == 0 {
		t.Fatal("no segment")
	}
	sort.Strings(segs)
	tail := segs[len(segs)-1]
	fi, err := os.Stat(tail)
	must(t, err)
	must(t, os.Truncate(tail, fi.Size()/2)) // acknowledged messages lost

	p, _, _ = startBinary(t, "-cid", "test-cluster", "--store", "file", "--dir", dir)
	waitFor(t, 5*time.Second, func() error {
		if out := p.out.String(); !strings.Contains(out, "channel damaged") || !strings.Contains(out, tail) {
			return fmt.Errorf("the server's log does not report the damaged channel, naming %s:\n%s", tail, out)
		}
		return nil
	})
}
