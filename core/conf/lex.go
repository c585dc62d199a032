package conf

import (
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

const eof = -1

// scanner walks one file's bytes and keeps track of the position. There is no token stream:
// the parser calls the scanner directly, because what ends a bare word depends on what the
// parser expects there (a key stops at ':' or '=', a value such as 0.0.0.0:4222 does not).
type scanner struct {
	file      string
	data      []byte
	off       int // next byte to read
	line      int // line of data[off], 1-based
	lineStart int // offset of the first byte of that line
}

func newScanner(file string, data []byte) *scanner {
	s := &scanner{file: file, data: data, line: 1}
	if hasBOM(data) {
		s.off, s.lineStart = 3, 3 // reported by the parser; the text after it is still checked
	}
	return s
}

// hasBOM reports whether data starts with a UTF-8 byte order mark. nats-server reads it as
// part of the first key ("unknown field \ufeffport"), so a file with one is refused, with a
// message that names the invisible character.
func hasBOM(data []byte) bool {
	return len(data) >= 3 && data[0] == 0xEF && data[1] == 0xBB && data[2] == 0xBF
}

func (s *scanner) pos() Pos {
	return Pos{File: s.file, Line: s.line, Col: s.off - s.lineStart + 1}
}

// peek returns the next byte, or eof.
func (s *scanner) peek() int {
	if s.off < len(s.data) {
		return int(s.data[s.off])
	}
	return eof
}

func (s *scanner) peekAt(n int) int {
	if s.off+n < len(s.data) {
		return int(s.data[s.off+n])
	}
	return eof
}

// advance moves past one byte; it must not be called at eof.
func (s *scanner) advance() {
	if s.data[s.off] == '\n' {
		s.line++
		s.lineStart = s.off + 1
	}
	s.off++
}

func isSpace(c int) bool { return c == ' ' || c == '\t' || c == '\r' || c == '\f' || c == '\v' }

// skipSpace skips blanks within the line.
func (s *scanner) skipSpace() {
	for isSpace(s.peek()) {
		s.advance()
	}
}

// atComment reports whether a comment starts here: '#' or "//". A comment is recognised only
// where a token could start, so the "//" inside nats://host:4222 is part of the word.
func (s *scanner) atComment() bool {
	c := s.peek()
	return c == '#' || (c == '/' && s.peekAt(1) == '/')
}

// skipToEOL moves to the next newline (not consuming it) or to eof.
func (s *scanner) skipToEOL() {
	for c := s.peek(); c != eof && c != '\n'; c = s.peek() {
		s.advance()
	}
}

// skipLine moves past the next newline, or to eof.
func (s *scanner) skipLine() {
	s.skipToEOL()
	if s.peek() == '\n' {
		s.advance()
	}
}

// skipBlank skips blanks, newlines and comments.
func (s *scanner) skipBlank() {
	for {
		s.skipSpace()
		switch {
		case s.peek() == '\n':
			s.advance()
		case s.atComment():
			s.skipToEOL()
		default:
			return
		}
	}
}

// skipUntil moves to the first byte in stop (not consuming it), or to eof.
func (s *scanner) skipUntil(stop string) {
	for c := s.peek(); c != eof && strings.IndexByte(stop, byte(c)) < 0; c = s.peek() {
		s.advance()
	}
}

// isValueEnd reports whether c ends a bare value: a blank, a newline, a separator, a closing
// bracket, or eof. Everything else, including ':' '/' '#' '$' '{', belongs to the word.
func isValueEnd(c int) bool {
	switch c {
	case eof, '\n', ',', ';', ']', '}':
		return true
	}
	return isSpace(c)
}

// isKeyEnd reports whether c ends a bare key: whatever ends a value, a key/value separator,
// an opening bracket (so "tls{" works) or a comment.
func isKeyEnd(c int) bool {
	switch c {
	case ':', '=', '{', '[', '#':
		return true
	}
	return isValueEnd(c)
}

// word reads a bare word up to the first byte for which end returns true.
func (s *scanner) word(end func(int) bool) string {
	start := s.off
	for !end(s.peek()) {
		s.advance()
	}
	return string(s.data[start:s.off])
}

// quoted reads a string in double quotes (with escapes) or single quotes (raw), starting at
// the quote. It returns the string and its source text. A quoted string ends on its own line:
// at a newline or eof it is unterminated, and the scanner is left at the newline so the
// parser can carry on with the next line.
func (s *scanner) quoted() (str, raw string, err *Error) {
	open := s.pos()
	start := s.off
	q := s.peek()
	s.advance()
	var b []byte // nil while no escape has been seen: then str is a plain slice of the input
	from := s.off
	for {
		c := s.peek()
		switch {
		case c == eof || c == '\n':
			return "", "", &Error{Pos: open, Msg: "unterminated string: missing closing " + quoteChar(q), Err: ErrSyntax}
		case c == q:
			if b != nil {
				str = string(append(b, s.data[from:s.off]...))
			} else {
				str = string(s.data[from:s.off])
			}
			s.advance()
			return str, string(s.data[start:s.off]), err
		case c == '\\' && q == '"':
			if b == nil {
				b = make([]byte, 0, s.off-from+16)
			}
			b = append(b, s.data[from:s.off]...)
			escPos := s.pos()
			var bad bool
			b, bad = s.escape(b)
			if bad && err == nil {
				err = &Error{Pos: escPos, Msg: "invalid escape in string (write \\\\ for a backslash)", Err: ErrSyntax}
			}
			from = s.off
		default:
			s.advance()
		}
	}
}

func quoteChar(q int) string {
	if q == '"' {
		return `'"'`
	}
	return `"'"`
}

// escape decodes the escape sequence at the backslash and appends it to b. It always moves
// past the backslash; on a bad sequence it reports bad and appends nothing.
func (s *scanner) escape(b []byte) ([]byte, bool) {
	s.advance() // '\\'
	c := s.peek()
	if c == eof || c == '\n' {
		return b, true
	}
	s.advance()
	switch c {
	case 't':
		return append(b, '\t'), false
	case 'n':
		return append(b, '\n'), false
	case 'r':
		return append(b, '\r'), false
	case '"', '\\', '/':
		return append(b, byte(c)), false
	case 'x':
		v, ok := s.hex(2)
		return append(b, byte(v)), !ok
	case 'u':
		v, ok := s.hex(4)
		if !ok {
			return b, true
		}
		return utf8.AppendRune(b, rune(v)), false
	}
	return b, true
}

// hex reads up to n hex digits (stopping early at a non-digit, which is then an error).
func (s *scanner) hex(n int) (int, bool) {
	v := 0
	for range n {
		c := s.peek()
		var d int
		switch {
		case c >= '0' && c <= '9':
			d = c - '0'
		case c >= 'a' && c <= 'f':
			d = c - 'a' + 10
		case c >= 'A' && c <= 'F':
			d = c - 'A' + 10
		default:
			return 0, false
		}
		s.advance()
		v = v<<4 | d
	}
	return v, true
}

// block reads a block string starting at '('. It ends at the first line that holds only ')'
// (blanks around it allowed). The text is everything in between, without the rest of the
// '(' line when that is blank and without the newline before the ')' line.
func (s *scanner) block() (str, raw string, err *Error) {
	open := s.pos()
	start := s.off
	s.advance() // '('
	from := s.off
	s.skipToEOL()
	if strings.TrimLeft(string(s.data[from:s.off]), " \t\r") == "" && s.peek() == '\n' {
		from = s.off + 1
	}
	for s.peek() == '\n' {
		nl := s.off
		s.advance()
		ls := s.off
		s.skipToEOL()
		if strings.Trim(string(s.data[ls:s.off]), " \t\r\f\v") == ")" {
			text := s.data[from:max(from, nl)]
			return string(text), string(s.data[start:s.off]), nil
		}
	}
	return "", "", &Error{Pos: open, Msg: "unterminated block string: missing ')' on a line of its own", Err: ErrSyntax}
}

// skipNested moves past a map or array starting at '{' or '[' without building it, for input
// nested beyond the limit. Quoted strings and comments are skipped so their brackets do not
// count. It is iterative: depth is a counter, not the Go stack.
func (s *scanner) skipNested() {
	depth := 0
	for {
		switch c := s.peek(); {
		case c == eof:
			return
		case c == '{' || c == '[':
			depth++
			s.advance()
		case c == '}' || c == ']':
			depth--
			s.advance()
			if depth <= 0 {
				return
			}
		case c == '"' || c == '\'':
			s.quoted() // errors inside skipped text are not reported
		case s.atComment():
			s.skipToEOL()
		default:
			s.advance()
		}
	}
}

// Size multipliers, by lower-case suffix. As in nats-server, K M G T P E are decimal and the
// forms with B or i are binary: 1K is 1000, 1KB, 1Ki and 1KiB are 1024.
func sizeMultiplier(suffix string) (int64, bool) {
	if len(suffix) == 0 || len(suffix) > 3 {
		return 0, false
	}
	var exp int
	switch suffix[0] | 0x20 {
	case 'k':
		exp = 1
	case 'm':
		exp = 2
	case 'g':
		exp = 3
	case 't':
		exp = 4
	case 'p':
		exp = 5
	case 'e':
		exp = 6
	default:
		return 0, false
	}
	base := int64(1000)
	switch strings.ToLower(suffix[1:]) {
	case "":
	case "b", "i", "ib":
		base = 1024
	default:
		return 0, false
	}
	m := int64(1)
	for range exp {
		m *= base
	}
	return m, true
}

func isDigit(c byte) bool { return c >= '0' && c <= '9' }

// digits returns the index of the first non-digit in w at or after i.
func digits(w string, i int) int {
	for i < len(w) && isDigit(w[i]) {
		i++
	}
	return i
}

// isNumberSuffix reports whether c starts a size suffix to nats-server's lexer (E, exa, too).
func isNumberSuffix(c byte) bool { return strings.IndexByte("kKmMgGtTpPeE", c) >= 0 }

// numberShape is how nats-server's lexer reads a bare word that starts with a digit, '-' or
// '.': an integer (with a size suffix), a float, a string (10s, 3secret, 1e3,
// 127.0.0.1:4222), or an error, with the message to give. Starling reads such words the same
// way, so that a file one server takes the other takes with the same values.
func numberShape(w string) (Kind, string) {
	quote := " (quote it to give it as a string)"
	i := 0
	switch {
	case w[0] == '.':
		return 0, fmt.Sprintf("bad number %q: a number must start with a digit%s", w, quote)
	case w[0] == '-':
		if len(w) == 1 || !isDigit(w[1]) {
			return 0, fmt.Sprintf("bad value %q: a word starting with '-' must be a number%s", w, quote)
		}
		i = 1
	}
	j := digits(w, i)
	if j == len(w) {
		return KindInt, ""
	}
	switch c := w[j]; {
	case c == '-' && i == 0:
		return 0, fmt.Sprintf("bad value %q: digits followed by '-' are read as a date, which no setting takes%s", w, quote)
	case c == '.':
		if j+1 == len(w) || !isDigit(w[j+1]) {
			return 0, fmt.Sprintf("bad number %q: a digit must follow the '.'%s", w, quote)
		}
		k := digits(w, j+1)
		if k == len(w) {
			return KindFloat, ""
		}
		if w[k] == '.' && strings.Trim(w[k:], "0123456789.:-") == "" {
			return KindString, "" // 127.0.0.1, 127.0.0.1:4222
		}
		return 0, fmt.Sprintf("bad number %q: a number with a fraction takes no suffix (write a whole number, as 1500ms for 1.5s, or quote it)", w)
	case isNumberSuffix(c):
		k := j + 1
		for k < len(w) && strings.IndexByte("bBiI", w[k]) >= 0 {
			k++
		}
		if k == len(w) {
			return KindInt, ""
		}
		return KindString, "" // 10ms, 1m30s, 1e3
	case i == 1:
		return 0, fmt.Sprintf("bad number %q: a negative number takes no suffix but a size%s", w, quote)
	}
	return KindString, "" // 10s, 3secret
}

// classify turns a bare word into a scalar Value (without position) as nats-server's lexer
// reads it: a boolean, an integer (with an optional size suffix), a float, or a string; a
// string that is a Go duration (10s, 500ms, 1h30m) is a KindDuration, which reads back as its
// text where a string is expected. A word nats-server's lexer refuses (1.5s, -5s, 2024-01-02,
// -x) gives an error message.
//
// One spelling is ambiguous: a lower-case m is both "mega" and "minutes". 2m classifies as
// the integer 2000000 with Raw "2m", as in nats-server.
func classify(w string) (Value, string) {
	v := Value{Kind: KindString, Str: w, Raw: w}
	switch strings.ToLower(w) {
	case "true", "yes", "on":
		return Value{Kind: KindBool, Bool: true, Raw: w}, ""
	case "false", "no", "off":
		return Value{Kind: KindBool, Raw: w}, ""
	}
	if w == "" || !(isDigit(w[0]) || w[0] == '-' || w[0] == '.') {
		return v, ""
	}
	kind, msg := numberShape(w)
	switch kind {
	case KindInt:
		j := digits(w, strings.IndexFunc(w, func(r rune) bool { return r != '-' }))
		mult := int64(1)
		if j < len(w) {
			m, ok := sizeMultiplier(w[j:])
			if !ok {
				return v, fmt.Sprintf("bad number %q: unknown size suffix %q", w, w[j:])
			}
			mult = m
		}
		n, err := strconv.ParseInt(w[:j], 10, 64)
		if err != nil || n > math.MaxInt64/mult || n < math.MinInt64/mult {
			return v, fmt.Sprintf("bad number %q: out of range", w)
		}
		return Value{Kind: KindInt, Int: n * mult, Raw: w}, ""
	case KindFloat:
		f, err := strconv.ParseFloat(w, 64)
		if err != nil {
			return v, fmt.Sprintf("bad number %q: out of range", w)
		}
		return Value{Kind: KindFloat, Float: f, Raw: w}, ""
	case KindString:
		if d, err := time.ParseDuration(w); err == nil {
			return Value{Kind: KindDuration, Dur: d, Raw: w}, ""
		}
		return v, ""
	}
	return v, msg
}
