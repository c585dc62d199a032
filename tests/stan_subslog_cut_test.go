package tests

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	stan "github.com/nats-io/stan.go"
)

// TestStanSubsLogCutAfterCleanStopIsRefused: a channel whose subs.log lost records after a
// clean shutdown (the file system lost synced data, a hand edit) is refused at the next
// start — a subscription on it is refused with an error naming the file — and its durable
// is never served from what is left. Before, the cut was taken for a crash's torn tail: the
// durable came back without its acknowledgements, or not at all, and its acknowledged
// messages were delivered again (all 5 here).
func TestStanSubsLogCutAfterCleanStopIsRefused(t *testing.T) {
	dir := t.TempDir()
	p, url, _ := startBinary(t, "-cid", "test-cluster", "--store", "file", "--dir", dir)
	sc, err := stan.Connect("test-cluster", "c1", stan.NatsURL(url))
	must(t, err)
	for i := 1; i <= 5; i++ {
		must(t, sc.Publish("orders", []byte(fmt.Sprint("order ", i))))
	}
	col := newStanMsgs()
	sub, err := sc.Subscribe("orders", col.add, stan.DurableName("d"), stan.DeliverAllAvailable(), stan.SetManualAckMode())
	must(t, err)
	for _, m := range col.waitN(t, 5, 10*time.Second) {
		must(t, m.Ack())
	}
	must(t, sub.Close()) // answered once the acks before it are durable
	must(t, sc.Close())
	must(t, p.cmd.Process.Signal(syscall.SIGTERM))
	if err := p.wait(t, 10*time.Second); err != nil {
		t.Fatalf("exit after SIGTERM: %v\n%s", err, p.out.String())
	}
	logs, _ := filepath.Glob(filepath.Join(dir, "ch*", "subs.log"))
	if len(logs) != 1 {
		t.Fatalf("subs.log files: %v", logs)
	}
	must(t, os.Truncate(logs[0], 40)) // into the subscription records the clean shutdown synced

	_, url, _ = startBinary(t, "-cid", "test-cluster", "--store", "file", "--dir", dir)
	sc, err = stan.Connect("test-cluster", "c1", stan.NatsURL(url))
	must(t, err)
	defer sc.Close()
	col = newStanMsgs()
	_, err = sc.Subscribe("orders", col.add, stan.DurableName("d"), stan.DeliverAllAvailable(), stan.SetManualAckMode())
	if err == nil {
		time.Sleep(500 * time.Millisecond)
		t.Fatalf("the durable was served from a cut subs.log: %d acknowledged messages delivered again", len(col.snapshot()))
	}
	if !strings.Contains(err.Error(), logs[0]) {
		t.Fatalf("subscribe refused without naming %s: %v", logs[0], err)
	}
}
