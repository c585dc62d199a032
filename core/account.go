package core

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"sort"
	"sync/atomic"
	"time"

	"github.com/starling-io/starling/core/subject"
)

// account is one subject space. A client reaches its index through c.acc, set at CONNECT,
// so a publish pays for accounts with one pointer load and no lookup.
type account struct {
	name string
	subs *subject.Index[*subscription]
	cfg  AccountConfig // as configured (for /accountz)

	streams  []*streamImport  // stream imports into this account: shadow its subscribers
	services []*serviceImport // service imports into this account
	resp     *responses       // this account exports services: its reply map; else nil
	internal *client          // owns the account's own subscriptions (imports, replies)
	conns    atomic.Int64     // clients whose connect was announced (only with a system account)
	removed  atomic.Bool      // a reload took it out of force: no reply entry may lead into it
	gone     counters         // traffic of its closed client connections (/accstatz keeps it)
	slow     atomic.Int64     // its clients closed as slow consumers
}

// streamImport brings the exporter's subjects into the importer's space.
type streamImport struct {
	from     *account
	subject  string             // in the exporter's space
	local    string             // in the importer's space
	toLocal  *subject.Transform // exporter subject → importer subject
	toExport *subject.Transform // importer pattern → exporter pattern
}

// serviceImport forwards the importer's requests on local to the exporter.
type serviceImport struct {
	from, to  *account
	local     string
	toExport  *subject.Transform
	multi     bool          // stream or chunked responses: a reply subject serves until it expires
	threshold time.Duration // how long a reply subject serves
}

func newAccount(s *Server, name string) *account {
	a := &account{name: name, subs: subject.NewIndex[*subscription]()}
	a.internal = &client{srv: s, kind: kindInternal, cid: s.nextCID.Add(1), start: time.Now(),
		subs: make(map[string]*subscription), ip: "127.0.0.1", name: "account " + name, acc: a}
	a.internal.log = s.log.With("account", name)
	a.internal.prod.init(a.internal)
	return a
}

// accountSet is the accounts in force: never modified once stored in Server.accs.
type accountSet struct {
	m      map[string]*account
	digest string // identifies the account configuration in route INFO ("" without accounts)
}

// accountSet returns the accounts in force.
func (s *Server) accountSet() *accountSet { return s.accs.Load() }

// accountMap returns the accounts in force by name; read only.
func (s *Server) accountMap() map[string]*account { return s.accs.Load().m }

// accountsDigest identifies an account configuration, whatever its order.
func accountsDigest(cfgs []AccountConfig) string {
	if len(cfgs) == 0 {
		return ""
	}
	b, _ := json.Marshal(canonicalAccounts(cfgs))
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:8])
}

// buildAccounts creates the global account and the configured ones, with their imports.
// The configuration has passed ValidateAccounts.
func (s *Server) buildAccounts(cfgs []AccountConfig) error {
	s.gacc = newAccount(s, GlobalAccount)
	m := map[string]*account{GlobalAccount: s.gacc}
	if err := s.addAccounts(m, cfgs, cfgs); err != nil {
		return err
	}
	s.accs.Store(&accountSet{m: m, digest: accountsDigest(cfgs)})
	return nil
}

// addAccounts adds to m the accounts of add (the global one is in m already; all is the
// whole configuration) with their imports, whose exporters are in m. An exporter that
// gets its first service importer gets its reply map. m is not in force yet, but the
// exporters may be: their index is safe to add to.
func (s *Server) addAccounts(m map[string]*account, add, all []AccountConfig) error {
	for _, c := range add {
		if c.Name != GlobalAccount {
			m[c.Name] = newAccount(s, c.Name)
		}
	}
	var replies []*account
	for _, c := range add {
		a := m[c.Name]
		a.cfg = c
		for _, im := range c.Imports {
			exp := m[im.Account]
			local := im.local()
			if !im.Service {
				si := &streamImport{from: exp, subject: im.Subject, local: local}
				si.toLocal, _ = subject.NewTransform(im.Subject, local)
				si.toExport, _ = subject.NewTransform(local, im.Subject)
				a.streams = append(a.streams, si)
				continue
			}
			si := &serviceImport{from: a, to: exp, local: local, threshold: DefaultResponseThreshold}
			si.toExport, _ = subject.NewTransform(local, im.Subject)
			if ex := findExport(all, im.Account, im.Subject); ex != nil {
				si.multi = ex.Responses == ResponseStream || ex.Responses == ResponseChunked
				if ex.ResponseThreshold > 0 {
					si.threshold = ex.ResponseThreshold
				}
			}
			if exp.resp == nil {
				exp.resp = newResponses()
				replies = append(replies, exp)
			}
			a.services = append(a.services, si)
			// Its subscription, for this server's clients only.
			sub := &subscription{client: a.internal, acc: a, subject: si.local, sid: "import " + si.local,
				local: true, imp: &importRef{svc: si}}
			if err := a.subs.Insert(sub.subject, "", sub); err != nil {
				return fmt.Errorf("%w: account %q: service import %q: %v", ErrInvalidOptions, a.name, si.local, err)
			}
		}
	}
	// Each service exporter listens on its reply prefix.
	for _, a := range replies {
		sub := &subscription{client: a.internal, acc: a, subject: a.resp.prefix + ">", sid: "replies",
			imp: &importRef{resp: a.resp}}
		if err := a.subs.Insert(sub.subject, "", sub); err != nil {
			return err
		}
		a.resp.sub = sub
		s.subAdded(sub) // the routes learn of it when they register
	}
	return nil
}

// findExport returns the export of account acc that subj (an import's subject) falls under.
func findExport(cfgs []AccountConfig, acc, subj string) *Export {
	for i := range cfgs {
		if cfgs[i].Name != acc {
			continue
		}
		for j := range cfgs[i].Exports {
			if ex := &cfgs[i].Exports[j]; ex.Service && subject.SubsetOf(subj, ex.Subject) {
				return ex
			}
		}
	}
	return nil
}

// account returns the account named name, or nil.
func (s *Server) account(name string) *account {
	if name == "" {
		return s.gacc
	}
	return s.accountMap()[name]
}

// AccountNames lists the accounts, the global one included, sorted.
func (s *Server) AccountNames() []string {
	m := s.accountMap() // one set: a reload may replace it meanwhile
	names := make([]string, 0, len(m))
	for n := range m {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}
