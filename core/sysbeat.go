package core

import (
	"encoding/json"
	"time"
)

// Periodic and connection-count events of the system account, as nats-server sends them:
//
//	$SYS.SERVER.<id>.STATSZ                 the server's statsz: 250 ms after start, then at
//	                                        doubling intervals up to every 10 s
//	$SYS.ACCOUNT.<acc>.SERVER.CONNS         an account's connections on this server, when they
//	$SYS.SERVER.ACCOUNT.<acc>.CONNS         change and every 30 s while there are any (the
//	                                        second subject is the older name; both are sent)
//	$SYS.REQ.ACCOUNT.<acc>.CONNS            request: the account's CONNS event, from every
//	                                        server where it has connections
//	$SYS.SERVER.<id>.LAMEDUCK / SHUTDOWN    the server enters lame duck mode / shuts down
//	                                        (its ServerInfo), before it disconnects anyone
//
// The global account has no CONNS events (nats-server's neither), but the request is
// answered for it. `nats server watch` and monitoring tools follow these rather than
// polling.

const (
	firstStatsz     = 250 * time.Millisecond
	statszEvery     = 10 * time.Second
	accConnsEvery   = 30 * time.Second
	accConnsType    = "io.nats.server.advisory.v1.account_connections"
	accTrafficFresh = time.Second // CONNS traffic counters may be this old
)

// serverEvent announces that the server enters lame duck mode (kind LAMEDUCK) or shuts
// down (SHUTDOWN) on $SYS.SERVER.<id>.<kind>, its ServerInfo the body, as nats-server does,
// and waits (a little) until sysLoop has sent it, before clients and routes are closed.
func (s *Server) serverEvent(kind string) {
	if s.sys == nil {
		return
	}
	select {
	case <-s.ready: // sysLoop runs
	default:
		return
	}
	if kind == "SHUTDOWN" && !s.sys.shutdownSent.CompareAndSwap(false, true) {
		return
	}
	done := make(chan struct{})
	select {
	case s.sys.reqs <- sysReq{event: &sysEvent{server: kind, done: done}}:
	default:
		return // events are dropped when the queue is full, this one too
	}
	t := time.NewTimer(time.Second)
	defer t.Stop()
	select {
	case <-done:
	case <-s.quit:
	case <-t.C:
	}
}

// sysAccConns is nats-server's AccountNumConns.
type sysAccConns struct {
	Type   string         `json:"type"`
	ID     string         `json:"id"`
	Time   time.Time      `json:"timestamp"`
	Server *sysServerInfo `json:"server"`
	sysAccStat
}

// publishAccConns sends a's CONNS event with conns connections; on sysLoop.
func (s *Server) publishAccConns(a *account, conns int64) {
	if a == nil || a == s.gacc {
		return
	}
	b := s.accConnsMsg(a, conns)
	s.sysPublish("$SYS.SERVER.ACCOUNT."+a.name+".CONNS", b)
	s.sysPublish("$SYS.ACCOUNT."+a.name+".SERVER.CONNS", b)
}

// accConnsMsg is a's CONNS event with conns connections; on sysLoop.
func (s *Server) accConnsMsg(a *account, conns int64) []byte {
	st := s.accTraffic(a)
	st.Account, st.Name = a.name, a.name
	st.Conns, st.TotalConns = int(conns), int(conns)
	st.NumSubs = uint32(a.subs.Count())
	b, _ := json.Marshal(sysAccConns{Type: accConnsType, ID: nuid(), Time: time.Now().UTC(), Server: s.sysInfo(), sysAccStat: st})
	return b
}

// connsAnswer answers $SYS.REQ.ACCOUNT.<acc>.CONNS with the account's CONNS event, as
// nats-server does, where it has connections here; its body, if any, must name acc too.
// Nothing else is answered (no error either: nats-server's neither).
func (s *Server) connsAnswer(acc string, body []byte) []byte {
	if len(body) > 0 {
		var req struct {
			Account *string `json:"acc"`
		}
		if json.Unmarshal(body, &req) != nil || (req.Account != nil && *req.Account != acc) {
			return nil
		}
	}
	a := s.account(acc)
	if acc == "" || a == nil {
		return nil
	}
	n := a.conns.Load()
	if n <= 0 {
		return nil
	}
	return s.accConnsMsg(a, n)
}

// accTraffic is the traffic of a's open connections, from one scan of all clients made
// at most accTrafficFresh ago: a connect storm costs one scan a second, not one per
// connection. Only sysLoop calls it.
func (s *Server) accTraffic(a *account) sysAccStat {
	if time.Since(s.sys.trafficAt) > accTrafficFresh {
		m := s.accountMap()
		stats := make(map[*account]*sysAccStat, len(m))
		for _, acc := range m {
			stats[acc] = &sysAccStat{}
		}
		s.addTraffic(stats)
		s.sys.traffic, s.sys.trafficAt = stats, time.Now()
	}
	if st := s.sys.traffic[a]; st != nil {
		return *st
	}
	return sysAccStat{}
}

// connsHeartbeat sends the CONNS event of every account with connections; on sysLoop.
func (s *Server) connsHeartbeat() {
	for _, a := range s.accountMap() {
		if n := a.conns.Load(); n > 0 {
			s.publishAccConns(a, n)
		}
	}
}

// publishStatsz sends the server's statsz on $SYS.SERVER.<id>.STATSZ; on sysLoop.
func (s *Server) publishStatsz() {
	s.sysPublish("$SYS.SERVER."+s.id+".STATSZ", s.statszMsg(s.sysInfo()))
}
