package tests

import (
	"context"
	"fmt"
	"log/slog"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/stan.go"

	"github.com/starling-io/starling/core"
	"github.com/starling-io/starling/raftlog"
	"github.com/starling-io/starling/stores/filestore"
	"github.com/starling-io/starling/streaming"
)

// diskFullServer is core + streaming over a file store in dir whose writes fail with
// ENOSPC (after half of what they were given) while *full is set: a disk that fills up
// and is freed again, without a restart.
func diskFullServer(t *testing.T, dir string, full *atomic.Bool, logs *syncBuffer) (*stanServer, func()) {
	t.Helper()
	cs, err := core.New(core.Options{Host: "127.0.0.1", Port: -1})
	must(t, err)
	must(t, cs.Start())
	conn, err := cs.Connect("_STARLING-test")
	must(t, err)
	store, err := filestore.Open(dir, filestore.Options{Hooks: filestore.Hooks{
		Write: func(path string, p []byte, write func([]byte) (int, error)) (int, error) {
			if full.Load() {
				n, _ := write(p[:len(p)/2])
				return n, syscall.ENOSPC
			}
			return write(p)
		},
	}})
	must(t, err)
	st, err := streaming.New(streaming.InProcess(conn), store, raftlog.Standalone,
		streaming.Options{ClusterID: "test-cluster", Logger: slog.New(slog.NewTextHandler(logs, nil))})
	must(t, err)
	must(t, st.Start())
	stop := func() {
		_ = st.Shutdown()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = cs.Shutdown(ctx)
	}
	t.Cleanup(stop)
	return &stanServer{core: cs, st: st, url: cs.ClientURL()}, stop
}

// A channel that hit a full disk works again once space is freed, without a restart, and
// nothing acknowledged is lost (audit finding 8: the channel failed every publish until a
// restart). While the disk is full, publishes get error PubAcks, nothing is delivered that
// is not durable, and after it is freed the subscriber gets exactly the acknowledged
// messages, in order; a restart finds the same.
func TestDiskFullChannelRecovers(t *testing.T) {
	dir := t.TempDir()
	var full atomic.Bool
	logs := &syncBuffer{}
	s, stop := diskFullServer(t, dir, &full, logs)
	sc, err := stan.Connect("test-cluster", "df-client", stan.NatsURL(s.url), stan.PubAckWait(5*time.Second))
	must(t, err)
	got := newStanMsgs()
	_, err = sc.Subscribe("df", got.add, stan.DeliverAllAvailable(), stan.DurableName("d"))
	must(t, err)
	var acked []string
	pub := func(i int) error {
		data := fmt.Sprintf("m%d", i)
		err := sc.Publish("df", []byte(data))
		if err == nil {
			acked = append(acked, data)
		}
		return err
	}
	for i := 1; i <= 20; i++ {
		must(t, pub(i))
	}
	got.waitN(t, 20, 10*time.Second)

	full.Store(true)
	failed := 0
	for i := 21; i <= 30; i++ {
		if pub(i) != nil {
			failed++
		}
	}
	if failed == 0 {
		t.Fatal("no publish failed while the disk was full")
	}
	full.Store(false)
	for i := 31; i <= 50; i++ {
		if err := pub(i); err != nil {
			t.Fatalf("publish %d after space was freed: %v\nserver log:\n%s", i, err, logs.String())
		}
	}
	msgs := got.waitN(t, len(acked), 10*time.Second)
	check := func(msgs []*stan.Msg) {
		t.Helper()
		if len(msgs) != len(acked) {
			t.Fatalf("subscriber got %d messages, %d acknowledged", len(msgs), len(acked))
		}
		for i, m := range msgs {
			if string(m.Data) != acked[i] || m.Sequence != uint64(i+1) {
				t.Fatalf("message %d: seq %d %q, want seq %d %q", i, m.Sequence, m.Data, i+1, acked[i])
			}
		}
	}
	check(msgs)
	sc.Close()
	stop()

	// After a restart the channel holds exactly the acknowledged messages.
	var never atomic.Bool
	s2, _ := diskFullServer(t, dir, &never, &syncBuffer{})
	sc2, err := stan.Connect("test-cluster", "df-reader", stan.NatsURL(s2.url))
	must(t, err)
	defer sc2.Close()
	again := newStanMsgs()
	_, err = sc2.Subscribe("df", again.add, stan.DeliverAllAvailable())
	must(t, err)
	check(again.waitN(t, len(acked), 10*time.Second))
	time.Sleep(100 * time.Millisecond)
	if n := len(again.snapshot()); n != len(acked) {
		t.Fatalf("after the restart %d messages, %d acknowledged", n, len(acked))
	}
}

// A channel whose store failed heals by itself once space is freed, without waiting for a
// publish: a subscriber that joins afterwards gets the acknowledged messages. Before, the
// failed store refused every read until a publish rolled it back, so with no publisher the
// channel delivered nothing (and its age expiry stopped) until a restart.
func TestDiskFullChannelHealsWithoutAPublish(t *testing.T) {
	dir := t.TempDir()
	var full atomic.Bool
	logs := &syncBuffer{}
	s, _ := diskFullServer(t, dir, &full, logs)
	sc, err := stan.Connect("test-cluster", "df-pub", stan.NatsURL(s.url), stan.PubAckWait(5*time.Second))
	must(t, err)
	defer sc.Close()
	for i := 1; i <= 10; i++ {
		must(t, sc.Publish("heal", []byte(fmt.Sprint("m", i))))
	}
	full.Store(true)
	if err := sc.Publish("heal", []byte("refused")); err == nil {
		t.Fatal("a publish succeeded on a full disk")
	}
	full.Store(false)
	reader, err := stan.Connect("test-cluster", "df-reader", stan.NatsURL(s.url))
	must(t, err)
	defer reader.Close()
	got := newStanMsgs()
	_, err = reader.Subscribe("heal", got.add, stan.DeliverAllAvailable())
	must(t, err)
	msgs := got.waitN(t, 10, 10*time.Second)
	for i, m := range msgs {
		if want := fmt.Sprint("m", i+1); string(m.Data) != want || m.Sequence != uint64(i+1) {
			t.Fatalf("message %d: seq %d %q, want %q\nserver log:\n%s", i, m.Sequence, m.Data, want, logs.String())
		}
	}
}
