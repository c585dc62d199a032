package main

import (
	"bytes"
	"context"
	"os"
	"strings"
	"testing"
)

// subjectMatches is NATS subject matching: * is one token, a final > one or more.
func subjectMatches(pattern, subject string) bool {
	p, s := strings.Split(pattern, "."), strings.Split(subject, ".")
	for i, tok := range p {
		if tok == ">" && i == len(p)-1 {
			return len(s) > i
		}
		if i >= len(s) || (tok != "*" && tok != s[i]) {
			return false
		}
	}
	return len(p) == len(s)
}

func matchesAny(patterns []string, subject string) bool {
	for _, p := range patterns {
		if subjectMatches(p, subject) {
			return true
		}
	}
	return false
}

func TestPermRules(t *testing.T) {
	if n := len(permAllow) + len(permDeny); n != 20 {
		t.Errorf("%d rules, want 20", n)
	}
	if !matchesAny(permAllow, permSubject) || matchesAny(permDeny, permSubject) {
		t.Errorf("%s must be allowed and not denied", permSubject)
	}
	if !matchesAny(permAllow, permDenied) || !matchesAny(permDeny, permDenied) {
		t.Errorf("%s must be allowed by an allow rule and denied by a deny rule", permDenied)
	}
	text := permConfig().text
	for _, p := range append(append([]string{}, permAllow...), permDeny...) {
		if !strings.Contains(text, `"`+p+`"`) {
			t.Errorf("config lacks %q:\n%s", p, text)
		}
	}
}

func TestSubjectMatches(t *testing.T) {
	for _, tc := range []struct {
		pattern, subject string
		want             bool
	}{
		{"bench.>", "bench.perm", true},
		{"bench.>", "bench", false},
		{"bench.perm.*", "bench.perm", false},
		{"bench.*.private", "bench.x.private", true},
		{"a.b.c.*", "a.b.c", false},
	} {
		if got := subjectMatches(tc.pattern, tc.subject); got != tc.want {
			t.Errorf("subjectMatches(%q, %q) = %v", tc.pattern, tc.subject, got)
		}
	}
}

func TestSelfRatioLine(t *testing.T) {
	at := func(rate float64) cell { return cell{runs: []runResult{{rate: benchRate{msgsPerSec: rate}}}} }
	r := &report{rows: []row{
		{sc: scenario{name: "pub-only 16 B"}, cells: [2]cell{at(1), at(2_000_000)}},
		{sc: scenario{name: "perm", self: &selfRatio{label: "Starling with 20 rules / Starling open",
			baseline: "pub-only 16 B", target: 0.95}}, cells: [2]cell{at(1), at(1_940_000)}},
	}}
	var b bytes.Buffer
	r.writeSelfRatios(&b)
	want := "Starling with 20 rules / Starling open (pub-only 16 B): 0.97 (target ≥ 0.95)\n\n"
	if b.String() != want {
		t.Fatalf("got %q, want %q", b.String(), want)
	}
	r.rows[0].cells[1].err = os.ErrClosed // a failed baseline gives no ratio
	b.Reset()
	r.writeSelfRatios(&b)
	if !strings.Contains(b.String(), ": – (target") {
		t.Fatalf("failed baseline: got %q", b.String())
	}
}

// TestCheckPermissions runs the pre-run check against nats-server with and without the config.
func TestCheckPermissions(t *testing.T) {
	const natsServer = "../../bin/nats-server"
	if _, err := os.Stat(natsServer); err != nil {
		t.Skip("no", natsServer)
	}
	dir := t.TempDir()
	spec := serverSpec{name: "nats-server", path: natsServer}
	extra, err := permConfig().serverArgs(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, withConf := range []bool{true, false} {
		args := extra
		if !withConf {
			args = nil
		}
		s, err := startServer(context.Background(), spec, dir, args)
		if err != nil {
			t.Fatal(err)
		}
		err = checkPermissions(s.addr())
		s.stop()
		if withConf && err != nil {
			t.Errorf("with config: %v", err)
		}
		if !withConf && (err == nil || !strings.Contains(err.Error(), "without credentials")) {
			t.Errorf("without config: got %v, want a refusal to pass", err)
		}
	}
}
