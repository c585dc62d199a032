package tests

// A differential test of the time-dependent streaming semantics, after stan_diff_test.go:
// each scenario runs with real stan.go clients against the real nats-streaming-server
// v0.25.6 and against Starling at the same time, and what the clients saw must be the
// same. The scenarios wait generously around each deadline (ack wait 1 s, the client
// minimum; max_age and max_inactivity 1 s; heartbeats every 300 ms), so their outcomes do
// not depend on how busy the machine is: what is redelivered and in which order, what
// expires, which channel is deleted, which client the server closes.
//
// `go test -run TestStanDiffTime` runs them all in parallel in under 10 s;
// STANDIFF_TIME_ROUNDS=N runs them N times, on new servers each time (STANDIFF_LOG=1
// logs nss's transcripts).

import (
	"fmt"
	"os"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/stan.go"

	"github.com/starling-io/starling/stores"
	"github.com/starling-io/starling/streaming"
)

// redeliverScenario publishes one message per element of needs on its own channel, then
// subscribes (kind: plain, durable, queue, dqueue or queue2 with two members) in manual
// ack mode with ack wait 1 s; message i is acknowledged on its needs[i]-th delivery. It
// logs each member's deliveries in order (queue2: their union, sorted).
func redeliverScenario(kind string, inflight int, needs []int) func(*timeSrv, *tlog) {
	return func(s *timeSrv, l *tlog) {
		id := fmt.Sprintf("rd-%s-%d", kind, inflight)
		sc, err := tconn(s.url, id)
		if err != nil {
			l.add("connect: %v", err)
			return
		}
		defer sc.Close()
		for i := range needs {
			if err := sc.Publish(id, []byte(fmt.Sprint(i+1))); err != nil {
				l.add("publish: %v", err)
			}
		}
		var mu sync.Mutex
		count := map[uint64]int{}
		got := make([][]string, 2)
		acked, done := 0, make(chan struct{})
		members := 1
		if kind == "queue2" {
			members = 2
		}
		for mem := range members {
			h := func(m *stan.Msg) {
				mu.Lock()
				defer mu.Unlock()
				count[m.Sequence]++
				got[mem] = append(got[mem], fmt.Sprintf("%d%s", m.Sequence, redelivMark(m.Redelivered)))
				if i := int(m.Sequence) - 1; i >= 0 && i < len(needs) && count[m.Sequence] == needs[i] {
					_ = m.Ack()
					if acked++; acked == len(needs) {
						close(done)
					}
				}
			}
			opts := []stan.SubscriptionOption{stan.DeliverAllAvailable(), stan.SetManualAckMode(),
				stan.MaxInflight(inflight), stan.AckWait(time.Second)}
			if kind == "durable" || kind == "dqueue" {
				opts = append(opts, stan.DurableName("d"))
			}
			if kind == "plain" || kind == "durable" {
				_, err = sc.Subscribe(id, h, opts...)
			} else {
				_, err = sc.QueueSubscribe(id, "q", h, opts...)
			}
			l.add("subscribe: %s", errStr(err))
		}
		select {
		case <-done:
		case <-time.After(12 * time.Second):
			l.add("not all acknowledged")
		}
		time.Sleep(1300 * time.Millisecond) // nothing more after the last ack
		mu.Lock()
		defer mu.Unlock()
		if members > 1 {
			// Which member gets a redelivery is nss's goroutines' race: the union only.
			all := append(got[0], got[1]...)
			sort.Strings(all)
			got = [][]string{all}
		}
		for _, g := range got[:1] {
			l.add("deliveries: %s", strings.Join(g, " "))
		}
	}
}

// ageScenario (max_age 1 s): expired messages are gone for new subscriptions, and an
// unacknowledged message that expires is not redelivered.
func ageScenario(s *timeSrv, l *tlog) {
	sc, err := tconn(s.url, "ag")
	if err != nil {
		l.add("connect: %v", err)
		return
	}
	defer sc.Close()
	for _, d := range []string{"m1", "m2"} {
		l.add("publish: %s", errStr(sc.Publish("ag1", []byte(d))))
	}
	l.add("publish: %s", errStr(sc.Publish("ag2", []byte("x"))))
	time.Sleep(500 * time.Millisecond)
	// Delivered at 0.5 s, due again at 1.5 s, expired at 1 s.
	collect(l, sc, "unacked", "ag2", false, stan.DeliverAllAvailable(), stan.SetManualAckMode(), stan.AckWait(time.Second))
	time.Sleep(1200 * time.Millisecond)
	l.add("publish: %s", errStr(sc.Publish("ag1", []byte("m3"))))
	collect(l, sc, "all", "ag1", false, stan.DeliverAllAvailable())
	time.Sleep(200 * time.Millisecond)
	collect(l, sc, "seq1", "ag1", false, stan.StartAtSequence(1))
	time.Sleep(200 * time.Millisecond)
	collect(l, sc, "last", "ag1", false, stan.StartWithLastReceived())
	time.Sleep(1000 * time.Millisecond)
}

// inactivityScenario (max_inactivity 1 s): a channel with neither subscription nor
// publish is deleted; one with a live subscription or an offline durable is not.
func inactivityScenario(s *timeSrv, l *tlog) {
	sc, err := tconn(s.url, "in")
	if err != nil {
		l.add("connect: %v", err)
		return
	}
	defer sc.Close()
	l.add("publish: %s", errStr(sc.Publish("in1", []byte("a"))))
	l.add("publish: %s", errStr(sc.Publish("in1", []byte("b"))))
	d := collect(l, sc, "durable", "in2", false, stan.DurableName("dd"), stan.DeliverAllAvailable())
	time.Sleep(100 * time.Millisecond)
	if d != nil {
		l.add("close durable: %s", errStr(d.Close()))
	}
	l.add("publish: %s", errStr(sc.Publish("in2", []byte("x"))))
	collect(l, sc, "live", "in3", false, stan.DeliverAllAvailable())
	l.add("publish: %s", errStr(sc.Publish("in3", []byte("y"))))
	time.Sleep(2 * time.Second)
	// in1 was deleted. nss starts its sequences again at 1, Starling goes on after the
	// deleted channel's last (its stores keep a tombstone, stores/memstore/DESIGN.md
	// "Deleted channels"): an allowed difference, so in1's sequences are not compared.
	collect(l, sc, "after delete", "in1", true, stan.DeliverAllAvailable())
	time.Sleep(200 * time.Millisecond)
	l.add("publish: %s", errStr(sc.Publish("in1", []byte("c"))))
	time.Sleep(200 * time.Millisecond)
	collect(l, sc, "durable again", "in2", false, stan.DurableName("dd"), stan.DeliverAllAvailable())
	l.add("publish: %s", errStr(sc.Publish("in3", []byte("z"))))
	time.Sleep(300 * time.Millisecond)
}

// durableResumeScenario: a durable closed with unacknowledged messages gets them again,
// flagged, as soon as it is back, then the rest. With the same ack wait only: when the
// durable comes back with another one, nss times the resume's redeliveries by the old ack
// wait and the ack timer armed before the close (old 4 s, new 1 s: next redelivery 5 s
// after the first delivery, then every second), where Starling applies the new ack wait
// at once (1.2 s), as the spec's §7.4 says: an artifact of nss's single ack timer.
func durableResumeScenario(s *timeSrv, l *tlog) {
	sc, err := tconn(s.url, "dr")
	if err != nil {
		l.add("connect: %v", err)
		return
	}
	defer sc.Close()
	for i := 1; i <= 4; i++ {
		l.add("publish: %s", errStr(sc.Publish("dr", []byte(fmt.Sprint(i)))))
	}
	opts := []stan.SubscriptionOption{stan.DurableName("d"), stan.DeliverAllAvailable(), stan.SetManualAckMode(),
		stan.MaxInflight(2), stan.AckWait(time.Second)}
	sub := collect(l, sc, "first", "dr", false, opts...)
	time.Sleep(300 * time.Millisecond)
	if sub != nil {
		l.add("close: %s", errStr(sub.Close()))
	}
	_, err = sc.Subscribe("dr", func(m *stan.Msg) {
		l.deliver("again", "%d%s", m.Sequence, redelivMark(m.Redelivered))
		_ = m.Ack()
	}, opts...)
	l.add("subscribe again: %s", errStr(err))
	time.Sleep(1500 * time.Millisecond)
}

// queueLeaveScenario: a queue member that leaves with unacknowledged messages hands them
// to the member that stays.
func queueLeaveScenario(s *timeSrv, l *tlog) {
	sc, err := tconn(s.url, "ql")
	if err != nil {
		l.add("connect: %v", err)
		return
	}
	defer sc.Close()
	a, err := sc.QueueSubscribe("ql", "q", func(m *stan.Msg) {
		l.deliver("a", "%d%s", m.Sequence, redelivMark(m.Redelivered))
	}, stan.SetManualAckMode(), stan.MaxInflight(2), stan.AckWait(time.Second))
	l.add("subscribe a: %s", errStr(err))
	for i := 1; i <= 2; i++ {
		l.add("publish: %s", errStr(sc.Publish("ql", []byte(fmt.Sprint(i)))))
	}
	time.Sleep(200 * time.Millisecond)
	_, err = sc.QueueSubscribe("ql", "q", func(m *stan.Msg) {
		l.deliver("b", "%d%s", m.Sequence, redelivMark(m.Redelivered))
		_ = m.Ack()
	}, stan.SetManualAckMode(), stan.AckWait(time.Second))
	l.add("subscribe b: %s", errStr(err))
	if a != nil {
		l.add("close a: %s", errStr(a.Close()))
	}
	time.Sleep(1500 * time.Millisecond)
}

// ageDurableScenario (max_age 1 s): a durable's unacknowledged message that expires
// while the durable is offline is not sent on its return.
func ageDurableScenario(s *timeSrv, l *tlog) {
	sc, err := tconn(s.url, "agd")
	if err != nil {
		l.add("connect: %v", err)
		return
	}
	defer sc.Close()
	opts := []stan.SubscriptionOption{stan.DurableName("d"), stan.DeliverAllAvailable(), stan.SetManualAckMode(), stan.AckWait(10 * time.Second)}
	sub := collect(l, sc, "first", "agd", false, opts...)
	l.add("publish: %s", errStr(sc.Publish("agd", []byte("old"))))
	time.Sleep(200 * time.Millisecond)
	if sub != nil {
		l.add("close: %s", errStr(sub.Close()))
	}
	time.Sleep(1500 * time.Millisecond)
	l.add("publish: %s", errStr(sc.Publish("agd", []byte("new"))))
	collect(l, sc, "again", "agd", false, opts...)
	time.Sleep(300 * time.Millisecond)
}

// inactivityUnsubScenario (max_inactivity 1 s): the inactivity counts from the last
// subscription's removal, not from the last publish. Looked at 0.65 s after each.
func inactivityUnsubScenario(s *timeSrv, l *tlog) {
	sc, err := tconn(s.url, "inu")
	if err != nil {
		l.add("connect: %v", err)
		return
	}
	defer sc.Close()
	l.add("publish: %s", errStr(sc.Publish("inu", []byte("a"))))
	sub := collect(l, sc, "first", "inu", false, stan.DeliverAllAvailable())
	time.Sleep(700 * time.Millisecond)
	if sub != nil {
		l.add("unsubscribe: %s", errStr(sub.Unsubscribe()))
	}
	time.Sleep(650 * time.Millisecond)
	collect(l, sc, "look", "inu", true, stan.DeliverAllAvailable())
	time.Sleep(300 * time.Millisecond)
}

// durableShrinkScenario: a durable back with a smaller MaxInflight than its unacknowledged
// messages.
func durableShrinkScenario(s *timeSrv, l *tlog) {
	sc, err := tconn(s.url, "ds")
	if err != nil {
		l.add("connect: %v", err)
		return
	}
	defer sc.Close()
	for i := 1; i <= 4; i++ {
		l.add("publish: %s", errStr(sc.Publish("ds", []byte(fmt.Sprint(i)))))
	}
	sub := collect(l, sc, "first", "ds", false, stan.DurableName("d"), stan.DeliverAllAvailable(), stan.SetManualAckMode(),
		stan.MaxInflight(3), stan.AckWait(time.Second))
	time.Sleep(300 * time.Millisecond)
	if sub != nil {
		l.add("close: %s", errStr(sub.Close()))
	}
	var mu sync.Mutex
	n := 0
	_, err = sc.Subscribe("ds", func(m *stan.Msg) {
		l.deliver("again", "%d%s", m.Sequence, redelivMark(m.Redelivered))
		mu.Lock()
		defer mu.Unlock()
		if n++; n > 2 { // the first two stay unacknowledged for an ack wait
			_ = m.Ack()
		}
	}, stan.DurableName("d"), stan.SetManualAckMode(), stan.MaxInflight(1), stan.AckWait(time.Second))
	l.add("subscribe again: %s", errStr(err))
	time.Sleep(2500 * time.Millisecond)
}

// queueLastLeaveScenario: the last member of a plain queue group leaves with unacknowledged
// messages; a new member of that name starts a new group.
func queueLastLeaveScenario(s *timeSrv, l *tlog) {
	sc, err := tconn(s.url, "qx")
	if err != nil {
		l.add("connect: %v", err)
		return
	}
	defer sc.Close()
	for _, durable := range []string{"", "dq"} {
		ch := "qx" + durable
		a, err := sc.QueueSubscribe(ch, "q", func(m *stan.Msg) {
			l.deliver(ch+" a", "%d%s", m.Sequence, redelivMark(m.Redelivered))
		}, stan.DurableName(durable), stan.SetManualAckMode(), stan.MaxInflight(2), stan.AckWait(time.Second))
		l.add("subscribe a: %s", errStr(err))
		l.add("publish: %s", errStr(sc.Publish(ch, []byte("1"))))
		time.Sleep(200 * time.Millisecond)
		if a != nil {
			l.add("close a: %s", errStr(a.Close()))
		}
		l.add("publish: %s", errStr(sc.Publish(ch, []byte("2"))))
		_, err = sc.QueueSubscribe(ch, "q", func(m *stan.Msg) {
			l.deliver(ch+" b", "%d%s", m.Sequence, redelivMark(m.Redelivered))
			_ = m.Ack()
		}, stan.DurableName(durable), stan.SetManualAckMode(), stan.AckWait(time.Second))
		l.add("subscribe b: %s", errStr(err))
	}
	time.Sleep(1500 * time.Millisecond)
}

// startTimeScenario: StartAtTime and StartAtTimeDelta pick by the messages' timestamps.
func startTimeScenario(s *timeSrv, l *tlog) {
	sc, err := tconn(s.url, "st")
	if err != nil {
		l.add("connect: %v", err)
		return
	}
	defer sc.Close()
	before := time.Now().Add(-time.Second)
	l.add("publish: %s", errStr(sc.Publish("st", []byte("m1"))))
	time.Sleep(400 * time.Millisecond)
	between := time.Now()
	time.Sleep(400 * time.Millisecond)
	l.add("publish: %s", errStr(sc.Publish("st", []byte("m2"))))
	collect(l, sc, "before", "st", false, stan.StartAtTime(before))
	collect(l, sc, "between", "st", false, stan.StartAtTime(between))
	collect(l, sc, "delta", "st", false, stan.StartAtTimeDelta(200*time.Millisecond))
	collect(l, sc, "future", "st", false, stan.StartAtTime(time.Now().Add(time.Hour)))
	time.Sleep(200 * time.Millisecond)
	l.add("publish: %s", errStr(sc.Publish("st", []byte("m3"))))
	time.Sleep(300 * time.Millisecond)
}

// inactivityGroupScenario (max_inactivity 1 s, heartbeats of 300 ms): a channel whose only
// subscription is an offline durable queue group, and one whose subscriber's client the
// heartbeats close.
func inactivityGroupScenario(s *timeSrv, l *tlog) {
	sc, err := tconn(s.url, "ig")
	if err != nil {
		l.add("connect: %v", err)
		return
	}
	defer sc.Close()
	dead, err := tconn(s.url, "igdead")
	if err != nil {
		l.add("connect: %v", err)
		return
	}
	q, err := sc.QueueSubscribe("ig1", "q", func(m *stan.Msg) { l.deliver("member", "%d", m.Sequence) },
		stan.DurableName("dq"), stan.DeliverAllAvailable())
	l.add("subscribe member: %s", errStr(err))
	l.add("publish: %s", errStr(sc.Publish("ig1", []byte("a"))))
	collect(l, dead, "dead", "ig2", false)
	l.add("publish: %s", errStr(sc.Publish("ig2", []byte("b"))))
	time.Sleep(100 * time.Millisecond)
	if q != nil {
		l.add("close member: %s", errStr(q.Close()))
	}
	dead.NatsConn().Close()
	time.Sleep(3 * time.Second)
	_, err = sc.QueueSubscribe("ig1", "q", func(m *stan.Msg) { l.deliver("member again", "%s", m.Data) },
		stan.DurableName("dq"), stan.DeliverAllAvailable())
	l.add("subscribe member again: %s", errStr(err))
	// Deleted channels: sequences not compared (see inactivityScenario).
	collect(l, sc, "ig1 all", "ig1", true, stan.DeliverAllAvailable())
	collect(l, sc, "ig2 all", "ig2", true, stan.DeliverAllAvailable())
	l.add("publish: %s", errStr(sc.Publish("ig1", []byte("c"))))
	time.Sleep(300 * time.Millisecond)
}

// ageStaggerScenario (max_age 1 s): messages expire one by one, each at its own age.
func ageStaggerScenario(s *timeSrv, l *tlog) {
	sc, err := tconn(s.url, "ags")
	if err != nil {
		l.add("connect: %v", err)
		return
	}
	defer sc.Close()
	l.add("publish: %s", errStr(sc.Publish("ags", []byte("m1"))))
	time.Sleep(600 * time.Millisecond)
	l.add("publish: %s", errStr(sc.Publish("ags", []byte("m2"))))
	time.Sleep(700 * time.Millisecond) // m1 is 1.3 s old, m2 0.7 s
	collect(l, sc, "all", "ags", false, stan.DeliverAllAvailable())
	collect(l, sc, "seq1", "ags", false, stan.StartAtSequence(1))
	time.Sleep(200 * time.Millisecond)
}

// limitPendingScenario (max_msgs 2): an unacknowledged message that the limit removes is
// not redelivered.
func limitPendingScenario(s *timeSrv, l *tlog) {
	sc, err := tconn(s.url, "lp")
	if err != nil {
		l.add("connect: %v", err)
		return
	}
	defer sc.Close()
	collect(l, sc, "unacked", "lp", false, stan.SetManualAckMode(), stan.MaxInflight(1), stan.AckWait(time.Second))
	for i := 1; i <= 3; i++ {
		l.add("publish: %s", errStr(sc.Publish("lp", []byte(fmt.Sprint(i)))))
	}
	time.Sleep(2500 * time.Millisecond)
}

// inactivityKeptScenario (max_inactivity 1 s): publishes every 0.6 s keep a channel.
func inactivityKeptScenario(s *timeSrv, l *tlog) {
	sc, err := tconn(s.url, "ik")
	if err != nil {
		l.add("connect: %v", err)
		return
	}
	defer sc.Close()
	for i := 1; i <= 4; i++ {
		l.add("publish: %s", errStr(sc.Publish("ik", []byte(fmt.Sprint(i)))))
		time.Sleep(600 * time.Millisecond)
	}
	collect(l, sc, "all", "ik", false, stan.DeliverAllAvailable())
	time.Sleep(300 * time.Millisecond)
}

// queueStallScenario: in a queue group, a member that holds its one message unacknowledged
// and one that acknowledges everything; where the timed-out message goes.
func queueStallScenario(s *timeSrv, l *tlog) {
	sc, err := tconn(s.url, "qs")
	if err != nil {
		l.add("connect: %v", err)
		return
	}
	defer sc.Close()
	_, err = sc.QueueSubscribe("qs", "q", func(m *stan.Msg) { l.deliver("a", "%d%s", m.Sequence, redelivMark(m.Redelivered)) },
		stan.SetManualAckMode(), stan.MaxInflight(1), stan.AckWait(time.Second))
	l.add("subscribe a: %s", errStr(err))
	time.Sleep(100 * time.Millisecond)
	_, err = sc.QueueSubscribe("qs", "q", func(m *stan.Msg) {
		l.deliver("b", "%d%s", m.Sequence, redelivMark(m.Redelivered))
		_ = m.Ack()
	}, stan.SetManualAckMode(), stan.AckWait(time.Second))
	l.add("subscribe b: %s", errStr(err))
	for i := 1; i <= 3; i++ {
		l.add("publish: %s", errStr(sc.Publish("qs", []byte(fmt.Sprint(i)))))
		time.Sleep(100 * time.Millisecond)
	}
	time.Sleep(1600 * time.Millisecond)
}

func TestStanDiffTime(t *testing.T) {
	nssBinary(t)
	rounds := 1
	if n, err := strconv.Atoi(os.Getenv("STANDIFF_TIME_ROUNDS")); err == nil && n > 0 {
		rounds = n
	}
	for r := range rounds {
		if rounds == 1 {
			timeRound(t)
			break
		}
		t.Run(fmt.Sprint("round", r), timeRound)
	}
}

// timeRound runs every scenario once, on new servers.
func timeRound(t *testing.T) {
	base := [2]*timeSrv{startNSSTime(t), startStarlingTime(t, nil, nil)}
	age := [2]*timeSrv{startNSSTime(t, "-ma", "1s"), startStarlingTime(t, func(l *stores.Limits) { l.MaxAge = time.Second }, nil)}
	inact := [2]*timeSrv{startNSSTime(t, "-mi", "1s", "-hbi", "300ms", "-hbt", "300ms", "-hbf", "2"),
		startStarlingTime(t, func(l *stores.Limits) { l.MaxInactivity = time.Second }, hbFast)}
	hb := [2]*timeSrv{startNSSTime(t, "-hbi", "300ms", "-hbt", "300ms", "-hbf", "2", "-msu", "2"),
		startStarlingTime(t, func(l *stores.Limits) { l.MaxSubs = 2 }, hbFast)}
	mm := [2]*timeSrv{startNSSTime(t, "-mm", "2"), startStarlingTime(t, func(l *stores.Limits) { l.MaxMsgs = 2 }, nil)}
	hbSlow := [2]*timeSrv{startNSSTime(t, "-hbi", "300ms", "-hbt", "300ms", "-hbf", "30"),
		startStarlingTime(t, nil, func(o *streaming.Options) { hbFast(o); o.HBFailCount = 30 })}
	ping := [2]*timeSrv{startNSSTime(t), startStarlingTime(t, nil, nil)}
	var cases []*timeCase
	add := func(name string, srv [2]*timeSrv, f func(*timeSrv, *tlog)) {
		cases = append(cases, &timeCase{name: name, srv: srv, run: f})
	}
	for _, kind := range []string{"plain", "durable", "queue", "dqueue"} {
		add(kind+"-inflight1", base, redeliverScenario(kind, 1, []int{2, 1, 3}))
		add(kind+"-inflight3", base, redeliverScenario(kind, 3, []int{2, 1, 3, 1, 2}))
	}
	add("queue2-inflight2", base, redeliverScenario("queue2", 2, []int{2, 1, 3, 1, 2}))
	add("maxage", age, ageScenario)
	add("maxinactivity", inact, inactivityScenario)
	add("heartbeats", hb, hbScenario)
	add("duplicate-id", base, dupScenario)
	add("pings", ping, pingScenario)
	add("paused", hb, pausedScenario)
	add("duplicate-paused", base, dupPausedScenario)
	add("durable-resume", base, durableResumeScenario)
	add("queue-leave", base, queueLeaveScenario)
	add("maxage-durable", age, ageDurableScenario)
	add("maxinactivity-unsub", inact, inactivityUnsubScenario)
	add("durable-shrink", base, durableShrinkScenario)
	add("queue-last-leave", base, queueLastLeaveScenario)
	add("start-time", base, startTimeScenario)
	add("maxinactivity-groups", inact, inactivityGroupScenario)
	add("heartbeats-queue", hb, hbQueueScenario)
	add("maxage-stagger", age, ageStaggerScenario)
	add("maxmsgs-pending", mm, limitPendingScenario)
	add("maxinactivity-kept", inact, inactivityKeptScenario)
	add("queue-stall", base, queueStallScenario)
	add("heartbeats-failing", hbSlow, hbFailingScenario)
	diffTime(t, cases)
}
