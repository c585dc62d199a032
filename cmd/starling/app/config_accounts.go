package app

import (
	"errors"
	"fmt"
	"slices"

	"github.com/starling-io/starling/core"
	"github.com/starling-io/starling/core/auth"
	"github.com/starling-io/starling/core/conf"
)

// accountEntry is one account of the accounts block, with where each part was written so
// that what core.ValidateAccounts finds is reported at its file:line:col.
type accountEntry struct {
	cfg       core.AccountConfig
	at        origin
	exportsAt []origin
	importsAt []origin
}

// accounts reads the accounts block (nats-server v2): `NAME { users, exports, imports }`.
// Users go to the authorization users list, marked with their account.
func (r *fileReader) accounts(s *settings, e *conf.Entry, path string) {
	m, ok := r.mapOf(e, path)
	if !ok {
		return
	}
	s.accountsAt = fileOrigin(e.KeyPos, path)
	perms := map[*conf.Map]*auth.Permissions{}
	// Account names keep their case: they are names, not keys.
	for _, name := range m.Keys {
		ae := m.Entries[name]
		apath := child(path, name)
		am, ok := r.mapOf(ae, apath)
		if !ok {
			continue
		}
		acc := accountEntry{cfg: core.AccountConfig{Name: name}, at: fileOrigin(ae.KeyPos, apath)}
		each(am, apath, func(key, kpath string, e *conf.Entry) {
			switch key {
			case "users":
				for _, u := range r.users(e, kpath, perms) {
					u.user.Account = name
					s.auth.users = append(s.auth.users, u)
				}
				if s.auth.usersAt.name == "" {
					s.auth.usersAt = fileOrigin(e.KeyPos, kpath)
				}
			case "exports":
				r.exports(&acc, e, kpath)
			case "imports":
				r.imports(&acc, e, kpath)
			default:
				r.unknown(e, kpath)
			}
		})
		s.accounts = append(s.accounts, acc)
	}
}

// exports reads `exports: [ {stream: SUBJ, accounts: [...]}, {service: SUBJ, response_type,
// response_threshold, accounts} ]`.
func (r *fileReader) exports(acc *accountEntry, e *conf.Entry, path string) {
	for i, v := range r.maps(e, path) {
		epath := fmt.Sprintf("%s[%d]", path, i)
		var ex core.Export
		kinds := 0
		each(v.Map, epath, func(key, kpath string, e *conf.Entry) {
			switch key {
			case "stream", "service":
				ex.Service = key == "service"
				ex.Subject, _ = r.str(e, kpath)
				kinds++
			case "accounts":
				for _, it := range r.list(e, kpath) {
					ex.Accounts = append(ex.Accounts, it.s)
				}
			case "response_type", "response":
				ex.Responses, _ = r.str(e, kpath)
			case "response_threshold", "threshold":
				ex.ResponseThreshold, _ = r.duration(e, kpath)
			default:
				r.unknown(e, kpath)
			}
		})
		if kinds != 1 {
			r.p.at(v.Pos, epath, "an export has one of stream or service")
			continue
		}
		if !ex.Service && (ex.Responses != "" || ex.ResponseThreshold != 0) {
			r.p.at(v.Pos, epath, "response_type and response_threshold are for a service export")
			continue
		}
		acc.cfg.Exports = append(acc.cfg.Exports, ex)
		acc.exportsAt = append(acc.exportsAt, fileOrigin(v.Pos, epath))
	}
}

// imports reads `imports: [ {stream: {account, subject}, prefix | to}, {service: {account,
// subject}, to} ]`.
func (r *fileReader) imports(acc *accountEntry, e *conf.Entry, path string) {
	for i, v := range r.maps(e, path) {
		ipath := fmt.Sprintf("%s[%d]", path, i)
		var im core.Import
		kinds := 0
		each(v.Map, ipath, func(key, kpath string, e *conf.Entry) {
			switch key {
			case "stream", "service":
				im.Service = key == "service"
				kinds++
				r.importSource(&im, e, kpath)
			case "prefix":
				im.Prefix, _ = r.str(e, kpath)
			case "to":
				im.To, _ = r.str(e, kpath)
			default:
				r.unknown(e, kpath)
			}
		})
		switch {
		case kinds != 1:
			r.p.at(v.Pos, ipath, "an import has one of stream or service")
			continue
		case im.Account == "" || im.Subject == "":
			r.p.at(v.Pos, ipath, "an import names the exporting account and subject: {account: NAME, subject: SUBJECT}")
			continue
		}
		acc.cfg.Imports = append(acc.cfg.Imports, im)
		acc.importsAt = append(acc.importsAt, fileOrigin(v.Pos, ipath))
	}
}

// importSource reads an import's `{account: NAME, subject: SUBJECT}`.
func (r *fileReader) importSource(im *core.Import, e *conf.Entry, path string) {
	m, ok := r.mapOf(e, path)
	if !ok {
		return
	}
	each(m, path, func(key, kpath string, e *conf.Entry) {
		switch key {
		case "account":
			im.Account, _ = r.str(e, kpath)
		case "subject":
			im.Subject, _ = r.str(e, kpath)
		default:
			r.unknown(e, kpath)
		}
	})
}

// maps reads a list of blocks, reporting any element that is not one.
func (r *fileReader) maps(e *conf.Entry, path string) []*conf.Value {
	arr, err := e.AsArray()
	if err != nil {
		r.fail(err, e, path)
		return nil
	}
	out := make([]*conf.Value, 0, len(arr))
	for i, v := range arr {
		if v.Kind != conf.KindMap {
			r.p.at(v.Pos, fmt.Sprintf("%s[%d]", path, i), "expected a block, got %s", v.Kind)
			continue
		}
		out = append(out, v)
	}
	return out
}

// buildAccounts checks the accounts as a whole and puts them in the core options; each
// problem is reported where its account, export or import was written.
func (s *settings) buildAccounts(p *problems) {
	var cfgs []core.AccountConfig
	for i := range s.accounts {
		cfgs = append(cfgs, s.accounts[i].cfg)
	}
	errs := core.ValidateAccounts(cfgs)
	for _, err := range errs {
		var ae *core.AccountError
		if !errors.As(err, &ae) {
			p.add(s.accountsAt.errorf("%v", err))
			continue
		}
		at := s.accountsAt
		for i := range s.accounts {
			a := &s.accounts[i]
			if a.cfg.Name != ae.Account {
				continue
			}
			at = a.at
			switch {
			case ae.Import >= 0 && ae.Import < len(a.importsAt):
				at = a.importsAt[ae.Import]
			case ae.Export >= 0 && ae.Export < len(a.exportsAt):
				at = a.exportsAt[ae.Export]
			}
			break
		}
		p.add(at.errorf("%v", ae.Err))
	}
	s.core.Accounts = cfgs
	s.accountsBad = len(errs) > 0
	if n := s.core.SystemAccount; n != "" && n != core.DefaultSystemAccount && !slices.ContainsFunc(cfgs, func(c core.AccountConfig) bool { return c.Name == n }) {
		p.add(s.systemAt.errorf("%q is not an account of the accounts block", n))
		s.accountsBad = true
	}
}
