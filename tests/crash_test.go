package tests

import (
	"fmt"
	"io"
	"maps"
	"math/rand/v2"
	"net/http"
	"os"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/stan.go"
)

// The crash harness: a server on a durable store, a stan.go publisher sending
// asynchronously under load and recording every acknowledged message, three subscribers
// acking as they go (crash_subs_test.go: a durable, a queue group, a durable queue group),
// a crash at a random moment during the load, a restart on the same directory and ports,
// and a check:
//   - a new reader reads the whole channel back: every acknowledged message is there, in
//     publish order, with sequences contiguous from 1 and nothing duplicated (messages
//     published but never acknowledged may or may not be there);
//   - each subscriber, whose clients reconnect by themselves, gets after the restart every
//     message it had not acked, nothing whose ack was known durable, and every message it
//     gets again flagged redelivered (crashGroup.check).
//
// The crash is a SIGKILL of the real binary (crashBinary), or a simulated power loss of an
// in-process server whose files are cut back to what their last fsync covered
// (crash_power_test.go).

const crashChannel = "crash"

// crashTally sums the iterations of crashIterations.
type crashTally struct {
	Iterations  int
	Published   int           // PublishAsync calls accepted by the client
	Acked       int           // PubAcks received without error
	Present     int           // messages read back after the restart (sentinel excluded)
	Delivered   int           // deliveries to the subscribers
	Redelivered int           // of which flagged redelivered
	Resumed     int           // deliveries to the subscribers after the restart
	MaxRestart  time.Duration // crashed server restarted on its directory → a stan client connected
	Failed      int           // iterations that failed a check (the first one ends the run); not in the sums
}

func (c crashTally) String() string {
	lost := "lost=0" // every check passed: nothing acknowledged is missing
	if c.Failed > 0 {
		lost = fmt.Sprintf("FAILED=%d (iteration %d: see its error)", c.Failed, c.Iterations)
	}
	return fmt.Sprintf("iterations=%d published=%d acked=%d present=%d sub_deliveries=%d redelivered=%d after_restart=%d %s max_restart=%v",
		c.Iterations, c.Published, c.Acked, c.Present, c.Delivered, c.Redelivered, c.Resumed, lost, c.MaxRestart)
}

// crashTarget is a server the harness crashes and restarts.
type crashTarget interface {
	start(t *testing.T) string   // starts the server, returns its client URL
	crash(t *testing.T)          // crashes it
	restart(t *testing.T) string // starts it again on what the crash left, same URL
	// lateAcksCount: whether a PubAck read after the crash began still proves its message
	// stored (SIGKILL: the server sent it before it died, its store holding the message).
	lateAcksCount() bool
}

// crashBinary is the real binary on store ("file" or "bolt"), crashed with SIGKILL.
type crashBinary struct {
	store, dir  string
	port, mport int
	p           *proc
	procs       []*proc
}

func newCrashBinary(store string) func(t *testing.T) crashTarget {
	return func(t *testing.T) crashTarget {
		return &crashBinary{store: store, dir: t.TempDir(), port: freePort(t), mport: freePort(t)}
	}
}

func (b *crashBinary) start(t *testing.T) string {
	b.p = binaryOn(t, b.port, b.mport, "--store", b.store, "--dir", b.dir)
	b.procs = append(b.procs, b.p)
	return fmt.Sprintf("nats://127.0.0.1:%d", b.port)
}

func (b *crashBinary) crash(t *testing.T) { killHard(t, b.p) }

func (b *crashBinary) restart(t *testing.T) string { return b.start(t) }

func (b *crashBinary) lateAcksCount() bool { return true }

// crashIterations runs n crash iterations, each a subtest named label/i with its own
// server, and returns their tally.
func crashIterations(t *testing.T, label string, target func(t *testing.T) crashTarget, n int) crashTally {
	t.Helper()
	var tally crashTally
	for i := range n {
		ok := t.Run(fmt.Sprintf("%s/%d", label, i), func(t *testing.T) {
			r := crashOnce(t, target(t))
			tally.Iterations++
			tally.Published += r.published
			tally.Acked += r.acked
			tally.Present += r.present
			tally.Delivered += r.subs.delivered
			tally.Redelivered += r.subs.redelivered
			tally.Resumed += r.subs.resumed
			tally.MaxRestart = max(tally.MaxRestart, r.restart)
		})
		if !ok {
			tally.Failed++
			break // the first failing iteration says it all
		}
	}
	return tally
}

type crashResult struct {
	published, acked, present int
	subs                      crashCheck
	restart                   time.Duration
}

// crashOnce is one iteration: subscribe, publish under load, crash, restart, verify.
func crashOnce(t *testing.T, target crashTarget) crashResult {
	url := target.start(t)
	groups := subscribeCrashGroups(t, url)

	// The publisher's own NATS connection never reconnects: once the server dies,
	// publishing fails at once and Close does not wait for a dead server.
	nc, err := nats.Connect(url, nats.NoReconnect(), nats.ErrorHandler(func(*nats.Conn, *nats.Subscription, error) {}))
	must(t, err)
	defer nc.Close()
	sc := stanConnectRetry(t, nc, "crash-pub", stan.PubAckWait(5*time.Second))

	var (
		mu      sync.Mutex
		acked   = map[string]int{} // guid → publish order (the payload counter)
		calls   int                // ack handler calls, with or without error
		handled = make(chan struct{}, 1)
	)
	ackHandler := func(counter int) stan.AckHandler {
		return func(guid string, err error) {
			mu.Lock()
			defer mu.Unlock()
			if err == nil {
				acked[guid] = counter
			}
			calls++
			select {
			case handled <- struct{}{}:
			default:
			}
		}
	}

	stop := make(chan struct{})
	pubDone := make(chan [2]int, 1) // published (PublishAsync returned nil), attempted
	started := make(chan struct{})
	go func() {
		published, attempted := 0, 0
		defer func() { pubDone <- [2]int{published, attempted} }()
		close(started)
		for counter := 1; ; counter++ {
			select {
			case <-stop:
				return
			default:
			}
			// A PublishAsync that fails may still have reached the server: stan.go sends
			// the message, then returns ErrConnectionClosed if Close ran meanwhile.
			attempted = counter
			if _, err := sc.PublishAsync(crashChannel, []byte(strconv.Itoa(counter)), ackHandler(counter)); err != nil {
				return
			}
			published = counter
		}
	}()

	<-started
	delay := time.Duration(50+rand.IntN(451)) * time.Millisecond
	time.Sleep(delay)
	// What counts as before the crash is fixed just before it: an answer that arrives
	// later may rest on an fsync that the crash undid (a power cut: crashtest counts only
	// the fsyncs that completed before it froze the disk). After a SIGKILL every positive
	// PubAck counts, however late it is read (lateAcksCount).
	for _, g := range groups {
		g.crashed()
	}
	mu.Lock()
	ackedBefore := maps.Clone(acked)
	mu.Unlock()
	target.crash(t)
	close(stop)
	// Close fails every PubAck still pending (ErrConnectionClosed) and unblocks a publisher
	// waiting for room in its window of acks in flight.
	_ = sc.Close()
	nc.Close()
	var published, attempted int
	select {
	case pa := <-pubDone:
		published, attempted = pa[0], pa[1]
	case <-time.After(10 * time.Second):
		t.Fatalf("publisher still blocked 10s after the crash")
	}
	// Every accepted publish gets exactly one ack handler call.
	deadline := time.After(10 * time.Second)
	for {
		mu.Lock()
		c := calls
		mu.Unlock()
		if c >= published {
			break
		}
		select {
		case <-handled:
		case <-deadline:
			t.Fatalf("%d of %d ack handlers called 10s after the crash", c, published)
		}
	}
	if target.lateAcksCount() {
		mu.Lock()
		ackedBefore = maps.Clone(acked) // every positive ack, read before or after the kill
		mu.Unlock()
	}
	ackedCounters := make(map[int]bool, len(ackedBefore))
	maxAcked := 0
	for _, c := range ackedBefore {
		ackedCounters[c] = true
		maxAcked = max(maxAcked, c)
	}
	if len(ackedCounters) == 0 && delay > 300*time.Millisecond {
		t.Logf("nothing acknowledged in %v of load", delay)
	}

	// Restart on what the crash left.
	restartStart := time.Now()
	url2 := target.restart(t)
	nc2, err := nats.Connect(url2)
	must(t, err)
	defer nc2.Close()
	// The restart is over when a streaming client gets in.
	sc2 := stanConnectRetry(t, nc2, "crash-reader")
	restart := time.Since(restartStart)
	defer sc2.Close()

	type got struct {
		seq     uint64
		payload string
	}
	msgs := make(chan got, 1024)
	sub, err := sc2.Subscribe(crashChannel, func(m *stan.Msg) {
		msgs <- got{m.Sequence, string(m.Data)}
	}, stan.DeliverAllAvailable(), stan.MaxInflight(8192))
	must(t, err)
	defer sub.Unsubscribe()
	// A sentinel published after the restart ends the read deterministically.
	must(t, sc2.Publish(crashChannel, []byte("end")))

	fail := func(format string, args ...any) {
		t.Helper()
		if b, ok := target.(*crashBinary); ok {
			var logs []byte
			for i, p := range b.procs {
				logs = append(logs, fmt.Sprintf("=== run %d\n", i)...)
				logs = append(logs, p.out.String()...)
			}
			_ = os.WriteFile("/tmp/crash-server.log", logs, 0o644)
		}
		t.Fatalf("crash after %v (published %d, acked %d, highest acked %d): %s",
			delay, published, len(ackedCounters), maxAcked, fmt.Sprintf(format, args...))
	}
	present := map[uint64]int{} // sequence → counter, sentinel excluded
	lastCounter := 0
	seen := make(map[int]bool, len(ackedCounters))
	timeout := time.NewTimer(60 * time.Second)
	defer timeout.Stop()
read:
	for {
		select {
		case m := <-msgs:
			if want := uint64(len(present) + 1); m.seq != want {
				fail("message %d read back has sequence %d: a gap or a duplicate", want, m.seq)
			}
			if m.payload == "end" {
				break read
			}
			counter, err := strconv.Atoi(m.payload)
			if err != nil {
				fail("sequence %d: payload %q", m.seq, m.payload)
			}
			if counter <= lastCounter {
				fail("sequence %d holds message %d after message %d: out of order or duplicated", m.seq, counter, lastCounter)
			}
			if counter > attempted {
				fail("sequence %d holds message %d, never published", m.seq, counter)
			}
			lastCounter = counter
			seen[counter] = true
			present[m.seq] = counter
		case <-timeout.C:
			fail("read %d messages back, no sentinel after 60s", len(present))
		}
	}
	var missing []int
	for c := range ackedCounters {
		if !seen[c] {
			missing = append(missing, c)
		}
	}
	if len(missing) > 0 {
		slices.Sort(missing)
		fail("%d acknowledged messages missing after the restart (%d present), e.g. %v", len(missing), len(present), missing[:min(len(missing), 10)])
	}

	// The subscribers: each must get the sentinel, then pass the check.
	var subs crashCheck
	for _, g := range groups {
		// Messages lost on the way while a member's connection came back are redelivered
		// one ack wait later: poll until the subscriber has everything it is owed.
		// (The poll must not stop at the first failed check: a member may still be working
		// through its last window of pending messages when another one gets the sentinel.)
		var res crashCheck
		err := g.waitSentinel(60 * time.Second)
		for end := time.Now().Add(30 * time.Second); err == nil; time.Sleep(50 * time.Millisecond) {
			res, err = g.check(present, ackedCounters)
			if err == nil || time.Now().After(end) {
				break
			}
			err = nil // not yet: poll again
		}
		if err != nil {
			if b, ok := target.(*crashBinary); ok {
				resp, herr := http.Get(fmt.Sprintf("http://127.0.0.1:%d/streaming/channelsz?subs=1", b.mport))
				if herr == nil {
					body, _ := io.ReadAll(resp.Body)
					resp.Body.Close()
					_ = os.WriteFile("/tmp/chz.json", body, 0o644)
				}
			}
			fail("%v", err)
		}
		subs.delivered += res.delivered
		subs.redelivered += res.redelivered
		subs.resumed += res.resumed
	}
	return crashResult{published: published, acked: len(ackedCounters), present: len(present), subs: subs, restart: restart}
}

// stanConnectRetry connects a streaming client over nc, retrying: the binary accepts NATS
// clients (startBinary returns) before its streaming layer answers connect requests.
func stanConnectRetry(t *testing.T, nc *nats.Conn, clientID string, opts ...stan.Option) stan.Conn {
	t.Helper()
	var sc stan.Conn
	waitFor(t, 30*time.Second, func() error {
		var err error
		sc, err = stan.Connect("test-cluster", clientID, append([]stan.Option{stan.NatsConn(nc), stan.ConnectWait(time.Second)}, opts...)...)
		return err
	})
	return sc
}

// A few crash iterations per durable store; `make soak` runs many more (soak_test.go).
func TestCrashHarness(t *testing.T) {
	for _, store := range []string{"file", "bolt"} {
		tally := crashIterations(t, store, newCrashBinary(store), 3)
		t.Logf("%s: %v", store, tally)
	}
}
