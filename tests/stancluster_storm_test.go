package tests

import (
	"fmt"
	"os"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/stan.go"
)

// TestStanClusterConnectStorm: while a publisher runs, stormClients stan.go clients connect
// at once, each subscribes, and then all close — three rounds. Connects, subscribes and
// closes are proposed without the engine waiting for each commit (several log entries in
// flight), so a storm takes a few commit rounds rather than one per request, and the
// publisher's PubAcks keep flowing meanwhile. The checks take each figure's best round: on
// a loaded 2-core machine any round may lose tens of milliseconds to the scheduler, the
// design's cost is what is left. STORM_CLIENTS changes the number of clients.
func TestStanClusterConnectStorm(t *testing.T) {
	n := 50
	if v, err := strconv.Atoi(os.Getenv("STORM_CLIENTS")); err == nil && v > 0 {
		n = v
	}
	c := startStanCluster(t)
	lead := c.leader(10 * time.Second)

	// One commit round trip, as a client sees it: the median of sync publishes.
	probe := stanOn(t, lead, "storm-probe")
	var lat []time.Duration
	for i := range 21 {
		start := time.Now()
		must(t, probe.Publish("storm", []byte(fmt.Sprint("probe-", i))))
		lat = append(lat, time.Since(start))
	}
	commit := percentile(lat, 50)
	// The clients subscribe to a channel that exists (creating one waits for its commit) and
	// that the publisher leaves alone: the storm is of requests, not of deliveries.
	must(t, probe.Publish("storm-quiet", []byte("created")))

	acks := &ackClock{}
	pub := stanOn(t, lead, "storm-pub", stan.MaxPubAcksInflight(4096))
	stop, done := make(chan struct{}), make(chan struct{})
	go func() { // about 1,000 messages a second, 5 every 5 ms
		defer close(done)
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			case <-time.After(5 * time.Millisecond):
			}
			for j := range 5 {
				if _, err := pub.PublishAsync("storm", []byte(fmt.Sprint("m-", i, "-", j)), acks.handle); err != nil {
					acks.fail(err)
				}
			}
		}
	}()
	t.Cleanup(func() {
		select {
		case <-stop:
		default:
			close(stop)
			<-done
		}
	})
	acks.wait(t, 200, 10*time.Second)

	const rounds = 3
	var storms, closes, gaps []time.Duration
	for r := range rounds {
		storm, closing, gap := connectStorm(t, c, acks, n, r)
		storms, closes, gaps = append(storms, storm), append(closes, closing), append(gaps, gap)
		t.Logf("round %d, %d clients: connect+subscribe %v, close %v, longest PubAck gap %v",
			r+1, n, storm.Round(time.Millisecond), closing.Round(time.Millisecond), gap.Round(time.Millisecond))
	}
	close(stop)
	<-done
	if acks.failed() > 0 {
		t.Errorf("%d publishes failed during the storms: %v", acks.failed(), acks.firstErr())
	}
	storm, gap := slices.Min(storms), slices.Min(gaps)
	t.Logf("best of %d rounds: connect+subscribe %v, close %v, longest PubAck gap %v; commit round trip "+
		"(median sync publish) %v; %d PubAcks", rounds, storm.Round(time.Millisecond),
		slices.Min(closes).Round(time.Millisecond), gap.Round(time.Millisecond), commit.Round(10*time.Microsecond), acks.count())
	// Waiting for each commit in turn, the 2n requests of a storm take 2n commit round trips
	// at least; in flight together, a few (the clients' own work dominates).
	if limit := time.Duration(n) * commit; storm > limit {
		t.Errorf("the best storm took %v, more than %d commit round trips (%v): requests waited for each other's commits",
			storm, n, limit)
	}
	// The engine goes on while connects and subscribes commit: PubAcks keep coming, every
	// 5 ms from the publisher plus a commit.
	if limit := max(60*time.Millisecond, 20*commit); gap > limit {
		t.Errorf("PubAcks stopped for %v in every round (limit %v)", gap, limit)
	}
}

// connectStorm connects n clients at once, each over a NATS connection made beforehand,
// subscribes each (a durable on a quiet channel), then closes them all at once. It returns
// how long the connects and subscribes took, how long the closes took, and the longest gap
// between two PubAcks meanwhile.
func connectStorm(t *testing.T, c *stanCluster, acks *ackClock, n, round int) (storm, closing, gap time.Duration) {
	t.Helper()
	// The NATS connections first, spread over the nodes: the storm is of streaming requests.
	ncs := make([]*nats.Conn, n)
	for i := range ncs {
		nc, err := nats.Connect(c.nodes[i%3].url())
		must(t, err)
		t.Cleanup(nc.Close)
		ncs[i] = nc
	}
	conns := make([]stan.Conn, n)
	errs := make(chan error, 2*n)
	var wg sync.WaitGroup
	start := time.Now()
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sc, err := stan.Connect("test-cluster", fmt.Sprintf("storm-%d-%d", round, i), stan.NatsConn(ncs[i]),
				stan.ConnectWait(20*time.Second))
			if err != nil {
				errs <- fmt.Errorf("client %d: connect: %w", i, err)
				return
			}
			conns[i] = sc
			if _, err := sc.Subscribe("storm-quiet", func(*stan.Msg) {}, stan.DurableName("d")); err != nil {
				errs <- fmt.Errorf("client %d: subscribe: %w", i, err)
			}
		}()
	}
	wg.Wait()
	storm = time.Since(start)
	closeStart := time.Now()
	for _, sc := range conns {
		if sc == nil {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := sc.Close(); err != nil {
				errs <- fmt.Errorf("close: %w", err)
			}
		}()
	}
	wg.Wait()
	end := time.Now()
	closing = end.Sub(closeStart)
	acks.wait(t, 50, 10*time.Second) // a PubAck after the storm bounds its last gap
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	for _, nc := range ncs {
		nc.Close()
	}
	return storm, closing, acks.maxGap(start, end)
}

// ackClock records when each PubAck arrived.
type ackClock struct {
	mu    sync.Mutex
	at    []time.Time
	fails int
	err   error
}

func (a *ackClock) handle(_ string, err error) {
	if err != nil {
		a.fail(err)
		return
	}
	a.mu.Lock()
	a.at = append(a.at, time.Now())
	a.mu.Unlock()
}

func (a *ackClock) fail(err error) {
	a.mu.Lock()
	a.fails++
	if a.err == nil {
		a.err = err
	}
	a.mu.Unlock()
}

func (a *ackClock) count() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return len(a.at)
}

func (a *ackClock) failed() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.fails
}

func (a *ackClock) firstErr() error {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.err
}

// wait waits for n more PubAcks than when called.
func (a *ackClock) wait(t *testing.T, n int, timeout time.Duration) {
	t.Helper()
	want := a.count() + n
	waitFor(t, timeout, func() error {
		if got := a.count(); got < want {
			return fmt.Errorf("%d of %d PubAcks", got, want)
		}
		return nil
	})
}

// maxGap is the longest time without a PubAck between from and to, counting from the last
// PubAck before from to the first after to.
func (a *ackClock) maxGap(from, to time.Time) time.Duration {
	a.mu.Lock()
	at := slices.Clone(a.at)
	a.mu.Unlock()
	slices.SortFunc(at, func(x, y time.Time) int { return x.Compare(y) })
	var gap time.Duration
	for i := 1; i < len(at); i++ {
		if at[i].Before(from) || at[i-1].After(to) {
			continue
		}
		gap = max(gap, at[i].Sub(at[i-1]))
	}
	return gap
}
