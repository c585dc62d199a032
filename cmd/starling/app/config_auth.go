package app

import (
	"fmt"
	"math"
	"strings"

	"github.com/nats-io/nkeys"

	"github.com/starling-io/starling/core/auth"
	"github.com/starling-io/starling/core/conf"
	"github.com/starling-io/starling/core/subject"
)

// authorization reads the authorization block (spec §13, §14).
func (r *fileReader) authorization(s *settings, e *conf.Entry, path string) {
	m, ok := r.mapOf(e, path)
	if !ok {
		return
	}
	a := &s.auth
	a.at = fileOrigin(e.KeyPos, path)
	perms := map[*conf.Map]*auth.Permissions{}
	each(m, path, func(key, kpath string, e *conf.Entry) {
		switch key {
		case "user", "username":
			a.user, _ = r.str(e, kpath)
			a.userAt = fileOrigin(e.KeyPos, kpath)
		case "pass", "password":
			a.pass, _ = r.str(e, kpath) // a malformed bcrypt hash: warned of in build
			a.passAt = fileOrigin(e.KeyPos, kpath)
		case "token":
			a.token, _ = r.str(e, kpath)
			a.tokenAt = fileOrigin(e.KeyPos, kpath)
		case "timeout":
			s.core.AuthTimeout, _ = r.timeout(e, kpath)
		case "users":
			a.users = append(a.users, r.users(e, kpath, perms)...)
			a.usersAt = fileOrigin(e.KeyPos, kpath)
		case "default_permissions", "default_permission", "permissions":
			a.defaults = r.permissions(e, kpath, perms)
		default:
			r.unknown(e, kpath)
		}
	})
}

// users reads authorization.users. An entry with a problem is reported and left out, so
// that auth.New does not report it again. perms shares one *auth.Permissions between users
// whose permissions are the same $variable (auth compiles each pointer once).
func (r *fileReader) users(e *conf.Entry, path string, perms map[*conf.Map]*auth.Permissions) []userEntry {
	arr, err := e.AsArray()
	if err != nil {
		r.fail(err, e, path)
		return nil
	}
	out := make([]userEntry, 0, len(arr))
	names := map[string]string{} // user name or nkey → path of its first definition
	for i, v := range arr {
		upath := fmt.Sprintf("%s[%d]", path, i)
		if v.Kind != conf.KindMap {
			r.p.at(v.Pos, upath, "expected a map {user, password, permissions} or {nkey, permissions}, got %s", v.Kind)
			continue
		}
		u := userEntry{user: &auth.User{}, at: fileOrigin(v.Pos, upath)}
		bad := false
		each(v.Map, upath, func(key, kpath string, e *conf.Entry) {
			var ok bool
			switch key {
			case "user", "username":
				u.user.Username, ok = r.str(e, kpath)
			case "pass", "password":
				u.user.Password, ok = r.secret(e, kpath, "its user cannot log in")
				u.hasPass = true
			case "nkey":
				u.user.Nkey, ok = r.str(e, kpath)
				if ok && !nkeys.IsValidPublicUserKey(u.user.Nkey) {
					r.p.at(e.KeyPos, kpath, "%q is not a valid public user nkey (56 characters starting with U)", u.user.Nkey)
					ok = false
				}
			case "permissions", "permission", "authorization":
				u.user.Permissions = r.permissions(e, kpath, perms)
				ok = true
			default:
				r.unknown(e, kpath)
				ok = true
			}
			bad = bad || !ok
		})
		name := u.user.Username
		switch {
		case u.user.Nkey != "" && (u.user.Username != "" || u.user.Password != ""):
			r.p.at(v.Pos, upath, "an nkey user has no user name or password")
			bad = true
		case u.user.Nkey != "":
			name = u.user.Nkey
		case name == "" && !bad:
			r.p.at(v.Pos, upath, "needs a user (with a password) or an nkey")
			bad = true
		}
		if first, dup := names[name]; dup && name != "" {
			r.p.at(v.Pos, upath, "duplicate user %q (first defined at %s)", name, first)
			bad = true
		} else if name != "" {
			names[name] = fmt.Sprintf("%s (%s)", upath, v.Pos)
		}
		if !bad {
			out = append(out, u)
		}
	}
	return out
}

// permissions reads a permissions map (spec §14): publish/pub/import and
// subscribe/sub/export as a list (the allow list) or {allow, deny}, and allow_responses.
func (r *fileReader) permissions(e *conf.Entry, path string, perms map[*conf.Map]*auth.Permissions) *auth.Permissions {
	m, ok := r.mapOf(e, path)
	if !ok {
		return nil
	}
	if p, ok := perms[m]; ok {
		return p
	}
	p := &auth.Permissions{}
	each(m, path, func(key, kpath string, e *conf.Entry) {
		switch key {
		case "publish", "pub", "import":
			p.Publish = r.subjectPermission(e, kpath, false)
		case "subscribe", "sub", "export":
			p.Subscribe = r.subjectPermission(e, kpath, true)
		case "allow_responses", "publish_allow_responses":
			p.AllowResponses = r.responses(e, kpath)
		default:
			r.unknown(e, kpath)
		}
	})
	perms[m] = p
	return p
}

// subjectPermission reads a list (= allow) or {allow, deny}, each a subject or a list of
// subjects (subscribe entries may be "subject queue"). An empty allow list is no allow list
// (nil), as in nats-server; a permission with neither list is nil.
func (r *fileReader) subjectPermission(e *conf.Entry, path string, sub bool) *auth.SubjectPermission {
	sp := &auth.SubjectPermission{}
	if e.Value.Kind == conf.KindMap {
		each(e.Value.Map, path, func(key, kpath string, e *conf.Entry) {
			switch key {
			case "allow":
				sp.Allow = r.subjects(e, kpath, sub)
			case "deny":
				sp.Deny = r.subjects(e, kpath, sub)
			default:
				r.unknown(e, kpath)
			}
		})
	} else {
		sp.Allow = r.subjects(e, path, sub)
	}
	if sp.Allow == nil && sp.Deny == nil {
		return nil
	}
	return sp
}

// subjects reads permission subjects, reporting each invalid one at its position. An empty
// list is nil.
func (r *fileReader) subjects(e *conf.Entry, path string, sub bool) []string {
	var out []string
	for _, it := range r.list(e, path) {
		subj, queue := it.s, ""
		f := strings.Fields(it.s)
		if sub && len(f) == 2 {
			subj, queue = f[0], f[1]
		}
		switch {
		case sub && len(f) > 2:
			r.p.at(it.pos, it.path, "%q is not a valid subject or \"subject queue\"", it.s)
		case !sub && len(f) > 1:
			r.p.at(it.pos, it.path, "%q is not a valid subject", it.s)
		case !subject.ValidSubject(subj):
			r.p.at(it.pos, it.path, "%q is not a valid subject", subj)
		case queue != "" && !subject.ValidQueue([]byte(queue)):
			r.p.at(it.pos, it.path, "%q is not a valid queue name", queue)
		default:
			out = append(out, it.s)
		}
	}
	return out
}

// responses reads allow_responses: true, false, or {max, expires}.
func (r *fileReader) responses(e *conf.Entry, path string) *auth.ResponsePermission {
	if e.Value.Kind != conf.KindMap {
		on, ok := r.boolean(e, path)
		if !ok || !on {
			return nil
		}
		return &auth.ResponsePermission{}
	}
	rp := &auth.ResponsePermission{}
	each(e.Value.Map, path, func(key, kpath string, e *conf.Entry) {
		switch key {
		case "max", "max_msgs", "max_messages", "max_responses":
			rp.MaxMsgs, _ = r.intIn(e, kpath, math.MinInt32, math.MaxInt32)
		case "expires", "expiration", "ttl":
			d, err := e.AsDuration()
			if err != nil {
				r.fail(err, e, kpath)
				return
			}
			rp.Expires = d // negative: never expires
		default:
			r.unknown(e, kpath)
		}
	})
	return rp
}
