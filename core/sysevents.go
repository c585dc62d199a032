package core

import (
	"encoding/json"
	"time"
)

// Connect and disconnect events (nats-server's advisories): the system account hears
// $SYS.ACCOUNT.<account>.CONNECT when a client's CONNECT is accepted and
// $SYS.ACCOUNT.<account>.DISCONNECT when that client goes; a refused login (bad credentials,
// or a client a reload refuses) is a disconnect event on $SYS.SERVER.<id>.CLIENT.AUTH.ERR (a
// client a reload refuses has both that and its DISCONNECT, as with nats-server). Each event
// is built on the connection's goroutine and handed to sysLoop like a request (dropped when
// the queue is full rather than ever blocking a connection).

const (
	connectEventType    = "io.nats.server.advisory.v1.client_connect"
	disconnectEventType = "io.nats.server.advisory.v1.client_disconnect"
)

// sysClientInfo is nats-server's ClientInfo.
type sysClientInfo struct {
	Start   *time.Time    `json:"start,omitempty"`
	Host    string        `json:"host,omitempty"`
	ID      uint64        `json:"id,omitempty"`
	Account string        `json:"acc,omitempty"`
	User    string        `json:"user,omitempty"`
	Name    string        `json:"name,omitempty"`
	Lang    string        `json:"lang,omitempty"`
	Version string        `json:"ver,omitempty"`
	RTT     time.Duration `json:"rtt,omitempty"`
	Server  string        `json:"server,omitempty"`
	Cluster string        `json:"cluster,omitempty"`
	Stop    *time.Time    `json:"stop,omitempty"`
	Kind    string        `json:"kind,omitempty"`
	Type    string        `json:"client_type,omitempty"`
}

// sysEvent is a connect (disconnect false) or disconnect event waiting for sysLoop.
type sysEvent struct {
	disconnect     bool
	authErr        bool // a refused login: the disconnect event goes to $SYS.SERVER.<id>.CLIENT.AUTH.ERR
	client         sysClientInfo
	sent, received sysMsgBytes // the client's traffic (traffic)
	reason         string
	// The account whose connection count changed, and the count after the change: its
	// CONNS event precedes the connect or disconnect event, as nats-server's.
	acc   *account
	conns int64
	// A second CONNECT that moved the client to another account: the count it left.
	prevAcc   *account
	prevConns int64
	// Instead of a client event: the server's own, SHUTDOWN or LAMEDUCK (sysbeat.go),
	// closing done once sent.
	server string
	done   chan struct{}
}

// clientInfo describes c for an event; c.mu held.
func (c *client) clientInfo(s *Server) sysClientInfo {
	start := c.start.UTC()
	ci := sysClientInfo{Start: &start, Host: c.ip, ID: c.cid, Account: c.acc.name, Name: c.name, Lang: c.lang,
		Version: c.version, RTT: c.rtt, Server: s.name, Kind: "Client", Type: "nats"}
	if c.ident != nil {
		ci.User = c.ident.Shown()
	}
	if co := s.o().Cluster; co != nil {
		ci.Cluster = co.Name
	}
	return ci
}

// connectEvent announces an accepted CONNECT; on the read goroutine.
func (c *client) connectEvent() {
	s := c.srv
	if s.sys == nil || c.kind != kindClient {
		return
	}
	c.mu.Lock()
	prev := c.announced
	// A client closed meanwhile (auth timer, kick, reload) had its disconnect counted by
	// closeConnection, under c.mu, from what was announced then: it is not counted again.
	if c.closed || prev == c.acc { // or a second CONNECT on the same connection, in the same account
		c.mu.Unlock()
		return
	}
	ev := sysEvent{client: c.clientInfo(s), acc: c.acc, conns: c.acc.conns.Add(1)}
	if prev != nil { // moved to another account by a second CONNECT: it is connected there now
		ev.prevAcc, ev.prevConns = prev, prev.conns.Add(-1)
	}
	c.announced = c.acc
	c.mu.Unlock()
	s.queueEvent(ev)
}

// disconnectEvent announces the end of a client connection; c.mu held. As nats-server,
// every client connection closed has one, on its account's DISCONNECT: one whose connect
// was never announced (closed before or at its CONNECT: a refused login, a protocol error,
// a socket closed at once) too, on the account it was in ($G), and no CONNS event, as it
// was never counted.
func (c *client) disconnectEvent() *sysEvent {
	s := c.srv
	if s.sys == nil || c.kind != kindClient {
		return nil
	}
	ev := &sysEvent{disconnect: true, client: c.clientInfo(s), reason: c.reason}
	ev.sent, ev.received = c.traffic()
	if c.announced != nil {
		ev.acc, ev.conns = c.announced, c.announced.conns.Add(-1)
	}
	stop := c.stop.UTC()
	ev.client.Stop = &stop
	return ev
}

// traffic is the client's traffic the client's way round, as nats-server's events give it:
// sent is what it published (our in_msgs), received what it was delivered (our out_msgs).
func (c *client) traffic() (sent, received sysMsgBytes) {
	st := &c.stats
	return sysMsgBytes{st.inMsgs.Load(), st.inBytes.Load()}, sysMsgBytes{st.outMsgs.Load(), st.outBytes.Load()}
}

// authErrorEvent announces a refused login (a CONNECT whose credentials failed, or a client
// a reload refused) on $SYS.SERVER.<id>.CLIENT.AUTH.ERR, as nats-server does; user is who
// it claimed to be (a CONNECT refused has no identity). Its close has the account's
// disconnect event too (disconnectEvent). c.mu must not be held.
func (c *client) authErrorEvent(user string) {
	s := c.srv
	if s.sys == nil || c.kind != kindClient {
		return
	}
	c.mu.Lock()
	c.authErred = true
	ev := sysEvent{disconnect: true, authErr: true, client: c.clientInfo(s), reason: reasonAuthFailure}
	ev.sent, ev.received = c.traffic()
	c.mu.Unlock()
	ev.client.User = user
	stop := time.Now().UTC()
	ev.client.Stop = &stop
	s.queueEvent(ev)
}

// authViolationEvent announces a client closed with "Authorization Violation" on
// $SYS.SERVER.<id>.CLIENT.AUTH.ERR unless that was done (a CONNECT refused for its
// credentials): an operation before CONNECT where authentication is required, as
// nats-server's authViolation announces it. c.mu must not be held.
func (c *client) authViolationEvent() {
	c.mu.Lock()
	done := c.closed || c.authErred
	c.mu.Unlock()
	if !done {
		c.authErrorEvent("")
	}
}

func (s *Server) queueEvent(ev sysEvent) {
	select {
	case s.sys.reqs <- sysReq{event: &ev}:
	default:
		s.sys.dropped.Add(1)
	}
}

// publishEvent sends an event on sysLoop.
func (s *Server) publishEvent(ev *sysEvent) {
	if ev.server != "" {
		b, _ := json.Marshal(s.sysInfo())
		s.sysPublish("$SYS.SERVER."+s.id+"."+ev.server, b)
		close(ev.done)
		return
	}
	typ, verb := connectEventType, ".CONNECT"
	if ev.disconnect {
		typ, verb = disconnectEventType, ".DISCONNECT"
	}
	msg := map[string]any{"type": typ, "id": nuid(), "timestamp": time.Now().UTC(), "server": s.sysInfo(), "client": ev.client}
	if ev.disconnect {
		msg["sent"], msg["received"], msg["reason"] = ev.sent, ev.received, ev.reason
	}
	b, _ := json.Marshal(msg)
	if ev.authErr {
		s.sysPublish("$SYS.SERVER."+s.id+".CLIENT.AUTH.ERR", b)
		return
	}
	if ev.prevAcc != nil {
		s.publishAccConns(ev.prevAcc, ev.prevConns)
	}
	s.publishAccConns(ev.acc, ev.conns)
	s.sysPublish("$SYS.ACCOUNT."+ev.client.Account+verb, b)
}
