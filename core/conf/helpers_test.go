package conf

import (
	"io/fs"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// memFS returns Options reading files from the map (keys are cleaned paths) and environment
// variables from env, so tests touch neither the disk nor the process environment.
func memFS(files map[string]string, env map[string]string) Options {
	return Options{
		ReadFile: func(name string) ([]byte, error) {
			if s, ok := files[filepath.Clean(name)]; ok {
				return []byte(s), nil
			}
			return nil, &fs.PathError{Op: "open", Path: name, Err: fs.ErrNotExist}
		},
		LookupEnv: func(name string) (string, bool) {
			v, ok := env[name]
			return v, ok
		},
	}
}

// dump renders a tree compactly for comparison: {k=v, ...}, [a, b], "str", i:1, f:2.5,
// true, d:1m0s.
func dump(v *Value) string {
	var b strings.Builder
	dumpTo(&b, v)
	return b.String()
}

func dumpMap(m *Map) string {
	return dump(&Value{Kind: KindMap, Map: m})
}

func dumpTo(b *strings.Builder, v *Value) {
	switch v.Kind {
	case KindString:
		b.WriteString(strconv.Quote(v.Str))
	case KindInt:
		b.WriteString("i:" + strconv.FormatInt(v.Int, 10))
	case KindFloat:
		b.WriteString("f:" + strconv.FormatFloat(v.Float, 'g', -1, 64))
	case KindBool:
		b.WriteString(strconv.FormatBool(v.Bool))
	case KindDuration:
		b.WriteString("d:" + v.Dur.String())
	case KindMap:
		b.WriteByte('{')
		for i, k := range v.Map.Keys {
			if i > 0 {
				b.WriteString(", ")
			}
			b.WriteString(k + "=")
			dumpTo(b, v.Map.Entries[k].Value)
		}
		b.WriteByte('}')
	case KindArray:
		b.WriteByte('[')
		for i, e := range v.Array {
			if i > 0 {
				b.WriteString(", ")
			}
			dumpTo(b, e)
		}
		b.WriteByte(']')
	default:
		b.WriteString("?")
	}
}

// mustParse parses src as "test.conf" and fails the test on any error.
func mustParse(t *testing.T, src string, opts Options) *Map {
	t.Helper()
	m, err := Parse("test.conf", []byte(src), opts)
	if err != nil {
		t.Fatalf("Parse(%q): %v", src, err)
	}
	return m
}

// lookup follows a dotted path of keys (and [i] array indexes written as .i) from m.
func lookup(t *testing.T, m *Map, path string) (*Entry, *Value) {
	t.Helper()
	var e *Entry
	var v *Value
	for _, part := range strings.Split(path, ".") {
		if v != nil && v.Kind == KindArray {
			i, err := strconv.Atoi(part)
			if err != nil || i >= len(v.Array) {
				t.Fatalf("%s: no element %s", path, part)
			}
			v = v.Array[i]
			continue
		}
		if v != nil {
			if v.Kind != KindMap {
				t.Fatalf("%s: %s is not in a map", path, part)
			}
			m = v.Map
		}
		var ok bool
		if e, ok = m.Entries[part]; !ok {
			t.Fatalf("%s: no key %q", path, part)
		}
		v = e.Value
	}
	return e, v
}
