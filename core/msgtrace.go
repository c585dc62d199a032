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
// The egresses are recorded by the routing itself (producer.trace), so they are where the
// message went: the member of a queue group routing picked, a route only once written to.
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
	t := &msgTrace{srv: c.srv, acc: c.acc.name, only: only}
	t.events = append(t.events, traceIngress{Type: "in", Time: now, Kind: traceKindClient, CID: c.cid, Name: name, Account: c.acc.name, Subject: string(subj)})
	c.prod.trace = t
	n := c.prod.route(c.acc, c.match(subj), subj, reply, hdrLen, msg) // trace only: what would have taken it
	c.prod.trace = nil
	ev.Events = t.events
	b, _ := json.Marshal(ev)
	d := []byte(dest)
	c.prod.route(c.acc, c.match(d), d, nil, 0, b)
	return n
}

// msgTrace collects the events of one traced message while it is routed. With only, the
// routing records where the message would go and delivers nothing.
type msgTrace struct {
	srv    *Server
	acc    string // the publisher's account
	only   bool
	events []any
}

// traceOnly reports whether the message being routed is traced and not to be delivered.
func (p *producer) traceOnly() bool { return p.trace != nil && p.trace.only }

// addEgress records a delivery to a subscription. As nats-server, it names the account only
// when it is not the publisher's (a service or stream import took the message there).
func (t *msgTrace) addEgress(sub *subscription) {
	dst := sub.client
	dst.mu.Lock()
	name, acc := dst.name, dst.acc.name // c.acc changes under c.mu (a second CONNECT)
	dst.mu.Unlock()
	if acc == t.acc {
		acc = ""
	}
	t.events = append(t.events, traceEgress{Type: "eg", Time: time.Now(), Kind: traceKindClient, CID: dst.cid, Name: name,
		Account: acc, Sub: sub.subject, Queue: sub.queue})
}

// addRouteEgress records that the message crossed a route, named after the server behind it.
func (t *msgTrace) addRouteEgress(dst *client) {
	t.srv.rmu.Lock()
	name := dst.route.remoteName
	t.srv.rmu.Unlock()
	t.events = append(t.events, traceEgress{Type: "eg", Time: time.Now(), Kind: traceKindRouter, CID: dst.cid, Name: name})
}
