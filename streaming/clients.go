package streaming

import (
	"context"
	"log/slog"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/starling-io/starling/proto/stanpb"
	"github.com/starling-io/starling/stores"
)

func (s *Server) connectError(reply, text string) {
	s.reply(reply, &stanpb.ConnectResponse{Error: text})
}

// refuseConnect answers a connect with text and logs why, naming the client.
func (s *Server) refuseConnect(o *op, clientID, text, why string) {
	s.log.Info("connect refused", "client_id", logID(clientID), "cause", why)
	s.connectError(o.reply, text)
}

func (s *Server) processConnect(o *op) {
	req := &stanpb.ConnectRequest{}
	if err := proto.Unmarshal(o.data, req); err != nil || req.HeartbeatInbox == "" {
		s.refuseConnect(o, req.ClientID, errInvalidConnReq, "malformed request or no heartbeat inbox")
		return
	}
	switch {
	case !validClientID(req.ClientID):
		s.refuseConnect(o, req.ClientID, errInvalidClientID, "invalid client ID")
		return
	case len(req.ClientID) > MaxClientIDLen:
		s.refuseConnect(o, req.ClientID, errClientIDTooLong, "client ID too long")
		return
	case !s.validInbox(req.HeartbeatInbox):
		s.refuseConnect(o, req.ClientID, errInvalidConnReq, "heartbeat inbox is not a subject the client may own: "+quote(req.HeartbeatInbox))
		return
	}
	user, ok := s.connUser(o.from)
	if !ok {
		return // the connection that asked is gone: nobody to answer
	}
	if old := s.clients[req.ClientID]; old != nil {
		for _, c := range s.checks {
			if c.clientID == req.ClientID && c.req != nil {
				s.refuseConnect(o, req.ClientID, errDuplicateClient, "a connect for this client ID is being checked")
				return
			}
		}
		if old.user != user {
			// One user never takes over another user's client, dead or alive: it expires
			// by heartbeats first.
			s.refuseConnect(o, req.ClientID, errDuplicateClient, "client ID registered by another user")
			return
		}
		// Probed even when its connection is gone: stan.go reconnects, and then answers
		// from its new connection. One gone for good has no subscriber on its heartbeat
		// inbox, and the no-responders status settles the check at once.
		s.startCheck(&dupCheck{req: req, reply: o.reply, from: o.from, clientID: req.ClientID}, old)
		return
	}
	if s.opts.MaxClients > 0 && len(s.clients) >= s.opts.MaxClients {
		s.refuseConnect(o, req.ClientID, errTooManyClients, "max_clients reached")
		return
	}
	s.registerClient(req, o.reply, o.from, user)
}

// registerClient proposes the client's registration and replies once it is committed and
// durable. The engine's view has the client at once: a request behind the connect sees it,
// and its command follows the connect in the log; a second connect for the ID finds it taken
// (processConnect).
func (s *Server) registerClient(req *stanpb.ConnectRequest, reply string, from uint64, user string) {
	info := stores.ClientInfo{ID: req.ClientID, HbInbox: req.HeartbeatInbox, ConnID: req.ConnID,
		Protocol: req.Protocol, PingInterval: req.PingInterval, PingMaxOut: req.PingMaxOut, User: user}
	c := s.addClientView(info)
	c.nats = from
	resp := &stanpb.ConnectResponse{
		PubPrefix: s.pubPrefix, SubRequests: s.subReq, UnsubRequests: s.unsubReq,
		CloseRequests: s.closeReq, SubCloseRequests: s.subCloseReq, Protocol: 1,
	}
	if req.Protocol >= 1 {
		resp.PingRequests = s.pings
		resp.PingInterval = req.PingInterval
		resp.PingMaxOut = req.PingMaxOut
	}
	s.proposeReply(&cmdConnect{info: info}, func(_ any, err error) {
		if err != nil {
			s.log.Error("registering client failed", "client_id", c.id, "err", err)
			if s.clients[c.id] == c {
				s.closeClient(c, nil) // a disconnect of a record never made is a no-op
			}
			s.connectError(reply, err.Error())
			return
		}
		s.log.Debug("client connected", "client_id", c.id)
		s.reply(reply, resp)
	})
}

// addClientView is the engine's side of a registered client (connect, restore).
func (s *Server) addClientView(info stores.ClientInfo) *client {
	c := &client{id: info.ID, hbInbox: info.HbInbox, connID: info.ConnID, protocol: info.Protocol,
		pingInterval: info.PingInterval, pingMaxOut: info.PingMaxOut, user: info.User, subs: map[*subState]struct{}{}}
	s.clients[c.id] = c
	if len(c.connID) > 0 {
		s.byConnID[string(c.connID)] = c
	}
	return c
}

func (s *Server) processPing(o *op) {
	if len(o.data) == 0 {
		return // an empty ping is ignored (spec §5.2)
	}
	ping := &stanpb.Ping{}
	if err := proto.Unmarshal(o.data, ping); err != nil {
		return
	}
	c := s.byConnID[string(ping.ConnID)]
	if c == nil {
		s.reply(o.reply, &stanpb.PingResponse{Error: errClientReplaced})
		return
	}
	switch s.bind(c, o) {
	case bindRefused:
		user, ok := s.connUser(o.from)
		if !ok {
			// The connection it came over closed before the engine got to it (the route from
			// a server that stopped right after forwarding it): nobody asks any more, as for
			// a connect. Refused, "replaced" would reach the client on the connection it
			// moved to, and stan.go would close it; its next ping comes over that one.
			s.log.Debug("ping not answered", "client_id", c.id, "cause", "its connection closed before it was read")
			return
		}
		if user == c.user {
			// A live connection of the client's user while a liveness check decides whether
			// the client moved to another: answered, as when no check runs (bindHeld) and as
			// nats-streaming-server answers every ping naming a registered ConnID
			// (processClientPings). "Replaced" would make stan.go close the client — perhaps
			// this very one, reconnected once more — before the check decided anything. A
			// ping binds nothing; the check, and the client's next requests, do.
			if s.log.Enabled(context.Background(), slog.LevelDebug) { // bindRefusal looks the check up
				s.log.Debug("ping answered during a liveness check", "client_id", c.id, "cause", s.bindRefusal(c, o.from))
			}
			break
		}
		s.log.Info("ping refused", "client_id", c.id, "cause", s.bindRefusal(c, o.from))
		s.reply(o.reply, &stanpb.PingResponse{Error: errClientReplaced})
		return
	case bindHeld:
		// The client may have moved to a new connection while the old one looks alive:
		// answer, so stan.go keeps going, and let the liveness check decide.
	case bindOK:
		if c.hbFails > 0 {
			// It is back: a heartbeat now clears its failures (its subscriptions' redeliveries
			// resume) without waiting for the next tick, as the reference does (spec §5.2).
			s.sendHeartbeat(c)
		}
	}
	s.reply(o.reply, &stanpb.PingResponse{})
}

func (s *Server) processClose(o *op) {
	req := &stanpb.CloseRequest{}
	if err := proto.Unmarshal(o.data, req); err != nil {
		s.log.Info("close refused", "client_id", logID(req.ClientID), "cause", "malformed request")
		s.reply(o.reply, &stanpb.CloseResponse{Error: errInvalidCloseReq})
		return
	}
	c := s.clients[req.ClientID] // none for an empty ID: an unknown client, as in the reference
	r := bindRefused
	if c != nil {
		r = s.bind(c, o)
	}
	switch r {
	case bindHeld:
		return
	case bindRefused:
		s.log.Info("close refused", "client_id", logID(req.ClientID), "cause", s.bindRefusal(c, o.from))
		s.reply(o.reply, &stanpb.CloseResponse{Error: errUnknownClient})
		return
	}
	reply := o.reply
	s.closeClient(c, func(err error) {
		resp := &stanpb.CloseResponse{}
		if err != nil {
			resp.Error = err.Error()
		}
		s.reply(reply, resp)
	})
}

// closeClient unregisters a client and applies close semantics to its subscriptions
// (durables go offline; spec §9.3). The engine forgets it at once; done (nil: none) runs once
// the unregistration is committed and durable, with its failure if any.
func (s *Server) closeClient(c *client, done func(err error)) {
	s.flushSentAcks()
	for sub := range c.subs {
		s.removeSub(sub, false)
	}
	s.dropClientView(c) // gone for the engine even if its record cannot be deleted
	fn := func(_ any, err error) {
		if err != nil {
			s.log.Error("unregistering client failed", "client_id", c.id, "err", err)
		}
		if done != nil {
			done(err)
		}
	}
	if done == nil {
		s.proposeThen(&cmdDisconnect{clientID: c.id}, fn) // an expiry: its record rides a later commit
		return
	}
	s.proposeReply(&cmdDisconnect{clientID: c.id}, fn)
}

// dropClientView is the engine's side of an unregistered client.
func (s *Server) dropClientView(c *client) {
	if s.clients[c.id] == c {
		delete(s.clients, c.id)
	}
	if len(c.connID) > 0 && s.byConnID[string(c.connID)] == c {
		delete(s.byConnID, string(c.connID))
	}
}

// processHbTick sends every client a heartbeat; one still unanswered from the previous
// tick, or answered after hb_timeout, counts as a failure, and past hb_fail_count the
// client is closed. A client whose NATS connection is gone is not closed sooner: stan.go
// reconnects, and rides out a disconnection as long as the reference lets it (spec §5.1).
func (s *Server) processHbTick() {
	if !s.leader {
		return // only the leader heartbeats clients
	}
	// Ticks queued while the engine was held up (a new leader's barrier) arrive back to
	// back: each would count the heartbeat the one before it sent as missed, and close live
	// clients. They are one tick.
	now := time.Now()
	if now.Sub(s.hbTickAt) < s.opts.HBInterval/2 {
		return
	}
	s.hbTickAt = now
	for _, c := range s.clients {
		if c.hbOut {
			c.hbFails++
			if c.hbFails > s.opts.HBFailCount {
				gone := c.nats != 0 && !s.bus.IsConnected(c.nats)
				s.log.Info("closing client after missed heartbeats", "client_id", c.id, "failures", c.hbFails, "connection_gone", gone)
				s.closeClient(c, nil)
				continue
			}
		}
		s.sendHeartbeat(c)
	}
}

// sendHeartbeat sends client c a heartbeat request; it is outstanding until answered.
func (s *Server) sendHeartbeat(c *client) {
	c.hbOut, c.hbSent = true, s.clock.monoNow()
	_ = s.bus.Publish(c.hbInbox, s.hbPrefix+"."+c.id, nil, nil)
}

// processHbReply counts a heartbeat answer only from the client's own connection (or, its
// connection being gone, from a new one of the same user: a reconnect), so nobody else
// can keep a client alive by answering for it.
func (s *Server) processHbReply(o *op) {
	c := s.clients[o.token]
	if c == nil {
		return
	}
	if o.from != c.nats && !s.rebindIfGone(c, o.from) {
		s.refusedLog(&s.hbLog, "heartbeat answer refused", "client_id", c.id, "cause", "not from the client's connection")
		return
	}
	arrived := o.at // not when the engine got to it
	if arrived == 0 {
		arrived = s.clock.monoNow()
	}
	if !c.hbOut || time.Duration(arrived-c.hbSent) > s.opts.HBTimeout {
		// Late (or unasked): as the reference, whose request timed out by then, counts it.
		return
	}
	c.hbOut = false
	c.hbFails = 0
}
