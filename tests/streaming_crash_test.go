package tests

import (
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"slices"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/stan.go"
)

// Crash safety of the streaming state beyond messages (issue 10 §1): subscription records,
// sent/ack cursors and client registrations are durable before the reply that confirms
// them, and acks no later than the next group commit. Each test runs the real binary on
// the file and the bolt store, kills it with SIGKILL (or stops it cleanly) and checks what
// real stan.go clients see after a restart on the same directory and ports.

// crashStores are the stores that survive a restart.
var crashStores = []string{"file", "bolt"}

// binaryOn starts the binary on fixed ports (so a restart is at the same address) and
// waits until it accepts NATS clients.
func binaryOn(t *testing.T, port, mport int, args ...string) *proc {
	t.Helper()
	p := startProc(t, starlingBinary(t), append([]string{"-a", "127.0.0.1", "-p", fmt.Sprint(port), "-m", fmt.Sprint(mport)}, args...)...)
	url := fmt.Sprintf("nats://127.0.0.1:%d", port)
	waitFor(t, 10*time.Second, func() error {
		nc, err := nats.Connect(url)
		if err != nil {
			return err
		}
		nc.Close()
		return nil
	})
	// The monitoring listener opens just after the client one: a test that reads it at once
	// must not race it.
	waitFor(t, 10*time.Second, func() error {
		c, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", mport))
		if err != nil {
			return err
		}
		return c.Close()
	})
	return p
}

// killHard SIGKILLs p and waits for it to exit.
func killHard(t *testing.T, p *proc) {
	t.Helper()
	must(t, p.cmd.Process.Signal(syscall.SIGKILL))
	_ = p.wait(t, 10*time.Second)
}

// stopClean SIGTERMs p and waits for a clean exit.
func stopClean(t *testing.T, p *proc) {
	t.Helper()
	must(t, p.cmd.Process.Signal(syscall.SIGTERM))
	if err := p.wait(t, 20*time.Second); err != nil {
		t.Fatalf("clean stop: %v\n%s", err, p.out.String())
	}
}

// stanMsgs collects stan.go deliveries with their redelivered flag.
type stanMsgs struct {
	mu   sync.Mutex
	msgs []*stan.Msg
	more chan struct{}
}

func newStanMsgs() *stanMsgs { return &stanMsgs{more: make(chan struct{}, 1)} }

func (c *stanMsgs) add(m *stan.Msg) {
	c.mu.Lock()
	c.msgs = append(c.msgs, m)
	c.mu.Unlock()
	select {
	case c.more <- struct{}{}:
	default:
	}
}

// waitN waits until at least n messages arrived and returns a copy of them.
func (c *stanMsgs) waitN(t *testing.T, n int, d time.Duration) []*stan.Msg {
	t.Helper()
	deadline := time.After(d)
	for {
		c.mu.Lock()
		if len(c.msgs) >= n {
			out := slices.Clone(c.msgs)
			c.mu.Unlock()
			return out
		}
		got := len(c.msgs)
		c.mu.Unlock()
		select {
		case <-c.more:
		case <-deadline:
			t.Fatalf("got %d of %d messages in %v", got, n, d)
		}
	}
}

func (c *stanMsgs) snapshot() []*stan.Msg {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Clone(c.msgs)
}

// A durable with 1..100 acknowledged and 101..150 in flight, killed with SIGKILL, resumes
// after the restart at its last synced ack: 101..151 come back, every one flagged
// redelivered, and none of 1..100 — whether it resubscribes with the default start
// position (new only: today's main lost 101..150) or with DeliverAllAvailable (today's
// main resent 1..200 unflagged).
func TestCrashDurableResumesAtLastAck(t *testing.T) {
	for _, store := range crashStores {
		for _, start := range []string{"new-only", "all"} {
			t.Run(store+"/"+start, func(t *testing.T) { crashDurableResume(t, store, start == "all") })
		}
	}
}

func crashDurableResume(t *testing.T, store string, all bool) {
	dir := t.TempDir()
	port, mport := freePort(t), freePort(t)
	p := binaryOn(t, port, mport, "--store", store, "--dir", dir)
	url := fmt.Sprintf("nats://127.0.0.1:%d", port)
	sc, err := stan.Connect("test-cluster", "dur-client", stan.NatsURL(url))
	must(t, err)
	publishN(t, sc, "ch", 1, 150)
	got := newStanMsgs()
	sub, err := sc.Subscribe("ch", func(m *stan.Msg) {
		if m.Sequence <= 100 {
			_ = m.Ack()
		}
		got.add(m)
	}, stan.DurableName("d1"), stan.DeliverAllAvailable(), stan.SetManualAckMode(),
		stan.MaxInflight(1000), stan.AckWait(60*time.Second))
	must(t, err)
	got.waitN(t, 150, 10*time.Second)
	// A publish after the acks (same connection, so processed after them): its PubAck
	// follows a group commit that covers them and the "sent" records of 101..150.
	must(t, sc.Publish("ch", []byte("m151")))
	got.waitN(t, 151, 10*time.Second)
	_ = sub
	killHard(t, p)
	sc.Close()

	binaryOn(t, port, mport, "--store", store, "--dir", dir)
	sc2, err := stan.Connect("test-cluster", "dur-client", stan.NatsURL(url))
	must(t, err)
	defer sc2.Close()
	again := newStanMsgs()
	opts := []stan.SubscriptionOption{stan.DurableName("d1"), stan.SetManualAckMode(), stan.MaxInflight(1000), stan.AckWait(60 * time.Second)}
	if all {
		opts = append(opts, stan.DeliverAllAvailable())
	}
	_, err = sc2.Subscribe("ch", func(m *stan.Msg) { again.add(m); _ = m.Ack() }, opts...)
	must(t, err)
	msgs := again.waitN(t, 51, 10*time.Second)
	var seqs []uint64
	for _, m := range msgs {
		seqs = append(seqs, m.Sequence)
		if !m.Redelivered {
			t.Errorf("seq %d redelivered after the crash without the flag", m.Sequence)
		}
	}
	slices.Sort(seqs)
	if !equalSeqs(seqs, seqRange(101, 151)) {
		t.Fatalf("after the crash the durable got %v, want 101..151", seqs)
	}
	must(t, sc2.Publish("ch", []byte("m152")))
	msgs = again.waitN(t, 52, 10*time.Second)
	if m := msgs[51]; m.Sequence != 152 || m.Redelivered {
		t.Fatalf("new message after the resume: seq %d redelivered %v", m.Sequence, m.Redelivered)
	}
	time.Sleep(200 * time.Millisecond) // nothing else may arrive
	if n := len(again.snapshot()); n != 52 {
		t.Fatalf("%d messages after the resume, want 52", n)
	}
}

// Client registrations answered before a SIGKILL are there after the restart (today's
// main lost them: the records sat in a buffer).
func TestCrashKeepsClients(t *testing.T) {
	for _, store := range crashStores {
		t.Run(store, func(t *testing.T) {
			dir := t.TempDir()
			port, mport := freePort(t), freePort(t)
			p := binaryOn(t, port, mport, "--store", store, "--dir", dir)
			url := fmt.Sprintf("nats://127.0.0.1:%d", port)
			for _, id := range []string{"alpha", "beta"} {
				nc, err := nats.Connect(url, nats.NoReconnect())
				must(t, err)
				defer nc.Close()
				_, err = stan.Connect("test-cluster", id, stan.NatsConn(nc))
				must(t, err)
			}
			killHard(t, p)
			binaryOn(t, port, mport, "--store", store, "--dir", dir)
			var clients struct {
				Clients []struct {
					ID string `json:"id"`
				} `json:"clients"`
			}
			resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/streaming/clientsz", mport))
			must(t, err)
			defer resp.Body.Close()
			must(t, json.NewDecoder(resp.Body).Decode(&clients))
			var ids []string
			for _, c := range clients.Clients {
				ids = append(ids, c.ID)
			}
			slices.Sort(ids)
			if fmt.Sprint(ids) != "[alpha beta]" {
				t.Fatalf("clients after SIGKILL: %v", ids)
			}
		})
	}
}

// A durable queue group: member A got 1, 3, 5 and member B 2, 4, 6, nobody acks; A closes
// its member, so its messages move to B. After a restart (clean, or SIGKILL) B gets all of
// 1..6 again (today's main lost 1, 3 and 5 even on a clean restart: the move was in
// memory only).
func TestDurableQueueTransferSurvivesRestart(t *testing.T) {
	for _, store := range crashStores {
		for _, kill := range []bool{false, true} {
			name := store + "/clean"
			if kill {
				name = store + "/sigkill"
			}
			t.Run(name, func(t *testing.T) { queueTransferRestart(t, store, kill) })
		}
	}
}

func queueTransferRestart(t *testing.T, store string, kill bool) {
	dir := t.TempDir()
	port, mport := freePort(t), freePort(t)
	p := binaryOn(t, port, mport, "--store", store, "--dir", dir)
	url := fmt.Sprintf("nats://127.0.0.1:%d", port)
	pub, err := stan.Connect("test-cluster", "q-pub", stan.NatsURL(url))
	must(t, err)
	defer pub.Close()
	// Each member on its own NATS connection, which reconnects to the restarted server.
	// Nobody acks until the restart; then every delivery is acked as it arrives.
	var acking atomic.Bool
	member := func(id string) (stan.Conn, *stanMsgs, stan.Subscription) {
		sc, err := stan.Connect("test-cluster", id, stan.NatsURL(url),
			stan.SetConnectionLostHandler(func(stan.Conn, error) {}))
		must(t, err)
		got := newStanMsgs()
		sub, err := sc.QueueSubscribe("qch", "grp", func(m *stan.Msg) {
			got.add(m)
			if acking.Load() {
				_ = m.Ack()
			}
		}, stan.DurableName("dq"), stan.SetManualAckMode(), stan.MaxInflight(3), stan.AckWait(2*time.Second))
		must(t, err)
		return sc, got, sub
	}
	scA, gotA, subA := member("member-a")
	scB, gotB, _ := member("member-b")
	defer scA.Close()
	defer scB.Close()
	publishN(t, pub, "qch", 1, 6)
	waitFor(t, 10*time.Second, func() error {
		if a, b := len(gotA.snapshot()), len(gotB.snapshot()); a != 3 || b != 3 {
			return fmt.Errorf("members got %d and %d", a, b)
		}
		return nil
	})
	must(t, subA.Close())                       // A's pending messages move to B
	must(t, pub.Publish("qch", []byte("sync"))) // a reply after the move: it is durable
	if kill {
		killHard(t, p)
	} else {
		stopClean(t, p)
	}
	before := len(gotB.snapshot())
	acking.Store(true)
	binaryOn(t, port, mport, "--store", store, "--dir", dir)
	// B's client reconnects on its own (stan.go pings, nats.go resubscribes its inbox): it
	// must now be redelivered every message of the group and then get 7.
	seen := map[uint64]bool{}
	waitFor(t, 40*time.Second, func() error {
		for _, m := range gotB.snapshot()[before:] {
			seen[m.Sequence] = true
		}
		if len(seen) < 7 {
			return fmt.Errorf("after the restart member B got %v of 1..7", slices.Sorted(mapKeys(seen)))
		}
		return nil
	})
}

func mapKeys(m map[uint64]bool) func(func(uint64) bool) {
	return func(yield func(uint64) bool) {
		for k := range m {
			if !yield(k) {
				return
			}
		}
	}
}
