package subject

import (
	"strings"
	"testing"
)

func FuzzValidSubject(f *testing.F) {
	for _, tt := range matchCases {
		f.Add(tt.pattern)
		f.Add(tt.subject)
	}
	f.Add("foo bar")
	f.Add("a.\t.b")
	f.Add(strings.Repeat("x.", 40) + ">")
	f.Add("abcdefg.>.abcdef.*.abcdefgh\x7f")
	f.Add("_INBOX.Zx3fA0b9QeLr4Tn2Kp7Ws1 1 12\r\nMSG x")
	f.Fuzz(func(t *testing.T, s string) {
		b := []byte(s)
		valid := ValidSubject(s)
		if ValidSubjectBytes(b) != valid {
			t.Fatalf("ValidSubject and ValidSubjectBytes disagree on %q", s)
		}
		// Reference definition, written independently of the scanner.
		want := s != ""
		toks := strings.Split(s, ".")
		for i, tok := range toks {
			if tok == "" || strings.ContainsAny(tok, " \t\r\n\f") || (tok == ">" && i != len(toks)-1) {
				want = false
			}
		}
		if valid != want {
			t.Fatalf("ValidSubject(%q) = %v, want %v", s, valid, want)
		}
		hasWildcard := false
		for _, tok := range toks {
			hasWildcard = hasWildcard || tok == "*" || tok == ">"
		}
		if got := ValidLiteral(b); got != (want && !hasWildcard) {
			t.Fatalf("ValidLiteral(%q) = %v", s, got)
		}
		if got := ValidPublish(s); got != (want && !hasWildcard && !hasControl(s)) {
			t.Fatalf("ValidPublish(%q) = %v", s, got)
		}
		pedantic := true // nats-server's IsValidLiteralSubject: no whitespace rule
		for _, tok := range toks {
			pedantic = pedantic && tok != "" && tok != "*" && tok != ">"
		}
		if got := ValidPedantic(b); got != pedantic {
			t.Fatalf("ValidPedantic(%q) = %v", s, got)
		}
		if got := IsLiteral(s); got != !hasWildcard {
			t.Fatalf("IsLiteral(%q) = %v", s, got)
		}
		if got := ValidQueue(b); got != (s != "" && !strings.ContainsAny(s, " \t\r\n\f")) {
			t.Fatalf("ValidQueue(%q) = %v", s, got)
		}
		x := NewIndex[int]()
		if err := x.Insert(s, "", 1); (err == nil) != valid {
			t.Fatalf("Insert(%q) = %v, ValidSubject = %v", s, err, valid)
		}
		if valid {
			if r := x.MatchString(s); IsLiteral(s) && len(r.Plain) != 1 {
				t.Fatalf("literal %q does not match itself: %v", s, r)
			}
			if err := x.Remove(s, "", 1); err != nil || x.numNodes() != 0 {
				t.Fatalf("Remove(%q) = %v, nodes %d", s, err, x.numNodes())
			}
		}
	})
}

// matchRef is §7.2 written as directly as possible, to check Matches.
func matchRef(pattern, subject string) bool {
	if !ValidSubject(pattern) || subject == "" {
		return false
	}
	p, s := strings.Split(pattern, "."), strings.Split(subject, ".")
	for _, tok := range s {
		if tok == "" {
			return false
		}
	}
	for i, pt := range p {
		if pt == ">" {
			return len(s) > i
		}
		if i >= len(s) || (pt != "*" && pt != s[i]) {
			return false
		}
	}
	return len(s) == len(p)
}

func FuzzMatch(f *testing.F) {
	for _, tt := range matchCases {
		f.Add(tt.pattern, tt.subject, "foo.*")
	}
	f.Add("a.*.>", "a.b.c", ">")
	f.Add("*.*", "*.>", "a.>")
	f.Fuzz(func(t *testing.T, pattern, subject, other string) {
		m := Matches(pattern, subject)
		if ValidSubject(pattern) {
			if want := matchRef(pattern, subject); m != want {
				t.Fatalf("Matches(%q, %q) = %v, want %v", pattern, subject, m, want)
			}
		}
		x := NewIndex[int]()
		if x.Insert(pattern, "", 1) != nil {
			return
		}
		_ = x.Insert(pattern, "q", 2)
		otherValid := x.Insert(other, "q", 3) == nil
		for range 2 { // miss, then hit
			r := x.Match([]byte(subject))
			if got := len(r.Plain) == 1; got != m {
				t.Fatalf("Index(%q).Match(%q) = %v, Matches = %v", pattern, subject, r, m)
			}
			wantQ := 0
			if m {
				wantQ++
			}
			if otherValid && Matches(other, subject) {
				wantQ++
			}
			n := 0
			for _, g := range r.Queues {
				n += len(g.Members)
			}
			if n != wantQ || (n > 0 && len(r.Queues) != 1) {
				t.Fatalf("Match(%q) with %q, %q: queues %v, want %d members", subject, pattern, other, r.Queues, wantQ)
			}
			if x.HasInterest([]byte(subject)) != (m || wantQ > 0) {
				t.Fatalf("HasInterest(%q) disagrees", subject)
			}
		}
		_ = x.Remove(pattern, "", 1)
		_ = x.Remove(pattern, "q", 2)
		if otherValid {
			_ = x.Remove(other, "q", 3)
		}
		if x.Count() != 0 || x.numNodes() != 0 || len(x.MatchString(subject).Plain) != 0 {
			t.Fatalf("not empty after removals: count %d nodes %d", x.Count(), x.numNodes())
		}
	})
}
