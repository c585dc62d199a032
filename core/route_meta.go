package core

import (
	"maps"
	"slices"
)

// Route metadata: key/value pairs a server advertises to its route peers in its route
// INFO, so that layers above core can find each other over the mesh without configuration
// of their own (streaming's Raft transport advertises its address this way). Core carries
// the pairs and never reads them.

// SetRouteMeta advertises key=value to the route peers ("" withdraws key). Set before
// Start, it is in the first INFO; later, the connected peers get an updated INFO.
func (s *Server) SetRouteMeta(key, value string) {
	s.mu.Lock()
	m := maps.Clone(s.routeMeta) // routeInfoJSON marshals the map without copying it
	if m == nil {
		m = map[string]string{}
	}
	if value == "" {
		delete(m, key)
	} else {
		m[key] = value
	}
	s.routeMeta = m
	s.mu.Unlock()
	if s.routes == nil {
		return
	}
	info := s.routeInfoJSON()
	s.rmu.Lock()
	routes := slices.Collect(maps.Values(s.routes))
	s.rmu.Unlock()
	for _, r := range routes {
		r.sendRouteInfo(info)
	}
}

// RouteMeta returns what a connected route peer advertises for key (the first found when
// several do).
func (s *Server) RouteMeta(key string) (string, bool) {
	if s.routes == nil {
		return "", false
	}
	s.rmu.Lock()
	defer s.rmu.Unlock()
	for _, r := range s.routes {
		if v, ok := r.route.meta[key]; ok && r.route.registered {
			return v, true
		}
	}
	return "", false
}

// FirstHost is the address this machine advertises to other servers when it listens on
// every interface: its first non-loopback IPv4 address, else 127.0.0.1.
func FirstHost() string { return firstHost() }
