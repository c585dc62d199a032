package conf

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
)

// Limits that keep hostile or broken input from exhausting the stack or the user's patience.
// maxIncludes bounds the total work: ten files that each include the next twice would
// otherwise be parsed 2^10 times.
const (
	maxDepth        = 64   // maps and arrays nested in one another, across includes
	maxIncludeDepth = 10   // includes nested in one another
	maxIncludes     = 1000 // include directives followed in one parse
	maxErrors       = 100  // then "too many errors" and the parse stops
	maxEnvs         = 1000 // environment variables read in one parse (A=[$B,$B], B=[$C,$C], ...)
)

// Options are the parser's dependencies. The zero value uses the process environment and
// the file system.
type Options struct {
	// LookupEnv resolves a $VAR that is not a key in scope; nil means os.LookupEnv.
	LookupEnv func(string) (string, bool)
	// ReadFile reads the file given to ParseFile and included files; nil means os.ReadFile.
	ReadFile func(string) ([]byte, error)
}

// ParseFile reads and parses the configuration file at path. Positions name files as the
// path was given (and included files as that path's directory joined with the include).
// A file that cannot be read is returned as the I/O error; problems in the text as Errors.
func ParseFile(path string, opts Options) (*Map, error) {
	read := opts.ReadFile
	if read == nil {
		read = os.ReadFile
	}
	data, err := read(path)
	if err != nil {
		return nil, fmt.Errorf("conf: %w", err)
	}
	return Parse(path, data, opts)
}

// Parse parses data as a configuration file called name: name is used in positions, and
// includes are resolved relative to filepath.Dir(name). On failure it returns a nil Map and
// Errors listing every problem found (up to 100).
func Parse(name string, data []byte, opts Options) (*Map, error) {
	p := &parser{opts: opts, includes: []string{filepath.Clean(name)}}
	root := newMap()
	p.body(p.scanner(name, data), root, []*Map{root}, 0, 0, Pos{})
	if len(p.errs) > 0 {
		return nil, p.errs
	}
	return root, nil
}

// parser holds the state of one Parse across the files it includes.
type parser struct {
	opts     Options
	errs     Errors
	includes []string // cleaned paths of the files being parsed, outermost first
	included int      // include directives followed so far
	// env holds the environment variables being resolved, to catch A=$B, B=$A.
	key  string // the dotted path of the key being parsed, named in errors about its $variables
	env  map[string]bool
	envs int // environment variables read so far
	// open holds the closing bracket of each map and array being parsed in the current
	// file, innermost last, so a container that meets a bracket closing an outer one knows
	// it is unterminated rather than that the bracket is stray.
	open []byte
}

// scanner returns a scanner of one file's text, reporting a byte order mark at its start.
func (p *parser) scanner(name string, data []byte) *scanner {
	if hasBOM(data) {
		p.errorf(Pos{File: name, Line: 1, Col: 1}, ErrSyntax,
			"the file starts with a UTF-8 byte order mark (U+FEFF), which nats-server refuses: save it without one")
	}
	return newScanner(name, data)
}

func (p *parser) full() bool { return len(p.errs) > maxErrors }

func (p *parser) add(e *Error) {
	if p.full() {
		return
	}
	if len(p.errs) == maxErrors {
		e = &Error{Pos: e.Pos, Msg: "too many errors", Err: ErrTooDeep}
	}
	p.errs = append(p.errs, e)
}

func (p *parser) errorf(pos Pos, kind error, format string, args ...any) {
	p.add(&Error{Pos: pos, Msg: fmt.Sprintf(format, args...), Err: kind})
}

// keyErrorf is errorf naming the key whose value is being parsed: "key: message".
func (p *parser) keyErrorf(pos Pos, kind error, format string, args ...any) {
	if p.key != "" {
		format = "%s: " + format
		args = append([]any{p.key}, args...)
	}
	p.errorf(pos, kind, format, args...)
}

// enclosedBy reports whether some container outside the innermost one closes with c.
func (p *parser) enclosedBy(c byte) bool {
	for i := len(p.open) - 2; i >= 0; i-- {
		if p.open[i] == c {
			return true
		}
	}
	return false
}

// body parses the entries of a map into m until closer ('}'), or until eof when closer is
// 0 (a file). open is the position of the '{' for error messages. scopes are the maps whose
// keys $variables can see, innermost (m) last.
func (p *parser) body(s *scanner, m *Map, scopes []*Map, depth int, closer byte, open Pos) {
	for !p.full() {
		s.skipBlank()
		switch c := s.peek(); c {
		case eof:
			if closer != 0 {
				p.errorf(open, ErrSyntax, "unterminated map: missing '}'")
			}
			return
		case ',', ';':
			s.advance()
		case '}', ']':
			if closer != 0 && c == int(closer) {
				s.advance()
				return
			}
			if closer != 0 && p.enclosedBy(byte(c)) {
				p.errorf(open, ErrSyntax, "unterminated map: missing '}'")
				return
			}
			p.errorf(s.pos(), ErrSyntax, "unexpected %q", rune(c))
			s.advance()
		default:
			p.entry(s, m, scopes, depth)
		}
	}
}

// entry parses one "key: value" (or "key = value", "key value", "include path").
func (p *parser) entry(s *scanner, m *Map, scopes []*Map, depth int) {
	keyPos := s.pos()
	var key string
	quoted := false
	if c := s.peek(); c == '"' || c == '\'' {
		str, _, err := s.quoted()
		if err != nil {
			p.add(err)
			s.skipLine()
			return
		}
		key, quoted = str, true
	} else {
		key = s.word(isKeyEnd)
		if key == "" {
			p.errorf(keyPos, ErrSyntax, "expected a key, got %q", rune(c))
			s.skipLine()
			return
		}
	}
	s.skipSpace()
	if !quoted && key == "include" && s.peek() != ':' && s.peek() != '=' {
		p.include(s, m, depth, keyPos)
		return
	}
	if c := s.peek(); c == ':' || c == '=' {
		s.advance()
		s.skipSpace()
	}
	if atValueEnd(s) {
		p.errorf(keyPos, ErrSyntax, "missing value for key %q", key)
		return
	}
	outer := p.key
	p.key = key
	if outer != "" {
		p.key = outer + "." + key
	}
	v := p.value(s, scopes, depth)
	p.key = outer
	if v != nil {
		m.set(key, keyPos, v)
	}
	p.endValue(s, key)
}

// atValueEnd reports whether nothing that could be a value follows.
func atValueEnd(s *scanner) bool {
	switch s.peek() {
	case eof, '\n', ',', ';', '}', ']':
		return true
	}
	return s.atComment()
}

// endValue checks that a map entry's value is followed by the end of the entry. After
// anything else it reports the stray word and skips to the next separator or line.
func (p *parser) endValue(s *scanner, key string) {
	s.skipSpace()
	if atValueEnd(s) {
		return
	}
	pos := s.pos()
	junk := s.word(isValueEnd)
	if junk == "" { // cannot happen after skipSpace, but never loop without progress
		s.advance()
	}
	p.errorf(pos, ErrSyntax, "unexpected %q after the value of %q (quote a value that contains spaces)", junk, key)
	s.skipUntil("\n,;}]")
}

// value parses one value of any kind. depth counts the maps and arrays around it. It
// returns nil after reporting an error.
func (p *parser) value(s *scanner, scopes []*Map, depth int) *Value {
	pos := s.pos()
	switch c := s.peek(); c {
	case '{', '[':
		if depth >= maxDepth {
			p.errorf(pos, ErrTooDeep, "nesting too deep: more than %d maps and arrays inside one another", maxDepth)
			s.skipNested()
			return nil
		}
		s.advance()
		if c == '[' {
			p.open = append(p.open, ']')
			arr := p.array(s, scopes, depth+1, pos)
			p.open = p.open[:len(p.open)-1]
			return &Value{Kind: KindArray, Pos: pos, Array: arr}
		}
		m := newMap()
		p.open = append(p.open, '}')
		p.body(s, m, append(scopes, m), depth+1, '}', pos)
		p.open = p.open[:len(p.open)-1]
		return &Value{Kind: KindMap, Pos: pos, Map: m}
	case '"', '\'':
		str, raw, err := s.quoted()
		if err != nil {
			p.add(err)
			return nil
		}
		return &Value{Kind: KindString, Pos: pos, Str: str, Raw: raw}
	case '(':
		str, raw, err := s.block()
		if err != nil {
			p.add(err)
			return nil
		}
		return &Value{Kind: KindString, Pos: pos, Str: str, Raw: raw}
	case '$':
		return p.variable(s, scopes, pos, depth)
	}
	w := s.word(isValueEnd)
	if w == "" { // callers make sure a value starts here; never loop without progress
		p.errorf(pos, ErrSyntax, "expected a value")
		if s.peek() != eof {
			s.advance()
		}
		return nil
	}
	v, msg := classify(w)
	if msg != "" {
		p.keyErrorf(pos, ErrSyntax, "%s", msg)
		return nil
	}
	v.Pos = pos
	return &v
}

// array parses the elements of an array after its '['. Elements are separated by commas
// or newlines (a trailing comma is fine). open is the position of the '['.
func (p *parser) array(s *scanner, scopes []*Map, depth int, open Pos) []*Value {
	arr := []*Value{}
	for !p.full() {
		s.skipBlank()
		switch c := s.peek(); c {
		case eof:
			p.errorf(open, ErrSyntax, "unterminated array: missing ']'")
			return arr
		case ',', ';':
			s.advance()
			continue
		case ']':
			s.advance()
			return arr
		case '}':
			if p.enclosedBy('}') {
				p.errorf(open, ErrSyntax, "unterminated array: missing ']'")
				return arr
			}
			p.errorf(s.pos(), ErrSyntax, "unexpected '}' in array")
			s.advance()
			continue
		}
		if v := p.value(s, scopes, depth); v != nil {
			arr = append(arr, v)
		}
		s.skipSpace()
		if !atValueEnd(s) {
			pos := s.pos()
			junk := s.word(isValueEnd)
			p.errorf(pos, ErrSyntax, "unexpected %q in array: separate elements with ',' or a newline", junk)
			s.skipUntil("\n,]}")
		}
	}
	return arr
}

// variable resolves $NAME at the '$' (${NAME} is an error): the nearest earlier key of that
// name in an enclosing map, else the environment (envValue).
func (p *parser) variable(s *scanner, scopes []*Map, pos Pos, depth int) *Value {
	s.advance() // '$'
	var name string
	if s.peek() == '{' {
		s.advance()
		start := s.off
		for c := s.peek(); c != eof && c != '\n' && c != '}'; c = s.peek() {
			s.advance()
		}
		if s.peek() != '}' {
			p.errorf(pos, ErrSyntax, "unterminated variable reference: missing '}'")
			return nil
		}
		name = string(s.data[start:s.off])
		s.advance()
		// nats-server reads "${A}" as the variable "{A" and finds none: refused here too,
		// with the spelling it takes.
		p.keyErrorf(pos, ErrSyntax, "${%s}: braces around a variable name are not supported (nats-server refuses them): write $%s", name, name)
		return nil
	} else {
		name = s.word(isValueEnd)
	}
	if name == "" {
		p.errorf(pos, ErrSyntax, "missing variable name after '$'")
		return nil
	}
	if strings.HasPrefix(name, "2a$") {
		// As nats-server (conf/parse.go, lookupVariable and bcryptPrefix): a bare $2a$...
		// is a bcrypt hash, taken as written before any variable or environment lookup.
		// Only $2a$: $2b$, $2x$ and $2y$ are variable references there too.
		raw := "$" + name
		return &Value{Kind: KindString, Pos: pos, Str: raw, Raw: raw}
	}
	for i := len(scopes) - 1; i >= 0; i-- {
		if e, ok := scopes[i].Entries[name]; ok {
			e.Referenced = true
			v := *e.Value
			v.Pos = pos
			return &v
		}
	}
	lookup := p.opts.LookupEnv
	if lookup == nil {
		lookup = os.LookupEnv
	}
	if env, ok := lookup(name); ok {
		return p.envValue(name, env, pos, depth)
	}
	hint := ""
	if len(name) > 3 && name[0] == '2' && name[2] == '$' {
		hint = " (a bcrypt hash other than $2a$ must be quoted)"
	}
	p.keyErrorf(pos, ErrUndefined, "undefined variable %q%s", name, hint)
	return nil
}

// include reads the file named after an include keyword at pos and merges its entries into
// m: the keys it defines are visible after it, but it sees only its own keys and the
// environment as variables (nats-server parses it on its own). The file's errors carry its
// own name and lines.
func (p *parser) include(s *scanner, m *Map, depth int, pos Pos) {
	var path string
	if c := s.peek(); c == '"' || c == '\'' {
		str, _, err := s.quoted()
		if err != nil {
			p.add(err)
			return
		}
		path = str
	} else {
		path = s.word(isValueEnd)
	}
	if path == "" {
		p.errorf(pos, ErrSyntax, "missing file name after include")
		return
	}
	p.endValue(s, "include")
	// As in nats-server, even an absolute path is taken relative to the including file's
	// directory: a file it refuses is refused here too.
	full := filepath.Join(filepath.Dir(s.file), path)
	clean := filepath.Clean(full)
	for i, f := range p.includes {
		if f == clean {
			chain := strings.Join(append(p.includes[i:len(p.includes):len(p.includes)], clean), " -> ")
			p.errorf(pos, ErrInclude, "include cycle: %s", chain)
			return
		}
	}
	if len(p.includes) > maxIncludeDepth {
		p.errorf(pos, ErrTooDeep, "include %q: includes nested more than %d deep", path, maxIncludeDepth)
		return
	}
	if p.included >= maxIncludes {
		p.errorf(pos, ErrTooDeep, "include %q: more than %d includes in all", path, maxIncludes)
		return
	}
	p.included++
	read := p.opts.ReadFile
	if read == nil {
		read = os.ReadFile
	}
	data, err := read(full)
	if err != nil {
		msg := err.Error()
		if errors.Is(err, fs.ErrNotExist) {
			msg = "file not found"
			if filepath.IsAbs(path) {
				msg += " (looked for " + full + ": include paths are relative to the including file's directory, absolute ones too, as in nats-server)"
			}
		}
		p.add(&Error{Pos: pos, Msg: fmt.Sprintf("include %q: %s", path, msg), Err: fmt.Errorf("%w: %w", ErrInclude, err)})
		return
	}
	p.includes = append(p.includes, clean)
	saved := p.open
	p.open = nil // an included file cannot close its includer's brackets
	// The file is parsed on its own, as nats-server does: it does not see the includer's
	// variables, and its keys are then merged into m (later ones replacing earlier ones),
	// where the text after the include sees them.
	inc := newMap()
	p.body(p.scanner(full, data), inc, []*Map{inc}, depth, 0, Pos{})
	merged := slices.Clone(inc.Keys)
	slices.SortFunc(merged, func(a, b string) int { return inc.Entries[a].seq - inc.Entries[b].seq })
	for _, k := range merged { // in the order they were set, so the later spelling stays later
		if _, ok := m.Entries[k]; !ok {
			m.Keys = append(m.Keys, k)
		}
		m.Entries[k] = inc.Entries[k]
		m.stamp(m.Entries[k])
	}
	p.open = saved
	p.includes = p.includes[:len(p.includes)-1]
}
