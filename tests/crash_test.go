package tests

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/stan.go"
)

// The crash harness: the real binary on a durable store, a stan.go publisher sending
// asynchronously under load and recording every acknowledged message, SIGKILL of the server
// at a random moment during the load, a restart on the same directory, and a new subscriber
// that reads the whole channel back. Every acknowledged message must be there, in publish
// order, with sequences contiguous from 1 and nothing duplicated; messages that were
// published but never acknowledged may or may not be there.

const crashChannel = "crash"

// crashTally sums the iterations of crashIterations.
type crashTally struct {
	Iterations int
	Published  int           // PublishAsync calls accepted by the client
	Acked      int           // PubAcks received without error
	Present    int           // messages read back after the restart (sentinel excluded)
	MaxRestart time.Duration // SIGKILL'd server restarted on its directory → a stan client connected
}

func (c crashTally) String() string {
	return fmt.Sprintf("iterations=%d published=%d acked=%d present=%d max_restart=%v",
		c.Iterations, c.Published, c.Acked, c.Present, c.MaxRestart)
}

// crashIterations runs n crash iterations on store ("file" or "bolt"), each a subtest with
// its own directory and processes, and returns their tally.
func crashIterations(t *testing.T, store string, n int) crashTally {
	t.Helper()
	var tally crashTally
	for i := range n {
		ok := t.Run(fmt.Sprintf("%s/%d", store, i), func(t *testing.T) {
			r := crashOnce(t, store)
			tally.Iterations++
			tally.Published += r.published
			tally.Acked += r.acked
			tally.Present += r.present
			tally.MaxRestart = max(tally.MaxRestart, r.restart)
		})
		if !ok {
			break // the first failing iteration says it all
		}
	}
	return tally
}

type crashResult struct {
	published, acked, present int
	restart                   time.Duration
}

// crashOnce is one iteration: publish under load, SIGKILL, restart, verify.
func crashOnce(t *testing.T, store string) crashResult {
	dir := t.TempDir()
	p, url, _ := startBinary(t, "--store", store, "--dir", dir)

	// The client's own NATS connection never reconnects: once the server dies, publishing
	// fails at once and Close does not wait for a dead server.
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
	must(t, p.cmd.Process.Signal(syscall.SIGKILL))
	_ = p.wait(t, 10*time.Second)
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
		t.Fatalf("publisher still blocked 10s after the SIGKILL")
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
			t.Fatalf("%d of %d ack handlers called 10s after the SIGKILL", c, published)
		}
	}
	mu.Lock()
	ackedCounters := make(map[int]bool, len(acked))
	maxAcked := 0
	for _, c := range acked {
		ackedCounters[c] = true
		maxAcked = max(maxAcked, c)
	}
	mu.Unlock()
	if len(ackedCounters) == 0 && delay > 300*time.Millisecond {
		t.Logf("nothing acknowledged in %v of load", delay)
	}

	// Restart on the same directory.
	restartStart := time.Now()
	_, url2, _ := startBinary(t, "--store", store, "--dir", dir)
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
		t.Fatalf("%s store, SIGKILL after %v (published %d, acked %d, highest acked %d): %s",
			store, delay, published, len(ackedCounters), maxAcked, fmt.Sprintf(format, args...))
	}
	present := 0
	lastCounter := 0
	seen := make(map[int]bool, len(ackedCounters))
	timeout := time.NewTimer(60 * time.Second)
	defer timeout.Stop()
read:
	for {
		select {
		case m := <-msgs:
			if want := uint64(present + 1); m.seq != want {
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
			present++
		case <-timeout.C:
			fail("read %d messages back, no sentinel after 60s", present)
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
		fail("%d acknowledged messages missing after the restart (%d present), e.g. %v", len(missing), present, missing[:min(len(missing), 10)])
	}
	return crashResult{published: published, acked: len(ackedCounters), present: present, restart: restart}
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
		tally := crashIterations(t, store, 3)
		t.Logf("%s: %v", store, tally)
	}
}
