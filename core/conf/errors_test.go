package conf

import (
	"errors"
	"io/fs"
	"strings"
	"testing"
)

func TestParseErrors(t *testing.T) {
	files := map[string]string{
		"dir/bad.conf":    "ok: 1\nbroken: \"oops\n",
		"dir/self.conf":   "include self.conf\n",
		"dir/a.conf":      "x: 1\ninclude b.conf\n",
		"dir/b.conf":      "include a.conf\n",
		"dir/undef.conf":  "\n  v: $NOPE\n",
		"dir/usevar.conf": "a: $V\n",
		"/dir/leaf.conf":  "a: 1\n",
	}
	env := map[string]string{"SPACED": "a b", "CYCLE_A": "$CYCLE_B", "CYCLE_B": "$CYCLE_A", "TO_NOWHERE": "$NOWHERE_H"}
	deep := "a: " + strings.Repeat("{b: ", 65) + "1" + strings.Repeat("}", 65) + "\nc: 1"
	deepArr := "a: " + strings.Repeat("[", 70) + strings.Repeat("]", 70) + "\nc: ["
	tests := []struct {
		name, src string
		want      string // all errors, newline-joined
		kind      error  // sentinel of the first error
	}{
		{"unterminated double-quoted string", "a: 1\nb: \"abc\nc: 2",
			`test.conf:2:4: unterminated string: missing closing '"'`, ErrSyntax},
		{"unterminated single-quoted string", "a: 'abc",
			`test.conf:1:4: unterminated string: missing closing "'"`, ErrSyntax},
		{"unterminated quoted key", "\"a: 1",
			`test.conf:1:1: unterminated string: missing closing '"'`, ErrSyntax},
		{"bad escape", `a: "c:\temp\q"`,
			`test.conf:1:12: invalid escape in string (write \\ for a backslash)`, ErrSyntax},
		{"bad unicode escape", `a: "\u12"`,
			`test.conf:1:5: invalid escape in string (write \\ for a backslash)`, ErrSyntax},
		{"unterminated block string", "a: (\nline\n",
			"test.conf:1:4: unterminated block string: missing ')' on a line of its own", ErrSyntax},
		{"unterminated map", "a: 1\nm {\n  b: 2\n",
			"test.conf:2:3: unterminated map: missing '}'", ErrSyntax},
		{"unterminated array", "a: [1, 2\n",
			"test.conf:1:4: unterminated array: missing ']'", ErrSyntax},
		{"unterminated array inside map", "m {\n  a: [1, 2\n}\nb: 1",
			"test.conf:2:6: unterminated array: missing ']'", ErrSyntax},
		{"unterminated map inside array", "a: [{b: 1 ]\nc: 2",
			"test.conf:1:5: unterminated map: missing '}'", ErrSyntax},
		{"missing value at eol", "a: 1\nport:\nb: 2",
			`test.conf:2:1: missing value for key "port"`, ErrSyntax},
		{"missing value at eof", "port =", `test.conf:1:1: missing value for key "port"`, ErrSyntax},
		{"missing value bare key", "debug\n", `test.conf:1:1: missing value for key "debug"`, ErrSyntax},
		{"missing value before brace", "m { a: }", `test.conf:1:5: missing value for key "a"`, ErrSyntax},
		{"missing value before comment", "a: # none", `test.conf:1:1: missing value for key "a"`, ErrSyntax},
		{"bad number out of range", "a: 99999999999999999999",
			`test.conf:1:4: a: bad number "99999999999999999999": out of range`, ErrSyntax},
		{"bad size out of range", "a: 10000000PB",
			`test.conf:1:4: a: bad number "10000000PB": out of range`, ErrSyntax},
		{"bad fractional size", "a: 1.5MB",
			`test.conf:1:4: a: bad number "1.5MB": a number with a fraction takes no suffix (write a whole number, as 1500ms for 1.5s, or quote it)`, ErrSyntax},
		{"bad float", "a: 1.5e999", `test.conf:1:4: a: bad number "1.5e999": a number with a fraction takes no suffix (write a whole number, as 1500ms for 1.5s, or quote it)`, ErrSyntax},
		// Words nats-server's lexer refuses are refused here too.
		{"fractional duration", "t: 1.5s",
			`test.conf:1:4: t: bad number "1.5s": a number with a fraction takes no suffix (write a whole number, as 1500ms for 1.5s, or quote it)`, ErrSyntax},
		{"negative duration", "t: -5s",
			`test.conf:1:4: t: bad number "-5s": a negative number takes no suffix but a size (quote it to give it as a string)`, ErrSyntax},
		{"date", "d: 2024-01-02",
			`test.conf:1:4: d: bad value "2024-01-02": digits followed by '-' are read as a date, which no setting takes (quote it to give it as a string)`, ErrSyntax},
		{"dash", "a: -", `test.conf:1:4: a: bad value "-": a word starting with '-' must be a number (quote it to give it as a string)`, ErrSyntax},
		{"leading dot", "a: .5", `test.conf:1:4: a: bad number ".5": a number must start with a digit (quote it to give it as a string)`, ErrSyntax},
		{"float then junk", "a: 1.2.3x", `test.conf:1:4: a: bad number "1.2.3x": a number with a fraction takes no suffix (write a whole number, as 1500ms for 1.5s, or quote it)`, ErrSyntax},
		{"undefined variable", "a: 1\n  b: $FOO",
			`test.conf:2:6: b: undefined variable "FOO"`, ErrUndefined},
		// nats-server has no ${NAME}: it looks for a variable "{A" and refuses the file.
		{"braced variable", "A: 1\nb: ${A}",
			"test.conf:2:4: b: ${A}: braces around a variable name are not supported (nats-server refuses them): write $A", ErrSyntax},
		// Environment values are read as nats-server reads them, errors named at the reference.
		{"env with spaces", "a: 1\nb: $SPACED",
			`test.conf:2:4: b: environment variable SPACED: unexpected "b" (quote a value that contains spaces) (at character 3 of its value)`, ErrSyntax},
		{"env cycle", "b: $CYCLE_A",
			"test.conf:1:4: b: environment variable CYCLE_A: environment variable CYCLE_B: environment variable CYCLE_A refers back to itself", ErrUndefined},
		{"env undefined inside", "b: $TO_NOWHERE",
			`test.conf:1:4: b: environment variable TO_NOWHERE: undefined variable "NOWHERE_H"`, ErrUndefined},
		// nats-server takes a bare $2a$ hash as written, but looks $2b$ up as a variable.
		{"unquoted 2b bcrypt hash", "pass: $2b$11$abcdef",
			`test.conf:1:7: pass: undefined variable "2b$11$abcdef" (a bcrypt hash other than $2a$ must be quoted)`, ErrUndefined},
		{"variable defined later", "b: $A\nA: 1", `test.conf:1:4: b: undefined variable "A"`, ErrUndefined},
		{"variable in sibling map", "m { A: 1 }\nn { b: $A }", `test.conf:2:8: n.b: undefined variable "A"`, ErrUndefined},
		{"empty variable", "a: $", "test.conf:1:4: missing variable name after '$'", ErrSyntax},
		{"unterminated braced variable", "a: ${X", "test.conf:1:4: unterminated variable reference: missing '}'", ErrSyntax},
		{"undefined variable in include", "include dir/undef.conf",
			`dir/undef.conf:2:6: v: undefined variable "NOPE"`, ErrUndefined},
		{"include not found", "a: 1\ninclude ./missing.conf",
			`test.conf:2:1: include "./missing.conf": file not found`, ErrInclude},
		// nats-server parses an included file on its own: the includer's keys are no
		// variables there.
		{"include sees no outer variable", "V: 1\ninclude dir/usevar.conf",
			`dir/usevar.conf:1:4: a: undefined variable "V"`, ErrUndefined},
		// and it joins even an absolute include path to the including file's directory.
		{"absolute include", "include /dir/leaf.conf",
			`test.conf:1:1: include "/dir/leaf.conf": file not found (looked for dir/leaf.conf: include paths are relative to the including file's directory, absolute ones too, as in nats-server)`, ErrInclude},
		{"include missing name", "include\n", "test.conf:1:1: missing file name after include", ErrSyntax},
		{"error inside include", "x: 1\ninclude \"dir/bad.conf\"",
			`dir/bad.conf:2:9: unterminated string: missing closing '"'`, ErrSyntax},
		{"include self", "include dir/self.conf",
			"dir/self.conf:1:1: include cycle: dir/self.conf -> dir/self.conf", ErrInclude},
		{"include cycle", "include dir/a.conf",
			"dir/b.conf:1:1: include cycle: dir/a.conf -> dir/b.conf -> dir/a.conf", ErrInclude},
		{"include the root", "include test.conf", "test.conf:1:1: include cycle: test.conf -> test.conf", ErrInclude},
		{"nesting too deep (maps)", deep,
			"test.conf:1:260: nesting too deep: more than 64 maps and arrays inside one another", ErrTooDeep},
		{"nesting too deep (arrays) then more", deepArr,
			"test.conf:1:68: nesting too deep: more than 64 maps and arrays inside one another\n" +
				"test.conf:2:4: unterminated array: missing ']'", ErrTooDeep},
		{"stray close brace", "a: 1\n}\nb: 2", "test.conf:2:1: unexpected '}'", ErrSyntax},
		{"stray close bracket", "a: 1 ]", "test.conf:1:6: unexpected ']'", ErrSyntax},
		{"stray brace in array", "a: [1, }, 2]", "test.conf:1:8: unexpected '}' in array", ErrSyntax},
		{"junk after value", "a: hello world\nb: 2",
			`test.conf:1:10: unexpected "world" after the value of "a" (quote a value that contains spaces)`, ErrSyntax},
		{"junk after quoted", `a: "x"y`,
			`test.conf:1:7: unexpected "y" after the value of "a" (quote a value that contains spaces)`, ErrSyntax},
		{"junk in array", "a: [1 2, 3]",
			`test.conf:1:7: unexpected "2" in array: separate elements with ',' or a newline`, ErrSyntax},
		{"no key", ": 1\nb: 2", `test.conf:1:1: expected a key, got ':'`, ErrSyntax},
		{"brace as key", "{a: 1}", `test.conf:1:1: expected a key, got '{'`, ErrSyntax},
		// nats-server reads a byte order mark as part of the first key and refuses the file.
		{"byte order mark", "\xEF\xBB\xBFa: 1\nb: [1",
			"test.conf:1:1: the file starts with a UTF-8 byte order mark (U+FEFF), which nats-server refuses: save it without one\n" +
				"test.conf:2:4: unterminated array: missing ']'", ErrSyntax},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m, err := Parse("test.conf", []byte(tc.src), memFS(files, env))
			if err == nil {
				t.Fatalf("Parse(%q) = %s, want error", tc.src, dumpMap(m))
			}
			if m != nil {
				t.Errorf("Parse returned a map with an error")
			}
			if got := err.Error(); got != tc.want {
				t.Errorf("Parse(%q) error:\n got %s\nwant %s", tc.src, got, tc.want)
			}
			var es Errors
			if !errors.As(err, &es) || len(es) == 0 {
				t.Fatalf("error is %T, want non-empty Errors", err)
			}
			if !errors.Is(es[0], tc.kind) {
				t.Errorf("first error %v does not wrap %v", es[0], tc.kind)
			}
		})
	}
}

func TestIncludeNotFoundWrapsIOError(t *testing.T) {
	_, err := Parse("x.conf", []byte("include nope.conf"), memFS(nil, nil))
	if !errors.Is(err, fs.ErrNotExist) || !errors.Is(err, ErrInclude) {
		t.Errorf("err = %v: want both fs.ErrNotExist and ErrInclude", err)
	}
	var pe *fs.PathError
	if !errors.As(err, &pe) {
		t.Errorf("err = %v: want a *fs.PathError inside", err)
	}
}

// TestMultipleErrors checks that one parse reports every problem, each at its own place,
// and that good entries around bad ones do not produce errors of their own.
func TestMultipleErrors(t *testing.T) {
	src := `a: 1
b: "unterminated
c: 2
d:
e: 99999999999999999999
f { g: [1, 2 }
h: $UNDEF
}
i: hello world, j: 3
k: 1.5h
tls { cert: "x" key: "y" }
l: ok
`
	_, err := Parse("many.conf", []byte(src), memFS(nil, nil))
	want := strings.Join([]string{
		`many.conf:2:4: unterminated string: missing closing '"'`,
		`many.conf:4:1: missing value for key "d"`,
		`many.conf:5:4: e: bad number "99999999999999999999": out of range`,
		`many.conf:6:8: unterminated array: missing ']'`,
		`many.conf:7:4: h: undefined variable "UNDEF"`,
		`many.conf:8:1: unexpected '}'`,
		`many.conf:9:10: unexpected "world" after the value of "i" (quote a value that contains spaces)`,
		`many.conf:10:4: k: bad number "1.5h": a number with a fraction takes no suffix (write a whole number, as 1500ms for 1.5s, or quote it)`,
		`many.conf:11:17: unexpected "key:" after the value of "cert" (quote a value that contains spaces)`,
	}, "\n")
	if err == nil || err.Error() != want {
		t.Errorf("errors:\n%v\nwant:\n%s", err, want)
	}
}

func TestTooManyErrors(t *testing.T) {
	src := strings.Repeat("a: $X\n", 500)
	_, err := Parse("t.conf", []byte(src), memFS(nil, nil))
	var es Errors
	if !errors.As(err, &es) {
		t.Fatalf("err = %v", err)
	}
	if len(es) != maxErrors+1 {
		t.Fatalf("%d errors, want %d", len(es), maxErrors+1)
	}
	if last := es[len(es)-1]; last.Msg != "too many errors" || !errors.Is(last, ErrTooDeep) {
		t.Errorf("last error = %v", last)
	}
}

func TestErrorFormatting(t *testing.T) {
	es := Errors{
		{Pos: Pos{"a.conf", 1, 2}, Msg: "one"},
		{Pos: Pos{"", 3, 4}, Msg: "two"},
	}
	if got := es.Error(); got != "a.conf:1:2: one\n3:4: two" {
		t.Errorf("Errors.Error() = %q", got)
	}
}

// TestTooDeepSkipsWholeValue checks that input nested beyond the limit is skipped as one
// value, brackets inside strings and comments included, and parsing goes on after it.
func TestTooDeepSkipsWholeValue(t *testing.T) {
	src := "a: " + strings.Repeat("[", 65) + "\"]]\" # ]]]\n 'x}' " + strings.Repeat("]", 65) + "\nb: $NOPE\nc: 1"
	_, err := Parse("t.conf", []byte(src), memFS(nil, nil))
	want := "t.conf:1:68: nesting too deep: more than 64 maps and arrays inside one another\n" +
		`t.conf:3:4: b: undefined variable "NOPE"`
	if err == nil || err.Error() != want {
		t.Errorf("err:\n%v\nwant:\n%s", err, want)
	}
}

func TestIncludeReadError(t *testing.T) {
	opts := Options{ReadFile: func(name string) ([]byte, error) {
		return nil, &fs.PathError{Op: "open", Path: name, Err: fs.ErrPermission}
	}}
	_, err := Parse("x.conf", []byte("\ninclude secret.conf"), opts)
	want := `x.conf:2:1: include "secret.conf": open secret.conf: permission denied`
	if err == nil || err.Error() != want || !errors.Is(err, fs.ErrPermission) {
		t.Errorf("err = %v, want %s", err, want)
	}
}
