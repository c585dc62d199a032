package conf

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"testing"
	"time"
)

func TestParseConstructs(t *testing.T) {
	env := map[string]string{"HOME_DIR": "/home/x", "PORT": "4222", "FLAG": "yes", "QUOTED": `"a b"`,
		"LIST": "[x, 2]", "MAP": "{a: 1}", "INDIRECT": "$PORT", "COMMENTED": "7 # seven\nother: 1", "BLANK": " "}
	tests := []struct {
		name, src, want string
	}{
		{"empty", "", "{}"},
		{"only comments", "# a\n// b\n   # c", "{}"},
		{"colon", "a: 1", "{a=i:1}"},
		{"equals", "a = 1", "{a=i:1}"},
		{"whitespace", "a 1", "{a=i:1}"},
		{"tab separator", "a\t1", "{a=i:1}"},
		{"no space after colon", "a:1", "{a=i:1}"},
		{"quoted key", `"a b": 1`, `{a b=i:1}`},
		{"single-quoted key", `'a:b' = 1`, `{a:b=i:1}`},
		{"newline separated", "a: 1\nb: 2\n", "{a=i:1, b=i:2}"},
		{"comma separated", "a: 1, b: 2", "{a=i:1, b=i:2}"},
		{"semicolon separated", "a: 1; b: 2;", "{a=i:1, b=i:2}"},
		{"crlf", "a: 1\r\nb: x\r\n", `{a=i:1, b="x"}`},
		{"trailing comment", "a: 1 # one\nb: 2 // two", "{a=i:1, b=i:2}"},
		{"comment right after value", "a: x#y", `{a="x#y"}`},

		{"double-quoted", `a: "hello world"`, `{a="hello world"}`},
		{"escapes", `a: "t\tn\nr\rq\"b\\s\/"`, `{a="t\tn\nr\rq\"b\\s/"}`},
		{"unicode escape", `a: "\u00e9\x41"`, `{a="éA"}`},
		{"single-quoted raw", `a: 'c:\temp\n'`, `{a="c:\\temp\\n"}`},
		{"quoted keeps dollar", `a: "$2a$11$abc"`, `{a="$2a$11$abc"}`},
		// As nats-server: a bare $2a$ word is a bcrypt hash, not a variable, even where a
		// variable of that name could be looked up.
		{"bare 2a bcrypt hash", "a: $2a$11$UHR7lIUuPz6wgyx9ngBvQOHvFu8g./SXLH//I4sBvyAKg5vPMWWBu\nb: 2",
			`{a="$2a$11$UHR7lIUuPz6wgyx9ngBvQOHvFu8g./SXLH//I4sBvyAKg5vPMWWBu", b=i:2}`},
		{"bare 2a bcrypt hash in a map", "m { u: a, p: $2a$10$x }", `{m={u="a", p="$2a$10$x"}}`},
		{"quoted keeps hash", `a: "x # y"`, `{a="x # y"}`},
		{"empty string", `a: ""`, `{a=""}`},
		{"block string", "a: (\nline one\n  line two\n)\nb: 1", `{a="line one\n  line two", b=i:1}`},
		{"block string indented close", "a: (\nx)y\n  )  \n", `{a="x)y"}`},
		{"empty block string", "a: (\n)", `{a=""}`},

		{"bare string", "a: hello", `{a="hello"}`},
		{"bare ip", "host: 127.0.0.1", `{host="127.0.0.1"}`},
		{"bare host port", "listen: 0.0.0.0:4222", `{listen="0.0.0.0:4222"}`},
		{"bare url", "url: nats://a:4222", `{url="nats://a:4222"}`},
		{"bare url comment", "url: nats://a:4222 // c", `{url="nats://a:4222"}`},
		{"digit-led string", "token: 3secret", `{token="3secret"}`},
		{"digit-led words", "a: 1h30\nb: 5ss\nc: 1e999\nd: 12abc", `{a="1h30", b="5ss", c="1e999", d="12abc"}`},
		{"exa", "a: 1E\nb: 1eb", "{a=i:1000000000000000000, b=i:1152921504606846976}"},

		{"bools", "a: true\nb: FALSE\nc: yes\nd: No\ne: on\nf: OFF",
			"{a=true, b=false, c=true, d=false, e=true, f=false}"},
		{"ints", "a: 0\nb: -12\nc: 00123\nd: 9223372036854775807", "{a=i:0, b=i:-12, c=i:123, d=i:9223372036854775807}"},
		{"floats", "a: 2.5\nb: -0.5\nc: 1e3", `{a=f:2.5, b=f:-0.5, c="1e3"}`},
		{"decimal sizes", "a: 1K\nb: 2k\nc: 1M\nd: 1G\ne: 1T\nf: 1P",
			"{a=i:1000, b=i:2000, c=i:1000000, d=i:1000000000, e=i:1000000000000, f=i:1000000000000000}"},
		{"binary sizes", "a: 1KB\nb: 1kb\nc: 2MB\nd: 1mb\ne: 1GB\nf: 1TB\ng: 1KiB\nh: 1Mi\ni: -1MB",
			"{a=i:1024, b=i:1024, c=i:2097152, d=i:1048576, e=i:1073741824, f=i:1099511627776, g=i:1024, h=i:1048576, i=i:-1048576}"},
		{"m is mega", "a: 2m", "{a=i:2000000}"},
		{"durations", "a: 10s\nb: 500ms\nc: 1h30m\nd: -5ms\nf: 2us\nh: 3µs",
			"{a=d:10s, b=d:500ms, c=d:1h30m0s, d=d:-5ms, f=d:2µs, h=d:3µs}"},
		{"quoted duration stays string", `a: "30s"`, `{a="30s"}`},

		{"map", "m { a: 1, b: two }", `{m={a=i:1, b="two"}}`},
		{"map with colon", "m: {a: 1}", `{m={a=i:1}}`},
		{"map with equals", "m = {a: 1}", `{m={a=i:1}}`},
		{"map no space", "m{a:1}", `{m={a=i:1}}`},
		{"map multiline", "m {\n  a: 1\n  b: 2\n}\nc: 3", `{m={a=i:1, b=i:2}, c=i:3}`},
		{"empty map", "m {}", "{m={}}"},
		{"nested maps", "a { b { c { d: 1 } } }", "{a={b={c={d=i:1}}}}"},
		{"map closes bare value", "m {a: x}", `{m={a="x"}}`},

		{"array", "a: [1, 2, 3]", "{a=[i:1, i:2, i:3]}"},
		{"array trailing comma", "a: [1, 2,]", "{a=[i:1, i:2]}"},
		{"array newlines", "a: [\n  1\n  2 # two\n  3,\n]", "{a=[i:1, i:2, i:3]}"},
		{"empty array", "a: []", "{a=[]}"},
		{"array of mixed", `a: [x, "y", 1.5, true, 1s]`, `{a=["x", "y", f:1.5, true, d:1s]}`},
		{"array of maps", "a: [{b: 1}, {c: 2}]", "{a=[{b=i:1}, {c=i:2}]}"},
		{"array of maps by newline", "a: [\n  {b: 1}\n  {c: 2}\n]", "{a=[{b=i:1}, {c=i:2}]}"},
		{"nested arrays", "a: [[1], [2, [3]]]", "{a=[[i:1], [i:2, [i:3]]]}"},
		{"array closes bare url", "r: [nats://h:1]", `{r=["nats://h:1"]}`},

		{"variable", "A: 1\nb: $A", "{A=i:1, b=i:1}"},
		{"variable map", "A { x: 1 }\nb: $A", "{A={x=i:1}, b={x=i:1}}"},
		{"variable in array", "A: 1\nb: [$A, 2]", "{A=i:1, b=[i:1, i:2]}"},
		{"variable from enclosing map", "A: 1\nm { n { b: $A } }", "{A=i:1, m={n={b=i:1}}}"},
		{"inner scope shadows", "A: 1\nm { A: 2, b: $A }\nc: $A", "{A=i:1, m={A=i:2, b=i:2}, c=i:1}"},
		{"sibling scope invisible", "m { HOME_DIR: 2 }\nb: $HOME_DIR", `{m={HOME_DIR=i:2}, b="/home/x"}`},
		{"variable redefined", "A: 1\nA: 2\nb: $A", "{A=i:2, b=i:2}"},
		{"self name uses outer", "A: 1\nm { A: $A }", "{A=i:1, m={A=i:1}}"},
		{"env string", "h: $HOME_DIR", `{h="/home/x"}`},
		{"env int", "p: $PORT", "{p=i:4222}"},
		{"env bool", "f: $FLAG", "{f=true}"},
		// An environment value is read as nats-server reads it: as the value of an entry.
		{"env quoted", "s: $QUOTED", `{s="a b"}`},
		{"env list", "r: $LIST", `{r=["x", i:2]}`},
		{"env map", "m: $MAP", `{m={a=i:1}}`},
		{"env refers to env", "p: $INDIRECT", "{p=i:4222}"},
		{"env comment and next line", "c: $COMMENTED", "{c=i:7}"},
		{"env blank", "e: $BLANK", `{e=""}`},

		{"duplicate last wins", "a: 1\nb: 2\na: 3", "{a=i:3, b=i:2}"},
		{"key named include", "include: 5", "{include=i:5}"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m := mustParse(t, tc.src, memFS(nil, env))
			if got := dumpMap(m); got != tc.want {
				t.Errorf("Parse(%q)\n got %s\nwant %s", tc.src, got, tc.want)
			}
		})
	}
}

const example = `# Starling
listen: 0.0.0.0:4222
http: 8222
server_name: "s1"
max_payload: 2MB
ping_interval: "30s"
write_deadline = 5s
debug = true
authorization {
  timeout: 2.5
  users = [
    {user: alice, password: "$2a$11$WGlHVTDa2Hp7kqTi1Q8y1OXkrZ2QJY8Yzk7pJz0DhWx1t4d0Bx8n6", permissions: {
      publish: { allow: ["orders.>", "_INBOX.>"], deny: "orders.secret" }
      subscribe = ["events.*", "work.* workers"]
      allow_responses: { max: 5, expires: "1m" }
    }}
    {nkey: UDXU4RCSJNZOIQHZNWXHXORDPRTGNJAHAHFRGZNEEJCPQTT2M7NLCNF4}
  ]
}
PASS: secret
tls { cert_file: "./certs/server.pem"; key_file: './certs/key.pem' }
cluster { name: c1, listen: 127.0.0.1:6222, routes: [nats-route://127.0.0.1:6223] }
token_user { token: $PASS }
`

func TestParseExample(t *testing.T) {
	m := mustParse(t, example, memFS(nil, nil))
	want := `{listen="0.0.0.0:4222", http=i:8222, server_name="s1", max_payload=i:2097152, ` +
		`ping_interval="30s", write_deadline=d:5s, debug=true, authorization={timeout=f:2.5, users=[` +
		`{user="alice", password="$2a$11$WGlHVTDa2Hp7kqTi1Q8y1OXkrZ2QJY8Yzk7pJz0DhWx1t4d0Bx8n6", permissions={` +
		`publish={allow=["orders.>", "_INBOX.>"], deny="orders.secret"}, subscribe=["events.*", "work.* workers"], ` +
		`allow_responses={max=i:5, expires="1m"}}}, {nkey="UDXU4RCSJNZOIQHZNWXHXORDPRTGNJAHAHFRGZNEEJCPQTT2M7NLCNF4"}]}, ` +
		`PASS="secret", tls={cert_file="./certs/server.pem", key_file="./certs/key.pem"}, ` +
		`cluster={name="c1", listen="127.0.0.1:6222", routes=["nats-route://127.0.0.1:6223"]}, token_user={token="secret"}}`
	if got := dumpMap(m); got != want {
		t.Errorf("example:\n got %s\nwant %s", got, want)
	}
	e, _ := m.Get("PASS")
	if !e.Referenced {
		t.Error("PASS is used as $PASS but not marked Referenced")
	}
	if e, _ := m.Get("debug"); e.Referenced {
		t.Error("debug marked Referenced")
	}

	// What the mapping code will do with it.
	e, _ = m.Get("max_payload")
	if n, err := e.AsSize(); err != nil || n != 2<<20 {
		t.Errorf("max_payload = %d, %v", n, err)
	}
	e, _ = m.Get("ping_interval")
	if d, err := e.AsSeconds(); err != nil || d != 30*time.Second {
		t.Errorf("ping_interval = %v, %v", d, err)
	}
	e, _ = lookup(t, m, "authorization.timeout")
	if d, err := e.AsTimeout(); err != nil || d != 2500*time.Millisecond {
		t.Errorf("timeout = %v, %v", d, err)
	}
	e, _ = lookup(t, m, "authorization.users.0.permissions.publish.deny")
	if s, err := e.AsStrings(); err != nil || len(s) != 1 || s[0] != "orders.secret" {
		t.Errorf("deny = %q, %v", s, err)
	}
	e, _ = lookup(t, m, "authorization.users.0.permissions.allow_responses.expires")
	if d, err := e.AsDuration(); err != nil || d != time.Minute {
		t.Errorf("expires = %v, %v", d, err)
	}
}

func TestPositions(t *testing.T) {
	src := "a: 1\n" + // line 1
		"  bb = \"x\"\n" + // line 2
		"m {\n" + // line 3
		"\tc: [1,\n" + // line 4
		"      {d: true}]\n" + // line 5
		"}\n" + // line 6
		"e: $a\n" + // line 7
		"a: 2 # again\n" // line 8
	m := mustParse(t, src, memFS(nil, nil))
	tests := []struct {
		path                string
		keyLine, keyCol     int
		valueLine, valueCol int
	}{
		{"a", 8, 1, 8, 4}, // duplicate: the last definition's positions
		{"bb", 2, 3, 2, 8},
		{"m", 3, 1, 3, 3},
		{"m.c", 4, 2, 4, 5},
		{"e", 7, 1, 7, 4}, // a variable's value is positioned at the reference
	}
	for _, tc := range tests {
		e, v := lookup(t, m, tc.path)
		if got := e.KeyPos; got != (Pos{"test.conf", tc.keyLine, tc.keyCol}) {
			t.Errorf("%s: key at %v, want %d:%d", tc.path, got, tc.keyLine, tc.keyCol)
		}
		if got := v.Pos; got != (Pos{"test.conf", tc.valueLine, tc.valueCol}) {
			t.Errorf("%s: value at %v, want %d:%d", tc.path, got, tc.valueLine, tc.valueCol)
		}
	}
	_, c := lookup(t, m, "m.c")
	if got := c.Array[1].Pos; got != (Pos{"test.conf", 5, 7}) {
		t.Errorf("m.c[1] at %v, want 5:7", got)
	}
	if got := c.Array[1].Map.Entries["d"].KeyPos; got != (Pos{"test.conf", 5, 8}) {
		t.Errorf("m.c[1].d at %v, want 5:8", got)
	}
	if got := fmt.Sprint(m.Keys); got != "[a bb m e]" {
		t.Errorf("Keys = %s, want first-appearance order [a bb m e]", got)
	}
	if got := (Pos{"f.conf", 3, 7}).String(); got != "f.conf:3:7" {
		t.Errorf("Pos.String = %q", got)
	}
}

func TestInclude(t *testing.T) {
	files := map[string]string{
		"conf/main.conf":       "a: 1\ninclude ./auth.conf\nm {\n  include 'sub/inner.conf'\n}\nz: $FROM_AUTH",
		"conf/auth.conf":       "# auth\nFROM_AUTH: 7\nauthorization {\n  token: $TOKEN\n}\n",
		"conf/sub/inner.conf":  "\n  x: $TOKEN_LEN\n  include \"deeper.conf\"",
		"conf/sub/deeper.conf": "y: yes",
	}
	opts := memFS(files, map[string]string{"TOKEN": "s3cr3t", "TOKEN_LEN": "1"})
	m, err := ParseFile("conf/main.conf", opts)
	if err != nil {
		t.Fatal(err)
	}
	want := `{a=i:1, FROM_AUTH=i:7, authorization={token="s3cr3t"}, m={x=i:1, y=true}, z=i:7}`
	if got := dumpMap(m); got != want {
		t.Errorf("got  %s\nwant %s", got, want)
	}
	// Positions inside included files name those files.
	for _, tc := range []struct {
		path string
		pos  Pos
	}{
		{"FROM_AUTH", Pos{"conf/auth.conf", 2, 1}},
		{"authorization.token", Pos{"conf/auth.conf", 4, 3}},
		{"m.x", Pos{"conf/sub/inner.conf", 2, 3}},
		{"m.y", Pos{"conf/sub/deeper.conf", 1, 1}},
		{"z", Pos{"conf/main.conf", 6, 1}},
	} {
		if e, _ := lookup(t, m, tc.path); e.KeyPos != tc.pos {
			t.Errorf("%s at %v, want %v", tc.path, e.KeyPos, tc.pos)
		}
	}
}

func TestParseFileOnDisk(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "main.conf"), []byte("include inc.conf\nport: 4222\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "inc.conf"), []byte("host: localhost\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	m, err := ParseFile(filepath.Join(dir, "main.conf"), Options{})
	if err != nil {
		t.Fatal(err)
	}
	if got := dumpMap(m); got != `{host="localhost", port=i:4222}` {
		t.Errorf("got %s", got)
	}
	if _, err := ParseFile(filepath.Join(dir, "missing.conf"), Options{}); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("missing file: err = %v, want fs.ErrNotExist", err)
	}
}

func TestIncludeDepthLimit(t *testing.T) {
	files := map[string]string{}
	// f0 includes f1 ... f11: depth 10 is allowed, 11 is not.
	for i := 0; i <= 11; i++ {
		files[fmt.Sprintf("d/f%d.conf", i)] = fmt.Sprintf("k%d: 1\ninclude f%d.conf\n", i, i+1)
	}
	files["d/f11.conf"] = "k11: 1\n"
	_, err := ParseFile("d/f0.conf", memFS(files, nil))
	want := "d/f10.conf:2:1: include \"f11.conf\": includes nested more than 10 deep"
	if err == nil || err.Error() != want {
		t.Errorf("err = %v\nwant %s", err, want)
	}
	delete(files, "d/f11.conf")
	files["d/f10.conf"] = "k10: 1\n"
	if _, err := ParseFile("d/f0.conf", memFS(files, nil)); err != nil {
		t.Errorf("10 levels: %v", err)
	}
}

func TestDeepNestingAllowedToLimit(t *testing.T) {
	src := "a: "
	for range maxDepth {
		src += "["
	}
	for range maxDepth {
		src += "]"
	}
	if _, err := Parse("x", []byte(src), Options{}); err != nil {
		t.Errorf("%d levels: %v", maxDepth, err)
	}
}

func TestGetCaseInsensitive(t *testing.T) {
	m := mustParse(t, "Max_Payload: 1\nmax_payload: 2\nDEBUG: true", Options{})
	if e, ok := m.Get("max_payload"); !ok || e.Value.Int != 2 {
		t.Errorf("exact match: %v %v", e, ok)
	}
	if e, ok := m.Get("debug"); !ok || !e.Value.Bool {
		t.Errorf("case-insensitive match: %v %v", e, ok)
	}
	if _, ok := m.Get("nope"); ok {
		t.Error("found missing key")
	}
	var nilMap *Map
	if _, ok := nilMap.Get("x"); ok {
		t.Error("nil map")
	}
}

func TestIncludeTotalLimit(t *testing.T) {
	files := map[string]string{}
	for i := range 10 {
		files[fmt.Sprintf("f%d.conf", i)] = fmt.Sprintf("include f%d.conf\ninclude f%d.conf\n", i+1, i+1)
	}
	files["f10.conf"] = "x: 1\n"
	_, err := ParseFile("f0.conf", memFS(files, nil))
	var es Errors
	if !errors.As(err, &es) || !errors.Is(es[0], ErrTooDeep) ||
		es[0].Msg != `include "f10.conf": more than 1000 includes in all` {
		t.Errorf("err = %v", err)
	}
}

// Environment values that refer to one another fan out: their number is bounded.
func TestEnvExpansionBounded(t *testing.T) {
	env := map[string]string{}
	for i := range 20 {
		env[fmt.Sprintf("E%d", i)] = fmt.Sprintf("[$E%d, $E%d]", i+1, i+1)
	}
	env["E20"] = "1"
	_, err := Parse("x.conf", []byte("a: $E0\n"), memFS(nil, env))
	var es Errors
	if !errors.As(err, &es) || !errors.Is(es[0], ErrTooDeep) {
		t.Fatalf("got %v, want a too-deep error", err)
	}
}
