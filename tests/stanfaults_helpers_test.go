package tests

import (
	"fmt"
	"maps"
	"math"
	"net/http"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/stan.go"
)

// The streaming fault tests (§4 of the cluster issue) run a load — an async publisher, a
// durable subscriber and a durable queue group of two, every client connected to the
// nodes the test names — through a fault, then check what the cluster acknowledged
// (checkLoad): every acknowledged message stored, once unless its publish was retried, in
// publish order, with the same state on every node (equal digests); and every
// subscription's cursor never moving back past an ack the cluster had taken in (an acked
// message is never delivered again) nor redelivering a message unflagged.

// settleGrace is how long after an ack (or a first delivery) the cluster surely holds it
// committed, when no fault happens meanwhile: a commit takes milliseconds here.
const settleGrace = time.Second

// window is a time span during which a fault may lose what was in flight.
type window struct{ from, to time.Time }

// delivery is one message as a subscription received it.
type delivery struct {
	seq         uint64
	data        string
	redelivered bool
	at          time.Time
}

// subTracker records what one durable subscription (or durable queue group, whose members
// share one cursor) received and acked.
type subTracker struct {
	name    string
	ordered bool // one member: first deliveries come in sequence order
	mu      sync.Mutex
	log     []delivery
	acked   map[uint64]time.Time // when Ack first returned for the sequence
}

func newSubTracker(name string) *subTracker {
	return &subTracker{name: name, acked: map[uint64]time.Time{}}
}

// handle records m and acks it.
func (s *subTracker) handle(m *stan.Msg) {
	s.mu.Lock()
	s.log = append(s.log, delivery{m.Sequence, string(m.Data), m.Redelivered, time.Now()})
	s.mu.Unlock()
	if m.Ack() == nil {
		s.mu.Lock()
		if _, ok := s.acked[m.Sequence]; !ok {
			s.acked[m.Sequence] = time.Now()
		}
		s.mu.Unlock()
	}
}

// distinct returns the set of payloads received.
func (s *subTracker) distinct() map[string]bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make(map[string]bool, len(s.log))
	for _, d := range s.log {
		out[d.data] = true
	}
	return out
}

// during reports whether at falls in a fault window. An unflagged copy arriving then after
// a flagged one is the paused leader's own first delivery, handed to its connections'
// buffers before the pause and written out after it, behind its successor's redelivery;
// a resumed leader sends nothing new (streaming's TestFormerLeaderDeliversNothing).
func during(at time.Time, faults []window) bool {
	for _, w := range faults {
		if !at.Before(w.from) && !w.to.Before(at) {
			return true
		}
	}
	return false
}

// settled reports whether something done at at was surely committed: no fault window
// overlaps [at, at+settleGrace].
func settled(at time.Time, faults []window) bool {
	for _, w := range faults {
		if !at.Add(settleGrace).Before(w.from) && !w.to.Before(at) {
			return false
		}
	}
	return true
}

// check returns the cursor violations: a message delivered again after an ack that had
// settled (the cursor moved back past it), a message delivered again without the
// redelivered flag (but for a paused leader's buffered copy: during), and (one member)
// unflagged first deliveries out of sequence order.
func (s *subTracker) check(faults []window) (errs []string, buffered int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	first := map[uint64]delivery{}
	var maxSeq uint64
	for _, d := range s.log {
		if f, again := first[d.seq]; again {
			tf := f.at
			if ta, ok := s.acked[d.seq]; ok && ta.Before(d.at) && settled(ta, faults) {
				errs = append(errs, fmt.Sprintf("%s: seq %d (%s) delivered again at %s after its ack at %s had settled (redelivered=%v)",
					s.name, d.seq, d.data, d.at.Format("15:04:05.000"), ta.Format("15:04:05.000"), d.redelivered))
			}
			if !d.redelivered && f.redelivered && during(d.at, faults) {
				buffered++
			} else if !d.redelivered {
				errs = append(errs, fmt.Sprintf("%s: seq %d (%s) delivered again unflagged at %s (first at %s)",
					s.name, d.seq, d.data, d.at.Format("15:04:05.000"), tf.Format("15:04:05.000")))
			}
			continue
		}
		first[d.seq] = d
		if !d.redelivered && s.ordered {
			if d.seq < maxSeq {
				errs = append(errs, fmt.Sprintf("%s: seq %d first delivered after seq %d", s.name, d.seq, maxSeq))
			}
			maxSeq = max(maxSeq, d.seq)
		}
	}
	return errs, buffered
}

// stanLoad is an async publisher and durable subscribers on one channel.
type stanLoad struct {
	t       *testing.T
	channel string
	prefix  string // of the payloads
	pub     stan.Conn
	subs    []*subTracker
	closers []func()

	mu       sync.Mutex
	next     int            // the next payload's number
	attempts map[string]int // publishes of each payload
	acked    map[string]bool
	nacked   int      // acknowledged payloads
	failed   int      // attempts answered with an error or never answered
	retry    []string // payloads whose attempt failed, to publish again
	inflight int
	paused   bool
	faults   []window
	stop     chan struct{}
	done     chan struct{}
}

// loadConn is a stan.go connection over a NATS connection to the given nodes that
// reconnects quickly to any of them.
func loadConn(t *testing.T, nodes []*node, clientID string, opts ...stan.Option) (stan.Conn, func()) {
	t.Helper()
	urls := make([]string, len(nodes))
	for i, n := range nodes {
		urls[i] = n.url()
	}
	nc, err := nats.Connect(strings.Join(urls, ","), nats.Name(clientID), nats.MaxReconnects(-1),
		nats.ReconnectWait(50*time.Millisecond), nats.ReconnectJitter(0, 0), nats.PingInterval(2*time.Second))
	must(t, err)
	lost := func(_ stan.Conn, err error) { t.Errorf("%s: streaming connection lost: %v", clientID, err) }
	opts = append([]stan.Option{stan.NatsConn(nc), stan.ConnectWait(5 * time.Second), stan.PubAckWait(2 * time.Second),
		stan.Pings(1, 15), stan.SetConnectionLostHandler(lost)}, opts...)
	var sc stan.Conn
	waitFor(t, 10*time.Second, func() error {
		sc, err = stan.Connect("test-cluster", clientID, opts...)
		return err
	})
	return sc, func() { _ = sc.Close(); nc.Close() }
}

// newStanLoad connects the load's clients to nodes, subscribes (a durable, and a durable
// queue group of two) and starts publishing about rate messages a second.
func newStanLoad(t *testing.T, nodes []*node, channel string, rate int) *stanLoad {
	t.Helper()
	l := newLoad(t, channel, "m")
	subOpts := []stan.SubscriptionOption{stan.SetManualAckMode(), stan.AckWait(3 * time.Second),
		stan.DeliverAllAvailable(), stan.MaxInflight(1024)}
	dur := newSubTracker("durable")
	dur.ordered = true
	sc, closer := loadConn(t, nodes, "load-dur")
	l.closers = append(l.closers, closer)
	_, err := sc.Subscribe(channel, dur.handle, append(subOpts, stan.DurableName("dur"))...)
	must(t, err)
	queue := newSubTracker("queue")
	for i := range 2 {
		sc, closer := loadConn(t, nodes, fmt.Sprintf("load-q%d", i))
		l.closers = append(l.closers, closer)
		_, err := sc.QueueSubscribe(channel, "grp", queue.handle, append(subOpts, stan.DurableName("qdur"))...)
		must(t, err)
	}
	l.subs = []*subTracker{dur, queue}
	l.start(nodes, "load-pub", rate)
	return l
}

// newStanPublisher is a load of a publisher alone, whose payloads start with prefix.
func newStanPublisher(t *testing.T, nodes []*node, channel, prefix string, rate int) *stanLoad {
	t.Helper()
	l := newLoad(t, channel, prefix)
	l.start(nodes, "pub-"+prefix, rate)
	return l
}

func newLoad(t *testing.T, channel, prefix string) *stanLoad {
	l := &stanLoad{t: t, channel: channel, prefix: prefix, attempts: map[string]int{}, acked: map[string]bool{},
		stop: make(chan struct{}), done: make(chan struct{})}
	t.Cleanup(l.close)
	return l
}

// start connects the publisher and starts publishing.
func (l *stanLoad) start(nodes []*node, clientID string, rate int) {
	l.t.Helper()
	pub, closer := loadConn(l.t, nodes, clientID, stan.MaxPubAcksInflight(256))
	l.pub = pub
	l.closers = append(l.closers, closer)
	go l.publish(rate)
}

// publish runs the publisher: new payloads at about rate a second (none while paused),
// failed ones again first.
func (l *stanLoad) publish(rate int) {
	defer close(l.done)
	const burst = 10
	pace := time.Second * burst / time.Duration(rate)
	for i := 0; ; i++ {
		select {
		case <-l.stop:
			return
		default:
		}
		if i%burst == 0 {
			time.Sleep(pace)
		}
		l.mu.Lock()
		var d string
		switch {
		case len(l.retry) > 0:
			d, l.retry = l.retry[0], l.retry[1:]
		case l.paused:
			l.mu.Unlock()
			time.Sleep(5 * time.Millisecond)
			continue
		default:
			d = fmt.Sprintf("%s-%07d", l.prefix, l.next)
			l.next++
		}
		l.attempts[d]++
		l.inflight++
		l.mu.Unlock()
		if _, err := l.pub.PublishAsync(l.channel, []byte(d), func(_ string, err error) { l.answered(d, err) }); err != nil {
			l.answered(d, err)
			time.Sleep(20 * time.Millisecond)
		}
	}
}

// answered takes the outcome of one attempt.
func (l *stanLoad) answered(d string, err error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.inflight--
	if err != nil {
		l.failed++
		if !l.acked[d] {
			l.retry = append(l.retry, d)
		}
		return
	}
	if !l.acked[d] {
		l.acked[d] = true
		l.nacked++
	}
}

// fault notes that a fault began at from; the returned func ends its window (at the
// recovery, before settleGrace).
func (l *stanLoad) fault(from time.Time) func() {
	l.mu.Lock()
	i := len(l.faults)
	l.faults = append(l.faults, window{from, time.Now().Add(24 * time.Hour)})
	l.mu.Unlock()
	return func() {
		l.mu.Lock()
		l.faults[i].to = time.Now()
		l.mu.Unlock()
	}
}

// ackedCount is the number of payloads acknowledged so far.
func (l *stanLoad) ackedCount() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.nacked
}

// waitAcked waits until n more payloads are acknowledged than when called.
func (l *stanLoad) waitAcked(n int, timeout time.Duration) {
	l.t.Helper()
	want := l.ackedCount() + n
	waitFor(l.t, timeout, func() error {
		if got := l.ackedCount(); got < want {
			return fmt.Errorf("%d of %d acknowledged", got, want)
		}
		return nil
	})
}

// pause stops new payloads and waits until every one published is acknowledged (failed
// ones retried); resume starts them again.
func (l *stanLoad) pause(timeout time.Duration) {
	l.t.Helper()
	l.mu.Lock()
	l.paused = true
	l.mu.Unlock()
	waitFor(l.t, timeout, func() error {
		l.mu.Lock()
		defer l.mu.Unlock()
		if l.inflight > 0 || len(l.retry) > 0 {
			return fmt.Errorf("%d publishes in flight, %d to retry", l.inflight, len(l.retry))
		}
		return nil
	})
}

func (l *stanLoad) resume() {
	l.mu.Lock()
	l.paused = false
	l.mu.Unlock()
}

// close stops the publisher and closes the clients (durables stay). Tests that restart
// nodes defer it: t.Cleanup runs last-in first-out, so the cleanups of restarted nodes
// would kill them first and each client's close would wait out its timeout.
func (l *stanLoad) close() {
	select {
	case <-l.stop:
		return
	default:
	}
	close(l.stop)
	if l.pub != nil {
		<-l.done
	}
	for _, c := range l.closers {
		c()
	}
}

// loadTally is what a load published and what the cluster kept of it.
type loadTally struct {
	published, acked, failed, lost, duplicates int
}

func (t loadTally) String() string {
	return fmt.Sprintf("published %d, acked %d, failed attempts (retried) %d, lost %d, duplicates %d",
		t.published, t.acked, t.failed, t.lost, t.duplicates)
}

// checkLoad pauses the load (every payload acknowledged) and the others running on the
// cluster, waits for the subscriptions to have everything and the nodes up to converge,
// then checks what was stored (read from the leader) and each subscription's deliveries.
// The loads resume after. Every load must pause: raft tells the followers an entry is
// committed only with the next one, or after a commit timeout without one, so while a
// publisher goes on the followers may stay a burst behind at every instant (a 50 ms commit
// timeout and bursts every 50 ms: TestNodeFollowersLearnCommitsTCP in raftlog).
func (l *stanLoad) checkLoad(c *stanCluster, others ...*stanLoad) loadTally {
	l.t.Helper()
	for _, o := range others {
		o.pause(30 * time.Second)
		defer o.resume()
	}
	return l.checkWith(func() { c.converged(30 * time.Second) },
		func() []string { return storedPayloads(l.t, c.leader(10*time.Second), l.channel) })
}

// checkWith is checkLoad with the cluster's parts given: converge waits until every node
// holds the same state, stored reads the channel in sequence order.
func (l *stanLoad) checkWith(converge func(), read func() []string) loadTally {
	t := l.t
	t.Helper()
	l.pause(30 * time.Second)
	defer l.resume()
	l.mu.Lock()
	var acked []string
	for d := range l.acked {
		acked = append(acked, d)
	}
	slices.Sort(acked)
	attempts := maps.Clone(l.attempts)
	faults := slices.Clone(l.faults)
	tally := loadTally{published: len(l.attempts), acked: l.nacked, failed: l.failed}
	l.mu.Unlock()

	for _, s := range l.subs {
		waitFor(t, 30*time.Second, func() error {
			got := s.distinct()
			for _, d := range acked {
				if !got[d] {
					return fmt.Errorf("%s has %d of the %d acknowledged messages, not %s", s.name, len(got), len(acked), d)
				}
			}
			return nil
		})
	}
	converge()
	stored := read()
	count := map[string]int{}
	for _, d := range stored {
		count[d]++
	}
	for _, d := range acked {
		switch n := count[d]; {
		case n == 0:
			tally.lost++
		case n > attempts[d]:
			t.Errorf("%s stored %d times, published %d times", d, n, attempts[d])
			fallthrough
		case n > 1:
			tally.duplicates += n - 1
		}
	}
	if tally.lost > 0 {
		t.Errorf("%d acknowledged messages lost", tally.lost)
	}
	// Payloads published once are stored in publish order.
	prev := ""
	for _, d := range stored {
		if attempts[d] != 1 {
			continue // a retried payload, or another load's
		}
		if d < prev {
			t.Errorf("stored order: %s after %s", d, prev)
			break
		}
		prev = d
	}
	for _, s := range l.subs {
		errs, buffered := s.check(faults)
		if buffered > 0 {
			l.t.Logf("%s: %d unflagged copies behind their flagged redelivery within the fault (sent before it)", s.name, buffered)
		}
		for _, e := range errs[:min(len(errs), 10)] {
			t.Error(e)
		}
		if len(errs) > 10 {
			t.Errorf("%s: %d cursor violations in all", s.name, len(errs))
		}
	}
	return tally
}

// channelLastSeq is the channel's last sequence as n (the leader) reports it.
func channelLastSeq(n *node, channel string) (uint64, error) {
	var z struct {
		LastSeq uint64 `json:"last_seq"`
	}
	err := n.monGet("/streaming/channelsz?channel="+channel, &z)
	return z.LastSeq, err
}

// storedPayloads reads the whole channel through n (which must lead, to know the last
// sequence), in sequence order.
func storedPayloads(t *testing.T, n *node, channel string) []string {
	t.Helper()
	last, err := channelLastSeq(n, channel)
	must(t, err)
	return storedFrom(t, n, channel, 1, last)
}

// storedFrom reads sequences first to last of channel through n, in order.
func storedFrom(t *testing.T, n *node, channel string, first, last uint64) []string {
	t.Helper()
	sc := stanOn(t, n, fmt.Sprintf("reader-%d", time.Now().UnixNano()))
	got := make(chan *stan.Msg, 4096)
	sub, err := sc.Subscribe(channel, func(m *stan.Msg) { got <- m }, stan.StartAtSequence(first), stan.MaxInflight(4096))
	must(t, err)
	defer sub.Close()
	out := make([]string, 0, last-first+1)
	timeout := time.After(60 * time.Second)
	for next := first; next <= last; {
		select {
		case m := <-got:
			if m.Sequence != next {
				t.Fatalf("reading %s on %s: seq %d, want %d", channel, n.name, m.Sequence, next)
			}
			out = append(out, string(m.Data))
			next++
		case <-timeout:
			t.Fatalf("reading %s on %s: %d of %d messages", channel, n.name, len(out), last-first+1)
		}
	}
	return out
}

// probeFailover publishes on probe until a PubAck arrives and returns how long after
// since that was. The probe's PubAck wait (100 ms in the tests) bounds the resolution: an
// attempt sent to a dead leader is never answered.
func probeFailover(t *testing.T, probe stan.Conn, since time.Time, deadline time.Duration) time.Duration {
	t.Helper()
	for end := time.Now().Add(deadline); ; time.Sleep(5 * time.Millisecond) {
		err := probe.Publish("probe", []byte("p"))
		if err == nil {
			return time.Since(since)
		}
		if time.Now().After(end) {
			t.Fatalf("no PubAck within %v: %v", deadline, err)
		}
	}
}

// percentile returns the p-th percentile (nearest rank) of ds.
func percentile(ds []time.Duration, p float64) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	i := int(math.Ceil(p*float64(len(s))/100)) - 1
	return s[max(0, min(i, len(s)-1))]
}

// stop and cont send SIGSTOP and SIGCONT to the node's process.
func (n *node) stop() { must(n.t, syscall.Kill(n.p.cmd.Process.Pid, syscall.SIGSTOP)) }
func (n *node) cont() { must(n.t, syscall.Kill(n.p.cmd.Process.Pid, syscall.SIGCONT)) }

// healthz is the HTTP status of /healthz on n.
func (n *node) healthz() (int, error) {
	c := http.Client{Timeout: 2 * time.Second}
	resp, err := c.Get(fmt.Sprintf("http://127.0.0.1:%d/healthz", n.mport))
	if err != nil {
		return 0, err
	}
	resp.Body.Close()
	return resp.StatusCode, nil
}
