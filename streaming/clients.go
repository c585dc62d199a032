package streaming

import (
	"strconv"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/starling-io/starling/proto/stanpb"
	"github.com/starling-io/starling/stores"
)

// dupCheck is a connect for a client ID that is still registered and whose NATS
// connection is alive: the old client gets a heartbeat and 500 ms to answer.
type dupCheck struct {
	req      *stanpb.ConnectRequest
	reply    string
	from     uint64
	clientID string
}

func (s *Server) connectError(reply, text string) {
	s.reply(reply, &stanpb.ConnectResponse{Error: text})
}

func (s *Server) processConnect(o *op) {
	req := &stanpb.ConnectRequest{}
	if err := proto.Unmarshal(o.data, req); err != nil || req.HeartbeatInbox == "" {
		s.log.Debug("invalid connect request", "err", err)
		s.connectError(o.reply, errInvalidConnReq)
		return
	}
	if !validClientID(req.ClientID) {
		s.log.Debug("invalid client ID", "client_id", req.ClientID)
		s.connectError(o.reply, errInvalidClientID)
		return
	}
	if old := s.clients[req.ClientID]; old != nil {
		for _, c := range s.checks {
			if c.clientID == req.ClientID {
				s.connectError(o.reply, errDuplicateClient)
				return
			}
		}
		// Sharing the process with core, we know when the old client's NATS connection is
		// gone: then it is replaced at once instead of after heartbeat timeouts.
		if old.nats != 0 && s.bus.IsConnected(old.nats) {
			s.nextAck++
			token := strconv.FormatUint(s.nextAck, 36)
			s.checks[token] = &dupCheck{req: req, reply: o.reply, from: o.from, clientID: req.ClientID}
			_ = s.bus.Publish(old.hbInbox, s.checkPrefix+"."+token, nil, nil)
			time.AfterFunc(duplicateCheckWait, func() { s.push(op{kind: opCheckTimeout, token: token}) })
			return
		}
		s.log.Info("replacing client whose connection is gone", "client_id", old.id)
		s.closeClient(old)
	}
	s.registerClient(req, o.reply, o.from)
}

// processCheckReply settles a duplicate connect: the old client answered (alive → refuse)
// or did not (replace it).
func (s *Server) processCheckReply(o *op, alive bool) {
	c := s.checks[o.token]
	if c == nil {
		return
	}
	delete(s.checks, o.token)
	if alive {
		s.log.Debug("duplicate client ID refused", "client_id", c.clientID)
		s.connectError(c.reply, errDuplicateClient)
		return
	}
	if old := s.clients[c.clientID]; old != nil {
		s.log.Info("replacing unresponsive client", "client_id", old.id)
		s.closeClient(old)
	}
	s.registerClient(c.req, c.reply, c.from)
}

func (s *Server) registerClient(req *stanpb.ConnectRequest, reply string, from uint64) {
	info := stores.ClientInfo{ID: req.ClientID, HbInbox: req.HeartbeatInbox, ConnID: req.ConnID,
		Protocol: req.Protocol, PingInterval: req.PingInterval, PingMaxOut: req.PingMaxOut}
	if _, err := s.propose(&cmdConnect{info: info}); err != nil {
		s.log.Error("registering client failed", "client_id", req.ClientID, "err", err)
		s.connectError(reply, err.Error())
		return
	}
	c := s.clients[req.ClientID]
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
	s.log.Debug("client connected", "client_id", req.ClientID)
	s.reply(reply, resp)
}

// addClient is the applied side of a connect.
func (s *Server) addClient(info stores.ClientInfo) error {
	if err := s.store.AddClient(info); err != nil {
		return err
	}
	c := &client{id: info.ID, hbInbox: info.HbInbox, connID: info.ConnID, protocol: info.Protocol,
		pingInterval: info.PingInterval, pingMaxOut: info.PingMaxOut, subs: map[*subState]struct{}{}}
	s.clients[c.id] = c
	if len(c.connID) > 0 {
		s.byConnID[string(c.connID)] = c
	}
	return nil
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
	c.nats = o.from // the client may have reconnected its NATS connection
	s.reply(o.reply, &stanpb.PingResponse{})
}

func (s *Server) processClose(o *op) {
	req := &stanpb.CloseRequest{}
	if err := proto.Unmarshal(o.data, req); err != nil || req.ClientID == "" {
		s.reply(o.reply, &stanpb.CloseResponse{Error: errInvalidCloseReq})
		return
	}
	c := s.clients[req.ClientID]
	if c == nil {
		s.reply(o.reply, &stanpb.CloseResponse{Error: errUnknownClient})
		return
	}
	s.closeClient(c)
	s.reply(o.reply, &stanpb.CloseResponse{})
}

// closeClient unregisters a client and applies close semantics to its subscriptions
// (durables go offline; spec §9.3).
func (s *Server) closeClient(c *client) {
	s.flushSentAcks()
	for sub := range c.subs {
		s.removeSub(sub, false)
	}
	if _, err := s.propose(&cmdDisconnect{clientID: c.id}); err != nil {
		s.log.Error("unregistering client failed", "client_id", c.id, "err", err)
	}
}

// dropClient is the applied side of a disconnect.
func (s *Server) dropClient(id string) error {
	c := s.clients[id]
	if c == nil {
		return nil
	}
	delete(s.clients, id)
	if len(c.connID) > 0 && s.byConnID[string(c.connID)] == c {
		delete(s.byConnID, string(c.connID))
	}
	return s.store.DeleteClient(id)
}

// processHbTick sends every client a heartbeat; one still unanswered from the previous
// tick counts as a failure, and past hb_fail_count the client is closed. A client whose
// NATS connection is gone and that did not answer is closed at once: sharing the process
// with core, we know.
func (s *Server) processHbTick() {
	for _, c := range s.clients {
		if c.hbOut {
			c.hbFails++
			gone := c.nats != 0 && !s.bus.IsConnected(c.nats)
			if gone || c.hbFails > s.opts.HBFailCount {
				s.log.Info("closing client after missed heartbeats", "client_id", c.id, "failures", c.hbFails, "connection_gone", gone)
				s.closeClient(c)
				continue
			}
		}
		c.hbOut = true
		_ = s.bus.Publish(c.hbInbox, s.hbPrefix+"."+c.id, nil, nil)
	}
}

func (s *Server) processHbReply(o *op) {
	if c := s.clients[o.token]; c != nil {
		c.hbOut = false
		c.hbFails = 0
	}
}
