package tests

// The servers, transcripts and raw protocol clients of stan_diff_time_test.go.

import (
	"context"
	"fmt"
	"maps"
	"os"
	"slices"
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

// hbFast: heartbeats every 300 ms, 300 ms to answer, closed after 2 failures.
func hbFast(o *streaming.Options) {
	o.HBInterval, o.HBTimeout, o.HBFailCount = 300*time.Millisecond, 300*time.Millisecond, 2
}
