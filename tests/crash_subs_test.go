package tests

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/stan.go"
)

// The subscribers of the crash harness and the checker of what they got. Three kinds
// subscribe to the crash channel before the load starts: a durable, a queue group of two
// and a durable queue group of two, each member on its own stan.go connection that
// reconnects to the restarted server by itself. Every member acks each message as it
// arrives, and also publishes, on its own connection, a "sync" message now and then: the
// PubAck of a sync publish proves that every ack the member sent before it is durable
// (same connection, so the server processed the acks first, and a PubAck follows a group
// commit that covers them).

// crashDelivery is one message a subscriber received.
type crashDelivery struct {
	seq         uint64
	counter     int // the publish counter in the payload; 0 for the sentinel
	redelivered bool
	afterCrash  bool
}

// crashMember is one subscription of the harness.
type crashMember struct {
	sc stan.Conn

	mu          sync.Mutex
	got         []crashDelivery
	acked       map[uint64]bool // acks sent before the crash
	synced      map[uint64]bool // of those, acks sent before a sync publish that was acknowledged
	afterCrash  bool
	sawSentinel chan struct{}
	stop        chan struct{}
	done        chan struct{}
}

// crashGroup is a subscriber: a durable (one member) or a queue group (two).
type crashGroup struct {
	name    string
	members []*crashMember
}

// subscribeCrashGroups subscribes the three kinds of subscriber of the harness.
func subscribeCrashGroups(t *testing.T, url string) []*crashGroup {
	t.Helper()
	mk := func(name string, n int, opts ...stan.SubscriptionOption) *crashGroup {
		g := &crashGroup{name: name}
		for i := range n {
			g.members = append(g.members, newCrashMember(t, url, fmt.Sprintf("crash-%s-%d", name, i), name, opts...))
		}
		return g
	}
	return []*crashGroup{
		mk("durable", 1, stan.DurableName("d")),
		mk("queue", 2),
		mk("durable-queue", 2, stan.DurableName("dq")),
	}
}

func newCrashMember(t *testing.T, url, clientID, kind string, opts ...stan.SubscriptionOption) *crashMember {
	t.Helper()
	sc, err := stan.Connect("test-cluster", clientID, stan.NatsURL(url), stan.PubAckWait(5*time.Second),
		stan.NatsOptions(nats.ReconnectWait(50*time.Millisecond), nats.MaxReconnects(-1)),
		stan.SetConnectionLostHandler(func(stan.Conn, error) {}))
	if err != nil {
		t.Fatalf("connect %s: %v", clientID, err)
	}
	m := &crashMember{sc: sc, acked: map[uint64]bool{}, synced: map[uint64]bool{},
		sawSentinel: make(chan struct{}), stop: make(chan struct{}), done: make(chan struct{})}
	handler := func(msg *stan.Msg) {
		counter, err := strconv.Atoi(string(msg.Data))
		if err != nil {
			counter = 0 // the sentinel
		}
		m.mu.Lock()
		m.got = append(m.got, crashDelivery{seq: msg.Sequence, counter: counter, redelivered: msg.Redelivered, afterCrash: m.afterCrash})
		after := m.afterCrash
		m.mu.Unlock()
		if msg.Ack() == nil && !after {
			m.mu.Lock()
			m.acked[msg.Sequence] = true // an ack sent before the crash
			m.mu.Unlock()
		}
		if counter == 0 && after {
			select {
			case <-m.sawSentinel:
			default:
				close(m.sawSentinel)
			}
		}
	}
	all := append([]stan.SubscriptionOption{stan.DeliverAllAvailable(), stan.SetManualAckMode(),
		stan.MaxInflight(1024), stan.AckWait(2 * time.Second)}, opts...)
	if kind == "durable" {
		_, err = sc.Subscribe(crashChannel, handler, all...)
	} else {
		_, err = sc.QueueSubscribe(crashChannel, "grp", handler, all...)
	}
	if err != nil {
		t.Fatalf("subscribe %s: %v", clientID, err)
	}
	go m.syncLoop()
	t.Cleanup(func() {
		m.close()
		_ = sc.Close()
	})
	return m
}

// syncLoop publishes a sync message now and then; an acknowledged one makes every ack
// sent before it known-durable.
func (m *crashMember) syncLoop() {
	defer close(m.done)
	t := time.NewTicker(20 * time.Millisecond)
	defer t.Stop()
	for {
		select {
		case <-m.stop:
			return
		case <-t.C:
		}
		m.mu.Lock()
		if m.afterCrash {
			m.mu.Unlock()
			return
		}
		sent := make([]uint64, 0, len(m.acked))
		for seq := range m.acked {
			if !m.synced[seq] {
				sent = append(sent, seq)
			}
		}
		m.mu.Unlock()
		if m.sc.Publish("crash-sync", []byte("s")) != nil {
			continue
		}
		m.mu.Lock()
		if !m.afterCrash {
			for _, seq := range sent {
				m.synced[seq] = true
			}
		}
		m.mu.Unlock()
	}
}

func (m *crashMember) close() {
	select {
	case <-m.stop:
	default:
		close(m.stop)
	}
	<-m.done
}

// crashed marks what arrives from now on as after the restart.
func (g *crashGroup) crashed() {
	for _, m := range g.members {
		m.close()
		m.mu.Lock()
		m.afterCrash = true
		m.mu.Unlock()
	}
}

// waitSentinel waits until a member of g got the sentinel after the restart.
func (g *crashGroup) waitSentinel(d time.Duration) error {
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		for _, m := range g.members {
			select {
			case <-m.sawSentinel:
				return nil
			default:
			}
		}
		time.Sleep(10 * time.Millisecond)
	}
	return fmt.Errorf("%s: no sentinel %v after the restart", g.name, d)
}

// crashCheck is what one subscriber got in one iteration.
type crashCheck struct {
	delivered, redelivered, resumed int
}

// check verifies g against the channel as read back after the restart (present: counter
// by sequence) and the acknowledged publishes:
//   - every acknowledged publish reached the subscriber (before or after the crash);
//   - every message present that the subscriber had not acked before the crash is
//     delivered after it: nothing pending is lost, for a queue group across its members;
//   - nothing whose ack was known durable before the crash comes again after it: a
//     durable never resumes before its last synced ack;
//   - every delivery of a message the subscriber had got before is flagged redelivered.
func (g *crashGroup) check(present map[uint64]int, acked map[int]bool) (crashCheck, error) {
	var all []crashDelivery
	ackedBefore, synced := map[uint64]bool{}, map[uint64]bool{}
	for _, m := range g.members {
		m.mu.Lock()
		all = append(all, m.got...)
		for seq := range m.acked {
			ackedBefore[seq] = true
		}
		for seq := range m.synced {
			synced[seq] = true
		}
		m.mu.Unlock()
	}
	var res crashCheck
	after := map[uint64]bool{}
	counters := map[int]bool{}
	// Members' lists are not ordered with one another: of the copies of a message
	// delivered before the crash at most one may be unflagged, and after the crash none
	// if it came before, else at most one.
	// A message is its sequence and payload: after a power cut a sequence whose message
	// was never durable may hold another message (the sentinel, say).
	type msgID struct {
		seq     uint64
		counter int
	}
	unflaggedBefore, unflaggedAfter, before := map[msgID]int{}, map[msgID]int{}, map[msgID]bool{}
	for _, d := range all {
		res.delivered++
		if d.redelivered {
			res.redelivered++
		}
		id := msgID{d.seq, d.counter}
		if d.afterCrash {
			res.resumed++
			if present[d.seq] == d.counter || d.counter == 0 {
				after[d.seq] = true
			}
			if synced[d.seq] {
				return res, fmt.Errorf("%s: seq %d came back after the crash although its ack was durable before it", g.name, d.seq)
			}
			if !d.redelivered {
				unflaggedAfter[id]++
			}
		} else {
			before[id] = true
			if !d.redelivered {
				unflaggedBefore[id]++
			}
		}
		counters[d.counter] = true
	}
	for id, n := range unflaggedBefore {
		if n > 1 {
			return res, fmt.Errorf("%s: seq %d delivered %d times unflagged before the crash: %s", g.name, id.seq, n, g.history(id.seq))
		}
	}
	for id, n := range unflaggedAfter {
		if n > 1 || before[id] {
			return res, fmt.Errorf("%s: seq %d delivered again after the crash without the redelivered flag: %s", g.name, id.seq, g.history(id.seq))
		}
	}
	for c := range acked {
		if !counters[c] {
			return res, fmt.Errorf("%s: acknowledged publish %d never delivered", g.name, c)
		}
	}
	var lost []uint64
	for seq := range present {
		if !ackedBefore[seq] && !after[seq] {
			lost = append(lost, seq)
		}
	}
	if len(lost) > 0 {
		slices.Sort(lost)
		return res, fmt.Errorf("%s: %d messages not acked before the crash were not delivered after it, e.g. %v; deliveries of %d: %s", g.name, len(lost), lost[:min(10, len(lost))], lost[0], g.history(lost[0]))
	}
	return res, nil
}

// history describes every delivery of seq, for a failure message.
func (g *crashGroup) history(seq uint64) string {
	var out []string
	for i, m := range g.members {
		m.mu.Lock()
		for j, d := range m.got {
			if d.seq == seq {
				out = append(out, fmt.Sprintf("member %d #%d of %d counter=%d redelivered=%v after_crash=%v acked_before=%v", i, j, len(m.got), d.counter, d.redelivered, d.afterCrash, m.acked[seq]))
			}
		}
		m.mu.Unlock()
	}
	return strings.Join(out, "; ")
}
