package core

import (
	"errors"
	"fmt"
	"maps"
	"reflect"

	"github.com/starling-io/starling/core/wire"
)

// A reload may add and remove accounts, as nats-server's may; an account in both
// configurations must stay the same (its exports and imports are wired into other
// accounts' indexes and subscriptions). The set of accounts is replaced whole: readers
// load it without a lock (Server.accs).
//
//   - Added accounts are built with their imports and put in force before the new users
//     are, so that a user of a new account finds it at CONNECT.
//   - Removed accounts go once the new users have re-checked every client: their users are
//     gone (a user must name an existing account), so their clients were closed with an
//     Authorization Violation; any left (a CONNECT checked under the old users, an
//     in-process connection) is closed then, and a CONNECT still to bind to it is refused
//     (bindAccount). The exporters that stay drop their reply entries into them. Routes
//     drop the messages a peer sends for an account this server does not have
//     (routeAccount) but keep its interest there, recorded: an account added (back) under
//     that name takes it over (moveRouteInterest).

// accountPlan is what a reload does to the accounts.
type accountPlan struct {
	add    []AccountConfig
	remove []string
}

// planAccounts checks that n's accounts differ from cur's only by whole accounts added or
// removed, and says which.
func (s *Server) planAccounts(cur, n *Options) (*accountPlan, error) {
	if n.SystemAccount != cur.SystemAccount || (len(n.Accounts) == 0) != (len(cur.Accounts) == 0) {
		return nil, fmt.Errorf("%w: accounts cannot change from none to some or back, nor the system account (restart instead)", ErrReload)
	}
	was, now := byName(cur.Accounts), byName(n.Accounts)
	fixed := func(name string) bool { return name == GlobalAccount || (s.sysAcc != nil && name == s.sysAcc.name) }
	// Every user's account must exist, whether or not the accounts change.
	if n.Auth != nil {
		for _, name := range n.Auth.Accounts() {
			if _, ok := now[name]; !ok && !fixed(name) {
				return nil, fmt.Errorf("%w: a user belongs to account %q, which is not configured", ErrInvalidOptions, name)
			}
		}
	}
	if sameAccounts(n.Accounts, cur.Accounts) {
		return &accountPlan{}, nil
	}
	if errs := ValidateAccounts(n.Accounts); len(errs) > 0 {
		return nil, fmt.Errorf("%w: %w", ErrInvalidOptions, errors.Join(errs...))
	}
	plan := &accountPlan{}
	for name, c := range now {
		old, ok := was[name]
		switch {
		case ok && !reflect.DeepEqual(old, c):
			return nil, fmt.Errorf("%w: accounts cannot change, only be added or removed: account %q differs (restart instead)", ErrReload, name)
		case !ok && fixed(name):
			return nil, fmt.Errorf("%w: accounts cannot change: account %q is added to the configuration (restart instead)", ErrReload, name)
		case !ok:
			plan.add = append(plan.add, c)
		}
	}
	for name := range was {
		if _, ok := now[name]; ok {
			continue
		}
		if fixed(name) {
			return nil, fmt.Errorf("%w: accounts cannot change: account %q cannot be removed (restart instead)", ErrReload, name)
		}
		plan.remove = append(plan.remove, name)
	}
	return plan, nil
}

// byName indexes the canonical form of cfgs.
func byName(cfgs []AccountConfig) map[string]AccountConfig {
	m := make(map[string]AccountConfig, len(cfgs))
	for _, c := range canonicalAccounts(cfgs) {
		m[c.Name] = c
	}
	return m
}

// addPlanned puts the plan's new accounts in force (all: the new configuration).
func (s *Server) addPlanned(p *accountPlan, all []AccountConfig) error {
	if len(p.add) == 0 {
		return nil
	}
	cur := s.accountSet()
	m := maps.Clone(cur.m)
	if err := s.addAccounts(m, p.add, all); err != nil {
		return err
	}
	if s.sys != nil {
		for _, c := range p.add {
			if err := s.accountRequests(m[c.Name]); err != nil {
				return err
			}
		}
	}
	s.accs.Store(&accountSet{m: m, digest: accountsDigest(all)})
	s.moveRouteInterest(m)
	s.log.Info("accounts added", "accounts", len(p.add))
	return nil
}

// moveRouteInterest moves the peers' interest that the routes recorded in an account not
// in force — one removed, or kept aside while this server did not have it (RouteSub) — to
// the account of that name in m, just added: a peer announces its interest once, so the
// new account would never reach the subscribers it had before.
func (s *Server) moveRouteInterest(m map[string]*account) {
	s.rmu.Lock()
	routes := make([]*client, 0, len(s.routeConns))
	for _, c := range s.routeConns {
		routes = append(routes, c)
	}
	s.rmu.Unlock()
	var stale []*subscription
	for _, c := range routes {
		c.mu.Lock()
		if c.closed { // its subscriptions are gone with it
			c.mu.Unlock()
			continue
		}
		for key, sub := range c.subs {
			a := m[sub.acc.name]
			if a == nil || a == sub.acc {
				continue
			}
			// The route's reader, which alone adds or drops its subscriptions, waits for
			// c.mu: it finds the new one.
			moved := &subscription{client: c, acc: a, subject: sub.subject, queue: sub.queue, sid: key}
			moved.weight.Store(sub.weight.Load())
			if a.subs.Insert(moved.subject, moved.queue, moved) != nil {
				continue
			}
			c.subs[key] = moved
			stale = append(stale, sub)
		}
		for name := range c.route.limbo {
			if m[name] != nil {
				delete(c.route.limbo, name)
			}
		}
		c.mu.Unlock()
	}
	for _, sub := range stale {
		sub.closed.Store(true)
		_ = sub.acc.subs.Remove(sub.subject, sub.queue, sub)
	}
}

// removePlanned takes the plan's removed accounts out of force and closes what is left of
// them; it returns how many connections it closed.
func (s *Server) removePlanned(p *accountPlan, all []AccountConfig) int {
	if len(p.remove) == 0 {
		return 0
	}
	m := maps.Clone(s.accountSet().m)
	gone := map[*account]bool{}
	for _, name := range p.remove {
		if a := m[name]; a != nil {
			gone[a] = true
			a.removed.Store(true)
			delete(m, name)
		}
	}
	s.accs.Store(&accountSet{m: m, digest: accountsDigest(all)})
	s.mu.Lock()
	cls := s.clientList()
	s.mu.Unlock()
	closed := 0
	for _, c := range cls {
		c.mu.Lock()
		in := gone[c.acc] && c.kind != kindRoute
		if in && c.kind == kindClient && !c.closed {
			c.out.buf = wire.AppendErr(c.out.buf, wire.ErrAuthorization.Text)
		}
		c.mu.Unlock()
		if in {
			c.log.Info("closing connection after reload", "cause", "account removed")
			c.closeFlushing(reasonAuthFailure)
			closed++
		}
	}
	// The exporters that stay forget the requests of the accounts gone (the system
	// account's imports make it one), and take no more (responses.add).
	for _, a := range m {
		if a.resp != nil {
			a.resp.forget(gone)
		}
	}
	for a := range gone {
		if a.resp != nil && a.resp.sub != nil { // announced: the routes forget it
			if a.subs.Remove(a.resp.sub.subject, "", a.resp.sub) == nil {
				s.subRemoved(a.resp.sub)
			}
		}
	}
	s.log.Info("accounts removed", "accounts", len(p.remove), "closed", closed)
	return closed
}
