package tests

import (
	"fmt"
	"os"
	"sort"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/stan.go"
)

// The worlds and operations of the differential test (stan_diff_test.go): a world is one
// server with the stan.go clients and subscriptions the operations made on it.

const diffClients = 3

type diffKind int

const (
	dConnect diffKind = iota
	dCloseClient
	dDropClient // closes the NATS connection only: the server still has the client
	dPublish
	dSubscribe
	dUnsub
	dCloseSub
	dAck
	dRestart // file store mode: stop and start the server on the same directory and port
	// The wide generator's (stan_diff_wide_test.go):
	dConnectOdd // connect with an odd client ID (oddID), publish once, close
	dAckOdd     // ack again the oldest acknowledged message (or, oddSeq, a sequence never sent)
)

// Start positions of a subscription.
const (
	startNew = iota
	startLast
	startAll
	startSeq
	startDelta
)

type diffOp struct {
	kind     diffKind
	client   int
	channel  string
	sub      int // target subscription (creation order) of dUnsub, dCloseSub, dAck
	start    int
	seq      uint64
	durable  string
	queue    string
	manual   bool
	inflight int
	ackAll   bool
	kill     bool // dRestart: SIGKILL, not SIGTERM
	// shortAckWait asks for an ack wait under a second, which the servers refuse.
	shortAckWait bool
	payload      int           // dPublish: payloadOp (0), empty, the largest that fits, one too large
	delta        time.Duration // startDelta: the StartAtTimeDelta (0: an hour)
	oddID        string        // dConnectOdd
	oddSeq       bool          // dAckOdd: a sequence the subscription never got
}

func (o diffOp) String() string {
	c := fmt.Sprintf("c%d", o.client)
	switch o.kind {
	case dConnect:
		return "connect " + c
	case dCloseClient:
		return "close " + c
	case dDropClient:
		return "drop " + c
	case dPublish:
		return fmt.Sprintf("publish %s %s%s", c, o.channel, [...]string{"", " empty", " max-payload", " over-max-payload"}[o.payload])
	case dSubscribe:
		s := fmt.Sprintf("subscribe %s %q start=%s", c, o.channel, [...]string{"new", "last", "all", "seq", "delta"}[o.start])
		if o.start == startSeq {
			s += fmt.Sprint(o.seq)
		}
		if o.start == startDelta {
			s += fmt.Sprint(o.deltaOrHour())
		}
		if o.durable != "" {
			s += " durable=" + o.durable
		}
		if o.queue != "" {
			s += " queue=" + o.queue
		}
		if o.manual {
			s += fmt.Sprintf(" manual inflight=%d", o.inflight)
		}
		if o.shortAckWait {
			s += " ackwait=500ms"
		}
		return s
	case dUnsub:
		return fmt.Sprintf("unsubscribe sub%d", o.sub)
	case dCloseSub:
		return fmt.Sprintf("close sub%d", o.sub)
	case dAck:
		if o.ackAll {
			return fmt.Sprintf("ack all of sub%d", o.sub)
		}
		return fmt.Sprintf("ack oldest of sub%d", o.sub)
	case dConnectOdd:
		return fmt.Sprintf("connect odd ID %q (%d chars)", abbrev(o.oddID), len(o.oddID))
	case dAckOdd:
		if o.oddSeq {
			return fmt.Sprintf("ack unknown sequence on sub%d", o.sub)
		}
		return fmt.Sprintf("ack again on sub%d", o.sub)
	case dRestart:
		if o.kill {
			return "restart server (SIGKILL)"
		}
		return "restart server"
	}
	return "?"
}

type diffMsg struct {
	step        int
	seq         uint64
	data        string
	redelivered bool
	m           *stan.Msg
	acked       bool
}

type diffSub struct {
	op     diffOp
	sub    stan.Subscription // nil when Subscribe failed
	closed bool
	msgs   []*diffMsg // guarded by the world's mu
}

// group is the queue group key: nss keeps durable and plain groups of a name apart.
func (s *diffSub) group() string {
	if s.op.queue == "" {
		return ""
	}
	return s.op.channel + "|" + s.op.durable + ":" + s.op.queue
}

type diffWorld struct {
	name    string
	url     string
	restart func(kill bool) // dRestart: stops and starts the server (file store mode)
	mu      sync.Mutex
	last    time.Time // last delivery
	step    int
	clients [diffClients]stan.Conn
	subs    []*diffSub
}

func errStr(err error) string {
	if err == nil {
		return "ok"
	}
	return "error: " + err.Error()
}

func (w *diffWorld) connect(i int) (stan.Conn, error) {
	// Fast reconnects: across a server restart the clients reconnect and carry on.
	return stan.Connect("test-cluster", fmt.Sprintf("c%d", i), stan.NatsURL(w.url), stan.ConnectWait(5*time.Second), stan.PubAckWait(3*time.Second),
		stan.NatsOptions(nats.ReconnectWait(20*time.Millisecond), nats.MaxReconnects(-1)))
}

// closeSubsOf marks the subscriptions of client i closed.
func (w *diffWorld) closeSubsOf(i int) {
	for _, s := range w.subs {
		if s.op.client == i {
			s.closed = true
		}
	}
}

// apply runs op (number step) on the world and returns what the client saw.
func (w *diffWorld) apply(op diffOp, step int) string {
	w.mu.Lock()
	w.step = step
	w.mu.Unlock()
	sc := w.clients[op.client]
	switch op.kind {
	case dConnect:
		nsc, err := w.connect(op.client)
		if err != nil {
			return errStr(err)
		}
		if sc != nil {
			// The server replaced the old connection of this ID: drop it without a
			// close request, which would close the new one.
			sc.NatsConn().Close()
			w.closeSubsOf(op.client)
		}
		w.clients[op.client] = nsc
		return "ok"
	case dCloseClient, dDropClient:
		if sc == nil {
			return "no client"
		}
		w.clients[op.client] = nil
		w.closeSubsOf(op.client)
		if op.kind == dDropClient {
			sc.NatsConn().Close()
			return "ok"
		}
		return errStr(sc.Close())
	case dPublish:
		if sc == nil {
			return "no client"
		}
		return errStr(sc.Publish(op.channel, diffPayload(op, step)))
	case dSubscribe:
		if sc == nil {
			return "no client"
		}
		return w.subscribe(sc, op)
	case dUnsub, dCloseSub:
		s := w.subs[op.sub]
		if s.sub == nil {
			return "no subscription"
		}
		s.closed = true
		if op.kind == dUnsub {
			return errStr(s.sub.Unsubscribe())
		}
		return errStr(s.sub.Close())
	case dAck:
		return w.ack(op)
	case dConnectOdd:
		return w.connectOdd(op, step)
	case dAckOdd:
		return w.ackOdd(op)
	case dRestart:
		// The clients stay registered (in the store) and reconnect.
		w.restart(op.kill)
		for i, c := range w.clients {
			if c == nil {
				continue
			}
			for start := time.Now(); !c.NatsConn().IsConnected() && time.Since(start) < 10*time.Second; {
				time.Sleep(10 * time.Millisecond)
			}
			if !c.NatsConn().IsConnected() {
				return fmt.Sprintf("c%d did not reconnect", i)
			}
		}
		return "ok"
	}
	return "?"
}

func (w *diffWorld) subscribe(sc stan.Conn, op diffOp) string {
	s := &diffSub{op: op}
	handler := func(m *stan.Msg) {
		w.mu.Lock()
		s.msgs = append(s.msgs, &diffMsg{step: w.step, seq: m.Sequence, data: abbrev(string(m.Data)), redelivered: m.Redelivered, m: m})
		w.last = time.Now()
		w.mu.Unlock()
	}
	opts := []stan.SubscriptionOption{stan.AckWait(time.Minute)}
	if op.shortAckWait {
		opts[0] = stan.AckWait(500 * time.Millisecond)
	}
	switch op.start {
	case startLast:
		opts = append(opts, stan.StartWithLastReceived())
	case startAll:
		opts = append(opts, stan.DeliverAllAvailable())
	case startSeq:
		opts = append(opts, stan.StartAtSequence(op.seq))
	case startDelta:
		opts = append(opts, stan.StartAtTimeDelta(op.deltaOrHour()))
	}
	if op.durable != "" {
		opts = append(opts, stan.DurableName(op.durable))
	}
	if op.manual {
		opts = append(opts, stan.SetManualAckMode(), stan.MaxInflight(op.inflight))
	}
	var err error
	if op.queue != "" {
		s.sub, err = sc.QueueSubscribe(op.channel, op.queue, handler, opts...)
	} else {
		s.sub, err = sc.Subscribe(op.channel, handler, opts...)
	}
	w.mu.Lock()
	w.subs = append(w.subs, s)
	w.mu.Unlock()
	return errStr(err)
}

// ack acknowledges the oldest (lowest sequence) unacknowledged message, or all of them, of
// a subscription. Only of that one even for a queue member: nss reads each member's acks
// on its own subscription (goroutine), so acks to several members in one step are
// processed in no defined order, and with them which member gets the next messages.
func (w *diffWorld) ack(op diffOp) string {
	w.mu.Lock()
	defer w.mu.Unlock()
	t := w.subs[op.sub]
	if !t.op.manual {
		return "auto ack"
	}
	var cand []*diffMsg
	if t.sub != nil && !t.closed {
		for _, m := range t.msgs {
			if !m.acked {
				cand = append(cand, m)
			}
		}
	}
	if len(cand) == 0 {
		return "nothing to ack"
	}
	min := cand[0].seq
	for _, m := range cand {
		min = minU(min, m.seq)
	}
	res := "ok"
	for _, m := range cand {
		if op.ackAll || m.seq == min {
			m.acked = true
			if err := m.m.Ack(); err != nil && res == "ok" {
				res = errStr(err)
			}
		}
	}
	return res
}

func minU(a, b uint64) uint64 {
	if a < b {
		return a
	}
	return b
}

// quiesce waits until nothing was delivered for 40 ms (at most 3 s).
func (w *diffWorld) quiesce() {
	start := time.Now()
	for time.Since(start) < 3*time.Second {
		time.Sleep(10 * time.Millisecond)
		w.mu.Lock()
		idle := time.Since(w.last) > 40*time.Millisecond
		w.mu.Unlock()
		if idle && time.Since(start) > 40*time.Millisecond {
			return
		}
	}
}

// diffStrictQueues (STANDIFF_STRICTQ set) compares each queue member's deliveries too,
// for hunts: both servers pick the member by the same rule (spec §8.4), but nss's choice
// also depends on the order in which its goroutines handle acks and closes.
var diffStrictQueues = os.Getenv("STANDIFF_STRICTQ") != ""

// snapshot is what the world's subscriptions got, by key: a plain subscription's list in
// delivery order; a queue group's union of its members' lists, ordered by the step that
// caused the delivery, then sequence (the members' handlers run concurrently, so the
// arrival order of one step's messages between members is not defined).
func (w *diffWorld) snapshot() map[string]string {
	w.mu.Lock()
	defer w.mu.Unlock()
	out := map[string]string{}
	groups := map[string][]*diffMsg{}
	for i, s := range w.subs {
		if g := s.group(); g != "" {
			groups[g] = append(groups[g], s.msgs...)
			if !diffStrictQueues {
				continue
			}
		}
		var b strings.Builder
		for _, m := range s.msgs {
			fmt.Fprintf(&b, " %d:%s%s", m.seq, m.data, redelivMark(m.redelivered))
		}
		out[fmt.Sprintf("sub%d", i)] = b.String()
	}
	for g, msgs := range groups {
		sort.SliceStable(msgs, func(i, j int) bool {
			a, b := msgs[i], msgs[j]
			if a.step != b.step {
				return a.step < b.step
			}
			if a.seq != b.seq {
				return a.seq < b.seq
			}
			return !a.redelivered && b.redelivered
		})
		var b strings.Builder
		for _, m := range msgs {
			fmt.Fprintf(&b, " @%d %d:%s%s", m.step, m.seq, m.data, redelivMark(m.redelivered))
		}
		out["group "+g] = fmt.Sprintf("%d msgs:%s", len(msgs), b.String())
	}
	return out
}

// members lists each queue member's deliveries (shown on a failure, not compared).
func (w *diffWorld) members() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	var b strings.Builder
	for i, s := range w.subs {
		if s.group() == "" {
			continue
		}
		fmt.Fprintf(&b, "  sub%d %s:", i, s.group())
		for _, m := range s.msgs {
			fmt.Fprintf(&b, " @%d %d%s", m.step, m.seq, redelivMark(m.redelivered))
		}
		b.WriteString("\n")
	}
	return b.String()
}

func redelivMark(r bool) string {
	if r {
		return "R"
	}
	return ""
}

// closeAll closes the world's clients (the test's end).
func (w *diffWorld) closeAll() {
	for i, c := range w.clients {
		if c != nil {
			_ = c.Close()
			w.clients[i] = nil
		}
	}
}

// diffSnapshots lists the keys whose values differ.
func diffSnapshots(a, b map[string]string) []string {
	var out []string
	keys := map[string]bool{}
	for k := range a {
		keys[k] = true
	}
	for k := range b {
		keys[k] = true
	}
	for k := range keys {
		if a[k] != b[k] {
			out = append(out, k)
		}
	}
	sort.Strings(out)
	return out
}

// diffProc is a server process on a file store that the test restarts on the same port.
type diffProc struct {
	t    *testing.T
	bin  string
	args []string
	url  string
	p    *proc
}

// startDiffProc runs bin on a file store in a new directory with the test's limits.
func startDiffProc(t *testing.T, bin string) *diffProc { return startDiffProcStore(t, bin, "file") }

// startDiffProcStore is startDiffProc on store (file or bolt).
func startDiffProcStore(t *testing.T, bin, store string) *diffProc {
	port := freePort(t)
	d := &diffProc{t: t, bin: bin, url: fmt.Sprintf("nats://127.0.0.1:%d", port),
		args: []string{"-cid", "test-cluster", "-a", "127.0.0.1", "-p", fmt.Sprint(port),
			"-mm", "20", "-msu", "5", "-st", store, "--dir", t.TempDir()}}
	d.p = startProc(t, bin, d.args...)
	waitNATS(t, d.url)
	return d
}

// restart stops the server (SIGKILL when kill, else SIGTERM) and starts it again.
func (d *diffProc) restart(kill bool) {
	sig := syscall.SIGTERM
	if kill {
		sig = syscall.SIGKILL
	}
	_ = d.p.cmd.Process.Signal(sig)
	_ = d.p.wait(d.t, 20*time.Second)
	d.p = startProc(d.t, d.bin, d.args...)
	waitNATS(d.t, d.url)
}
