package core_test

import (
	"context"
	"errors"
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
