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
//     noticed yet) and a liveness check — a request to the client's heartbeat inbox, as
//     for a duplicate connect — is answered from the new connection within 500 ms.
//
// A request from another user's connection is always refused.

type bindResult uint8

const (
	bindOK       bindResult = iota // from is (now) the client's connection
	bindChecking                   // a liveness check decides; refuse this request meanwhile
	bindRefused
)

// bind decides whether a request from connection from may act for client c, rebinding c
// when it moved.
func (s *Server) bind(c *client, from uint64) bindResult {
	if from == c.nats {
		return bindOK
	}
	user, ok := s.bus.ConnUser(from)
	if !ok || user != c.user {
		return bindRefused
	}
	if c.nats == 0 || !s.bus.IsConnected(c.nats) {
		s.log.Info("client bound to a new connection", "client_id", c.id, "old_connection_gone", c.nats != 0)
		c.nats = from
		return bindOK
	}
	for _, dc := range s.checks {
		if dc.clientID == c.id {
			return bindChecking // one check at a time per client
		}
	}
	s.startCheck(&dupCheck{from: from, clientID: c.id}, c)
	return bindChecking
}

// rebindIfGone is bind without a liveness check: for heartbeat answers, which must never
// start one.
func (s *Server) rebindIfGone(c *client, from uint64) bool {
	if c.nats != 0 && s.bus.IsConnected(c.nats) {
		return false
	}
	user, ok := s.bus.ConnUser(from)
	if !ok || user != c.user {
		return false
	}
	c.nats = from
	return true
}

// dupCheck is a liveness check of a client whose NATS connection looks alive: a request
// to its heartbeat inbox, answered within 500 ms or not. Two kinds:
//   - req set: a connect for a registered client ID. An answer means the old client is
//     alive (refuse); none means it is gone (replace it).
//   - req nil: a request from another connection of the client's user (bind). An answer
//     from that connection means the client moved there (rebind); anything else leaves the
//     binding as it is.
type dupCheck struct {
	req      *stanpb.ConnectRequest
	reply    string
	from     uint64 // the connection asking
	clientID string
}

// startCheck sends the liveness request for dc to client old's heartbeat inbox. The
// reply subject ends in a random token, so nobody can answer for the client.
func (s *Server) startCheck(dc *dupCheck, old *client) {
	token := nuid()
	s.checks[token] = dc
	_ = s.bus.Publish(old.hbInbox, s.checkPrefix+"."+token, nil, nil)
	time.AfterFunc(duplicateCheckWait, func() { s.push(op{kind: opCheckTimeout, token: token}) })
}

// processCheckReply settles a check: alive is true for an answer (from o.from), false for
// the timeout or a no-responders status.
func (s *Server) processCheckReply(o *op, alive bool) {
	dc := s.checks[o.token]
	if dc == nil {
		return
	}
	delete(s.checks, o.token)
	c := s.clients[dc.clientID]
	if dc.req == nil {
		if alive && c != nil && o.from == dc.from {
			s.log.Info("client moved to a new connection", "client_id", c.id, "connection", strconv.FormatUint(dc.from, 10))
			c.nats = dc.from
		}
		return
	}
	if alive {
		s.refuseConnect(&op{reply: dc.reply}, dc.clientID, errDuplicateClient, "client ID in use by a live client")
		return
	}
	user, ok := s.bus.ConnUser(dc.from)
	if !ok {
		return
	}
	if c != nil {
		if c.user != user {
			s.refuseConnect(&op{reply: dc.reply}, dc.clientID, errDuplicateClient, "client ID registered by another user")
			return
		}
		s.log.Info("replacing unresponsive client", "client_id", c.id)
		s.closeClient(c)
	}
	s.registerClient(dc.req, dc.reply, dc.from, user)
}
