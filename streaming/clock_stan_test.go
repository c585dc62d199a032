package streaming_test

import (
	"context"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/stan.go"

	"github.com/starling-io/starling/core"
	"github.com/starling-io/starling/raftlog"
	"github.com/starling-io/starling/stores/memstore"
	"github.com/starling-io/starling/streaming"
)

// stanClockServer starts a core server and a streaming server over memory, and returns
// the streaming server and a stan.go connection to it as client-1.
func stanClockServer(t *testing.T) (*streaming.Server, stan.Conn) {
	t.Helper()
	return stanClockServerWith(t, streaming.Options{}, nil)
}

// stanClockServerWith is stanClockServer with options o (ClusterID set), and the bus
// wrapped by wrap unless nil, which is called with the server before it starts.
func stanClockServerWith(t *testing.T, o streaming.Options, wrap func(streaming.Bus) (streaming.Bus, func(*streaming.Server))) (*streaming.Server, stan.Conn) {
	t.Helper()
	cs, err := core.New(core.Options{Host: "127.0.0.1", Port: -1})
	check(t, err)
	check(t, cs.Start())
	conn, err := cs.Connect("_STARLING-test-cluster")
	check(t, err)
	store, err := memstore.New(memstore.Options{})
	check(t, err)
	bus := streaming.InProcess(conn)
	var started func(*streaming.Server)
	if wrap != nil {
		bus, started = wrap(bus)
	}
	o.ClusterID = "test-cluster"
	st, err := streaming.New(bus, store, raftlog.Standalone, o)
	check(t, err)
	if started != nil {
		started(st)
	}
	check(t, st.Start())
	t.Cleanup(func() {
		_ = st.Shutdown()
		conn.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = cs.Shutdown(ctx)
	})
	sc, err := stan.Connect("test-cluster", "client-1", stan.NatsURL(cs.ClientURL()))
	check(t, err)
	t.Cleanup(func() { _ = sc.Close() })
	return st, sc
}

// nextMsg returns the next message got receives within within.
func nextMsg(t *testing.T, got chan *stan.Msg, what string, within time.Duration) *stan.Msg {
	t.Helper()
	select {
	case m := <-got:
		return m
	case <-time.After(within):
		t.Fatalf("%s: nothing within %v", what, within)
		return nil
	}
}

// TestStanClockStepBack: a stan.go subscriber at max in flight whose message is not acked
// gets it again one ack wait after it was sent although the server's clock stepped back an
// hour meanwhile, and the next message once it acks. Before, the redelivery waited for the
// clock to come back (an hour more), and the subscriber got nothing meanwhile.
func TestStanClockStepBack(t *testing.T) {
	st, sc := stanClockServer(t)
	got := make(chan *stan.Msg, 16)
	const ackWait = time.Second
	_, err := sc.Subscribe("foo", func(m *stan.Msg) { got <- m },
		stan.SetManualAckMode(), stan.MaxInflight(1), stan.AckWait(ackWait))
	check(t, err)
	next := func(what string, within time.Duration) *stan.Msg { t.Helper(); return nextMsg(t, got, what, within) }
	check(t, sc.Publish("foo", []byte("one")))
	first := next("first delivery", 5*time.Second)
	sent := time.Now()
	check(t, sc.Publish("foo", []byte("two"))) // waits: max in flight reached
	streaming.StepClock(st, -time.Hour)
	again := next("redelivery after the clock stepped back", 3*ackWait)
	if again.Sequence != first.Sequence || !again.Redelivered {
		t.Fatalf("got seq %d (redelivered %v), want seq %d redelivered", again.Sequence, again.Redelivered, first.Sequence)
	}
	if took := time.Since(sent); took > 2*ackWait {
		t.Fatalf("redelivered %v after the first delivery, want about the ack wait (%v)", took, ackWait)
	}
	check(t, again.Ack())
	if m := next("the next message after the ack", 2*time.Second); m.Sequence != first.Sequence+1 || m.Redelivered {
		t.Fatalf("after the ack: seq %d (redelivered %v), want seq %d, first delivery", m.Sequence, m.Redelivered, first.Sequence+1)
	}
}

// TestStanClockStepForward: a stan.go subscriber sent two messages half an ack wait apart,
// then the server's clock stepped an hour forward, gets each again one ack wait after it
// was sent. Before, the redelivery pass of the first message found the second an hour
// overdue and resent it half an ack wait after its first delivery.
func TestStanClockStepForward(t *testing.T) {
	st, sc := stanClockServer(t)
	got := make(chan *stan.Msg, 16)
	const ackWait = time.Second
	_, err := sc.Subscribe("foo", func(m *stan.Msg) { got <- m },
		stan.SetManualAckMode(), stan.MaxInflight(2), stan.AckWait(ackWait))
	check(t, err)
	check(t, sc.Publish("foo", []byte("one")))
	first := nextMsg(t, got, "first delivery", 5*time.Second)
	time.Sleep(ackWait / 2)
	check(t, sc.Publish("foo", []byte("two")))
	second := nextMsg(t, got, "second delivery", 5*time.Second)
	sent := time.Now()
	streaming.StepClock(st, time.Hour)
	if second.Sequence != first.Sequence+1 {
		t.Fatalf("got seq %d, want %d", second.Sequence, first.Sequence+1)
	}
	for range 2 {
		m := nextMsg(t, got, "redelivery", 3*ackWait)
		if m.Sequence == second.Sequence {
			if took := time.Since(sent); took < ackWait*3/4 {
				t.Fatalf("seq %d redelivered %v after its first delivery, want about the ack wait (%v)", m.Sequence, took, ackWait)
			}
		}
	}
}

// TestStanClockStepForwardAndBack: after the server's clock stepped an hour forward and back
// again, a stan.go subscriber sees a message published then stamped with the wall time, and
// the timestamps of a channel published to meanwhile in order. Before, the server's clock
// stayed an hour ahead until real time caught up, and stamped every message so.
func TestStanClockStepForwardAndBack(t *testing.T) {
	st, sc := stanClockServer(t)
	streaming.StepClock(st, time.Hour)
	check(t, sc.Publish("bar", []byte("during")))
	streaming.StepClock(st, -time.Hour)
	check(t, sc.Publish("foo", []byte("after")))
	check(t, sc.Publish("bar", []byte("after")))
	got := make(chan *stan.Msg, 16)
	for _, channel := range []string{"foo", "bar"} {
		sub, err := sc.Subscribe(channel, func(m *stan.Msg) { got <- m }, stan.DeliverAllAvailable())
		check(t, err)
		defer func() { _ = sub.Unsubscribe() }()
	}
	var bar []int64
	for range 3 {
		m := nextMsg(t, got, "replay", 5*time.Second)
		if m.Subject == "foo" {
			if d := time.Since(time.Unix(0, m.Timestamp)); d < -time.Second || d > time.Second {
				t.Fatalf("foo stamped %v from now, want the wall time", -d)
			}
			continue
		}
		bar = append(bar, m.Timestamp)
	}
	if len(bar) != 2 || bar[1] < bar[0] {
		t.Fatalf("bar's timestamps %v, want two in order", bar)
	}
}

// steppingBus steps its server's clock an hour forward as it sends each heartbeat request,
// before the client can answer it.
type steppingBus struct {
	streaming.Bus
	st    *streaming.Server
	steps atomic.Int32
}

func (b *steppingBus) Publish(subject, reply string, hdr, data []byte) error {
	if strings.HasPrefix(reply, "_STAN.hb.") {
		streaming.StepClock(b.st, time.Hour)
		b.steps.Add(1)
	}
	return b.Bus.Publish(subject, reply, hdr, data)
}

// TestStanHeartbeatsThroughClockSteps: a stan.go client, which answers every heartbeat at
// once, stays registered although the server's clock steps an hour forward between each
// heartbeat request and its answer. Before, every answer was timed by the wall clock, an
// hour late, and the server closed the client after hb_fail_count of them: its publishes
// were refused.
func TestStanHeartbeatsThroughClockSteps(t *testing.T) {
	o := streaming.Options{HBInterval: 50 * time.Millisecond, HBTimeout: time.Second, HBFailCount: 2}
	b := &steppingBus{}
	_, sc := stanClockServerWith(t, o, func(bus streaming.Bus) (streaming.Bus, func(*streaming.Server)) {
		b.Bus = bus
		return b, func(st *streaming.Server) { b.st = st }
	})
	// Enough heartbeats for hb_fail_count late answers several times over: waited for, as a
	// starved engine (-race, a loaded machine) merges close ticks.
	deadline := time.Now().Add(20 * time.Second)
	for b.steps.Load() < 10 {
		if time.Now().After(deadline) {
			t.Fatalf("%d heartbeats in 20 s, want 10", b.steps.Load())
		}
		time.Sleep(o.HBInterval)
	}
	check(t, sc.Publish("foo", []byte("still registered")))
}
