package tests

import (
	"context"
	"encoding/json"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
)

// Message tracing (nats-server 2.11, which INFO's version claims): a message with
// Nats-Trace-Dest makes the server publish nats-server's trace event there; with
// Nats-Trace-Only it is not delivered.
func TestMsgTrace(t *testing.T) {
	m := startServer(t)
	pub := connect(t, m, nats.Name("tracer"))
	sub := connect(t, m, nats.Name("receiver"))
	got := make(chan *nats.Msg, 4)
	_, err := sub.ChanSubscribe("traced.x", got)
	must(t, err)
	_, err = sub.ChanQueueSubscribe("traced.x", "q", got)
	must(t, err)
	must(t, sub.Flush())
	events, err := pub.SubscribeSync("trace.dest")
	must(t, err)

	type event struct {
		Server  struct{ ID, Ver string }
		Request struct {
			Header  map[string][]string
			MsgSize int
		}
		Events []struct {
			Type, Name, Acc, Subj, Sub, Queue string
			Kind                              int
			CID                               uint64
		}
	}
	trace := func(only bool) event {
		t.Helper()
		msg := nats.NewMsg("traced.x")
		msg.Data = []byte("payload")
		msg.Header.Set("Nats-Trace-Dest", "trace.dest")
		if only {
			msg.Header.Set("Nats-Trace-Only", "true")
		}
		must(t, pub.PublishMsg(msg))
		em, err := events.NextMsg(5 * time.Second)
		must(t, err)
		var e event
		must(t, json.Unmarshal(em.Data, &e))
		return e
	}

	e := trace(true)
	if e.Server.ID != m.Server().ID() || e.Request.Header["Nats-Trace-Only"][0] != "true" || e.Request.MsgSize == 0 {
		t.Fatalf("event %+v", e)
	}
	if len(e.Events) != 3 || e.Events[0].Type != "in" || e.Events[0].Name != "tracer" || e.Events[0].Subj != "traced.x" || e.Events[0].Acc != "$G" {
		t.Fatalf("events %+v", e.Events)
	}
	for _, eg := range e.Events[1:] {
		if eg.Type != "eg" || eg.Kind != 0 || eg.Name != "receiver" || eg.Sub != "traced.x" {
			t.Fatalf("egress %+v", eg)
		}
	}
	if e.Events[1].Queue != "" || e.Events[2].Queue != "q" {
		t.Fatalf("egress queues %+v", e.Events)
	}
	expectNone(t, got, 300*time.Millisecond) // trace only: not delivered

	e = trace(false)
	if len(e.Events) != 3 {
		t.Fatalf("events %+v", e.Events)
	}
	recvN(t, got, 2, 2*time.Second)
}

// `nats trace` (which requires a server version of 2.11 or later) gets its event and exits
// 0 listing the subscriber.
func TestNatsCLITrace(t *testing.T) {
	cli := natsCLI(t)
	m := startServer(t)
	sub := connect(t, m, nats.Name("receiver"))
	_, err := sub.SubscribeSync("cli.traced")
	must(t, err)
	must(t, sub.Flush())
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, cli, "-s", clientURL(m), "--timeout", "3s", "trace", "cli.traced", "hi").CombinedOutput()
	if err != nil || !strings.Contains(string(out), `"receiver"`) || !strings.Contains(string(out), "Client: 1") {
		t.Fatalf("nats trace: %v\n%s", err, out)
	}
}

// A Nats-Trace-Dest that is not a valid literal subject is ignored, as nats-server does:
// the trace event was published to it verbatim, so "x 2" reached a wildcard subscriber as
// "MSG x 2 1 <size>", which nats.go read as a message for its subscription 2, and a
// wildcard destination reached subscribers of other subjects. One on a reserved subject is
// a publish violation, as for the message's own subject.
func TestMsgTraceBadDestination(t *testing.T) {
	m := startServer(t)
	victim := connect(t, m)
	all := make(chan *nats.Msg, 16)
	_, err := victim.ChanSubscribe(">", all) // sid 1
	must(t, err)
	private := make(chan *nats.Msg, 16)
	_, err = victim.ChanSubscribe("private", private) // sid 2
	must(t, err)
	must(t, victim.Flush())

	errs := make(chan error, 4)
	pub := connect(t, m, nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) { errs <- err }))
	for _, dest := range []string{"x 2", "a.*", "a.>", "a..b"} {
		msg := nats.NewMsg("traced.y")
		msg.Data = []byte("payload")
		msg.Header.Set("Nats-Trace-Dest", dest)
		must(t, pub.PublishMsg(msg))
		must(t, pub.Flush())
		got := recvN(t, all, 1, 2*time.Second)[0] // the message itself, as if not traced
		if got.Subject != "traced.y" || string(got.Data) != "payload" {
			t.Fatalf("dest %q: got %q %q", dest, got.Subject, got.Data)
		}
	}
	expectNone(t, all, 300*time.Millisecond)
	expectNone(t, private, 0)

	msg := nats.NewMsg("traced.y")
	msg.Header.Set("Nats-Trace-Dest", "$NRG.x")
	must(t, pub.PublishMsg(msg))
	select {
	case err := <-errs:
		if !strings.Contains(err.Error(), `Permissions Violation for Publish to "$NRG.x"`) {
			t.Fatalf("reserved destination: %v", err)
		}
	case <-time.After(2 * time.Second):
		t.Fatal("no permissions violation for a trace to $NRG.x")
	}
	expectNone(t, all, 300*time.Millisecond)
}

// traceEvent is the part of nats-server's MsgTraceEvent these tests read.
type traceEvent struct {
	Events []struct {
		Type, Name, Acc, Subj, Sub, Queue string
		Kind                              int
		CID                               uint64
	}
}

// publishTraced publishes data on subj with a trace to dest and returns the event.
func publishTraced(t *testing.T, pub *nats.Conn, events *nats.Subscription, subj string) traceEvent {
	t.Helper()
	msg := nats.NewMsg(subj)
	msg.Data = []byte("payload")
	msg.Header.Set("Nats-Trace-Dest", events.Subject)
	must(t, pub.PublishMsg(msg))
	em, err := events.NextMsg(5 * time.Second)
	must(t, err)
	var e traceEvent
	must(t, json.Unmarshal(em.Data, &e))
	return e
}

// A queue group's egress names the member the message went to. The trace named the first
// member listed while routing picks one at random, so it named a connection that never
// got the message about half the time.
func TestMsgTraceQueueEgressIsTheMemberChosen(t *testing.T) {
	m := startServer(t)
	pub := connect(t, m)
	events, err := pub.SubscribeSync("trace.q")
	must(t, err)
	got := make(chan uint64, 64)
	for _, name := range []string{"r1", "r2"} {
		nc := connect(t, m, nats.Name(name))
		cid, err := nc.GetClientID()
		must(t, err)
		_, err = nc.QueueSubscribe("qt", "q", func(*nats.Msg) { got <- cid })
		must(t, err)
		must(t, nc.Flush())
	}
	for i := range 20 {
		e := publishTraced(t, pub, events, "qt")
		var to uint64
		select {
		case to = <-got:
		case <-time.After(2 * time.Second):
			t.Fatalf("message %d not delivered", i)
		}
		if len(e.Events) != 2 || e.Events[1].Type != "eg" || e.Events[1].Queue != "q" || e.Events[1].CID != to {
			t.Fatalf("message %d went to cid %d; trace %+v", i, to, e.Events)
		}
	}
}

// An egress names its account when it is not the publisher's, as nats-server does (the
// trace said "$G" whatever the accounts): none within account A, A for a request that a
// service import of B took to A's responder.
func TestMsgTraceEgressAccount(t *testing.T) {
	m := startAccounts(t, accountsConf)
	a := connect(t, m, nats.UserInfo("a", "a"), nats.Name("responder"))
	_, err := a.Subscribe("help.x", func(*nats.Msg) {})
	must(t, err)
	_, err = a.Subscribe("local", func(*nats.Msg) {})
	must(t, err)
	must(t, a.Flush())
	aEvents, err := a.SubscribeSync("trace.a")
	must(t, err)
	e := publishTraced(t, a, aEvents, "local")
	if len(e.Events) != 2 || e.Events[0].Acc != "A" || e.Events[1].Type != "eg" || e.Events[1].Acc != "" {
		t.Fatalf("within A: %+v", e.Events)
	}

	b := connect(t, m, nats.UserInfo("b", "b"))
	bEvents, err := b.SubscribeSync("trace.b")
	must(t, err)
	e = publishTraced(t, b, bEvents, "ask.x")
	var eg []string
	for _, ev := range e.Events[1:] {
		eg = append(eg, ev.Name+"@"+ev.Acc+":"+ev.Sub)
	}
	if e.Events[0].Acc != "B" || strings.Join(eg, " ") != "responder@A:help.x" {
		t.Fatalf("B to A: %+v", e.Events)
	}
}

// A trace-only reply to a request that came through a service import is not delivered,
// and leaves the way back to the requester to the real reply.
func TestMsgTraceOnlyReplyKeepsServiceReply(t *testing.T) {
	m := startAccounts(t, accountsConf)
	a := connect(t, m, nats.UserInfo("a", "a"))
	events, err := a.SubscribeSync("trace.reply")
	must(t, err)
	_, err = a.Subscribe("help.me", func(req *nats.Msg) {
		tr := nats.NewMsg(req.Reply)
		tr.Data = []byte("traced")
		tr.Header.Set("Nats-Trace-Dest", "trace.reply")
		tr.Header.Set("Nats-Trace-Only", "true")
		must(t, a.PublishMsg(tr))
		must(t, req.Respond([]byte("real")))
	})
	must(t, err)
	must(t, a.Flush())
	b := connect(t, m, nats.UserInfo("b", "b"))
	resp, err := b.Request("ask.me", nil, 2*time.Second)
	must(t, err)
	if string(resp.Data) != "real" {
		t.Fatalf("reply %q", resp.Data)
	}
	em, err := events.NextMsg(2 * time.Second)
	must(t, err)
	var e traceEvent
	must(t, json.Unmarshal(em.Data, &e))
	if len(e.Events) != 2 || e.Events[1].Type != "eg" || e.Events[1].Acc != "B" {
		t.Fatalf("trace of the reply: %+v", e.Events)
	}
}
