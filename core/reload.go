package core

import (
	"cmp"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"time"

	"github.com/starling-io/starling/core/auth"
	"github.com/starling-io/starling/core/wire"
)

// ErrReload wraps options that cannot change while the server runs.
var ErrReload = errors.New("core: reload")

// Reload puts new options in force without dropping anyone who is still allowed in: limits
// and timeouts apply to every connection from its next read or tick (a lowered
// max_connections closes the newest clients past it), TLS settings to new
// connections, and a new Authenticator re-checks every client — a client whose user was
// removed or whose credentials changed is closed with an Authorization Violation, the
// others get their (possibly changed) permissions at once. Accounts may be added or
// removed, not changed (reload_accounts.go). The listen address, the
// server name, client_advertise and the cluster settings cannot change; new routes take the reloaded route
// TLS configuration (certificates), though TLS cannot be turned on or off for routes.
func (s *Server) Reload(next Options) error {
	// One at a time: each stores its options, then applies them to every client.
	s.reloadMu.Lock()
	defer s.reloadMu.Unlock()
	n, err := next.withDefaults()
	if err != nil {
		return err
	}
	cur := s.o()
	switch {
	case n.Host != cur.Host || (n.Port != cur.Port && !(cur.Port < 0 && n.Port < 0)):
		return fmt.Errorf("%w: the listen address cannot change (restart instead)", ErrReload)
	case n.ServerName != cur.ServerName:
		return fmt.Errorf("%w: server_name cannot change", ErrReload)
	case n.ClientAdvertise != cur.ClientAdvertise:
		// Our client URLs are taken once, when the listener starts (connect_urls).
		return fmt.Errorf("%w: client_advertise cannot change (restart instead)", ErrReload)
	case (n.Cluster == nil) != (cur.Cluster == nil):
		return fmt.Errorf("%w: clustering cannot be turned on or off (restart instead)", ErrReload)
	case n.Cluster != nil && !sameCluster(n.Cluster, cur.Cluster):
		return fmt.Errorf("%w: the cluster settings cannot change (restart instead)", ErrReload)
	}
	plan, err := s.planAccounts(cur, &n)
	if err != nil {
		return err
	}
	// Routes keep the cluster settings they started with, but for the TLS configuration
	// (its certificates may have been renewed), which each new route connection reads.
	if n.Cluster != nil {
		co := *cur.Cluster
		co.TLS, co.TLSClient = n.Cluster.TLS, n.Cluster.TLSClient
		n.Cluster = &co
	}
	if next.Logger == nil {
		n.Logger = cur.Logger
	}
	if next.ReloadConfig == nil {
		n.ReloadConfig = cur.ReloadConfig
	}
	if err := s.addPlanned(plan, n.Accounts); err != nil {
		return err
	}
	s.opts.Store(&n)
	s.configAt.Store(time.Now().UnixNano())
	s.mu.Lock()
	cls := s.clientList()
	s.mu.Unlock()
	closed := 0
	for _, c := range cls {
		if c.kind == kindClient && !c.reauthenticate() {
			closed++
		}
	}
	closed += s.removePlanned(plan, n.Accounts)
	closed += s.closeOverMaxConnections(n.MaxConnections)
	s.log.Info("configuration reloaded", "clients", countClients(cls), "closed", closed)
	return nil
}

// closeOverMaxConnections closes the newest client connections past limit (a reload lowered
// max_connections), each told "maximum connections exceeded", as nats-server does; it
// returns how many it closed. In-process connections do not count, as at accept.
func (s *Server) closeOverMaxConnections(limit int) int {
	s.mu.Lock()
	var cls []*client
	for _, c := range s.clients {
		if c.kind == kindClient {
			cls = append(cls, c)
		}
	}
	s.mu.Unlock()
	limit = max(limit, 0) // NoClientConnections
	if len(cls) <= limit {
		return 0
	}
	// The newest go: the ones established longest are likely the ones that matter most.
	slices.SortFunc(cls, func(a, b *client) int { return cmp.Compare(a.cid, b.cid) })
	over := cls[limit:]
	for _, c := range over {
		c.mu.Lock()
		if !c.closed {
			c.out.buf = wire.AppendErr(c.out.buf, wire.ErrMaxConnections.Text)
		}
		c.mu.Unlock()
		c.closeFlushing(wire.ErrMaxConnections.Reason)
	}
	s.log.Info("closed connections to fall within max_connections", "closed", len(over), "max_connections", limit)
	return len(over)
}

// reauthenticate applies the Authenticator of the options in force to an authenticated
// client; false means the client was closed. It runs from Reload, from an accept that a
// reload overlapped, and from a CONNECT whose check overlapped a reload; reauthMu
// serializes them, and applying one Authenticator twice changes nothing. The options are
// read under reauthMu, never passed in: a caller that took them before a later reload
// stored its own would otherwise apply stale ones after that reload's re-check.
func (c *client) reauthenticate() bool {
	c.reauthMu.Lock()
	defer c.reauthMu.Unlock()
	n := c.srv.o()
	c.mu.Lock()
	id, by, done := c.ident, c.authBy, c.authDone
	c.mu.Unlock()
	if !done {
		if c.mustConnect || n.Auth == nil {
			return true // still to send CONNECT (or checking it): it will see the new users
		}
		// Accepted when no credentials were asked for, and no CONNECT yet: nothing makes
		// it send one. It is treated like a client without identity below.
	} else if by == n.Auth {
		return true
	}
	if n.Auth == nil {
		c.setIdentity(nil, nil)
		return true
	}
	if id == nil && !n.Auth.Required() {
		// No identity: no CONNECT yet, or one while no credentials were asked for (and
		// none were kept). As in nats-server, it is now who a CONNECT without credentials
		// makes a client: the no_auth_user, with its permissions.
		if len(n.Accounts) == 0 && !n.TLSMap {
			if nid, err := n.Auth.Check(auth.Credentials{Nonce: c.nonce}); err == nil {
				c.setIdentity(nid, n.Auth)
				c.recheckSubscriptions()
				return true
			}
		} else if done {
			c.setIdentity(nil, n.Auth)
			return true
		}
	}
	if id != nil && by != nil {
		if nid, ok := n.Auth.Revalidate(by, id); ok && nid.Account == id.Account {
			c.setIdentity(nid, n.Auth)
			c.recheckSubscriptions()
			return true
		}
	}
	c.log.Info("closing connection after reload", "cause", "user removed or credentials changed")
	user := ""
	if id != nil {
		user = id.Shown()
	}
	c.authErrorEvent(user)
	c.mu.Lock()
	if !c.closed {
		c.out.buf = wire.AppendErr(c.out.buf, wire.ErrAuthorization.Text)
	}
	c.mu.Unlock()
	c.closeFlushing(reasonAuthFailure)
	return false
}

// recheckSubscriptions applies changed permissions to existing subscriptions: one that is
// no longer allowed is removed (with the permission -ERR naming its sid), the others get
// their delivery filter recomputed.
func (c *client) recheckSubscriptions() {
	ck := c.perms.Load()
	for _, sub := range c.subList() {
		c.recheckSubscription(ck, sub)
	}
}

// recheckSubscription removes sub if ck no longer allows it, else recomputes its filter.
func (c *client) recheckSubscription(ck *auth.Checker, sub *subscription) {
	if ck.CanSubscribe(bytesOf(sub.subject), bytesOf(sub.queue)) {
		sub.filter.Store(ck.FilterDelivery(sub.subject))
		return
	}
	if !c.removeSub(sub) {
		return // already gone (unsubscribed, or removed by the other recheck)
	}
	c.mu.Lock()
	if !c.closed {
		c.out.buf = wire.AppendErr(c.out.buf, wire.PermSubRevoked(bytesOf(sub.subject), bytesOf(sub.queue), bytesOf(sub.sid)))
	}
	c.mu.Unlock()
	c.flushSignal()
}

// sameCluster reports whether two cluster configurations are the same but for their TLS
// configurations, which are compared only for being set (a reload builds them anew).
func sameCluster(a, b *ClusterOptions) bool {
	if len(a.Routes) != len(b.Routes) || (a.TLS == nil) != (b.TLS == nil) {
		return false
	}
	for i := range a.Routes {
		if a.Routes[i].String() != b.Routes[i].String() {
			return false
		}
	}
	x, y := *a, *b
	x.Routes, y.Routes = nil, nil
	x.TLS, x.TLSClient, y.TLS, y.TLSClient = nil, nil, nil, nil
	return reflect.DeepEqual(x, y)
}

// sameAccounts reports whether two account configurations are the same, whatever the order
// the accounts, their exports and imports were written in (as the route digest sees them).
func sameAccounts(a, b []AccountConfig) bool {
	return reflect.DeepEqual(canonicalAccounts(a), canonicalAccounts(b))
}
