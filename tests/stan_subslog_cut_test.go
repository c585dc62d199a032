package tests

import (
	"encoding/binary"
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

// TestStanMetaLogCutAfterCleanStopIsRefused: a meta.log that lost records after a clean
// shutdown — here its last batch, the clean close's records that hold every tail and
// subs.log to what the shutdown synced — keeps the server from starting, with an error
// naming meta.log. Before, the cut was taken for a crash's torn tail: the server started,
// no longer checked the subs.log cut with it, and served the durable from what was left
// (its 5 acknowledged messages delivered again).
func TestStanMetaLogCutAfterCleanStopIsRefused(t *testing.T) {
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
	must(t, sub.Close())
	must(t, sc.Close())
	stopClean(t, p)
	meta := filepath.Join(dir, "meta.log")
	must(t, os.Truncate(meta, lastBatch(t, meta)))
	logs, _ := filepath.Glob(filepath.Join(dir, "ch*", "subs.log"))
	if len(logs) != 1 {
		t.Fatalf("subs.log files: %v", logs)
	}
	must(t, os.Truncate(logs[0], 40))

	port, mport := freePort(t), freePort(t)
	p = startProc(t, starlingBinary(t), "-a", "127.0.0.1", "-p", fmt.Sprint(port), "-m", fmt.Sprint(mport),
		"-cid", "test-cluster", "--store", "file", "--dir", dir)
	select {
	case err := <-p.done:
		p.done <- err // for the cleanup's wait
		if err == nil || !strings.Contains(p.out.String(), meta) {
			t.Fatalf("exit %v without naming %s:\n%s", err, meta, p.out.String())
		}
	case <-time.After(15 * time.Second):
		sc, err := stan.Connect("test-cluster", "c1", stan.NatsURL(fmt.Sprintf("nats://127.0.0.1:%d", port)))
		if err == nil {
			col = newStanMsgs()
			_, err = sc.Subscribe("orders", col.add, stan.DurableName("d"), stan.DeliverAllAvailable(), stan.SetManualAckMode())
			time.Sleep(500 * time.Millisecond)
			sc.Close()
		}
		t.Fatalf("the server started on a cut meta.log (subscribe: %v, %d acknowledged messages delivered again)", err, len(col.snapshot()))
	}
}

// lastBatch returns the offset of the last batch frame of the filestore log at path
// (stores/filestore/FORMAT.md: a 16-byte header, then [len u32][crc u32][payload] frames; a
// batch's payload starts with 'B').
func lastBatch(t *testing.T, path string) int64 {
	t.Helper()
	data, err := os.ReadFile(path)
	must(t, err)
	last := int64(-1)
	for off := 16; off+9 <= len(data); {
		n := int(binary.LittleEndian.Uint32(data[off:]))
		if n == 0 || off+8+n > len(data) {
			break
		}
		if data[off+8] == 'B' {
			last = int64(off)
		}
		off += 8 + n
	}
	if last < 0 {
		t.Fatalf("no batch in %s", path)
	}
	return last
}
