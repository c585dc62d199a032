package conf

import (
	"errors"
	"io/fs"
	"path/filepath"
	"strings"
	"testing"
)

// FuzzParse checks that no input panics or hangs the parser, that every error has a
// position, and that a successful parse yields a consistent, fully positioned tree.
// Includes read the input itself (any "*.conf" under dir/), and so does the environment
// variable Y, so include chains, cycles, environment values and the limits of both are
// explored too.
func FuzzParse(f *testing.F) {
	seeds := []string{
		example,
		helperSrc,
		"a: 1\nb = \"x\\u00e9\"\nc 'raw'\n",
		"m { a: [1, 2, {b: $X}], c: ${Y} }\n",
		"include self.conf\nx: 1\n",
		"include other.conf\ninclude \"other.conf\"\n",
		"a: (\nblock\n)\nb: 2m\nc: 1.5MB\nd: 1h30\n",
		"a: [[[[{}]]]]\n}\n]\n",
		"// c\n# c\na: nats://h:1 // c\n",
		"a: \"unterminated\nb: 'x\nc: [1 2\n",
		"key: $2a$11$abc\n",
		"\xEF\xBB\xBFa: ${X}\nb: $Z\n",
		"a: 1.5s\nb: -5s\nc: 2024-01-02\nd: -\ne: .5\nf: 1e3\ng: 1E\nh: 1.2.3.4:5\n",
		"A: 1\na: 2\ninclude x.conf\nm { Q: $Y }\n",
	}
	for _, s := range seeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		opts := Options{
			ReadFile: func(name string) ([]byte, error) {
				if filepath.Dir(name) == "dir" && strings.HasSuffix(name, ".conf") {
					return data, nil
				}
				return nil, fs.ErrNotExist
			},
			LookupEnv: func(name string) (string, bool) {
				switch name {
				case "X":
					return "42", true
				case "Y": // the input itself: environment values are parsed as values
					return string(data), true
				case "Z":
					return "[$X, {a: $Y}]", true
				}
				return "", false
			},
		}
		m, err := Parse("dir/fuzz.conf", data, opts)
		if err != nil {
			var es Errors
			if !errors.As(err, &es) || len(es) == 0 || len(es) > maxErrors+1 {
				t.Fatalf("error %T %v: want 1..%d Errors", err, err, maxErrors+1)
			}
			if m != nil {
				t.Fatal("map returned with an error")
			}
			for _, e := range es {
				if e.Pos.File == "" || e.Pos.Line < 1 || e.Pos.Col < 1 || e.Msg == "" || e.Err == nil {
					t.Fatalf("error without position, message or kind: %#v", e)
				}
			}
			return
		}
		checkMap(t, m, map[any]bool{})
	})
}

// checkMap verifies a parsed tree. Values reached through $variables share maps and arrays,
// so each is visited once: a chain of variables can make the unshared tree exponential.
func checkMap(t *testing.T, m *Map, seen map[any]bool) {
	if seen[m] {
		return
	}
	seen[m] = true
	if len(m.Keys) != len(m.Entries) {
		t.Fatalf("%d keys, %d entries", len(m.Keys), len(m.Entries))
	}
	for _, k := range m.Keys {
		e, ok := m.Entries[k]
		if !ok || e.Key != k || e.Value == nil {
			t.Fatalf("key %q: entry %+v", k, e)
		}
		checkPos(t, e.KeyPos)
		checkValue(t, e.Value, seen)
	}
}

func checkValue(t *testing.T, v *Value, seen map[any]bool) {
	checkPos(t, v.Pos)
	switch v.Kind {
	case KindMap:
		checkMap(t, v.Map, seen)
	case KindArray:
		if len(v.Array) == 0 || seen[&v.Array[0]] {
			return
		}
		seen[&v.Array[0]] = true
		for _, e := range v.Array {
			checkValue(t, e, seen)
		}
	case KindString, KindInt, KindFloat, KindBool, KindDuration:
	default:
		t.Fatalf("value of kind %v", v.Kind)
	}
}

func checkPos(t *testing.T, p Pos) {
	if p.File == "" || p.Line < 1 || p.Col < 1 {
		t.Fatalf("bad position %#v", p)
	}
}
