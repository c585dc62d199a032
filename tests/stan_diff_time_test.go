package tests

// A differential test of the time-dependent streaming semantics, after stan_diff_test.go:
// each scenario runs with real stan.go clients against the real nats-streaming-server
// v0.25.6 and against Starling at the same time, and what the clients saw must be the
// same. The scenarios wait generously around each deadline (ack wait 1 s, the client
// minimum; max_age and max_inactivity 1 s; heartbeats every 300 ms), so their outcomes do
// not depend on how busy the machine is: what is redelivered and in which order, what
// expires, which channel is deleted, which client the server closes.
//
// `go test -run TestStanDiffTime` runs them all in parallel in under 10 s.

import (
	"context"
	"fmt"
	"maps"
	"os"
	"slices"
	"sort"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/stan.go"
	"github.com/nats-io/stan.go/pb"

	"github.com/starling-io/starling/core"
	"github.com/starling-io/starling/raftlog"
	"github.com/starling-io/starling/stores"
	"github.com/starling-io/starling/stores/memstore"
	"github.com/starling-io/starling/streaming"
)

// timeSrv is a server on a memory store that a scenario may restart on the same port
// (losing its state) or stop.
type timeSrv struct {
	url     string
	restart func() error
	stop    func()
}

// waitUp waits until the streaming server at url registers clients (no t: scenarios run
// on their own goroutines).
func waitUp(url string) error {
	var err error
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		var sc stan.Conn
		if sc, err = stan.Connect("test-cluster", "probe", stan.NatsURL(url), stan.ConnectWait(time.Second)); err == nil {
			return sc.Close()
		}
	}
	return err
}

// startNSSTime runs nss on a memory store with the extra flags.
func startNSSTime(t *testing.T, flags ...string) *timeSrv {
	bin, port := nssBinary(t), freePort(t)
	args := append([]string{"-cid", "test-cluster", "-a", "127.0.0.1", "-p", fmt.Sprint(port)}, flags...)
	var mu sync.Mutex
	p := startProc(t, bin, args...)
	s := &timeSrv{url: fmt.Sprintf("nats://127.0.0.1:%d", port)}
	s.stop = func() {
		mu.Lock()
		defer mu.Unlock()
		_ = p.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case err := <-p.done:
			p.done <- err // for startProc's cleanup
		case <-time.After(20 * time.Second):
		}
	}
	s.restart = func() error {
		s.stop()
		mu.Lock()
		p = startProc(t, bin, args...)
		mu.Unlock()
		return waitUp(s.url)
	}
	must(t, waitUp(s.url))
	return s
}

// startStarlingTime runs Starling in-process (core + streaming on a memory store) with
// the limits and options changed by mod, on a fixed port so that it can restart.
func startStarlingTime(t *testing.T, lim func(*stores.Limits), mod func(*streaming.Options)) *timeSrv {
	port := freePort(t)
	var mu sync.Mutex
	var cs *core.Server
	var st *streaming.Server
	s := &timeSrv{url: fmt.Sprintf("nats://127.0.0.1:%d", port)}
	start := func() error {
		mu.Lock()
		defer mu.Unlock()
		limits := &stores.LimitsSet{Global: stores.DefaultLimits()}
		if lim != nil {
			lim(&limits.Global)
		}
		c, err := core.New(core.Options{Host: "127.0.0.1", Port: port})
		if err != nil {
			return err
		}
		if err := c.Start(); err != nil {
			return err
		}
		cs = c
		conn, err := cs.Connect("_STARLING-test")
		if err != nil {
			return err
		}
		store, err := memstore.New(memstore.Options{Limits: limits})
		if err != nil {
			return err
		}
		opts := streaming.Options{ClusterID: "test-cluster", Limits: limits}
		if mod != nil {
			mod(&opts)
		}
		if st, err = streaming.New(streaming.InProcess(conn), store, raftlog.Standalone, opts); err != nil {
			return err
		}
		return st.Start()
	}
	s.stop = func() {
		mu.Lock()
		defer mu.Unlock()
		if st != nil {
			_ = st.Shutdown()
			st = nil
		}
		if cs != nil {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			_ = cs.Shutdown(ctx)
			cs = nil
		}
	}
	s.restart = func() error {
		s.stop()
		if err := start(); err != nil {
			return err
		}
		return waitUp(s.url)
	}
	must(t, start())
	t.Cleanup(s.stop)
	return s
}

// tconn connects a client; opts come after the defaults, so they may override them.
func tconn(url, id string, opts ...stan.Option) (stan.Conn, error) {
	return stan.Connect("test-cluster", id, append([]stan.Option{stan.NatsURL(url), stan.ConnectWait(5 * time.Second),
		stan.PubAckWait(3 * time.Second)}, opts...)...)
}

// tlog is a scenario's transcript: the scenario's own lines in order, then each
// subscription's deliveries in order (handlers run concurrently with the scenario).
type tlog struct {
	mu    sync.Mutex
	lines []string
	subs  map[string][]string
}

func (l *tlog) add(format string, a ...any) {
	l.mu.Lock()
	l.lines = append(l.lines, fmt.Sprintf(format, a...))
	l.mu.Unlock()
}

func (l *tlog) deliver(sub, format string, a ...any) {
	l.mu.Lock()
	if l.subs == nil {
		l.subs = map[string][]string{}
	}
	l.subs[sub] = append(l.subs[sub], fmt.Sprintf(format, a...))
	l.mu.Unlock()
}

func (l *tlog) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := slices.Clone(l.lines)
	for _, k := range slices.Sorted(maps.Keys(l.subs)) {
		out = append(out, k+": "+strings.Join(l.subs[k], " "))
	}
	return strings.Join(out, "\n")
}

// collect subscribes and logs each delivery as "seq:data[R]" (data only when noSeq).
func collect(l *tlog, sc stan.Conn, name, ch string, noSeq bool, opts ...stan.SubscriptionOption) stan.Subscription {
	sub, err := sc.Subscribe(ch, func(m *stan.Msg) {
		if noSeq {
			l.deliver(name, "%s%s", m.Data, redelivMark(m.Redelivered))
			return
		}
		l.deliver(name, "%d:%s%s", m.Sequence, m.Data, redelivMark(m.Redelivered))
	}, opts...)
	l.add("subscribe %s: %s", name, errStr(err))
	return sub
}

// timeCase is one scenario on one pair of servers (nss, Starling) and its transcripts.
type timeCase struct {
	name string
	srv  [2]*timeSrv
	run  func(*timeSrv, *tlog)
	logs [2]tlog
}

// diffTime runs every scenario against both servers at once (not as parallel subtests:
// -parallel is GOMAXPROCS, 2 here, and the scenarios mostly sleep), then compares the
// transcripts of each.
func diffTime(t *testing.T, cases []*timeCase) {
	var wg sync.WaitGroup
	for _, c := range cases {
		for i := range 2 {
			wg.Add(1)
			go func() { defer wg.Done(); c.run(c.srv[i], &c.logs[i]) }()
		}
	}
	wg.Wait()
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			a, b := c.logs[0].String(), c.logs[1].String()
			if os.Getenv("STANDIFF_LOG") != "" {
				t.Logf("nss:\n%s", a)
			}
			if a != b {
				t.Errorf("transcripts differ\nnss:\n%s\nstarling:\n%s", a, b)
			}
		})
	}
}

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

// hbScenario (heartbeats every 300 ms, 300 ms to answer, closed after 2 failures, at most
// 2 subscriptions per channel): a client whose NATS connection is gone without a stan
// Close is closed by the server, its plain subscription removed and its durable offline.
func hbScenario(s *timeSrv, l *tlog) {
	sc, err := tconn(s.url, "hb1")
	if err != nil {
		l.add("connect: %v", err)
		return
	}
	p, err := tconn(s.url, "hbp")
	if err != nil {
		l.add("connect: %v", err)
		return
	}
	defer p.Close()
	collect(l, sc, "plain", "hb", false)
	collect(l, sc, "durable", "hb", false, stan.DurableName("dd"))
	l.add("publish: %s", errStr(p.Publish("hb", []byte("m1"))))
	time.Sleep(200 * time.Millisecond)
	sc.NatsConn().Close()
	l.add("publish: %s", errStr(p.Publish("hb", []byte("m2"))))
	time.Sleep(2500 * time.Millisecond)
	// Had hb1's plain subscription stayed, this would be one too many.
	sub := collect(l, p, "other", "hb", false)
	if sub != nil {
		l.add("close: %s", errStr(sub.Close()))
	}
	l.add("publish after heartbeats: %s", errStr(p.Publish("hb", []byte("m3"))))
	sc2, err := tconn(s.url, "hb1")
	l.add("connect hb1 again: %s", errStr(err))
	if err != nil {
		return
	}
	defer sc2.Close()
	collect(l, sc2, "durable again", "hb", false, stan.DurableName("dd"))
	time.Sleep(300 * time.Millisecond)
}

// dupScenario: a second connect with the ID of a live client is refused (the server
// probes the old one, which answers); with that of a dead one it replaces it.
func dupScenario(s *timeSrv, l *tlog) {
	a, err := tconn(s.url, "dup1")
	if err != nil {
		l.add("connect: %v", err)
		return
	}
	defer a.Close()
	b, err := tconn(s.url, "dup1")
	l.add("second dup1 while alive: %s", errStr(err))
	if b != nil {
		b.NatsConn().Close()
	}
	l.add("first publishes: %s", errStr(a.Publish("dup", []byte("x"))))
	c, err := tconn(s.url, "dup2")
	if err != nil {
		l.add("connect: %v", err)
		return
	}
	c.NatsConn().Close()
	d, err := tconn(s.url, "dup2")
	l.add("second dup2 when dead: %s", errStr(err))
	if d != nil {
		l.add("it publishes: %s", errStr(d.Publish("dup", []byte("y"))))
		_ = d.Close()
	}
}

// pingScenario: stan.go's pings (every second, 3 unanswered at most) across a server
// restart (the restarted server does not know the client) and a server gone.
func pingScenario(s *timeSrv, l *tlog) {
	lost := make(chan error, 2)
	opts := []stan.Option{stan.Pings(1, 3), stan.SetConnectionLostHandler(func(_ stan.Conn, err error) { lost <- err }),
		stan.NatsOptions(nats.ReconnectWait(20*time.Millisecond), nats.MaxReconnects(-1))}
	wait := func(what string) {
		select {
		case err := <-lost:
			l.add("%s: connection lost: %v", what, err)
		case <-time.After(7 * time.Second):
			l.add("%s: connection not lost", what)
		}
	}
	a, err := tconn(s.url, "pg", opts...)
	if err != nil {
		l.add("connect: %v", err)
		return
	}
	defer a.NatsConn().Close()
	l.add("restart: %s", errStr(s.restart()))
	wait("restart")
	b, err := tconn(s.url, "pg", opts...)
	l.add("connect again: %s", errStr(err))
	if err != nil {
		return
	}
	defer b.NatsConn().Close()
	s.stop()
	wait("stop")
}

// timeRawClient registers client id over a bare NATS connection whose heartbeat inbox is
// subscribed (when listen) but never answered: a client that is paused, not gone.
func timeRawClient(url, id string, listen bool) (*nats.Conn, *pb.ConnectResponse, error) {
	nc, err := nats.Connect(url)
	if err != nil {
		return nil, nil, err
	}
	hb := nats.NewInbox()
	if listen {
		if _, err := nc.SubscribeSync(hb); err != nil {
			return nc, nil, err
		}
	}
	req, _ := (&pb.ConnectRequest{ClientID: id, HeartbeatInbox: hb, Protocol: 1, ConnID: []byte(id + "-conn"),
		PingInterval: 1, PingMaxOut: 3}).Marshal()
	m, err := nc.Request("_STAN.discover.test-cluster", req, 5*time.Second)
	if err != nil {
		return nc, nil, err
	}
	cr := &pb.ConnectResponse{}
	if err := cr.Unmarshal(m.Data); err != nil {
		return nc, nil, err
	}
	if cr.Error != "" {
		return nc, nil, fmt.Errorf("%s", cr.Error)
	}
	return nc, cr, nil
}

// timeRawSubscribe subscribes the raw client (auto ack wait 30 s; nothing is acknowledged).
func timeRawSubscribe(nc *nats.Conn, cr *pb.ConnectResponse, id, ch, durable string) string {
	inbox := nats.NewInbox()
	if _, err := nc.SubscribeSync(inbox); err != nil {
		return errStr(err)
	}
	req, _ := (&pb.SubscriptionRequest{ClientID: id, Subject: ch, Inbox: inbox, MaxInFlight: 10, AckWaitInSecs: 30,
		DurableName: durable, StartPosition: pb.StartPosition_NewOnly}).Marshal()
	m, err := nc.Request(cr.SubRequests, req, 5*time.Second)
	if err != nil {
		return errStr(err)
	}
	r := &pb.SubscriptionResponse{}
	if err := r.Unmarshal(m.Data); err != nil {
		return errStr(err)
	}
	if r.Error != "" {
		return "error: " + r.Error
	}
	return "ok"
}

// timeRawPing sends a client ping with the connection ID of timeRawClient(id) and returns
// the server's answer.
func timeRawPing(nc *nats.Conn, cr *pb.ConnectResponse, id string) string {
	req, _ := (&pb.Ping{ConnID: []byte(id + "-conn")}).Marshal()
	m, err := nc.Request(cr.PingRequests, req, 3*time.Second)
	if err != nil {
		return errStr(err)
	}
	r := &pb.PingResponse{}
	if err := r.Unmarshal(m.Data); err != nil {
		return errStr(err)
	}
	if r.Error != "" {
		return "error: " + r.Error
	}
	return "ok"
}

// pausedScenario (the heartbeat server): a client that does not answer heartbeats is
// closed like a gone one.
func pausedScenario(s *timeSrv, l *tlog) {
	nc, cr, err := timeRawClient(s.url, "pz", true)
	if nc != nil {
		defer nc.Close()
	}
	l.add("raw connect: %s", errStr(err))
	if err != nil {
		return
	}
	l.add("raw plain: %s", timeRawSubscribe(nc, cr, "pz", "pzc", ""))
	l.add("raw durable: %s", timeRawSubscribe(nc, cr, "pz", "pzc", "pd"))
	p, err := tconn(s.url, "pzp")
	if err != nil {
		l.add("connect: %v", err)
		return
	}
	defer p.Close()
	l.add("publish: %s", errStr(p.Publish("pzc", []byte("m1"))))
	l.add("ping: %s", timeRawPing(nc, cr, "pz"))
	time.Sleep(2500 * time.Millisecond)
	l.add("ping after heartbeats: %s", timeRawPing(nc, cr, "pz"))
	if sub := collect(l, p, "other", "pzc", false); sub != nil {
		l.add("close: %s", errStr(sub.Close()))
	}
	sc, err := tconn(s.url, "pz")
	l.add("connect pz: %s", errStr(err))
	if err != nil {
		return
	}
	defer sc.Close()
	collect(l, sc, "durable again", "pzc", false, stan.DurableName("pd"))
	time.Sleep(300 * time.Millisecond)
}

// dupPausedScenario: a connect with the ID of a registered client that does not answer
// (no subscriber on its heartbeat inbox, or one that never replies) replaces it.
func dupPausedScenario(s *timeSrv, l *tlog) {
	for _, listen := range []bool{false, true} {
		id := fmt.Sprintf("dp-%v", listen)
		nc, cr, err := timeRawClient(s.url, id, listen)
		l.add("raw %s: %s", id, errStr(err))
		sc, err := tconn(s.url, id)
		l.add("connect %s: %s", id, errStr(err))
		if cr != nil {
			l.add("old one pings: %s", timeRawPing(nc, cr, id))
		}
		if sc != nil {
			_ = sc.Close()
		}
		if nc != nil {
			nc.Close()
		}
	}
}

// durableResumeScenario: a durable closed with unacknowledged messages gets them again,
// flagged, as soon as it is back, then the rest.
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
	sub, err = sc.Subscribe("dr", func(m *stan.Msg) {
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

// hbQueueScenario (heartbeats of 300 ms): the heartbeats close a client whose durable queue
// member holds unacknowledged messages; the live member gets them.
func hbQueueScenario(s *timeSrv, l *tlog) {
	live, err := tconn(s.url, "hqlive")
	if err != nil {
		l.add("connect: %v", err)
		return
	}
	defer live.Close()
	dead, err := tconn(s.url, "hqdead")
	if err != nil {
		l.add("connect: %v", err)
		return
	}
	_, err = dead.QueueSubscribe("hq", "q", func(m *stan.Msg) { l.deliver("dead", "%d%s", m.Sequence, redelivMark(m.Redelivered)) },
		stan.DurableName("d"), stan.SetManualAckMode(), stan.MaxInflight(5), stan.AckWait(30*time.Second))
	l.add("subscribe dead: %s", errStr(err))
	for i := 1; i <= 2; i++ {
		l.add("publish: %s", errStr(live.Publish("hq", []byte(fmt.Sprint(i)))))
	}
	time.Sleep(200 * time.Millisecond)
	_, err = live.QueueSubscribe("hq", "q", func(m *stan.Msg) {
		l.deliver("live", "%d%s", m.Sequence, redelivMark(m.Redelivered))
		_ = m.Ack()
	}, stan.DurableName("d"), stan.SetManualAckMode(), stan.AckWait(30*time.Second))
	l.add("subscribe live: %s", errStr(err))
	dead.NatsConn().Close()
	time.Sleep(2500 * time.Millisecond)
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

// hbFast: heartbeats every 300 ms, 300 ms to answer, closed after 2 failures.
func hbFast(o *streaming.Options) {
	o.HBInterval, o.HBTimeout, o.HBFailCount = 300*time.Millisecond, 300*time.Millisecond, 2
}

func TestStanDiffTime(t *testing.T) {
	nssBinary(t)
	base := [2]*timeSrv{startNSSTime(t), startStarlingTime(t, nil, nil)}
	age := [2]*timeSrv{startNSSTime(t, "-ma", "1s"), startStarlingTime(t, func(l *stores.Limits) { l.MaxAge = time.Second }, nil)}
	inact := [2]*timeSrv{startNSSTime(t, "-mi", "1s", "-hbi", "300ms", "-hbt", "300ms", "-hbf", "2"),
		startStarlingTime(t, func(l *stores.Limits) { l.MaxInactivity = time.Second }, hbFast)}
	hb := [2]*timeSrv{startNSSTime(t, "-hbi", "300ms", "-hbt", "300ms", "-hbf", "2", "-msu", "2"),
		startStarlingTime(t, func(l *stores.Limits) { l.MaxSubs = 2 }, hbFast)}
	mm := [2]*timeSrv{startNSSTime(t, "-mm", "2"), startStarlingTime(t, func(l *stores.Limits) { l.MaxMsgs = 2 }, nil)}
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
	diffTime(t, cases)
}
