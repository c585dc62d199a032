package core

import (
	"sort"
	"time"
)

// RouteInfo is one entry of /routez (monitoring spec §5).
type RouteInfo struct {
	Rid          uint64      `json:"rid"`
	RemoteID     string      `json:"remote_id"`
	RemoteName   string      `json:"remote_name"`
	DidSolicit   bool        `json:"did_solicit"`
	IsConfigured bool        `json:"is_configured"`
	IP           string      `json:"ip"`
	Port         int         `json:"port"`
	Start        time.Time   `json:"start"`
	LastActivity time.Time   `json:"last_activity"`
	RTT          string      `json:"rtt,omitempty"`
	Uptime       string      `json:"uptime"`
	Idle         string      `json:"idle"`
	Pending      int         `json:"pending_size"`
	InMsgs       int64       `json:"in_msgs"`
	OutMsgs      int64       `json:"out_msgs"`
	InBytes      int64       `json:"in_bytes"`
	OutBytes     int64       `json:"out_bytes"`
	NumSubs      uint32      `json:"subscriptions"`
	Subs         []string    `json:"subscriptions_list,omitempty"`
	SubsDetail   []SubDetail `json:"subscriptions_list_detail,omitempty"`
	Compression  string      `json:"compression,omitempty"` // "off": Starling never compresses a route
}

// Routez lists the registered routes, by rid; subs adds each route's interest by subject,
// detail with each subscription's details instead.
func (s *Server) Routez(subs, detail bool) []RouteInfo {
	s.rmu.Lock()
	infos := make([]RouteInfo, 0, len(s.routes))
	now := time.Now()
	for _, c := range s.routes {
		st := c.route
		ri := RouteInfo{
			Rid: c.cid, RemoteID: st.remoteID, RemoteName: st.remoteName,
			DidSolicit: st.solicited, IsConfigured: st.configured,
			IP: c.ip, Port: c.port, Start: c.start.UTC(),
			InMsgs: c.stats.inMsgs.Load(), OutMsgs: c.stats.outMsgs.Load(),
			InBytes: c.stats.inBytes.Load(), OutBytes: c.stats.outBytes.Load(),
			Compression: "off", // as nats-server names an uncompressed route (prometheus-nats-exporter's label)
		}
		last := time.Unix(0, c.lastAct.Load())
		ri.LastActivity = last.UTC()
		ri.Uptime = compactDuration(now.Sub(c.start))
		ri.Idle = compactDuration(now.Sub(last))
		c.mu.Lock()
		ri.Pending = c.out.pending()
		ri.NumSubs = uint32(len(c.subs))
		if c.rtt > 0 {
			ri.RTT = c.rtt.String()
		}
		switch {
		case detail:
			for _, sub := range c.subs {
				ri.SubsDetail = append(ri.SubsDetail, sub.detail())
			}
			sort.Slice(ri.SubsDetail, func(i, j int) bool { return ri.SubsDetail[i].Sid < ri.SubsDetail[j].Sid })
		case subs:
			for _, sub := range c.subs {
				ri.Subs = append(ri.Subs, sub.subject)
			}
			sort.Strings(ri.Subs)
		}
		c.mu.Unlock()
		infos = append(infos, ri)
	}
	s.rmu.Unlock()
	sort.Slice(infos, func(i, j int) bool { return infos[i].Rid < infos[j].Rid })
	return infos
}

// NumRoutes is the number of servers this one has a route to.
func (s *Server) NumRoutes() int {
	s.rmu.Lock()
	defer s.rmu.Unlock()
	return len(s.routes)
}

// routeTraffic sums the traffic of route connections, open and closed.
func (s *Server) routeTraffic() (in, out, inb, outb int64) {
	s.rmu.Lock()
	defer s.rmu.Unlock()
	in, out = s.goneRoute.inMsgs.Load(), s.goneRoute.outMsgs.Load()
	inb, outb = s.goneRoute.inBytes.Load(), s.goneRoute.outBytes.Load()
	for _, c := range s.routeConns {
		in += c.stats.inMsgs.Load()
		out += c.stats.outMsgs.Load()
		inb += c.stats.inBytes.Load()
		outb += c.stats.outBytes.Load()
	}
	return
}
