package core_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/starling-io/starling/core"
)

// The in-process Conn interoperates with socket clients both ways, with headers, queues
// and request/reply, and never needs a socket of its own.
func TestConnInProcess(t *testing.T) {
	s := startCore(t, nil)
	ic, err := s.Connect("internal")
	if err != nil {
		t.Fatal(err)
	}
	defer ic.Close()

	got := make(chan core.Msg, 4)
	if _, err := ic.Subscribe("in.*", "", func(m core.Msg) {
		got <- core.Msg{Subject: append([]byte(nil), m.Subject...), Reply: append([]byte(nil), m.Reply...),
			Header: append([]byte(nil), m.Header...), Data: append([]byte(nil), m.Data...)}
	}); err != nil {
		t.Fatal(err)
	}

	// socket → in-process, with header and reply
	c, _ := dial(t, s)
	c.send(`CONNECT {"verbose":false,"headers":true}` + "\r\nHPUB in.x r.1 12 14\r\nNATS/1.0\r\n\r\nhi\r\nPING\r\n")
	c.expect("PONG\r\n")
	m := <-got
	if string(m.Subject) != "in.x" || string(m.Reply) != "r.1" || string(m.Header) != "NATS/1.0\r\n\r\n" || string(m.Data) != "hi" {
		t.Fatalf("in-process got %+v", m)
	}

	// in-process → socket, with header, after Flush
	c.send("SUB out 7\r\nPING\r\n")
	c.expect("PONG\r\n")
	if err := ic.Publish("out", "", []byte("NATS/1.0\r\nA: b\r\n\r\n"), []byte("yo")); err != nil {
		t.Fatal(err)
	}
	ic.Flush()
	c.expect("HMSG out 7 18 20\r\nNATS/1.0\r\nA: b\r\n\r\nyo\r\n")

	// request/reply: an in-process responder in a queue group, then a socket responder
	if _, err := ic.Subscribe("svc", "workers", func(m core.Msg) {
		_ = ic.Publish(string(m.Reply), "", nil, append([]byte("re:"), m.Data...))
	}); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	resp, err := ic.Request(ctx, "svc", nil, []byte("q"))
	if err != nil || string(resp.Data) != "re:q" {
		t.Fatalf("request: %q %v", resp.Data, err)
	}
	if _, err := ic.Request(ctx, "nobody.home", nil, nil); !errors.Is(err, core.ErrNoResponders) {
		t.Fatalf("want ErrNoResponders, got %v", err)
	}

	// max payload and bad subjects are refused
	if err := ic.Publish("big", "", nil, make([]byte, core.DefaultMaxPayload+1)); !errors.Is(err, core.ErrMaxPayload) {
		t.Fatalf("want ErrMaxPayload, got %v", err)
	}
	if _, err := ic.Subscribe("bad..subject", "", func(core.Msg) {}); !errors.Is(err, core.ErrBadSubject) {
		t.Fatalf("want ErrBadSubject, got %v", err)
	}
}

func TestConnAutoUnsubscribeAndClose(t *testing.T) {
	s := startCore(t, nil)
	ic, err := s.Connect("internal")
	if err != nil {
		t.Fatal(err)
	}
	var n atomic.Int64
	sub, err := ic.Subscribe("auto", "", func(core.Msg) { n.Add(1) })
	if err != nil {
		t.Fatal(err)
	}
	_ = sub.AutoUnsubscribe(3)
	for range 10 {
		_ = ic.Publish("auto", "", nil, nil)
	}
	if n.Load() != 3 || s.NumSubscriptions() != 0 {
		t.Fatalf("delivered %d, %d subscriptions left", n.Load(), s.NumSubscriptions())
	}
	if _, err := ic.Subscribe("x", "", func(core.Msg) {}); err != nil {
		t.Fatal(err)
	}
	ic.Close()
	if s.NumSubscriptions() != 0 {
		t.Fatal("subscriptions survive Close")
	}
	if err := ic.Publish("x", "", nil, nil); !errors.Is(err, core.ErrConnClosed) {
		t.Fatalf("publish after close: %v", err)
	}
}

// forgedSubjects are subjects and replies a streaming client could choose as its inbox or
// heartbeat inbox (audit finding 2): each would split a MSG, HMSG or RMSG line, reach
// subscribers it was not published to, or is not a literal subject.
var forgedSubjects = []string{
	"orders.x 1 12\r\ncancel-all!!\r\nMSG orders.y",
	"orders.x 12\r\ncancel-all!!\r\nRMSG admin.shutdown 5\r\nHELLO\r\nRMSG orders.y",
	"orders.x\r\nPING",
	"orders.x 1",
	"orders.x\t1",
	"orders.x\n",
	"orders.x\r",
	"orders.x\f",
	"orders.x\v",
	"orders.x\x00",
	"orders\x7f.x",
	"orders.*",
	"orders.>",
	">",
	"*",
	"orders..x",
	".orders",
	"orders.",
	"",
}

// The in-process Publish refuses every forging subject and reply with ErrBadSubject and
// delivers nothing: a raw socket subscriber to ">" sees only the ordinary messages, and
// in order, so no forged frame was ever written before them.
func TestConnPublishRefusesForgedSubjects(t *testing.T) {
	s := startCore(t, nil)
	raw, _ := dial(t, s)
	raw.send(`CONNECT {"verbose":false,"headers":true}` + "\r\nSUB > 1\r\nSUB admin.shutdown 2\r\nPING\r\n")
	raw.expect("PONG\r\n")
	ic, err := s.Connect("internal")
	if err != nil {
		t.Fatal(err)
	}
	defer ic.Close()
	var inproc atomic.Int64
	if _, err := ic.Subscribe(">", "", func(core.Msg) { inproc.Add(1) }); err != nil {
		t.Fatal(err)
	}
	hdr := []byte("NATS/1.0\r\n\r\n")
	for _, bad := range forgedSubjects {
		for _, h := range [][]byte{nil, hdr} {
			if err := ic.Publish(bad, "", h, []byte("forged")); !errors.Is(err, core.ErrBadSubject) {
				t.Errorf("Publish(%q) = %v, want ErrBadSubject", bad, err)
			}
			if bad == "" {
				continue // an empty reply means "no reply"
			}
			if err := ic.Publish("orders.ok", bad, h, []byte("forged")); !errors.Is(err, core.ErrBadSubject) {
				t.Errorf("Publish(reply %q) = %v, want ErrBadSubject", bad, err)
			}
		}
	}
	ic.Flush()
	if n := inproc.Load(); n != 0 {
		t.Fatalf("%d refused messages reached an in-process subscriber", n)
	}

	// Ordinary subjects, replies and headers still go through, byte for byte.
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(ic.Publish("orders.ok", "", nil, []byte("a")))
	must(ic.Publish("_INBOX.Zx3fA0b9QeLr4Tn2Kp7Ws1", "_STAN.hb.c1.client-1", nil, nil))
	must(ic.Publish("foo*.f>o.ünï", "r.1", hdr, []byte("b")))
	ic.Flush()
	raw.expect("MSG orders.ok 1 1\r\na\r\n")
	raw.expect("MSG _INBOX.Zx3fA0b9QeLr4Tn2Kp7Ws1 1 _STAN.hb.c1.client-1 0\r\n\r\n")
	raw.expect("HMSG foo*.f>o.ünï 1 r.1 12 13\r\nNATS/1.0\r\n\r\nb\r\n")
	raw.send("PING\r\n")
	raw.expect("PONG\r\n")
	if n := inproc.Load(); n != 3 {
		t.Fatalf("in-process subscriber got %d messages, want 3", n)
	}
}

// The length rule is a socket client's: the PUB arguments a client would send for the
// message must fit max_control_line. Publish accepts exactly what the parser accepts.
func TestConnPublishLengthRule(t *testing.T) {
	const max = 64
	s := startCore(t, func(o *core.Options) { o.MaxControlLine = max })
	ic, err := s.Connect("internal")
	if err != nil {
		t.Fatal(err)
	}
	defer ic.Close()
	payload := []byte("0123456789abcdef") // "16": two digits
	subj := func(n int) string { return "s." + strings.Repeat("x", n-2) }
	for _, tc := range []struct {
		subj, reply string
		hdr         []byte
		ok          bool
	}{
		{subj(max - 3), "", nil, true}, // "<subj> 16"
		{subj(max - 2), "", nil, false},
		{subj(max - 8), "r.xx", nil, true}, // "<subj> r.xx 16"
		{subj(max - 7), "r.xx", nil, false},
		{subj(max - 6), "", []byte("NATS/1.0\r\n\r\n"), true}, // "<subj> 12 28"
		{subj(max - 5), "", []byte("NATS/1.0\r\n\r\n"), false},
	} {
		err := ic.Publish(tc.subj, tc.reply, tc.hdr, payload)
		if (err == nil) != tc.ok {
			t.Errorf("Publish(%d-byte subject, reply %q, %d-byte header) = %v, want ok=%v", len(tc.subj), tc.reply, len(tc.hdr), err, tc.ok)
		}
		if !tc.ok && !errors.Is(err, core.ErrBadSubject) {
			t.Errorf("want ErrBadSubject, got %v", err)
		}
		// The same message from a socket client: accepted, or refused for its length.
		c, _ := dial(t, s)
		line := "PUB " + tc.subj + " "
		if tc.reply != "" {
			line += tc.reply + " "
		}
		if tc.hdr != nil {
			line = fmt.Sprintf("H%s%d %d\r\n%s%s\r\n", line, len(tc.hdr), len(tc.hdr)+len(payload), tc.hdr, payload)
		} else {
			line = fmt.Sprintf("%s%d\r\n%s\r\n", line, len(payload), payload)
		}
		c.send(`CONNECT {"verbose":false,"headers":true}` + "\r\n" + line + "PING\r\n")
		if tc.ok {
			c.expect("PONG\r\n")
		} else {
			c.expect("-ERR 'maximum control line exceeded'\r\n")
		}
	}
}

// A SubscribeBatch subscription sees a client's messages flagged Batched, and its end runs
// after them, once per read buffer, before the client's own replies go out; an in-process
// publisher's messages are not flagged and never call end.
func TestSubscribeBatchEndsEachReadBuffer(t *testing.T) {
	s := startCore(t, nil)
	ic, err := s.Connect("internal")
	if err != nil {
		t.Fatal(err)
	}
	defer ic.Close()
	var mu sync.Mutex
	var events []string
	note := func(e string) {
		mu.Lock()
		events = append(events, e)
		mu.Unlock()
	}
	var idles []bool
	if _, err := ic.SubscribeBatch("b.*", "", func(m core.Msg) {
		note(fmt.Sprintf("%s:%v", m.Subject, m.Batched))
	}, func(idle func() bool) {
		note("end")
		mu.Lock()
		idles = append(idles, idle())
		mu.Unlock()
	}); err != nil {
		t.Fatal(err)
	}

	c, _ := dial(t, s)
	c.send("CONNECT {\"verbose\":false}\r\nPUB b.1 1\r\nx\r\nPUB b.2 1\r\ny\r\nPUB b.3 1\r\nz\r\nPING\r\n")
	c.expect("PONG\r\n")
	mu.Lock()
	got := append([]string(nil), events...)
	mu.Unlock()
	// A read may end anywhere in the stream, so count: every message flagged, an end after
	// each run of them, and the last end already run when PONG arrives.
	msgs, ends, run := 0, 0, 0
	for _, e := range got {
		switch e {
		case "end":
			if run == 0 {
				t.Fatalf("an end with no message before it: %v", got)
			}
			ends, run = ends+1, 0
		case "b.1:true", "b.2:true", "b.3:true":
			msgs, run = msgs+1, run+1
		default:
			t.Fatalf("unexpected event %q in %v", e, got)
		}
	}
	if msgs != 3 || ends == 0 || run != 0 {
		t.Fatalf("events %v: want 3 flagged messages, each run followed by an end before PONG", got)
	}

	// idle: the end of a buffer with the rest of a long write still unread is not idle;
	// the end of the last one, the client waiting for PONG, is.
	mu.Lock()
	idles = idles[:0]
	mu.Unlock()
	long := strings.Repeat("PUB b.5 100\r\n"+strings.Repeat("x", 100)+"\r\n", 200) // 24 KiB: reads of 512 B first
	c.send(long + "PING\r\n")
	c.expect("PONG\r\n")
	mu.Lock()
	got2 := append([]bool(nil), idles...)
	mu.Unlock()
	if len(got2) < 2 || got2[0] || !got2[len(got2)-1] {
		t.Fatalf("idle at the ends of a long write's buffers: %v; want false first, true last", got2)
	}

	ic2, err := s.Connect("internal 2")
	if err != nil {
		t.Fatal(err)
	}
	defer ic2.Close()
	mu.Lock()
	events = events[:0]
	mu.Unlock()
	if err := ic2.Publish("b.4", "", nil, []byte("w")); err != nil {
		t.Fatal(err)
	}
	ic2.Flush()
	mu.Lock()
	got = append([]string(nil), events...)
	mu.Unlock()
	if len(got) != 1 || got[0] != "b.4:false" {
		t.Fatalf("in-process publish: events %v, want only the unflagged message", got)
	}
}
