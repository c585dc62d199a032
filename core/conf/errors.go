package conf

import (
	"errors"
	"fmt"
	"strings"
)

// Every *Error from Parse, ParseFile and the Entry.As* helpers wraps one of these sentinels,
// so callers can tell the kinds apart with errors.Is without parsing messages.
var (
	// ErrSyntax marks text that is not valid configuration: an unterminated string, map or
	// array, a key without a value, a stray '}' or ']', a bad escape, a malformed number or
	// duration. The file's author is at fault.
	ErrSyntax = errors.New("conf: syntax error")
	// ErrUndefined marks a $variable that names neither an earlier key in scope nor an
	// environment variable.
	ErrUndefined = errors.New("conf: undefined variable")
	// ErrInclude marks an include that could not be followed: the file is missing or
	// unreadable (the I/O error is wrapped as well), or it would close a cycle.
	ErrInclude = errors.New("conf: bad include")
	// ErrTooDeep marks input beyond the parser's structural limits: maps and arrays nested
	// more than 64 deep, includes nested more than 10 deep or more than 1000 in all, or more
	// than 100 errors.
	ErrTooDeep = errors.New("conf: nested too deep")
	// ErrType marks a value of the wrong type for its key, reported by the Entry.As* helpers.
	ErrType = errors.New("conf: wrong value type")
)

// Pos is a position in a configuration file. Line and Col are 1-based; Col counts bytes, as
// the Go toolchain does, so a tab or a multi-byte character counts as its byte length.
type Pos struct {
	File      string
	Line, Col int
}

// String returns "file:line:col", or "line:col" when the file has no name.
func (p Pos) String() string {
	if p.File == "" {
		return fmt.Sprintf("%d:%d", p.Line, p.Col)
	}
	return fmt.Sprintf("%s:%d:%d", p.File, p.Line, p.Col)
}

// Error is one problem at one position. Err, when set, is what it wraps: one of the ErrX
// sentinels, and for an unreadable include also the I/O error.
type Error struct {
	Pos Pos
	Msg string
	Err error
}

// Error returns "file:line:col: msg".
func (e *Error) Error() string { return e.Pos.String() + ": " + e.Msg }

// Unwrap returns the wrapped sentinel (and cause), for errors.Is and errors.As.
func (e *Error) Unwrap() error { return e.Err }

// Errors is every problem found in one parse, in the order found. Parse and ParseFile return
// a non-empty Errors, never a bare *Error, so one type assertion serves callers.
type Errors []*Error

// Error returns one "file:line:col: msg" line per error.
func (es Errors) Error() string {
	var b strings.Builder
	for i, e := range es {
		if i > 0 {
			b.WriteByte('\n')
		}
		b.WriteString(e.Error())
	}
	return b.String()
}

// Unwrap returns the errors as a slice, so errors.Is and errors.As look into each.
func (es Errors) Unwrap() []error {
	out := make([]error, len(es))
	for i, e := range es {
		out[i] = e
	}
	return out
}
