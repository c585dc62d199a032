package conf

import (
	"errors"
	"fmt"
	"io/fs"
	"math"
	"testing"
	"time"
)

const helperSrc = `s: abc
q: "1MB"
n: 42
size: 2MB
m2: 2m
f: 2.5
b: on
qb: "TRUE"
d: 1500ms
qd: "2m"
qn: "30"
sec: 5
huge: 9223372036854775807
pw: 000123
obj { x: 1 }
arr: [a, 1, true]
bad_arr: [a, {x: 1}]
nan: (
not a number
)
strs: [a, "1", 10s]
`

func TestEntryHelpers(t *testing.T) {
	m := mustParse(t, helperSrc, Options{})
	get := func(key string) *Entry {
		e, ok := m.Get(key)
		if !ok {
			t.Fatalf("no key %q", key)
		}
		return e
	}
	type result struct {
		v   any
		err string
	}
	call := func(v any, err error) result {
		if err != nil {
			return result{nil, err.Error()}
		}
		return result{v, ""}
	}
	tests := []struct {
		name string
		got  result
		want result
	}{
		{"AsString string", call(get("s").AsString()), result{"abc", ""}},
		// nats-server and nats-streaming-server refuse a number or a boolean for a string
		// (it was taken as written, password: 0123 as "0123"); a bare duration is a string to
		// them.
		{"AsString int", call(get("pw").AsString()), result{nil, `test.conf:14:1: pw: expected a string, got integer 000123 (quote it to give it as a string: "000123")`}},
		{"AsString float", call(get("f").AsString()), result{nil, `test.conf:6:1: f: expected a string, got float 2.5 (quote it to give it as a string: "2.5")`}},
		{"AsString bool", call(get("b").AsString()), result{nil, `test.conf:7:1: b: expected a string, got boolean on (quote it to give it as a string: "on")`}},
		{"AsString quoted int", call(get("qn").AsString()), result{"30", ""}},
		{"AsString duration as written", call(get("d").AsString()), result{"1500ms", ""}},
		{"AsString map", call(get("obj").AsString()), result{nil, "test.conf:15:1: obj: expected a string, got map"}},

		{"AsInt int", call(get("n").AsInt()), result{int64(42), ""}},
		{"AsInt size", call(get("size").AsInt()), result{int64(2 << 20), ""}},
		{"AsInt quoted size", call(get("q").AsInt()), result{int64(1 << 20), ""}},
		{"AsInt float", call(get("f").AsInt()), result{nil, "test.conf:6:1: f: expected an integer, got float 2.5"}},
		{"AsSize string", call(get("s").AsSize()), result{nil, `test.conf:1:1: s: expected a size, got string "abc"`}},
		{"AsSize array", call(get("arr").AsSize()), result{nil, "test.conf:16:1: arr: expected a size, got array"}},

		{"AsBool bare", call(get("b").AsBool()), result{true, ""}},
		{"AsBool quoted", call(get("qb").AsBool()), result{true, ""}},
		{"AsBool int", call(get("n").AsBool()), result{nil, "test.conf:3:1: n: expected a boolean, got integer 42"}},

		{"AsFloat float", call(get("f").AsFloat()), result{2.5, ""}},
		{"AsFloat int", call(get("n").AsFloat()), result{42.0, ""}},
		{"AsFloat bool", call(get("b").AsFloat()), result{nil, "test.conf:7:1: b: expected a number, got boolean on"}},

		{"AsDuration bare", call(get("d").AsDuration()), result{1500 * time.Millisecond, ""}},
		{"AsDuration quoted", call(get("qd").AsDuration()), result{2 * time.Minute, ""}},
		// nats-server and nats-streaming-server take only a string where a duration is
		// expected (lame_duck_duration, hb_interval): a bare 2m is the number 2000000 to them.
		{"AsDuration bare 2m", call(get("m2").AsDuration()), result{nil, `test.conf:5:1: m2: expected a duration, got integer 2m (a bare 2m is the number 2000000, as in nats-server: write "2m")`}},
		{"AsDuration int", call(get("sec").AsDuration()), result{nil, `test.conf:12:1: sec: expected a duration, got integer 5 (write it with a unit: "5s")`}},
		{"AsDuration quoted int", call(get("qn").AsDuration()), result{nil, `test.conf:11:1: qn: expected a duration, got string "30" (write it with a unit: "30s")`}},
		{"AsDuration float", call(get("f").AsDuration()), result{nil, `test.conf:6:1: f: expected a duration, got float 2.5 (write it with a unit: "2.5s")`}},
		{"AsDuration size", call(get("size").AsDuration()), result{nil, "test.conf:4:1: size: expected a duration, got integer 2MB"}},
		// nats-server's ping_interval and write_deadline: a whole number is seconds, after
		// its size suffix (2m: 2000000 s); a fraction or a quoted number is refused.
		{"AsSeconds int", call(get("sec").AsSeconds()), result{5 * time.Second, ""}},
		{"AsSeconds bare 2m", call(get("m2").AsSeconds()), result{nil, `test.conf:5:1: m2: expected a duration, got integer 2m (a bare 2m is the number 2000000, as in nats-server: write "2m")`}},
		{"AsTimeout bare 2m", call(get("m2").AsTimeout()), result{nil, `test.conf:5:1: m2: expected a duration, got integer 2m (a bare 2m is the number 2000000, as in nats-server: write "2m")`}},
		{"AsSeconds quoted", call(get("qd").AsSeconds()), result{2 * time.Minute, ""}},
		{"AsSeconds float", call(get("f").AsSeconds()), result{nil, `test.conf:6:1: f: expected a duration or a whole number of seconds, got float 2.5 (write it with a unit: "2.5s")`}},
		{"AsSeconds quoted int", call(get("qn").AsSeconds()), result{nil, `test.conf:11:1: qn: expected a duration, got string "30" (write it with a unit: "30s")`}},
		{"AsSeconds overflow", call(get("huge").AsSeconds()), result{nil, "test.conf:13:1: huge: expected a duration, got integer 9223372036854775807 (write it with a unit: \"9223372036854775807s\")"}},
		// nats-server's authorization and tls timeouts: any number of seconds.
		{"AsTimeout float", call(get("f").AsTimeout()), result{2500 * time.Millisecond, ""}},
		{"AsTimeout int", call(get("sec").AsTimeout()), result{5 * time.Second, ""}},
		{"AsTimeout bare", call(get("d").AsTimeout()), result{1500 * time.Millisecond, ""}},
		{"AsTimeout string", call(get("s").AsTimeout()), result{nil, `test.conf:1:1: s: expected a duration, got string "abc"`}},
		{"AsDuration string", call(get("s").AsDuration()), result{nil, `test.conf:1:1: s: expected a duration, got string "abc"`}},

		{"AsMap", call(get("obj").AsMap()), result{"{x=i:1}", ""}},
		{"AsMap string", call(get("s").AsMap()), result{nil, `test.conf:1:1: s: expected a map, got string "abc"`}},
		{"AsArray", call(get("arr").AsArray()), result{3, ""}},
		{"AsArray map", call(get("obj").AsArray()), result{nil, "test.conf:15:1: obj: expected an array, got map"}},

		{"AsStrings single", call(get("s").AsStrings()), result{"[abc]", ""}},
		{"AsStrings array", call(get("strs").AsStrings()), result{"[a 1 10s]", ""}},
		{"AsStrings int element", call(get("arr").AsStrings()), result{nil, `test.conf:16:10: arr[1]: expected a string, got integer 1 (quote it to give it as a string: "1")`}},
		{"AsStrings int", call(get("n").AsStrings()), result{nil, `test.conf:3:1: n: expected a string or an array of strings, got integer 42 (quote it to give it as a string: "42")`}},
		{"AsStrings map element", call(get("bad_arr").AsStrings()), result{nil, "test.conf:17:14: bad_arr[1]: expected a string, got map"}},
		{"AsStrings map", call(get("obj").AsStrings()), result{nil, "test.conf:15:1: obj: expected a string or an array of strings, got map"}},
		{"AsStrings block", call(get("nan").AsStrings()), result{"[not a number]", ""}},
	}
	for _, tc := range tests {
		got := tc.got
		switch v := got.v.(type) { // render composite results comparably
		case *Map:
			got.v = dumpMap(v)
		case []*Value:
			got.v = len(v)
		case []string:
			got.v = fmt.Sprint(v)
		}
		if got != tc.want {
			t.Errorf("%s: got (%v, %q), want (%v, %q)", tc.name, got.v, got.err, tc.want.v, tc.want.err)
		}
	}

	_, err := get("s").AsInt()
	if !errors.Is(err, ErrType) {
		t.Errorf("type mismatch %v does not wrap ErrType", err)
	}
}

func TestEntryErrorf(t *testing.T) {
	m := mustParse(t, "\n  port: 70000", Options{})
	e, _ := m.Get("port")
	err := e.Errorf("port %d out of range (max %d)", e.Value.Int, math.MaxUint16)
	if got := err.Error(); got != "test.conf:2:3: port: port 70000 out of range (max 65535)" {
		t.Errorf("Errorf = %q", got)
	}
	err = e.Errorf("cannot listen: %w", fs.ErrPermission)
	if !errors.Is(err, fs.ErrPermission) {
		t.Errorf("Errorf does not wrap %%w: %v", err)
	}
}

func TestKindString(t *testing.T) {
	want := []string{"invalid", "string", "integer", "float", "boolean", "duration", "map", "array", "invalid"}
	for k := Kind(0); k <= KindArray+1; k++ {
		if got := k.String(); got != want[k] {
			t.Errorf("Kind(%d) = %q, want %q", k, got, want[k])
		}
	}
}

// Spellings of a key that differ in case fold into the one set last, an included one too.
func TestFoldedKeys(t *testing.T) {
	m := mustParse(t, "A: 1\nb: 2\na: 3\ninclude inc.conf\n", memFS(map[string]string{"inc.conf": "B: 4\n"}, nil))
	if got := fmt.Sprint(m.FoldedKeys()); got != "[a B]" {
		t.Errorf("FoldedKeys = %s, want [a B]", got)
	}
	if e, _ := m.Get("B"); e.Value.Int != 4 {
		t.Errorf("Get(B) = %d", e.Value.Int)
	}
	if e, _ := m.Get("A"); e.Value.Int != 1 {
		t.Errorf("Get(A) = %d: the exact spelling first", e.Value.Int)
	}
	m = mustParse(t, "Foo: 5\nFOO: 6\nFoo: 7\nfOO: 8\nFOO: 9\n", Options{})
	if e, _ := m.Get("foo"); e.Value.Int != 9 {
		t.Errorf("Get(foo) = %d, want the last set, 9", e.Value.Int)
	}
}
