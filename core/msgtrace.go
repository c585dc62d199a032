package core

import (
	"bytes"
	"encoding/json"
	"strings"
	"time"

	"github.com/starling-io/starling/core/subject"
	"github.com/starling-io/starling/core/wire"
)

// Message tracing, the part of nats-server 2.11's that a server without accounts, subject
// mappings or JetStream has: a message published with a Nats-Trace-Dest header makes the
// server publish a trace event (nats-server's MsgTraceEvent JSON) to that subject, with the
// ingress and one egress per connection the message goes to; with Nats-Trace-Only (1, true
// or on) the message itself is not delivered. This is what `nats trace` expects of a server
// reporting version 2.11 or later. Not done: the hop protocol (Nats-Trace-Hop), so a remote
// server reports no event of its own and route egresses carry no hop; compression of the
// event (Accept-Encoding).

const (
	hdrTraceDest = "Nats-Trace-Dest"
	hdrTraceOnly = "Nats-Trace-Only"

	traceKindClient = 0 // nats-server's CLIENT and ROUTER connection kinds
	traceKindRouter = 1
)

// msgTraceEvent is nats-server's MsgTraceEvent as it goes on the wire.
type msgTraceEvent struct {
	Server  traceServer `json:"server"`
	Request struct {
		Header  map[string][]string `json:"header,omitempty"`
		MsgSize int                 `json:"msgsize,omitempty"`
	} `json:"request"`
	Events []any `json:"events"`
}

type traceServer struct {
	Name    string    `json:"name"`
	Host    string    `json:"host"`
	ID      string    `json:"id"`
	Version string    `json:"ver"`
	Time    time.Time `json:"time"`
}

type traceIngress struct {
	Type    string    `json:"type"`
	Time    time.Time `json:"ts"`
	Kind    int       `json:"kind"`
	CID     uint64    `json:"cid"`
	Name    string    `json:"name,omitempty"`
	Account string    `json:"acc"`
	Subject string    `json:"subj"`
}

type traceEgress struct {
	Type    string    `json:"type"`
	Time    time.Time `json:"ts"`
	Kind    int       `json:"kind"`
	CID     uint64    `json:"cid"`
	Name    string    `json:"name,omitempty"`
	Account string    `json:"acc,omitempty"`
	Sub     string    `json:"sub,omitempty"`
	Queue   string    `json:"queue,omitempty"`
}

// traceHeaders returns the message's headers when they ask for a trace (nil otherwise):
// one scan of the header block for messages that do not.
func traceHeaders(hdr []byte) map[string][]string {
	if !bytes.Contains(hdr, []byte(hdrTraceDest)) {
		return nil
	}
	h := make(map[string][]string)
	lines := strings.Split(string(hdr), "\r\n")
	for _, l := range lines[1:] { // the first line is NATS/1.0 and an optional status
		k, v, ok := strings.Cut(l, ":")
		if !ok || k == "" {
			continue
		}
		h[k] = append(h[k], strings.TrimSpace(v))
	}
	// A destination that is not a valid literal subject is ignored, as nats-server does: it
	// goes verbatim into MSG and RMSG frames, where a space would forge their arguments.
	if len(h[hdrTraceDest]) == 0 || !subject.ValidPublish(h[hdrTraceDest][0]) {
		return nil
	}
	return h
}

// processTracedMsg routes a message that asked for a trace and publishes the trace event
// to its destination. The publisher needs permission to publish there, as in nats-server.
func (c *client) processTracedMsg(h map[string][]string, subj, reply []byte, hdrLen int, msg []byte) int {
	dest := h[hdrTraceDest][0]
	only := false
	if v := h[hdrTraceOnly]; len(v) > 0 {
		switch strings.ToLower(v[0]) {
		case "1", "true", "on":
			only = true
		}
	}
	if !c.canPublish([]byte(dest)) || reservedSubject([]byte(dest)) {
		c.sendErr(wire.PermPub([]byte(dest)))
		return 0
	}
	now := time.Now()
	c.mu.Lock()
	name := c.name
	c.mu.Unlock()
	ev := msgTraceEvent{Server: traceServer{Name: c.srv.name, Host: c.srv.o().Host, ID: c.srv.id, Version: NATSVersion, Time: now}}
	ev.Request.Header = h
	ev.Request.MsgSize = len(msg)
	ev.Events = append(ev.Events, traceIngress{Type: "in", Time: now, Kind: traceKindClient, CID: c.cid, Name: name, Account: c.acc.name, Subject: string(subj)})
	r := c.match(subj)
	eg := c.traceEgresses(r, now)
	ev.Events = append(ev.Events, eg...)
	n := len(eg) // trace only: no "no responders" for a message that had some
	if !only {
		n = c.prod.route(c.acc, r, subj, reply, hdrLen, msg)
	}
	b, _ := json.Marshal(ev)
	d := []byte(dest)
	c.prod.route(c.acc, c.match(d), d, nil, 0, b)
	return n
}

// traceEgresses lists where route sends a message: every plain subscription that takes
// it, one member of each queue group (the first open one: route picks its own), each route
// once.
func (c *client) traceEgresses(r *subject.Result[*subscription], now time.Time) []any {
	var out []any
	routes := map[*client]bool{}
	add := func(sub *subscription, queue string) bool {
		dst := sub.client
		switch {
		case sub.closed.Load():
			return false
		case dst.kind == kindRoute:
			if !routes[dst] {
				routes[dst] = true
				out = append(out, traceEgress{Type: "eg", Time: now, Kind: traceKindRouter, CID: dst.cid})
			}
			return true
		case dst == c && !dst.echo.Load():
			return false
		}
		dst.mu.Lock()
		name := dst.name
		dst.mu.Unlock()
		out = append(out, traceEgress{Type: "eg", Time: now, Kind: traceKindClient, CID: dst.cid, Name: name,
			Account: "$G", Sub: sub.subject, Queue: queue})
		return true
	}
	for _, sub := range r.Plain {
		add(sub, "")
	}
	for _, qg := range r.Queues {
		for _, sub := range qg.Members {
			if add(sub, qg.Name) {
				break
			}
		}
	}
	return out
}
