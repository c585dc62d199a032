package conf

import (
	"errors"
	"strconv"
	"strings"
)

// envValue is the value of the environment variable name, referenced at pos. As in
// nats-server, its text is read as the value of an entry ("k=" + text), so it may be quoted
// (A='"x y"' gives x y), a list or a map, or refer to another environment variable; text
// after the value on the same line is an error (A="a b"), a comment or a next line is not.
// Blank text is the empty string. Every position inside the value is pos, and an error names
// the variable at pos.
func (p *parser) envValue(name, text string, pos Pos, depth int) *Value {
	if strings.TrimSpace(text) == "" {
		return &Value{Kind: KindString, Pos: pos, Raw: text}
	}
	if p.env[name] {
		p.keyErrorf(pos, ErrUndefined, "environment variable %s refers back to itself", name)
		return nil
	}
	if p.envs >= maxEnvs {
		p.keyErrorf(pos, ErrTooDeep, "environment variable %s: more than %d environment variables read in all", name, maxEnvs)
		return nil
	}
	p.envs++
	if p.env == nil {
		p.env = make(map[string]bool)
	}
	p.env[name] = true
	defer delete(p.env, name)

	const key = "k"
	q := &parser{opts: p.opts, includes: p.includes, included: p.included, env: p.env, envs: p.envs}
	m := newMap()
	q.body(newScanner("$"+name, []byte(key+"="+text)), m, []*Map{m}, depth, 0, Pos{})
	p.included, p.envs = q.included, q.envs
	if len(q.errs) > 0 {
		e := q.errs[0]
		kind := e.Err
		if !errors.Is(kind, ErrUndefined) && !errors.Is(kind, ErrTooDeep) {
			kind = ErrSyntax
		}
		msg := strings.Replace(strings.TrimPrefix(e.Msg, key+": "), ` after the value of "`+key+`"`, "", 1)
		if e.Pos.File == "$"+name && kind == ErrSyntax {
			msg += " (at character " + strconv.Itoa(max(e.Pos.Col-len(key)-1, 1)) + " of its value)"
		}
		p.keyErrorf(pos, kind, "environment variable %s: %s", name, msg)
		return nil
	}
	e, ok := m.Entries[key]
	if !ok { // cannot happen: a non-blank text gives the key a value or an error
		p.keyErrorf(pos, ErrSyntax, "environment variable %s: no value", name)
		return nil
	}
	v := *e.Value
	placeAt(&v, pos)
	return &v
}

// placeAt gives v and everything inside it the position pos.
func placeAt(v *Value, pos Pos) {
	v.Pos = pos
	for _, el := range v.Array {
		placeAt(el, pos)
	}
	if v.Map != nil {
		for _, e := range v.Map.Entries {
			e.KeyPos = pos
			placeAt(e.Value, pos)
		}
	}
}
