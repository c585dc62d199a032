package core

import (
	"bytes"
	"encoding/json"
	"errors"
	"strconv"
	"time"

	"github.com/starling-io/starling/core/auth"
	"github.com/starling-io/starling/core/subject"
	"github.com/starling-io/starling/core/wire"
)

// This file implements wire.Handler: one processX per inbound operation. Each runs on the
// client's read goroutine. A returned *wire.Error closes the connection (after its -ERR);
// errors that keep the connection open are sent here and nil is returned.

var _ wire.Handler = (*client)(nil)

func (c *client) ProcessConnect(arg []byte) error {
	if c.gone.Load() {
		return errClosed // no password check for a client closed already
	}
	opts := connectOpts{Verbose: true, Pedantic: true, Echo: true}
	if err := json.Unmarshal(arg, &opts); err != nil {
		c.log.Debug("invalid CONNECT", "cause", err)
		return wire.ErrBadConnect
	}
	srvHeaders := !c.srv.o().NoHeaderSupport
	opts.Headers = opts.Headers && srvHeaders
	// nats-server's order: credentials first, then the CONNECT's other faults; the identity
	// is adopted only once all of them pass (a refused second CONNECT changes nothing).
	refused := func(err error) error {
		if !errors.Is(err, auth.ErrCheckAborted) { // else the auth timer has logged it
			c.srv.logRefusedLogin(c, "authentication failed", loginName(&opts), err)
			c.refusedConnect(&opts)
		} // else timed out (no event, as nats-server), or refused by a reload, which announced it
		return wire.ErrAuthorization
	}
	id, by, err := c.authenticate(&opts)
	if err != nil {
		return refused(err)
	}
	switch {
	case opts.Account != nil || opts.NewAccount != nil:
		c.srv.logRefusedLogin(c, "authentication failed", loginName(&opts), "CONNECT names an account: a client's account is its user's")
		c.refusedConnect(&opts)
		return wire.ErrAuthorization
	case opts.Protocol < 0 || opts.Protocol > 1:
		return wire.ErrBadProtocol
	case opts.NoResponders && !opts.Headers:
		return wire.ErrNoRespondersNeedsHeaders
	}
	if err := c.adoptIdentity(id, by); err != nil {
		return refused(err)
	}
	if c.connected {
		// A second CONNECT: what was subscribed under the first identity (and account)
		// goes, as in nats-server.
		c.dropAllSubs()
	}
	if !c.bindAccount() {
		c.srv.logRefusedLogin(c, "authentication failed", loginName(&opts), "the user's account was removed by a reload")
		return wire.ErrAuthorization
	}
	c.opts = opts
	c.opts.Pass, c.opts.AuthToken, c.opts.Sig = "", "", "" // never keep secrets around
	c.echo.Store(opts.Echo)
	c.headers.Store(opts.Headers)
	c.parser.ExpectConnect = false
	c.parser.Headers = opts.Headers
	c.connected = true
	if c.gotPing {
		// A later CONNECT: no second connect-info INFO (nats-server sends it after the
		// connection's first PONG only), but async INFOs follow the new protocol.
		c.proto1.Store(opts.Protocol >= 1)
	}
	c.mu.Lock()
	c.name, c.lang, c.version = opts.Name, opts.Lang, opts.Version
	if c.rtt == 0 {
		// An estimate until the first PING measures it, as in nats-server: with it, a
		// tick skips its PING for a client active within ping_interval.
		c.rtt = max(time.Since(c.start), time.Microsecond)
	}
	c.mu.Unlock()
	c.setPingTimer(min(c.srv.o().PingInterval, firstPingDelay))
	c.connectEvent()
	if opts.Verbose {
		c.sendProto(wire.OKLine)
	}
	return nil
}

// refusedConnect announces a CONNECT refused for its credentials to the system account,
// with the name, language and version it gave.
func (c *client) refusedConnect(opts *connectOpts) {
	c.mu.Lock()
	c.name, c.lang, c.version = opts.Name, opts.Lang, opts.Version
	c.mu.Unlock()
	c.authErrorEvent(loginName(opts))
}

func (c *client) ProcessInfo(arg []byte) error { return nil }

func (c *client) ProcessPub(subj, reply, payload []byte) error {
	return c.processMsg(subj, reply, 0, payload)
}

func (c *client) ProcessHPub(subj, reply []byte, hdrLen int, msg []byte) error {
	return c.processMsg(subj, reply, hdrLen, msg)
}

func (c *client) processMsg(subj, reply []byte, hdrLen int, msg []byte) error {
	if c.gone.Load() {
		return errClosed
	}
	c.inBatch.msgs++
	c.inBatch.bytes += int64(len(msg))
	// nats-server's order: the pedantic check (it makes it on the control line), then
	// permissions, reserved subjects, reserved replies.
	if c.opts.Pedantic && !subject.ValidPedantic(subj) {
		c.sendErr(wire.ErrInvalidPubSubject.Text) // and still routed, like the reference
	}
	if !c.canPublish(subj) {
		c.sendErr(wire.PermPub(subj))
		return nil
	}
	if len(subj) > 0 && (subj[0] == '_' || subj[0] == '$') && reservedSubject(subj) {
		c.sendErr(wire.PermPub(subj))
		return nil
	}
	if len(reply) > 0 && reservedReply(reply) {
		c.sendErr(wire.PermPubReply(reply))
		return nil
	}
	if c.opts.Verbose {
		c.sendProto(wire.OKLine)
	}
	var n int
	var h map[string][]string
	if hdrLen > 0 { // a plain PUB cannot ask for a trace: not even the call (~2 % of a pub-only server's CPU)
		h = traceHeaders(msg[:hdrLen])
	}
	if h != nil {
		n = c.processTracedMsg(h, subj, reply, hdrLen, msg)
	} else {
		n = c.prod.route(c.acc, c.match(subj), subj, reply, hdrLen, msg)
	}
	if n == 0 && len(reply) > 0 && c.opts.NoResponders {
		c.noResponders(subj, reply)
	}
	return nil
}

func (c *client) ProcessSub(subj, queue, sid []byte) error {
	c.inBatch.active = true
	if len(queue) > 0 && string(queue) == "_sys_" {
		c.sendErr(wire.PermSub(subj, queue))
		return nil
	}
	ck := c.perms.Load()
	if !ck.CanSubscribe(subj, queue) {
		c.sendErr(wire.PermSub(subj, queue))
		return nil
	}
	sub := &subscription{client: c, acc: c.acc, subject: string(subj), queue: string(queue), sid: string(sid)}
	sub.filter.Store(ck.FilterDelivery(sub.subject))
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return errClosed
	}
	if max := c.srv.o().MaxSubscriptions; max > 0 && len(c.subs) >= max {
		c.mu.Unlock()
		c.sendErr(wire.ErrMaxSubscriptions.Text)
		return nil
	}
	if _, dup := c.subs[sub.sid]; dup {
		c.mu.Unlock()
		if c.opts.Verbose {
			c.sendProto(wire.OKLine)
		}
		return nil
	}
	if err := sub.acc.subs.Insert(sub.subject, sub.queue, sub); err != nil {
		c.mu.Unlock()
		c.sendErr(wire.ErrInvalidSubject.Text)
		return nil
	}
	c.subs[sub.sid] = sub
	// A reload that changed the permissions since ck was loaded may have rechecked the
	// subscriptions before this one was in c.subs: check it against the new ones here.
	now := c.perms.Load()
	c.mu.Unlock()
	c.srv.subAdded(sub)
	c.srv.addShadows(sub)
	if c.opts.Verbose {
		c.sendProto(wire.OKLine)
	}
	if now != ck {
		c.recheckSubscription(now, sub)
	}
	return nil
}

func (c *client) ProcessUnsub(sid []byte, max int64) error {
	c.mu.Lock()
	sub := c.subs[string(sid)]
	c.mu.Unlock()
	if sub != nil {
		if max > 0 && max > sub.delivered.Load() {
			sub.max.Store(max)
			if sub.delivered.Load() >= max {
				c.removeSub(sub) // deliveries racing the store reached it
			}
		} else {
			c.removeSub(sub)
		}
	}
	if c.opts.Verbose {
		c.sendProto(wire.OKLine)
	}
	return nil
}

// dropAllSubs removes every subscription of the client.
func (c *client) dropAllSubs() {
	for _, sub := range c.subList() {
		c.removeSub(sub)
	}
}

// subList returns the client's subscriptions at this moment.
func (c *client) subList() []*subscription {
	c.mu.Lock()
	defer c.mu.Unlock()
	subs := make([]*subscription, 0, len(c.subs))
	for _, sub := range c.subs {
		subs = append(subs, sub)
	}
	return subs
}

// removeSub takes a subscription out of the client and the index; safe from any goroutine.
// False means it was already removed.
func (c *client) removeSub(sub *subscription) bool {
	if sub.closed.Swap(true) {
		return false
	}
	c.mu.Lock()
	if c.subs[sub.sid] == sub {
		delete(c.subs, sub.sid)
	}
	c.mu.Unlock()
	_ = sub.acc.subs.Remove(sub.subject, sub.queue, sub)
	c.srv.subRemoved(sub)
	c.srv.removeShadows(sub)
	return true
}

func (c *client) ProcessPing() error {
	c.inBatch.active = true
	c.sendProto(wire.PongLine)
	// The first PING after CONNECT completes the handshake; a protocol-1 client then gets
	// the connect-info INFO and may receive async INFOs from now on.
	if c.connected && !c.gotPing {
		c.gotPing = true
		if c.opts.Protocol >= 1 {
			info := c.srv.infoJSON(c, infoAfterConnect)
			c.mu.Lock()
			if !c.closed {
				c.out.buf = wire.AppendInfo(c.out.buf, info)
			}
			c.mu.Unlock()
			c.proto1.Store(true)
		}
	}
	return nil
}

func (c *client) ProcessPong() error {
	c.mu.Lock()
	c.pingsOut = 0
	if !c.pingSent.IsZero() {
		c.rtt = time.Since(c.pingSent)
		c.pingSent = time.Time{}
	}
	c.mu.Unlock()
	return nil
}

func (c *client) ProcessOK() error { return nil }

// ProcessErr: a client that sends -ERR is closed, like the reference does.
func (c *client) ProcessErr(arg []byte) error {
	c.log.Debug("client sent -ERR", "text", strconv.Quote(string(arg)))
	c.closeFlushing(reasonClientClosed) // replies to what came before it still go out
	return errClientErr
}

// reservedReply: reply prefixes the reference keeps for its own machinery (service imports,
// JetStream acks, gateways); a client may not use them.
func reservedReply(r []byte) bool {
	if r[0] != '_' && r[0] != '$' {
		return false
	}
	return bytes.HasPrefix(r, []byte("_R_.")) || bytes.HasPrefix(r, []byte("$JS.ACK.")) ||
		bytes.HasPrefix(r, []byte("_GR_.")) || bytes.HasPrefix(r, []byte("$GR."))
}

// reservedSubject: subjects of gateway replies and Raft groups, never published by clients.
func reservedSubject(s []byte) bool {
	return bytes.HasPrefix(s, []byte("_GR_.")) || bytes.HasPrefix(s, []byte("$GR.")) || bytes.HasPrefix(s, []byte("$NRG."))
}
