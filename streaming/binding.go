package streaming

import (
	"strconv"
	"time"

	"github.com/starling-io/starling/proto/stanpb"
)

// A streaming client is bound to the NATS connection that registered it (and to its
// user): close, unsubscribe, subscribe, publish, ack, ping and heartbeat answers count
// only from that connection. Anyone else who learnt a client's ID or ConnID could
// otherwise act for it — ack its messages, close it, take over its durables (audit
// finding 5). The binding moves only when the client evidently moved:
//
//   - its connection is gone (core tells us, in-process) and the request comes from a
//     connection of the same user — stan.go reconnecting, or any client after a restart
//     of the server, whose clients start unbound;
//   - or its connection still looks alive (a half-open TCP connection the server has not
//     noticed yet) and a liveness check settles it: a request to the client's heartbeat
//     inbox, which the server still delivers to both connections. The client moved if the
//     new connection answers and the bound one does not within 500 ms. An attacker who
//     subscribed to the heartbeat inbox can answer, but so does the live client on its
//     bound connection, and then nothing moves. The requests of the new connection wait
//     for the answer (held), then run or are refused.
//
// A request from another user's connection is always refused.

type bindResult uint8

const (
	bindOK      bindResult = iota // from is (now) the client's connection
	bindHeld                      // a liveness check decides; the request was kept for then
	bindRefused                   // refuse the request
)

// maxHeld bounds the requests one liveness check keeps.
const maxHeld = 256

// bind decides whether request o may act for client c, rebinding c when it moved. On
// bindHeld a copy of o runs (or is refused) when the check settles; a ping is not kept.
func (s *Server) bind(c *client, o *op) bindResult {
	from := o.from
	if from == c.nats {
		return bindOK
	}
	user, ok := s.connUser(from)
	if !ok || user != c.user {
		return bindRefused
	}
	if c.nats == 0 || !s.bus.IsConnected(c.nats) {
		s.log.Info("client bound to a new connection", "client_id", c.id, "old_connection_gone", c.nats != 0)
		c.nats = from
		return bindOK
	}
	if s.sameRoutePeer(from, c.nats) {
		c.nats = from // the remote client's server replaced its route to us: it did not move
		return bindOK
	}
	dc := s.checkOf(c.id)
	switch {
	case dc == nil:
		dc = &dupCheck{from: from, old: c.nats, clientID: c.id}
		s.startCheck(dc, c)
	case dc.req != nil || dc.from != from:
		return bindRefused // a connect for the ID, or another connection, is being checked
	}
	if o.kind == opPing {
		return bindHeld
	}
	if len(dc.held) >= maxHeld {
		return bindRefused
	}
	dc.held = append(dc.held, *o)
	return bindHeld
}

// bindRefusal says why bind refused a request from connection from acting for client c
// (nil: unknown), for the log line of the refusal.
func (s *Server) bindRefusal(c *client, from uint64) string {
	if c == nil {
		return "unknown client"
	}
	user, ok := s.connUser(from)
	switch {
	case !ok:
		// It closed before the engine read the request (a route whose server stopped):
		// nobody there to act for, whoever it was.
		return "its connection is gone"
	case user != c.user:
		return "from a connection of another user"
	}
	if dc := s.checkOf(c.id); dc != nil {
		switch {
		case dc.req != nil:
			return "not from the client's connection, while a connect with its client ID waits for a liveness check"
		case dc.from == from:
			return "too many requests waiting for the liveness check of its connection"
		}
		return "not from the client's connection, while a liveness check for another connection runs"
	}
	return "not from the client's connection"
}

// checkOf returns the liveness check running for a client ID, or nil.
func (s *Server) checkOf(clientID string) *dupCheck {
	for _, dc := range s.checks {
		if dc.clientID == clientID {
			return dc
		}
	}
	return nil
}

// rebindIfGone is bind without a liveness check: for heartbeat answers, which must never
// start one.
func (s *Server) rebindIfGone(c *client, from uint64) bool {
	if c.nats != 0 && s.bus.IsConnected(c.nats) && !s.sameRoutePeer(from, c.nats) {
		return false
	}
	user, ok := s.connUser(from)
	if !ok || user != c.user {
		return false
	}
	c.nats = from
	return true
}

// dupCheck is a liveness check of a client whose NATS connection looks alive: a request
// to its heartbeat inbox. Two kinds:
//   - req set: a connect for a registered client ID. An answer means the old client is
//     alive (refuse, at once); none within 500 ms means it is gone (replace it).
//   - req nil: a request from another connection of the client's user (bind). Settled when
//     the 500 ms are up: the client moved to that connection if it answered and the bound
//     connection did not.
type dupCheck struct {
	req      *stanpb.ConnectRequest
	reply    string
	from     uint64 // the connection asking
	clientID string

	old         uint64 // bind: the connection the client is bound to
	newAnswered bool
	oldAnswered bool
	held        []op // bind: requests from the asking connection, waiting
}

// startCheck sends the liveness request for dc to client old's heartbeat inbox. The
// reply subject ends in a random token, so nobody can answer without seeing the request.
func (s *Server) startCheck(dc *dupCheck, old *client) {
	token := nuid()
	s.checks[token] = dc
	_ = s.bus.Publish(old.hbInbox, s.checkPrefix+"."+token, nil, nil)
	time.AfterFunc(duplicateCheckWait, func() { s.push(op{kind: opCheckTimeout, token: token, seq: checkTimer}) })
}

// checkTimer marks the opCheckTimeout of the 500 ms timer (the other comes from a
// no-responders status).
const checkTimer = 1

// processCheckReply handles an answer to a check (alive, from o.from) or its end (the
// timer, or a no-responders status).
func (s *Server) processCheckReply(o *op, alive bool) {
	dc := s.checks[o.token]
	if dc == nil {
		return
	}
	if dc.req == nil {
		s.settleBind(o, dc, alive)
		return
	}
	c := s.clients[dc.clientID]
	if alive {
		// Only the client's own user vouches for it: another who learnt its heartbeat
		// inbox would otherwise keep a dead client's ID from its owner.
		if u, ok := s.connUser(o.from); c != nil && (!ok || u != c.user) {
			return // the owner's answer or the timer decides
		}
		delete(s.checks, o.token)
		s.refuseConnect(&op{reply: dc.reply}, dc.clientID, errDuplicateClient, "client ID in use by a live client")
		return
	}
	delete(s.checks, o.token)
	user, ok := s.connUser(dc.from)
	if !ok {
		return
	}
	if c != nil {
		if c.user != user {
			s.refuseConnect(&op{reply: dc.reply}, dc.clientID, errDuplicateClient, "client ID registered by another user")
			return
		}
		s.log.Info("replacing unresponsive client", "client_id", c.id)
		s.closeClient(c, nil)
	}
	s.registerClient(dc.req, dc.reply, dc.from, user)
}

// settleBind records an answer to a bind check, or settles it when its timer fires: the
// client moves if the asking connection answered and the bound one did not; its held
// requests then run, else they are refused — unless the bound connection closed
// meanwhile, when they run and bind the client as any reconnect would.
func (s *Server) settleBind(o *op, dc *dupCheck, alive bool) {
	if alive {
		// Over either of two routes to one server: the answer came from that server.
		switch {
		case o.from == dc.from || s.sameRoutePeer(o.from, dc.from):
			dc.newAnswered = true
		case o.from == dc.old || s.sameRoutePeer(o.from, dc.old):
			dc.oldAnswered = true
		}
		return
	}
	if o.seq != checkTimer {
		return // a no-responders status: somebody else's subscription is gone; wait
	}
	delete(s.checks, o.token)
	c := s.clients[dc.clientID]
	if c == nil {
		s.refuseHeld(dc, "unknown client")
		return
	}
	if c.nats == dc.old && dc.newAnswered && !dc.oldAnswered {
		s.log.Info("client moved to a new connection", "client_id", c.id, "connection", strconv.FormatUint(dc.from, 10))
		c.nats = dc.from
	}
	if c.nats != dc.from && c.nats != 0 && s.bus.IsConnected(c.nats) {
		s.refuseHeld(dc, "not from the client's connection (its own answered the liveness check)")
		return
	}
	for i := range dc.held {
		o := &dc.held[i]
		if o.kind == opPublish {
			s.queuePublish(o)
			continue
		}
		s.flushPublishes()
		s.process(o)
	}
}

// refuseHeld answers every request a bind check held with the refusal its kind gets, and
// logs each as its own handler would.
func (s *Server) refuseHeld(dc *dupCheck, why string) {
	for i := range dc.held {
		o := &dc.held[i]
		switch o.kind {
		case opPublish:
			var pm pubMsgView
			_ = decodePubMsg(o.data, &pm)
			s.log.Info("publish refused", "client_id", dc.clientID, "cause", why)
			s.sendPubAck(o.reply, pm.guid, errInvalidPubReq)
		case opSubscribe:
			s.log.Info("subscription refused", "client_id", dc.clientID, "cause", why)
			s.subError(o.reply, errUnknownClient)
		case opUnsubscribe, opSubClose:
			s.log.Info("unsubscribe refused", "client_id", dc.clientID, "cause", why)
			s.subError(o.reply, errUnknownClient)
		case opClose:
			s.log.Info("close refused", "client_id", dc.clientID, "cause", why)
			s.reply(o.reply, &stanpb.CloseResponse{Error: errUnknownClient})
		case opAck:
			// No reply carries it: the (rate-limited) line is all that is left of it.
			if sub := s.byAckID[o.ack]; sub != nil {
				s.refusedLog(&s.ackLog, "ack refused", "client_id", dc.clientID, "channel", sub.ch.name, "cause", why)
			}
		}
	}
}

// connUser is the user a request acts as. Replicated, it is always "" (and the connection
// must only be open): a request that reaches the leader over a route carries no user —
// routes do not carry it — while the same client's requests arrive from a local connection
// once its server leads; binding clients and durables to users would then break them at a
// failover. The binding to the NATS connection holds, as in nats-streaming-server, which
// binds to no user at all; subject permissions on each node still apply.
func (s *Server) connUser(cid uint64) (string, bool) {
	user, ok := s.bus.ConnUser(cid)
	if s.replicated {
		user = ""
	}
	return user, ok
}

// routePeers is what a Bus over a route mesh adds (core.Conn.RoutePeer): the server at the
// other end of a route connection.
type routePeers interface {
	RoutePeer(cid uint64) (string, bool)
}

// sameRoutePeer reports whether connections a and b are two routes to the same server. A
// client on that server whose requests came over one and now come over the other has not
// moved: when two routes to a server briefly coexist, its answers to a liveness check may
// come back over either, and the check would refuse a live client.
func (s *Server) sameRoutePeer(a, b uint64) bool {
	rp, ok := s.bus.(routePeers)
	if !ok || a == b {
		return false
	}
	pa, okA := rp.RoutePeer(a)
	pb, okB := rp.RoutePeer(b)
	return okA && okB && pa == pb
}
