package nssimport

import (
	"bytes"
	"fmt"
	"net"
	"os"
	"os/exec"
	"syscall"
	"testing"
	"time"

	stan "github.com/nats-io/stan.go"

	"github.com/starling-io/starling/stores"
)

// The tests of this file run the real nats-streaming-server ($NSS_BIN, or the one `make
// tools` installs) to write the store they import; they are skipped without it.

type realNSS struct {
	cmd  *exec.Cmd
	url  string
	out  bytes.Buffer
	done chan struct{}
}

func nssBin(t *testing.T) string {
	p := os.Getenv("NSS_BIN")
	if p == "" {
		p = "../../bin/nats-streaming-server"
	}
	if _, err := os.Stat(p); err != nil {
		t.Skipf("nats-streaming-server not installed (set NSS_BIN or run `make tools`): %v", err)
	}
	return p
}

func freeTCPPort(t *testing.T) int {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// startNSS runs nss on a file store in dir; it is killed at the end of the test.
func startNSS(t *testing.T, dir string, extra ...string) *realNSS {
	bin := nssBin(t)
	port := freeTCPPort(t)
	args := append([]string{"-cid", "test-cluster", "-store", "file", "-dir", dir, "-a", "127.0.0.1", "-p", fmt.Sprint(port)}, extra...)
	n := &realNSS{cmd: exec.Command(bin, args...), url: fmt.Sprintf("nats://127.0.0.1:%d", port), done: make(chan struct{})}
	n.cmd.Stdout, n.cmd.Stderr = &n.out, &n.out
	if err := n.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { _ = n.cmd.Wait(); close(n.done) }()
	t.Cleanup(func() { _ = n.cmd.Process.Kill(); <-n.done })
	return n
}

// stop stops nss cleanly (SIGTERM) and waits for it.
func (n *realNSS) stop(t *testing.T) {
	_ = n.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-n.done:
	case <-time.After(20 * time.Second):
		t.Fatal("nats-streaming-server did not stop")
	}
}

func (n *realNSS) connect(t *testing.T, id string) stan.Conn {
	var err error
	for i := 0; i < 100; i++ {
		var sc stan.Conn
		if sc, err = stan.Connect("test-cluster", id, stan.NatsURL(n.url), stan.ConnectWait(time.Second)); err == nil {
			return sc
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatal(err)
	return nil
}

// TestRecordsPastTheIndex: msgs.1.idx lost its last entries (written after the data file:
// a crash without --file_sync can keep the data and not the index), while msgs.1.dat
// holds the messages and a durable had them delivered. They are imported, with a note.
func TestRecordsPastTheIndex(t *testing.T) {
	dir := t.TempDir()
	n := startNSS(t, dir)
	sc := n.connect(t, "app")
	for i := 1; i <= 10; i++ {
		if err := sc.Publish("orders", []byte(fmt.Sprint("order ", i))); err != nil {
			t.Fatal(err)
		}
	}
	got := make(chan uint64, 10)
	sub, err := sc.Subscribe("orders", func(m *stan.Msg) { got <- m.Sequence }, stan.DurableName("dur"),
		stan.DeliverAllAvailable(), stan.SetManualAckMode(), stan.MaxInflight(20), stan.AckWait(time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 10; i++ {
		select {
		case <-got:
		case <-time.After(10 * time.Second):
			t.Fatal("durable got too few messages")
		}
	}
	time.Sleep(200 * time.Millisecond) // nss records the deliveries
	if err := sub.Close(); err != nil {
		t.Fatal(err)
	}
	_ = sc.Close()
	n.stop(t)

	idx := dir + "/orders/msgs.1.idx"
	if err := os.Truncate(idx, versionSize+7*idxEntrySize); err != nil {
		t.Fatal(err)
	}
	src, err := Scan(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	ch := src.Channels[0]
	if ch.First != 1 || ch.Last != 10 || ch.Msgs != 10 {
		t.Fatalf("orders: first %d last %d msgs %d, want 1 10 10 (notes %q)", ch.First, ch.Last, ch.Msgs, src.Notes)
	}
	if len(ch.Subs) != 1 || len(ch.Subs[0].Pending) != 10 || ch.Subs[0].State.LastSent != 10 {
		t.Fatalf("durable %+v", ch.Subs)
	}
	var sum bytes.Buffer
	src.WriteSummary(&sum)
	if !bytes.Contains(sum.Bytes(), []byte("3 message(s) past its last entry")) {
		t.Fatalf("no note of the messages past the index:\n%s", sum.String())
	}
	target := t.TempDir() + "/new"
	if err := Import(src, target, openFile, nil); err != nil {
		t.Fatal(err)
	}
	st, err := openFile(target)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	rs, err := st.Recover()
	if err != nil || rs == nil {
		t.Fatalf("recover: %v", err)
	}
	var m stores.Msg
	if err := rs.Channels[0].Channel.Msgs.Load(10, &m); err != nil || string(m.Data) != "order 10" {
		t.Fatalf("message 10: %q %v", m.Data, err)
	}
}
