package tests

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

// Differential test of configuration handling against the reference nats-server: a seeded
// generator writes files in the nats-server format (every syntax form, valid and invalid
// values, variables, environment variables, includes, unknown and duplicate keys, syntax
// errors); both `-t` checks must agree on accepting or refusing, every Starling error must
// name file:line:col, and where both accept, /varz of both started servers must show the
// same effective limits. A difference is a failure unless allowedDiffs explains it.
//
// `go test ./tests/ -run TestConfigDiff` runs the fixed seeds; CONFDIFF_SEEDS=N runs seeds
// 1..N, CONFDIFF_SEED=S only S. A mismatch prints the seed and the file.

// confKey is a key with values as written in a file: good ones both servers take, bad
// ones at least one refuses.
type confKey struct {
	key       string
	good, bad []string
}

var bools = []string{"true", "false", "yes", "no", "on", "off", "TRUE", "Off"}

var confKeys = []confKey{
	{"port", []string{"4222", "0", "-1"}, []string{"abc", "true", "[1]", "70000"}},
	{"host", []string{"127.0.0.1", `"0.0.0.0"`, "localhost"}, []string{"[1, 2]", "{a: 1}"}},
	{"listen", []string{`"127.0.0.1:4222"`, "4222", "127.0.0.1:-1"}, []string{`"127.0.0.1:abc"`, "true"}},
	{"http", []string{"8222", `"127.0.0.1:8222"`}, []string{"abc", "[8222]"}},
	{"http_port", []string{"8222", "0"}, []string{"abc", "true"}},
	{"max_payload", []string{"1MB", "512KB", "65536", "1mb", "2MiB", "1K", "0"}, []string{"100GB", "lots", "true", "[1]", "-1", `"1MB"`}},
	{"max_control_line", []string{"4KB", "1024", "512", "1k"}, []string{"lots", "5GB", "{a: 1}"}},
	{"max_connections", []string{"100", "0", "65536", "1k"}, []string{"x", "true", "1.5", "-1", `"10"`}},
	{"max_subscriptions", []string{"10", "0", "1000", "-1"}, []string{"many", "false"}},
	{"max_pending", []string{"64MB", "1GB", "100000000", "32mb"}, []string{"lots", "[1]"}},
	// nats-server reads a whole number as seconds after its size suffix: it takes a bare 2m
	// as 2000000 s. Starling refuses it and says to quote it (an accepted difference: not
	// generated).
	{"ping_interval", []string{`"2m"`, `"30s"`, "10s", "45", "1h"}, []string{`"bogus"`, "true", "[1s]", `"-1s"`, "1.5", `"2"`}},
	{"ping_max", []string{"2", "5", "0", "10"}, []string{"two", "true", "1.5", "-1"}},
	{"write_deadline", []string{`"10s"`, `"1s"`, "2", "500ms", `"1m"`}, []string{`"x"`, "false", "{a: 1}", `"2"`, "0.5"}},
	{"lame_duck_duration", []string{`"2m"`, `"30s"`, "45s", `"5m"`}, []string{`"zz"`, "true", "[1]", `"20s"`, "45", "2m"}},
	{"lame_duck_grace_period", []string{`"10s"`, `"5s"`, "1s", `"20s"`}, []string{`"x"`, "yes", `"5m"`, "5", "1.5"}},
	{"debug", bools, []string{"1", "maybe", "[true]", `"true"`}},
	{"trace", bools, []string{"2", "sometimes"}},
	{"logtime", bools, []string{"0", "never"}},
	// nats-server's lexer: 1e3 and 1h30 are strings; 1.5s, -x and a date are errors.
	{"server_name", []string{"srv1", `"s-2"`, "'s_3'", `"a.b"`, "1e3", "1h30"}, []string{`"a b"`, "[x]", "{a: 1}", "1.5s", "-x", "2024-01-02", "1e"}},
	{"no_header_support", bools, []string{"5", "maybe"}},
	{"authorization", []string{
		"{ user: a, password: b }",
		"{ token: secret }",
		"{ user: a, password: b, timeout: 2 }",
		`{ users: [ {user: a, password: b}, {user: c, password: d, permissions: { publish: ["x.>"], subscribe: "y" } } ] }`,
		`{ users = [ {user = a, password = b, permissions = { publish = { allow = ["a.*"], deny = ["a.b"] } } } ] }`,
	}, []string{
		"{ user: a, password: b, token: c }",
		"{ users: [ {user: a, password: b}, {user: a, password: c} ] }",
		"{ users: [ {user: a, password: b} ], token: t }",
		"{ users: 5 }",
		"{ users: [ {user: a} ] }",
		`{ users: [ {user: a, password: b, permissions: { publish: { allow: ["a"], deny: 5 } } } ] }`,
	}},
	{"cluster", []string{
		`{ listen: "127.0.0.1:-1", name: c1 }`,
		`{ listen: "127.0.0.1:-1", no_advertise: true, routes: ["nats://127.0.0.1:1"] }`,
		`{ port: -1, host: 127.0.0.1 }`,
	}, []string{
		`{ listen: "127.0.0.1:-1", name: "a b" }`,
		`{ listen: "127.0.0.1:-1", routes: 5 }`,
		`{ listen: "127.0.0.1:-1", no_advertise: 7 }`,
		`{ listen: "127.0.0.1:-1", routes: "nats://127.0.0.1:1" }`,
	}},
	{"tls", []string{"{ timeout: 2 }"}, []string{"{ cert_file: 5 }"}},
	{"system_account", []string{"$G"}, []string{"FOO"}},
	{"accounts", []string{
		"{ A { users: [{user: u, password: p}] }, SYS {} }",
		"{ A: { users: [{user: u1, password: p1}, {user: u2, password: p2}] } }",
	}, []string{
		"{ A { users: [{user: u, password: p}] }, B { users: [{user: u, password: q}] } }",
		"{ A { users: 5 } }",
	}},
}

// allowedDiffs are deliberate differences, each with its reason. nats names nats-server's
// message, star Starling's; accepted means that side took the file.
var allowedDiffs = []struct {
	name, reason string
	match        func(natsOK bool, nats, star string) bool
}{
	{"nats-server only features", "JetStream, leaf nodes, websocket, MQTT, gateways, operator mode and " +
		"some tuning keys are not implemented; Starling's error says so at the key's file:line:col",
		func(ok bool, n, s string) bool {
			return ok && strings.Contains(s, "a nats-server setting Starling does not support")
		}},
	{"quoted scalars", "Starling reads a quoted number, size, duration or boolean as its value ('\"1MB\"', " +
		"'\"true\"'; core/conf AsInt/AsBool); nats-server fails on the string's type",
		func(ok bool, n, s string) bool { return !ok && strings.Contains(n, "interface {} is string") }},
	{"out-of-range numbers", "Starling refuses negative or out-of-range limits and ports with a file:line:col " +
		"error; nats-server takes them and misbehaves later (a port > 65535 fails at listen)",
		func(ok bool, n, s string) bool {
			return ok && (strings.Contains(s, "out of range") || strings.Contains(s, "is negative"))
		}},
	{"array then ; or ,", "nats-server's lexer fails on an array value followed by ';' or ',' at the end of a " +
		"line (it reads it as still inside the array); Starling takes them as the terminators they are elsewhere",
		func(ok bool, n, s string) bool {
			return !ok && strings.Contains(n, `Expected an array value terminator`)
		}},
	{"user without password", "Starling refuses a user with neither password nor nkey (nats-server lets it " +
		"log in with an empty password); the error says to write password: \"\" to mean that",
		func(ok bool, n, s string) bool {
			return ok && strings.Contains(s, "has neither a password nor an nkey")
		}},
	{"tls without certificate", "nats-server starts a tls block without cert_file/key_file (every TLS " +
		"handshake then fails); Starling refuses it",
		func(ok bool, n, s string) bool {
			return ok && strings.Contains(s, "TLS needs both a certificate and its key")
		}},
	{"System_account", "Starling's keys are case-insensitive (documented); nats-server applies a " +
		"capitalised System_account nowhere, so it takes an undefined account there",
		func(ok bool, n, s string) bool { return ok && strings.Contains(s, `System_account: "`) }},
}

// genConfig writes the configuration of a seed into dir (main file and maybe an include)
// and returns the main file's path and the environment variables it uses.
func genConfig(seed int64, dir string) (string, []string) {
	r := rand.New(rand.NewSource(seed))
	var b, inc strings.Builder
	var env []string
	vars := 0
	sep := func() string { return []string{": ", " = ", " ", ":", " : ", "="}[r.Intn(6)] }
	end := func() string { return []string{"\n", "\n", "\n", ";\n", ",\n", " # note\n", " // note\n"}[r.Intn(7)] }
	if r.Intn(3) == 0 {
		b.WriteString([]string{"# generated\n", "// generated\n", "\n\n"}[r.Intn(3)])
	}
	n := 1 + r.Intn(5)
	for i := 0; i < n; i++ {
		k := confKeys[r.Intn(len(confKeys))]
		val := k.good[r.Intn(len(k.good))]
		if r.Intn(5) == 0 {
			val = k.bad[r.Intn(len(k.bad))]
		}
		key := k.key
		if r.Intn(8) == 0 {
			key = strings.ToUpper(key[:1]) + key[1:]
		}
		w := &b
		switch r.Intn(12) {
		case 0: // a variable defined before use (only scalars: a block as a variable differs)
			if !strings.HasPrefix(val, "{") && !strings.HasPrefix(val, "[") {
				vars++
				fmt.Fprintf(&b, "V%d%s%s%s", vars, sep(), val, end())
				val = fmt.Sprintf("$V%d", vars)
				if r.Intn(8) == 0 {
					val = fmt.Sprintf("${V%d}", vars) // nats-server has no braces
				}
			}
		case 1: // an environment variable: its text is read as a value (quoted, a list, a map)
			// Not a block with users: nats-server fails on users (or crashes on accounts) in
			// a map that came from the environment, a bug of its own that Starling does not
			// copy ("Expected users field to be an array, got <nil>").
			if !strings.Contains(val, "users") {
				name := fmt.Sprintf("H41_CONFDIFF_%d_%d", seed, i)
				env = append(env, name+"="+val)
				val = "$" + name
			}
		case 2: // in an included file
			w = &inc
		}
		if strings.HasPrefix(val, "{") && r.Intn(2) == 0 {
			fmt.Fprintf(w, "%s %s%s", key, val, end()) // a block without a separator
		} else {
			fmt.Fprintf(w, "%s%s%s%s", key, sep(), val, end())
		}
		if r.Intn(10) == 0 { // the same key again: the last one wins
			k2 := k.good[r.Intn(len(k.good))]
			fmt.Fprintf(&b, "%s%s%s%s", k.key, sep(), k2, end())
		}
	}
	if inc.Len() > 0 {
		_ = os.WriteFile(filepath.Join(dir, "inc.conf"), []byte(inc.String()), 0o644)
		fmt.Fprintf(&b, "include %s\n", []string{"inc.conf", `"inc.conf"`, "'inc.conf'"}[r.Intn(3)])
	}
	switch r.Intn(20) {
	case 7: // an include whose variable the includer defines: nats-server parses it on its own
		b.WriteString("IV: 5000\ninclude iv.conf\n")
		_ = os.WriteFile(filepath.Join(dir, "iv.conf"), []byte("max_payload: $IV\n"), 0o644)
	case 8: // an absolute include path: nats-server joins it to the including file's directory
		_ = os.WriteFile(filepath.Join(dir, "abs.conf"), []byte("max_payload: 3000\n"), 0o644)
		fmt.Fprintf(&b, "include %q\n", filepath.Join(dir, "abs.conf"))
	case 9: // an include defining a variable used after it
		_ = os.WriteFile(filepath.Join(dir, "def.conf"), []byte("DV: 7000\n"), 0o644)
		b.WriteString("include def.conf\nmax_payload: $DV\n")
	case 10: // a byte order mark
		s := "\xEF\xBB\xBF" + b.String()
		b.Reset()
		b.WriteString(s)
	case 11: // nothing but comments: nats-server only warns
		_ = os.Remove(filepath.Join(dir, "inc.conf")) // not included: its keys are not compared
		b.Reset()
		b.WriteString([]string{"", "# nothing\n", "\n\n", "// c\n# d\n"}[r.Intn(4)])
	case 0:
		b.WriteString("zz_unknown_key: 1\n")
	case 1:
		b.WriteString("broken {\n  max_payload: 1\n")
	case 2:
		b.WriteString("list: [1, 2\n")
	case 3:
		b.WriteString("max_payload: $UNDEFINED_H41_VAR\n")
	case 4:
		b.WriteString("include missing_h41.conf\n")
	case 5:
		b.WriteString("/* not a comment */\n")
	case 6:
		b.WriteString([]string{"jetstream {\n  store_dir: \"" + dir + "/js\"\n}\n", "leafnodes { port: -1 }\n",
			"websocket { port: -1, no_tls: true }\n", "max_closed_clients: 5\n"}[r.Intn(4)])
	}
	path := filepath.Join(dir, "starling.conf")
	_ = os.WriteFile(path, []byte(b.String()), 0o644)
	return path, env
}

type checkResult struct {
	ok  bool
	out string
}

func runCheck(bin string, env []string, args ...string) checkResult {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Env = append(os.Environ(), env...)
	out, err := cmd.CombinedOutput()
	return checkResult{err == nil, string(out)}
}

// natsAccepts reads nats-server's -t verdict: -t is pedantic, so a file whose only errors
// are pedantic warnings (a bare number as a duration) starts, and counts as accepted.
func natsAccepts(r checkResult) bool {
	if r.ok {
		return true
	}
	for _, l := range strings.Split(strings.TrimSpace(r.out), "\n") {
		if !strings.Contains(l, "should be converted to a duration") && !strings.Contains(l, "config has no values or is empty") {
			return false
		}
	}
	return true
}

var starErrLine = regexp.MustCompile(`^\S+\.conf:\d+:\d+: \S`)

// starErrorsPlaced checks that every Starling error names file:line:col.
func starErrorsPlaced(out string) error {
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) < 2 || !strings.Contains(lines[0], "error(s)") {
		return fmt.Errorf("not a configuration error report")
	}
	for _, l := range lines[1:] {
		if !starErrLine.MatchString(l) && !strings.HasPrefix(l, "starling: warning") {
			return fmt.Errorf("error without file:line:col: %q", l)
		}
	}
	return nil
}

// varzFields are the effective values compared where both servers take a file.
var varzFields = []string{"max_payload", "max_connections", "max_subscriptions", "max_pending", "max_control_line",
	"ping_interval", "ping_max", "write_deadline", "auth_timeout", "server_name"}

// caseVariants reports whether key is written in more than one letter case.
func caseVariants(text, key string) bool {
	seen := map[string]bool{}
	for _, m := range regexp.MustCompile(`(?im)^\s*(`+key+`)\b`).FindAllStringSubmatch(text, -1) {
		seen[m[1]] = true
	}
	return len(seen) > 1
}

// anyCaseVariant reports whether some generated key is written in more than one letter case.
func anyCaseVariant(text string) bool {
	for _, k := range confKeys {
		if caseVariants(text, k.key) {
			return true
		}
	}
	return false
}

// startVarz starts bin on random ports with the file and returns its /varz.
func startVarz(t *testing.T, bin, conf string, env []string, extra ...string) (map[string]any, error) {
	dir := t.TempDir()
	args := append([]string{"-c", conf, "-a", "127.0.0.1", "-p", "-1", "-m", "-1", "--ports_file_dir", dir}, extra...)
	p := &proc{cmd: exec.Command(bin, args...), out: &syncBuffer{}, done: make(chan error, 1)}
	p.cmd.Stdout, p.cmd.Stderr = p.out, p.out
	p.cmd.Env = append(os.Environ(), env...)
	if err := p.cmd.Start(); err != nil {
		return nil, err
	}
	go func() { p.done <- p.cmd.Wait() }()
	defer func() { _ = p.cmd.Process.Kill(); <-p.done }()
	var ports struct{ Monitoring []string }
	deadline := time.Now().Add(10 * time.Second)
	for {
		name := filepath.Join(dir, fmt.Sprintf("%s_%d.ports", filepath.Base(bin), p.cmd.Process.Pid))
		if b, err := os.ReadFile(name); err == nil && json.Unmarshal(b, &ports) == nil && len(ports.Monitoring) > 0 {
			break
		}
		select {
		case err := <-p.done:
			p.done <- err
			return nil, fmt.Errorf("%s exited: %v\n%s", bin, err, p.out.String())
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("%s: no ports file\n%s", bin, p.out.String())
		}
	}
	resp, err := http.Get(ports.Monitoring[0] + "/varz")
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	var v map[string]any
	return v, json.NewDecoder(resp.Body).Decode(&v)
}

func TestConfigDiff(t *testing.T) {
	natsBin := madeTool(t, "NATS_SERVER", "nats-server")
	star := starlingBinary(t)
	var seeds []int64
	for i := int64(1); i <= 50; i++ {
		seeds = append(seeds, i)
	}
	maxVarz := 6 // started-server comparisons in the fixed run (each starts two servers)
	if s := os.Getenv("CONFDIFF_SEEDS"); s != "" {
		n, _ := strconv.Atoi(s)
		seeds, maxVarz = nil, n
		for i := 1; i <= n; i++ {
			seeds = append(seeds, int64(i))
		}
	}
	if s := os.Getenv("CONFDIFF_SEED"); s != "" {
		n, _ := strconv.ParseInt(s, 10, 64)
		seeds, maxVarz = []int64{n}, 1
	}
	allowed := map[string]int{}
	varzRuns := 0
	for _, seed := range seeds {
		dir := t.TempDir()
		conf, env := genConfig(seed, dir)
		text, _ := os.ReadFile(conf)
		if inc, err := os.ReadFile(filepath.Join(dir, "inc.conf")); err == nil {
			text = append(append(text, "--- inc.conf:\n"...), inc...)
		}
		report := func(format string, a ...any) {
			t.Errorf("seed %d: %s\nenv %v\n--- %s:\n%s", seed, fmt.Sprintf(format, a...), env, conf, text)
		}
		nr := runCheck(natsBin, env, "-t", "-c", conf)
		sr := runCheck(star, env, "-t", "--no_streaming", "-c", conf)
		nOK := natsAccepts(nr)
		if !sr.ok {
			if err := starErrorsPlaced(sr.out); err != nil {
				report("Starling's refusal: %v\n%s", err, sr.out)
			}
		}
		if nOK != sr.ok {
			name := ""
			for _, a := range allowedDiffs {
				if a.match(nOK, nr.out, sr.out) {
					name = a.name
					break
				}
			}
			if name == "" && nOK {
				// nats-server's -t misses what fails at start (an unknown system account, a
				// port over 65535): Starling refusing it in -t is the better of the two.
				if _, err := startVarz(t, natsBin, conf, env); err != nil {
					name = "nats-server fails at start"
				}
			}
			if name == "" && !nOK && anyCaseVariant(string(text)) {
				// nats-server applies every spelling of a key (Max_Payload, max_payload) in
				// random order, so a bad value under one fails the file; Starling reads the
				// spellings as one key given twice (the later wins, as a repeated key does in
				// both servers), so an overridden bad value is not read.
				name = "case-variant duplicate"
			}
			if name == "" {
				report("nats-server accepts=%v, Starling accepts=%v\nnats-server: %s\nstarling: %s", nOK, sr.ok, nr.out, sr.out)
			} else {
				allowed[name]++
			}
			continue
		}
		if !nOK || varzRuns >= maxVarz {
			continue
		}
		varzRuns++
		nv, err := startVarz(t, natsBin, conf, env)
		if err != nil {
			report("nats-server passed -t but did not start: %v", err)
			continue
		}
		sv, err := startVarz(t, star, conf, env, "--no_streaming")
		if err != nil {
			report("Starling passed -t but did not start: %v", err)
			continue
		}
		for _, f := range varzFields {
			if f == "server_name" && !strings.Contains(strings.ToLower(string(text)), "server_name") {
				continue // both default to their random ID
			}
			if caseVariants(string(text), f) {
				// nats-server keeps "Max_pending" and "max_pending" as two keys and applies
				// them in Go's random map order; Starling keys are case-insensitive, last wins.
				allowed["case-variant duplicate"]++
				continue
			}
			if fmt.Sprint(nv[f]) != fmt.Sprint(sv[f]) {
				report("/varz %s: nats-server %v, Starling %v", f, nv[f], sv[f])
			}
		}
	}
	t.Logf("%d seeds, %d started-server comparisons, allowed differences %v", len(seeds), varzRuns, allowed)
}

// stanKeys are keys of nats-streaming-server's streaming block; @DIR@ is a fresh directory.
var stanKeys = []confKey{
	// id and cluster_id are aliases: nss applies both in random map order, so one file has one.
	{"id", []string{"test-cluster", "abc_1", `"c-2"`}, []string{`"a b"`, "[x]", `"a.b"`, "{a: 1}"}},
	{"discover_prefix", []string{`"_STAN.discover"`, "my.disc"}, []string{"{a: 1}"}},
	{"store", []string{"memory", "MEMORY", "file\n  dir: \"@DIR@/st\""}, []string{"bogus", "5", "file"}},
	{"hb_interval", []string{`"10s"`, `"1m"`, "10s"}, []string{`"bogus"`, "10", "2m", `"10"`}},
	{"hb_timeout", []string{`"5s"`, `"20s"`}, []string{`"x"`}},
	{"hb_fail_count", []string{"3", "10"}, []string{"x", "[1]", "-1"}},
	{"zz_unknown", nil, []string{"1"}}, // nss ignores an unknown key; Starling refuses it
	{"store_limits", []string{
		"{ max_channels: 10, max_msgs: 1000 }",
		`{ max_bytes: 1MB, max_age: "1h", max_subs: 5, max_inactivity: "10m" }`,
		`{ max_msgs: 100, channels { "foo.*": { max_msgs: 5 }, bar: { max_age: "1m" } } }`,
		"{ max_msgs: 10, channels { foo: { max_msgs: 50 } } }",
	}, []string{
		"{ max_msgs: lots }",
		"{ max_channels: -1 }",
		`{ max_age: "bogus" }`,
		`{ channels { "foo..": { max_msgs: 5 } } }`,
		"{ max_age: 60 }",
	}},
}

// genStan writes a configuration whose streaming block is generated from a seed.
func genStan(seed int64, dir string) string {
	r := rand.New(rand.NewSource(seed))
	var b strings.Builder
	b.WriteString("streaming {\n")
	hasID := false
	for i, n := 0, 1+r.Intn(4); i < n; i++ {
		k := stanKeys[r.Intn(len(stanKeys))]
		val := ""
		if r.Intn(4) == 0 || len(k.good) == 0 {
			val = k.bad[r.Intn(len(k.bad))]
		} else {
			val = k.good[r.Intn(len(k.good))]
		}
		key := k.key
		if key == "id" && r.Intn(2) == 0 {
			key = "cluster_id"
		}
		sep := []string{": ", " = ", " "}[r.Intn(3)]
		if strings.HasPrefix(val, "{") {
			sep = " "
		}
		if k.key == "id" {
			if hasID { // id and cluster_id together: nss applies them in random order
				continue
			}
			hasID = true
		}
		fmt.Fprintf(&b, "  %s%s%s\n", key, sep, strings.ReplaceAll(val, "@DIR@", dir))
	}
	b.WriteString("}\n")
	path := filepath.Join(dir, "stan.conf")
	_ = os.WriteFile(path, []byte(b.String()), 0o644)
	return path
}

// allowedStanDiffs are deliberate differences with nats-streaming-server, with the reason.
var allowedStanDiffs = []struct{ name, reason, nss, star string }{
	{"unknown keys", "nats-streaming-server ignores unknown keys in the streaming block; Starling refuses " +
		"them (a misspelt limit would otherwise silently not apply)", "", "unknown configuration key"},
	{"out-of-range numbers", "Starling refuses negative counts nss takes", "", "out of range"},
	{"cluster ID characters", "Starling documents cluster IDs as letters, digits, '-' and '_' (they name " +
		"subjects and store directories); nss also takes dots", "", "only letters, digits"},
	{"file store directory", "Starling's --dir defaults to ./data; nss requires dir with store: file",
		"root directory must be specified", ""},
	{"array lexer", "as for nats-server: nss's parser fails on some arrays followed by a key on the next line",
		"Expected an array value terminator", ""},
	{"quoted scalars", "as for nats-server: Starling reads a quoted number as its value", "expected to be int64, got string", ""},
}

// nssAccepts starts nats-streaming-server on the file and reports whether it became ready.
func nssAccepts(bin, conf string) (bool, string) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	out := &syncBuffer{}
	cmd := exec.CommandContext(ctx, bin, "-c", conf, "-a", "127.0.0.1", "-p", "-1")
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		return false, err.Error()
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	defer func() { _ = cmd.Process.Kill(); <-done }()
	for {
		if strings.Contains(out.String(), "Streaming Server is ready") {
			return true, out.String()
		}
		select {
		case <-done:
			return false, out.String()
		case <-ctx.Done():
			return false, "timeout: " + out.String()
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// The streaming block against nats-streaming-server, which has no -t: it is started, and
// accepts the file if it becomes ready. Only acceptance is compared.
func TestConfigDiffStreaming(t *testing.T) {
	nss := madeTool(t, "NSS_BIN", "nats-streaming-server")
	star := starlingBinary(t)
	n := 20
	if s := os.Getenv("CONFDIFF_SEEDS"); s != "" {
		n, _ = strconv.Atoi(s)
	}
	allowed, agree := map[string]int{}, map[bool]int{}
	for seed := int64(1); seed <= int64(n); seed++ {
		dir := t.TempDir()
		conf := genStan(seed, dir)
		text, _ := os.ReadFile(conf)
		nOK, nOut := nssAccepts(nss, conf)
		sr := runCheck(star, nil, "-t", "-c", conf)
		if !sr.ok {
			if err := starErrorsPlaced(sr.out); err != nil {
				t.Errorf("seed %d: Starling's refusal: %v\n%s\n--- %s:\n%s", seed, err, sr.out, conf, text)
			}
		}
		if nOK == sr.ok {
			agree[nOK]++
			continue
		}
		name := ""
		for _, a := range allowedStanDiffs {
			if (a.nss != "" && !nOK && strings.Contains(nOut, a.nss)) || (a.star != "" && nOK && strings.Contains(sr.out, a.star)) {
				name = a.name
				break
			}
		}
		if name == "" {
			t.Errorf("seed %d: nats-streaming-server accepts=%v, Starling accepts=%v\nnss: %s\nstarling: %s\n--- %s:\n%s",
				seed, nOK, sr.ok, lastLines(nOut, 3), sr.out, conf, text)
			continue
		}
		allowed[name]++
	}
	t.Logf("%d seeds, both accept %d, both refuse %d, allowed differences %v", n, agree[true], agree[false], allowed)
}
