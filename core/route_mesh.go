package core

import (
	"fmt"
	"maps"
	"net/url"
	"slices"
	"time"

	"github.com/starling-io/starling/core/wire"
)

// The mesh: which route is the route to each server, what servers tell each other about the
// rest (gossip), and the client URLs of the whole cluster that clients learn in INFO.

// dupWindow is how long after a route registers a second connection to the same server is
// taken for a simultaneous dial (resolved by the tie-break) rather than an impostor.
var dupWindow = 2 * time.Second

// registerRoute makes c the route to info's server, unless a route to it exists already and
// wins the tie-break; then it sends c our whole interest and tells the other routes about
// the newcomer.
func (s *Server) registerRoute(c *client, info *routeInfo, raw []byte) error {
	co := s.o().Cluster
	st := c.route
	if info.ServerID == s.id {
		s.rmu.Lock()
		st.self = true
		s.rmu.Unlock()
		return errRouteClose("Route To Self", reasonRouteRejected)
	}
	if co.Name != "" && info.Cluster != "" && info.Cluster != co.Name {
		msg := fmt.Sprintf("Rejecting connection, cluster name %q does not match %q", info.Cluster, co.Name)
		c.log.Warn("rejecting route", "cause", msg)
		return errRouteClose(msg, reasonRouteRejected)
	}
	if digest := s.accountSet().digest; info.Accounts != digest {
		// Both ends log it. Accounts both have keep working; traffic of the others is
		// dropped where the account is missing (routeAccount).
		c.log.Warn("route to a server with a different account configuration: accounts only one of them has do not cross this route",
			"remote_name", info.ServerName, "remote_accounts_digest", info.Accounts, "accounts_digest", digest)
	}
	s.rmu.Lock()
	if c.isClosed() {
		// Closed meanwhile (its writer failed): removeRoute has run or will find it
		// unregistered, so registering now would leave a dead route in s.routes for good.
		s.rmu.Unlock()
		return errRouteClosed
	}
	st.remoteID, st.remoteName = info.ServerID, info.ServerName
	old := s.routes[info.ServerID]
	if old != nil && time.Since(old.route.regAt) > dupWindow {
		// The server already has a working route: this one is not who it claims to be.
		s.rmu.Unlock()
		c.log.Warn("closing route", "cause", "it claims the server id of an established route", "remote_id", info.ServerID)
		return errRouteClose("Duplicate Route", reasonDuplicateRoute)
	}
	if old != nil && !s.keepNewRoute(c, old) {
		s.rmu.Unlock()
		c.log.Debug("duplicate route retired", "remote_id", info.ServerID)
		c.retire(nil) // unregistered until now: the peer told it no interest
		return nil
	}
	st.registered = true
	st.regAt = time.Now()
	st.remoteURL = info.IP
	st.connectURLs = info.ConnectURLs
	st.info = slices.Clone(raw)
	st.meta = info.Meta
	if old != nil {
		old.route.registered = false
		s.dropRemoteURLs(old.route.connectURLs)
	}
	s.routes[info.ServerID] = c
	urlsChanged := !co.NoAdvertise && len(info.ConnectURLs) > 0 && s.addRemoteURLs(info.ConnectURLs)
	c.mu.Lock()
	for k, n := range s.interest {
		c.out.buf = wire.AppendRouteSub(c.out.buf, k.acc, k.subject, k.queue, int(n))
		c.out.sealIfLarge() // a large interest set: chunks, not one buffer grown by append
	}
	c.mu.Unlock()
	others := slices.DeleteFunc(slices.Collect(maps.Values(s.routes)), func(r *client) bool { return r == c })
	s.rmu.Unlock()
	if old != nil {
		old.log.Debug("duplicate route retired", "remote_id", info.ServerID)
		old.retire(c)
	}
	c.setPingTimer(min(s.o().PingInterval, routePingMax))
	c.flushSignal()
	for _, r := range others {
		r.sendRouteInfo(st.info) // they dial the newcomer if they do not know it
	}
	if urlsChanged {
		s.clientURLsChanged()
	}
	c.log.Info("route connected", "remote_id", info.ServerID, "remote_name", info.ServerName, "solicited", st.solicited)
	return nil
}

// keepNewRoute decides between two routes to the same server; both servers decide alike: the
// connection dialed by the server with the smaller id stays. rmu held.
func (s *Server) keepNewRoute(c, old *client) bool {
	dialer := func(r *client) string {
		if r.route.solicited {
			return s.id
		}
		return r.route.remoteID
	}
	dn, do := dialer(c), dialer(old)
	if dn == do {
		return false // the same side dialed twice: keep what works
	}
	return dn < do
}

// updateRoute takes a changed INFO from a connected peer (new client URLs, lame duck).
func (s *Server) updateRoute(c *client, info *routeInfo) {
	urls := info.ConnectURLs
	if info.LameDuckMode {
		urls = nil
	}
	s.rmu.Lock()
	if !c.route.registered {
		s.rmu.Unlock()
		return
	}
	old := c.route.connectURLs
	c.route.connectURLs = urls
	c.route.meta = info.Meta
	changed := false
	if !s.o().Cluster.NoAdvertise {
		changed = s.dropRemoteURLs(old)
		changed = s.addRemoteURLs(urls) || changed
	}
	s.rmu.Unlock()
	if changed {
		s.clientURLsChanged()
	}
}

// gossiped dials a server another route told us about, unless we know it already.
func (s *Server) gossiped(info *routeInfo) {
	if info.ServerID == s.id || info.IP == "" {
		return
	}
	s.rmu.Lock()
	_, known := s.routes[info.ServerID]
	s.rmu.Unlock()
	if known {
		return
	}
	u, err := url.Parse(info.IP)
	if err != nil || u.Host == "" {
		s.log.Debug("ignoring gossiped route with a bad URL", "url", info.IP)
		return
	}
	s.log.Debug("dialing gossiped route", "remote_id", info.ServerID, "url", u.Host)
	s.solicit(&url.URL{Scheme: "nats-route", Host: u.Host}, false)
}

// sendRouteInfo queues an INFO on the route.
func (c *client) sendRouteInfo(info []byte) {
	c.mu.Lock()
	if !c.closed {
		c.out.buf = wire.AppendInfo(c.out.buf, info)
	}
	c.mu.Unlock()
	c.flushSignal()
}

// removeRoute forgets a closed route: its interest left the index with its subscriptions;
// here go its registration and its client URLs.
func (s *Server) removeRoute(c *client) {
	st := c.route
	s.rmu.Lock()
	delete(s.routeConns, c.cid)
	changed := false
	wasRegistered := st.registered
	remoteID, remoteName := st.remoteID, st.remoteName
	if st.registered {
		st.registered = false
		if s.routes[st.remoteID] == c {
			delete(s.routes, st.remoteID)
		}
		if !s.o().Cluster.NoAdvertise {
			changed = s.dropRemoteURLs(st.connectURLs)
		}
	}
	s.goneRoute.inMsgs.Add(c.stats.inMsgs.Load())
	s.goneRoute.inBytes.Add(c.stats.inBytes.Load())
	s.goneRoute.outMsgs.Add(c.stats.outMsgs.Load())
	s.goneRoute.outBytes.Add(c.stats.outBytes.Load())
	s.rmu.Unlock()
	if changed {
		s.clientURLsChanged()
	}
	if wasRegistered {
		c.log.Info("route closed", "remote_id", remoteID, "remote_name", remoteName, "reason", c.closeReason())
	}
}

func (c *client) closeReason() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.reason
}

// addRemoteURLs counts client URLs learned from a route; true if the set grew. rmu held.
func (s *Server) addRemoteURLs(urls []string) bool {
	grew := false
	for _, u := range urls {
		if s.remoteURLs[u]++; s.remoteURLs[u] == 1 {
			grew = true
		}
	}
	if grew {
		s.publishClusterURLs()
	}
	return grew
}

// dropRemoteURLs uncounts client URLs of a route; true if the set shrank. rmu held.
func (s *Server) dropRemoteURLs(urls []string) bool {
	shrank := false
	for _, u := range urls {
		if n, ok := s.remoteURLs[u]; ok {
			if n <= 1 {
				delete(s.remoteURLs, u)
				shrank = true
			} else {
				s.remoteURLs[u] = n - 1
			}
		}
	}
	if shrank {
		s.publishClusterURLs()
	}
	return shrank
}

// publishClusterURLs refreshes the sorted list of the other servers' client URLs that INFO
// reads without taking rmu. rmu held.
func (s *Server) publishClusterURLs() {
	urls := make([]string, 0, len(s.remoteURLs))
	for u := range s.remoteURLs {
		urls = append(urls, u)
	}
	slices.Sort(urls)
	s.clusterURLs.Store(&urls)
}

// clientURLsChanged sends the new connect_urls to every client that can take an async INFO,
// unless that would tell the clients of a server on its way out that a peer left. Shutdown
// closes the routes before the clients, and each route closed would send such an INFO;
// nats.go and nats.js drop a discovered server missing from connect_urls, so a client told
// that in time retries only us, who are going away (issue 14; nats-server sends clients no
// INFO while shutting down either). In lame duck mode the clients are about to be sent
// elsewhere and need every server they know: the list only grows (see connectURLs), and an
// INFO goes out only when it did.
func (s *Server) clientURLsChanged() {
	s.mu.Lock()
	if s.shutdown || (s.ldm && !s.keepLameDuckURLs()) {
		s.mu.Unlock()
		return
	}
	cls := s.clientList()
	s.mu.Unlock()
	for _, c := range cls {
		c.sendAsyncInfo(infoPlain)
	}
}

// keepLameDuckURLs adds the other servers' client URLs learnt since lame duck mode began to
// those advertised; true if there were any. s.mu held.
func (s *Server) keepLameDuckURLs() bool {
	p := s.clusterURLs.Load()
	if p == nil {
		return false
	}
	grew := false
	for _, u := range *p {
		if !slices.Contains(s.ldmURLs, u) {
			s.ldmURLs = append(s.ldmURLs, u)
			grew = true
		}
	}
	if grew {
		slices.Sort(s.ldmURLs)
	}
	return grew
}

// connectURLs is INFO's connect_urls: ours (unless in lame duck) and the other servers'; in
// lame duck also those of servers that left since it began. s.mu held.
func (s *Server) connectURLs() []string {
	co := s.o().Cluster
	if co == nil || co.NoAdvertise {
		return nil
	}
	var urls []string
	if s.ldm {
		urls = append(urls, s.ldmURLs...)
	} else {
		urls = append(urls, s.urls...)
	}
	if p := s.clusterURLs.Load(); p != nil {
		for _, u := range *p {
			if !slices.Contains(urls, u) {
				urls = append(urls, u)
			}
		}
	}
	return urls
}

// lameDuckRoutes tells the other servers to stop advertising our client URLs.
func (s *Server) lameDuckRoutes() {
	if s.o().Cluster == nil {
		return
	}
	info := s.routeInfoJSON()
	s.rmu.Lock()
	rs := slices.Collect(maps.Values(s.routes))
	s.rmu.Unlock()
	for _, r := range rs {
		r.sendRouteInfo(info)
	}
}

// closeRoutes closes every route connection (shutdown).
func (s *Server) closeRoutes() {
	s.rmu.Lock()
	rs := slices.Collect(maps.Values(s.routeConns))
	s.rmu.Unlock()
	for _, r := range rs {
		r.closeConnection(reasonShutdown)
	}
}
