package app

import (
	"bytes"
	"go/ast"
	"go/parser"
	"go/token"
	"io"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
)

const referencePath = "../../../docs/configuration.md"

// docs/configuration.md is what WriteReference writes now: a flag or key added without
// regenerating it fails here.
func TestConfigurationReference(t *testing.T) {
	var b bytes.Buffer
	check(t, WriteReference(&b))
	committed, err := os.ReadFile(referencePath)
	check(t, err)
	if bytes.Equal(b.Bytes(), committed) {
		return
	}
	got, want := strings.Split(string(committed), "\n"), strings.Split(b.String(), "\n")
	for i := range max(len(got), len(want)) {
		g, w := "", ""
		if i < len(got) {
			g = got[i]
		}
		if i < len(want) {
			w = want[i]
		}
		if g != w {
			t.Fatalf("docs/configuration.md is out of date (run go generate ./cmd/starling/app, or make docs); first difference at line %d:\n committed: %s\n generated: %s", i+1, g, w)
		}
	}
}

// Every flag is in the reference with all its names, and every key of the table too.
func TestReferenceListsEveryFlagAndKey(t *testing.T) {
	var b bytes.Buffer
	check(t, WriteReference(&b))
	doc := b.String()
	for _, o := range newFlags(newSettings()).opts {
		if !strings.Contains(doc, "| "+code(o.names)+" |") {
			t.Errorf("flag %v is not in the reference", o.names)
		}
	}
	for _, k := range fileKeys() {
		if !strings.Contains(doc, "| `"+k.path+"` | "+orDash(code(k.aliases))+" |") {
			t.Errorf("key %s is not in the reference", k.path)
		}
	}
}

// documented returns every key path the table names, aliases included.
func documented(t *testing.T) map[string]fileKey {
	t.Helper()
	f := newFlags(newSettings())
	out := map[string]fileKey{}
	for _, k := range fileKeys() {
		if k.flag != "" && f.fs.Lookup(k.flag) == nil {
			t.Errorf("%s: no flag --%s", k.path, k.flag)
		}
		if k.flag == "" && (k.typ == "" || k.doc == "") {
			t.Errorf("%s: no type or description", k.path)
		}
		parent := k.path[:strings.LastIndexByte(k.path, '.')+1]
		for _, p := range append([]string{k.path}, prefixAll(parent, k.aliases)...) {
			if _, dup := out[p]; dup {
				t.Errorf("%s is in the table twice", p)
			}
			out[p] = k
		}
	}
	return out
}

func prefixAll(prefix string, names []string) []string {
	out := make([]string, len(names))
	for i, n := range names {
		out[i] = prefix + n
	}
	return out
}

// The table names every key the readers accept: each name a reader's switch compares a
// key with (found in the source), and each name of the schemas, is documented under the
// block that reader reads.
func TestReferenceKeysCoverTheReaders(t *testing.T) {
	docs := documented(t)
	prefixes := map[string][]string{ // reader → the paths of the blocks it reads
		"readFile":           {""},
		"listenKey":          {""},
		"limitKey":           {""},
		"logKey":             {""},
		"securityKey":        {""},
		"authorization":      {"authorization."},
		"users":              {"authorization.users[]."},
		"accounts":           {"accounts.<account>."},
		"exports":            {"accounts.<account>.exports[]."},
		"imports":            {"accounts.<account>.imports[]."},
		"importSource":       {"accounts.<account>.imports[].stream.", "accounts.<account>.imports[].service."},
		"permissions":        {"permissions."},
		"subjectPermission":  {"permissions.publish.", "permissions.subscribe."},
		"responses":          {"permissions.allow_responses."},
		"tlsBlock":           {"tls."},
		"nsTLSBlock":         {"streaming.tls."},
		"clusterUnused":      {"cluster."},
		"streamingServerKey": {"streaming."},
		"streamingNATSKey":   {"streaming."},
		"storeLimits":        {"streaming.store_limits."},
		"limit":              {"streaming.store_limits.", "streaming.store_limits.channels.<channel>."},
		"fileOptions":        {"streaming.file_options."},
	}
	notReaders := []string{"isStreamingKey", "reservedFor", "flagSuffix", "natsServerOnly"}
	fset := token.NewFileSet()
	for _, file := range []string{"config.go", "config_auth.go", "config_streaming.go", "config_fileopts.go", "config_accounts.go", "tls.go", "cluster.go", "reserved.go"} {
		af, err := parser.ParseFile(fset, file, nil, 0)
		check(t, err)
		for _, d := range af.Decls {
			fn, ok := d.(*ast.FuncDecl)
			if !ok {
				continue
			}
			ast.Inspect(fn, func(n ast.Node) bool {
				sw, ok := n.(*ast.SwitchStmt)
				if !ok {
					return true
				}
				if id, ok := sw.Tag.(*ast.Ident); !ok || (id.Name != "key" && id.Name != "name") {
					return true
				}
				if slices.Contains(notReaders, fn.Name.Name) {
					return true
				}
				pre, ok := prefixes[fn.Name.Name]
				if !ok {
					t.Errorf("%s: %s reads keys: add it to this test's readers (and its keys to keys.go)", fset.Position(sw.Pos()), fn.Name.Name)
					return true
				}
				for _, c := range sw.Body.List {
					for _, e := range c.(*ast.CaseClause).List {
						lit, ok := e.(*ast.BasicLit)
						if !ok || lit.Kind != token.STRING {
							continue
						}
						name, _ := strconv.Unquote(lit.Value)
						for _, p := range pre {
							if _, ok := docs[p+name]; !ok {
								t.Errorf("%s: key %s%s is not in keys.go", fset.Position(lit.Pos()), p, name)
							}
						}
					}
				}
				return true
			})
		}
	}
	var schemaKeys func(prefix string, s schema)
	schemaKeys = func(prefix string, s schema) {
		for _, fd := range s {
			for _, n := range fd.names {
				if _, ok := docs[prefix+n]; !ok {
					t.Errorf("schema key %s%s is not in keys.go", prefix, n)
				}
			}
			schemaKeys(prefix+fd.names[0]+".", fd.keys)
		}
	}
	schemaKeys("cluster.", clusterSchema())
	schemaKeys("streaming.file_options.", fileOptionsSchema())
	schemaKeys("streaming.", streamingReservedSchema())
}

// sampleConfig is a file setting path (a documented key) to a value of its type.
func sampleConfig(path, typ string) string {
	value := map[string]string{
		"string": `"x"`, "int": "1", "port": "1", "size": "1MB", "bool": "true", "duration": `"1s"`,
		"host:port": `"127.0.0.1:1"`, "port or host:port": "1", "list": `["a"]`, "string or list": `["a"]`,
		"list or block": `["a"]`, "bool or block": "true", "list of blocks": "[ {} ]", "block": "{}", "block of blocks": "{}",
	}[typ]
	path = strings.Replace(path, "permissions.", "authorization.default_permissions.", 1)
	parts := strings.Split(path, ".")
	var b strings.Builder
	var closers []string
	for i, p := range parts {
		switch {
		case p == "<account>":
			b.WriteString(`"A": {`)
			closers = append(closers, "}")
		case p == "<channel>":
			b.WriteString(`"foo": {`)
			closers = append(closers, "}")
		case strings.HasSuffix(p, "[]"):
			b.WriteString(strings.TrimSuffix(p, "[]") + ": [ {")
			closers = append(closers, "} ]")
		case i == len(parts)-1:
			b.WriteString(p + ": " + value)
		default:
			b.WriteString(p + " {")
			closers = append(closers, "}")
		}
		b.WriteString("\n")
	}
	slices.Reverse(closers)
	return b.String() + strings.Join(closers, "\n") + "\n"
}

// Every documented key and alias, given a value of its documented type, is a key the
// readers know.
func TestReferenceKeysAreAccepted(t *testing.T) {
	dir := t.TempDir()
	f := newFlags(newSettings())
	for path, k := range documented(t) {
		typ := k.typ
		if typ == "" {
			typ = f.opts[slices.IndexFunc(f.opts, func(o *option) bool {
				return slices.Contains(o.names, "--"+k.flag) || slices.Contains(o.names, "-"+k.flag)
			})].typ
		}
		text := sampleConfig(path, typ)
		err := NewMain(io.Discard, io.Discard).ParseFlags([]string{"-c", writeFile(t, dir, "k.conf", text)})
		if err != nil && (strings.Contains(err.Error(), "unknown configuration key") || strings.Contains(err.Error(), "expected")) {
			t.Errorf("%s (%s):\n%s\n%v", path, typ, text, err)
		}
	}
}
