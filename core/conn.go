package core

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	"github.com/starling-io/starling/core/subject"
)

// Msg is a message handed to an in-process handler. Its slices alias the publisher's
// buffers and are valid only during the handler call: copy what you keep.
type Msg struct {
	Subject []byte
	Reply   []byte
	Header  []byte // raw header block ("NATS/1.0…\r\n\r\n"); nil when none
	Data    []byte
	Sub     *Subscription
	From    uint64 // cid of the publishing connection, or of the route it came over (see Server.IsConnected)
	// Batched is set when the subscription has an end function (SubscribeBatch) and the
	// publisher's goroutine will call it once its run of deliveries is over: a handler may
	// then leave the wake-up of its own worker to end.
	Batched bool
}

// MsgHandler runs on the publisher's goroutine. It must not block: hand work to a queue.
type MsgHandler func(m Msg)

// Subscription is an in-process subscription.
type Subscription subscription

// Subject returns the subscribed subject.
func (s *Subscription) Subject() string { return s.subject }

// Queue returns the queue group ("" for none).
func (s *Subscription) Queue() string { return s.queue }

// Unsubscribe removes the subscription; further messages are not delivered.
func (s *Subscription) Unsubscribe() error {
	(*subscription)(s).client.removeSub((*subscription)(s))
	return nil
}

// AutoUnsubscribe removes the subscription after max deliveries in total.
func (s *Subscription) AutoUnsubscribe(max int) error {
	sub := (*subscription)(s)
	if int64(max) <= sub.delivered.Load() {
		return s.Unsubscribe()
	}
	sub.max.Store(int64(max))
	if int64(max) <= sub.delivered.Load() {
		return s.Unsubscribe() // deliveries racing the store reached it
	}
	return nil
}

// Conn is an in-process client of the router: the way streaming talks to core without a
// socket. Its subscriptions are ordinary index entries; their handlers run on the
// publisher's goroutine. Publish queues frames for socket subscribers; Flush wakes their
// writers once per batch. Safe for concurrent use.
type Conn struct {
	c       *client
	mu      sync.Mutex // the producer's pending set
	nextSID atomic.Uint64
	inbox   string
	scratch sync.Pool // header+payload concatenation for Publish with headers
}

// Connect opens an in-process connection named name. It is no client connection: /varz
// and /connz leave it out, as nats-server does its internal clients.
func (s *Server) Connect(name string) (*Conn, error) { return s.connectIn(name, s.gacc) }

// ConnectAccount opens an in-process connection in the account named account ("" or "$G":
// the global one): it publishes and subscribes in that account's subject space, and clients
// of other accounts reach it only through their imports.
func (s *Server) ConnectAccount(name, account string) (*Conn, error) {
	acc := s.account(account)
	if acc == nil {
		return nil, fmt.Errorf("%w %q", ErrUnknownAccount, account)
	}
	return s.connectIn(name, acc)
}

func (s *Server) connectIn(name string, acc *account) (*Conn, error) {
	c := &client{
		srv:     s,
		kind:    kindInternal,
		cid:     s.nextCID.Add(1),
		start:   time.Now(),
		subs:    make(map[string]*subscription),
		ip:      "127.0.0.1",
		name:    name,
		lang:    "go",
		version: Version,
		acc:     acc,
	}
	c.log = s.log.With("cid", c.cid, "conn", name)
	c.echo.Store(true)
	c.headers.Store(true)
	c.opts = connectOpts{Echo: true, Headers: true, NoResponders: true, Name: name, Protocol: 1}
	c.lastAct.Store(c.start.UnixNano())
	nc := &Conn{c: c, inbox: "_INBOX." + nuid()}
	c.prod.init(c)
	c.prod.lock = &nc.mu
	s.mu.Lock()
	if s.shutdown {
		s.mu.Unlock()
		return nil, ErrServerClosed
	}
	// A reload that removes acc puts the new accounts in force, then closes the
	// connections it finds under s.mu: one registered after that must see them.
	if s.accountMap()[acc.name] != acc {
		s.mu.Unlock()
		return nil, fmt.Errorf("%w %q", ErrUnknownAccount, acc.name)
	}
	s.clients[c.cid] = c
	s.internal++ // not a client connection: not in /varz or /connz
	s.mu.Unlock()
	return nc, nil
}

// nuid returns a random 22-character token for inbox names.
func nuid() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return base64.RawURLEncoding.EncodeToString(b[:])
}

// IsConnected reports whether the connection with this cid is still open: how a layer
// above learns that a peer's NATS connection is gone without waiting for timeouts.
//
// A message that came over a route carries the route's cid: the publisher is on another
// server, and is taken as connected while that route is up (its own heartbeats then decide).
func (s *Server) IsConnected(cid uint64) bool {
	s.mu.Lock()
	_, ok := s.clients[cid]
	s.mu.Unlock()
	if ok || s.routeConns == nil {
		return ok
	}
	s.rmu.Lock()
	_, ok = s.routeConns[cid]
	s.rmu.Unlock()
	return ok
}

// IsConnected reports whether the connection with this cid is still open.
func (nc *Conn) IsConnected(cid uint64) bool { return nc.c.srv.IsConnected(cid) }

// ConnUser returns the authenticated user of the client connection cid ("" without
// authentication, and for a token) and true, or false when cid is no open client
// connection. A route connection (a message from a client on another server) reports
// "" and true: the user is known to that server only.
func (s *Server) ConnUser(cid uint64) (string, bool) {
	if c := s.clientByID(cid); c != nil {
		c.mu.Lock()
		defer c.mu.Unlock()
		if c.ident != nil {
			return c.ident.Name, true
		}
		return "", true
	}
	if s.routeConns == nil {
		return "", false
	}
	s.rmu.Lock()
	_, ok := s.routeConns[cid]
	s.rmu.Unlock()
	return "", ok
}

// clientByID returns the open connection cid (a client, or an in-process one), or nil.
func (s *Server) clientByID(cid uint64) *client {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.clients[cid]
}

// IsRoute reports whether cid is a route connection: a message with this From came from
// another server of the mesh.
func (nc *Conn) IsRoute(cid uint64) bool {
	s := nc.c.srv
	if s.routeConns == nil {
		return false
	}
	s.rmu.Lock()
	_, ok := s.routeConns[cid]
	s.rmu.Unlock()
	return ok
}

// RoutePeer returns the server ID at the other end of route connection cid, and false when
// cid is no route or its peer has not introduced itself yet. Two routes to one server
// coexist for a moment when both servers dialed (the loser is retired, route_retire.go, and
// still reads for a while): a layer that binds a remote client to the route its requests
// came over takes either of them as the same.
func (nc *Conn) RoutePeer(cid uint64) (string, bool) {
	s := nc.c.srv
	if s.routeConns == nil {
		return "", false
	}
	s.rmu.Lock()
	defer s.rmu.Unlock()
	c := s.routeConns[cid]
	if c == nil || c.route.remoteID == "" {
		return "", false
	}
	return c.route.remoteID, true
}

// ConnUser returns the authenticated user of the connection cid (see Server.ConnUser).
func (nc *Conn) ConnUser(cid uint64) (string, bool) { return nc.c.srv.ConnUser(cid) }

// HasInterest reports whether a message published to subj now would reach any
// subscriber, on this server or, through a route, on another.
func (nc *Conn) HasInterest(subj string) bool {
	r := nc.c.acc.subs.MatchString(subj)
	return len(r.Plain) > 0 || len(r.Queues) > 0
}

// Backlogged reports whether a message published to subj now would queue behind a
// backlog: a socket destination subscribed to it (a client, or the route toward another
// server's subscriber) already holds more output than its stall mark, where core makes its
// own socket publishers wait (outbound.go). A publisher that can hold its messages back —
// the streaming layer's deliveries, whose messages stay in their channel — waits instead
// of piling them up toward max_pending, where the destination would be cut off as a slow
// consumer.
func (nc *Conn) Backlogged(subj string) bool {
	r := nc.c.acc.subs.MatchString(subj)
	for _, sub := range r.Plain {
		dst := sub.client
		if dst.kind == kindInternal {
			continue
		}
		dst.mu.Lock()
		over := !dst.closed && dst.stallMark(0)
		dst.mu.Unlock()
		if over {
			return true
		}
	}
	return false
}

// MaxPayload returns the largest message Publish accepts now (it follows reloads).
func (nc *Conn) MaxPayload() int { return nc.c.srv.o().MaxPayload }

// ID returns the connection id (cid).
func (nc *Conn) ID() uint64 { return nc.c.cid }

// NewInbox returns a unique reply subject for this connection.
func (nc *Conn) NewInbox() string {
	return nc.inbox + "." + strconv.FormatUint(nc.nextSID.Add(1), 36)
}

// Subscribe registers handler for subject; queue "" means a plain subscription.
func (nc *Conn) Subscribe(subj, queue string, handler MsgHandler) (*Subscription, error) {
	return nc.SubscribeBatch(subj, queue, handler, nil)
}

// SubscribeBatch is Subscribe with an end function for a handler that queues work for a
// worker of its own. A client connection's read goroutine delivers with Msg.Batched set
// and calls end once, at the end of its read buffer, after every delivery of that buffer
// to the subscription, so end can wake the worker once per buffer, or do its work right
// there while the worker is idle (nothing then wakes another goroutine). idle reports (a
// system call: ask only when it matters) that the connection has no more input waiting: its
// client has sent everything it had, and is probably waiting for answers. Other publishers
// (routes, in-process connections) deliver with Batched unset and never call end. end runs
// without locks held, on the client's read goroutine, which reads nothing more until it
// returns.
func (nc *Conn) SubscribeBatch(subj, queue string, handler MsgHandler, end func(idle func() bool)) (*Subscription, error) {
	c := nc.c
	if handler == nil || (queue != "" && !subject.ValidQueue([]byte(queue))) {
		return nil, ErrBadSubject
	}
	sub := &subscription{client: c, acc: c.acc, subject: subj, queue: queue, handler: handler,
		end: end, sid: strconv.FormatUint(nc.nextSID.Add(1), 10)}
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return nil, ErrConnClosed
	}
	if err := sub.acc.subs.Insert(subj, queue, sub); err != nil {
		c.mu.Unlock()
		return nil, ErrBadSubject
	}
	c.subs[sub.sid] = sub
	c.mu.Unlock()
	c.srv.subAdded(sub)
	c.srv.addShadows(sub)
	return (*Subscription)(sub), nil
}

// Publish routes one message. hdr, when not empty, is a complete header block
// ("NATS/1.0\r\n…\r\n\r\n"). Frames for socket subscribers are sent at the next Flush.
//
// subj, and reply unless empty, must be valid literal subjects with no whitespace or
// control byte (subject.ValidPublish), short enough that a socket client could have
// published them (validPubArgs); otherwise Publish returns ErrBadSubject and delivers
// nothing. The layer above publishes to subjects its clients chose, and both are
// written verbatim into MSG, HMSG and RMSG frames: a space or CR LF in them would let
// a client forge protocol to any subscriber or across a route.
func (nc *Conn) Publish(subj, reply string, hdr, data []byte) error {
	return nc.publish(subj, reply, hdr, data, nc.c.srv.o().MaxPayload)
}

// PublishOverMaxPayload is Publish up to the largest message a route accepts (1 GiB), past
// max_payload: for what one server of the mesh sends another (the subscriber is
// in-process on the other side of a route) that carries a message a server with a larger
// max_payload accepted, which this one must pass on whole.
func (nc *Conn) PublishOverMaxPayload(subj, reply string, data []byte) error {
	return nc.publish(subj, reply, nil, data, maxMaxPayload)
}

func (nc *Conn) publish(subj, reply string, hdr, data []byte, limit int) error {
	c := nc.c
	o := c.srv.o()
	if len(hdr)+len(data) > limit {
		return ErrMaxPayload
	}
	if !subject.ValidPublish(subj) || (reply != "" && !subject.ValidPublish(reply)) ||
		!validPubArgs(o.MaxControlLine, subj, reply, len(hdr), len(hdr)+len(data)) {
		return ErrBadSubject
	}
	if c.isClosed() {
		return ErrConnClosed
	}
	msg := data
	var buf *[]byte
	if len(hdr) > 0 {
		buf, _ = nc.scratch.Get().(*[]byte)
		if buf == nil {
			buf = new([]byte)
		}
		*buf = append(append((*buf)[:0], hdr...), data...)
		msg = *buf
	}
	s, r := bytesOf(subj), bytesOf(reply)
	c.stats.inMsgs.Add(1)
	c.stats.inBytes.Add(int64(len(msg)))
	n := c.prod.route(c.acc, c.acc.subs.Match(s), s, r, len(hdr), msg)
	if n == 0 && len(r) > 0 {
		c.noResponders(s, r)
	}
	if buf != nil {
		nc.scratch.Put(buf)
	}
	return nil
}

// validPubArgs reports whether the arguments of the PUB (or HPUB) a socket client would
// send for this message — subject, reply, sizes — fit a control line of max bytes: the
// length rule every other publisher obeys, which keeps MSG and RMSG lines within what
// clients and routes accept.
func validPubArgs(max int, subj, reply string, hdrLen, total int) bool {
	const sizes = 2 * 11 // two sizes of at most 10 digits (max_payload <= 1 GiB), a space each
	n := len(subj)
	if reply != "" {
		n += 1 + len(reply)
	}
	if n+sizes <= max {
		return true // the common case: no need to count digits
	}
	n += 1 + digits(total)
	if hdrLen > 0 {
		n += 1 + digits(hdrLen)
	}
	return n <= max
}

// digits returns the number of decimal digits of n >= 0.
func digits(n int) int {
	d := 1
	for ; n >= 10; n /= 10 {
		d++
	}
	return d
}

// Flush wakes the writer of every socket client that received frames since the last
// Flush: the in-process "end of read buffer".
func (nc *Conn) Flush() { nc.c.prod.flushPending() }

// FlushInPlace is Flush for a caller that answers requests itself (a SubscribeBatch end
// function on a client's read goroutine, say), such as the streaming engine (PubAcks, and
// deliveries to subscribers): it gives the output of up to four destinations one
// non-blocking write each — bulk output too, short of a sealed backlog (sealAt) — instead
// of waking their writers; whatever a socket does not take is left to its writer, which is
// then woken. With more destinations every writer is woken, as by Flush.
//
// Bulk in place: before, any destination with more than inPlaceMax pending made every
// writer wake instead (so that the reader keeps its core for parsing), and a subscriber's
// deliveries cost a goroutine hand-off per read buffer — the writer's wake-up, often a
// parked thread's futex, and the scheduler's spinning for work (findRunnable, ~11 % of the
// server's CPU). Measured (stan-bench, memory store, 1 KiB, 1 subscriber, A/B in one locked
// run): server CPU a message 4.00 / 4.00 → 3.40 / 3.35 µs, msgs/s 134k → 137-149k. Earlier
// (when only the small outputs could be written in place) writing them beside a
// writer's bulk output had cost that row 3.05 → 3.45 µs: the hand-off, not the write, was
// the price.
func (nc *Conn) FlushInPlace() { nc.c.prod.flush(true, true) }

// Request publishes data with a fresh reply subject and waits for the first answer.
func (nc *Conn) Request(ctx context.Context, subj string, hdr, data []byte) (Msg, error) {
	inbox := nc.NewInbox()
	ch := make(chan Msg, 1)
	sub, err := nc.Subscribe(inbox, "", func(m Msg) {
		cp := Msg{Subject: bytes.Clone(m.Subject), Reply: bytes.Clone(m.Reply),
			Header: bytes.Clone(m.Header), Data: bytes.Clone(m.Data)}
		select {
		case ch <- cp:
		default:
		}
	})
	if err != nil {
		return Msg{}, err
	}
	defer sub.Unsubscribe()
	if err := nc.Publish(subj, inbox, hdr, data); err != nil {
		return Msg{}, err
	}
	nc.Flush()
	select {
	case m := <-ch:
		if len(m.Data) == 0 && bytes.HasPrefix(m.Header, []byte("NATS/1.0 503")) {
			return Msg{}, ErrNoResponders
		}
		return m, nil
	case <-ctx.Done():
		return Msg{}, ctx.Err()
	}
}

// Close removes the connection and its subscriptions.
func (nc *Conn) Close() {
	nc.Flush()
	nc.c.closeConnection(reasonClientClosed)
}

// bytesOf views a string as bytes without copying; the router never writes to subjects.
func bytesOf(s string) []byte {
	if s == "" {
		return nil
	}
	return unsafe.Slice(unsafe.StringData(s), len(s))
}
