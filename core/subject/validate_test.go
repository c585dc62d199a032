package subject

import (
	"math/rand/v2"
	"strings"
	"testing"
)

func TestValidSubject(t *testing.T) {
	tests := []struct {
		s       string
		valid   bool // subscription subject
		literal bool // publish subject (pedantic)
	}{
		{"foo", true, true},
		{"foo.bar", true, true},
		{"foo.bar.baz", true, true},
		{"$SYS.REQ.SERVER.PING", true, true},
		{"_INBOX.abc.x1", true, true},
		{"FOO.Bar", true, true},
		{"ünïcode.主题", true, true},
		{"\x00\xff.x", true, true},
		{"*", true, false},
		{">", true, false},
		{"foo.*", true, false},
		{"*.bar", true, false},
		{"foo.*.baz", true, false},
		{"*.*", true, false},
		{"foo.>", true, false},
		{"foo.*.>", true, false},
		{"*.>", true, false},
		// wildcard characters inside a token are literals
		{"foo*", true, true},
		{"f>o", true, true},
		{"foo.*bar", true, true},
		{"foo.>>", true, true},
		{"foo.**", true, true},
		{">foo.bar", true, true},
		// invalid for SUB
		{"", false, false},
		{".", false, false},
		{"..", false, false},
		{"foo..bar", false, false},
		{".foo", false, false},
		{"foo.", false, false},
		{"foo.>.bar", false, false},
		{">.foo", false, false},
		{">.>", false, false},
		{"foo.*.", false, false},
		// whitespace anywhere
		{"foo bar", false, false},
		{"foo\tbar", false, false},
		{"foo\rbar", false, false},
		{"foo\nbar", false, false},
		{"foo\fbar", false, false},
		{" foo", false, false},
		{"foo.bar ", false, false},
		{"foo. .bar", false, false},
		{"foo.\t", false, false},
	}
	for _, tt := range tests {
		if got := ValidSubject(tt.s); got != tt.valid {
			t.Errorf("ValidSubject(%q) = %v, want %v", tt.s, got, tt.valid)
		}
		if got := ValidSubjectBytes([]byte(tt.s)); got != tt.valid {
			t.Errorf("ValidSubjectBytes(%q) = %v, want %v", tt.s, got, tt.valid)
		}
		if got := ValidLiteral([]byte(tt.s)); got != tt.literal {
			t.Errorf("ValidLiteral(%q) = %v, want %v", tt.s, got, tt.literal)
		}
		if got, want := ValidPublish(tt.s), tt.literal && !hasControl(tt.s); got != want {
			t.Errorf("ValidPublish(%q) = %v, want %v", tt.s, got, want)
		}
		if tt.valid {
			if got := IsLiteral(tt.s); got != tt.literal {
				t.Errorf("IsLiteral(%q) = %v, want %v", tt.s, got, tt.literal)
			}
		}
	}
}

func TestValidQueue(t *testing.T) {
	tests := []struct {
		q     string
		valid bool
	}{
		{"workers", true},
		{"q.1", true},
		{"*", true},
		{">", true},
		{"a..b", true},  // subject rules do not apply
		{"_sys_", true}, // reserved, but that is a permissions matter
		{"", false},
		{"a b", false},
		{"a\tb", false},
		{"\r", false},
		{"a\n", false},
		{"\fa", false},
	}
	for _, tt := range tests {
		if got := ValidQueue([]byte(tt.q)); got != tt.valid {
			t.Errorf("ValidQueue(%q) = %v, want %v", tt.q, got, tt.valid)
		}
	}
}

// matchCases are (pattern, subject, match) triples per §7.1/§7.2.
var matchCases = []struct {
	pattern, subject string
	match            bool
}{
	{"foo", "foo", true},
	{"foo", "bar", false},
	{"foo", "foo.bar", false},
	{"foo.bar", "foo", false},
	{"foo.bar", "foo.bar", true},
	{"Foo.bar", "foo.bar", false},
	{"*", "foo", true},
	{"*", "foo.bar", false},
	{"foo.*", "foo.bar", true},
	{"foo.*", "foo", false},
	{"foo.*", "foo.bar.baz", false},
	{"*.bar", "foo.bar", true},
	{"*.*", "foo.bar", true},
	{"*.*", "foo", false},
	{"foo.*.baz", "foo.bar.baz", true},
	{"foo.*.baz", "foo.bar.qux", false},
	{">", "foo", true},
	{">", "foo.bar.baz", true},
	{"foo.>", "foo", false},
	{"foo.>", "foo.bar", true},
	{"foo.>", "foo.bar.baz", true},
	{"foo.>", "bar.baz", false},
	{"foo.*.>", "foo.bar", false},
	{"foo.*.>", "foo.bar.baz", true},
	{"*.>", "foo", false},
	{"*.>", "foo.bar", true},
	{"foo*", "foo*", true},
	{"foo*", "foox", false},
	{"f>o", "f>o", true},
	// publish subjects with wildcard tokens are literal tokens
	{"foo.*", "foo.*", true},
	{"foo.>", "foo.*", true},
	{">", "foo.*", true},
	{"*.*", "foo.*", true},
	{"foo.bar", "foo.*", false},
	{"foo.*", "foo.>", true},
	{"foo.>", "foo.>", true},
	{"foo.bar", "foo.>", false},
	{"*", ">", true},
	{">", "*", true},
	// empty subject tokens match nothing
	{">", "", false},
	{">", ".", false},
	{">", "foo.", false},
	{">", ".foo", false},
	{">", "foo..bar", false},
	{"foo.>", "foo.bar.", false},
	{"foo.>", "foo..bar", false},
	{"*", "", false},
	{"foo.*", "foo.", false},
	{"foo", "foo.", false},
	// invalid patterns match nothing
	{"", "foo", false},
	{"foo.", "foo.bar", false},
	{"foo..bar", "foo..bar", false},
	{"foo.>.bar", "foo.x.bar", false},
}

func TestMatches(t *testing.T) {
	for _, tt := range matchCases {
		if got := Matches(tt.pattern, tt.subject); got != tt.match {
			t.Errorf("Matches(%q, %q) = %v, want %v", tt.pattern, tt.subject, got, tt.match)
		}
	}
}

func TestValidateNoAlloc(t *testing.T) {
	b := []byte("foo.bar.*.baz.>")
	allocs := testing.AllocsPerRun(100, func() {
		_ = ValidSubjectBytes(b)
		_ = ValidLiteral(b)
		_ = ValidQueue(b)
		_ = IsLiteral("foo.bar.*.baz")
		_ = Matches("foo.*.>", "foo.bar.baz.qux")
	})
	if allocs != 0 {
		t.Fatalf("allocs = %v, want 0", allocs)
	}
}

func TestTokenize(t *testing.T) {
	tests := []struct {
		s    string
		toks []string
	}{
		{"a", []string{"a"}},
		{"a.b.c", []string{"a", "b", "c"}},
		{"a.*.>", []string{"a", "*", ">"}},
		{"", nil},
		{".", nil},
		{"a.", nil},
		{".a", nil},
		{"a..b", nil},
	}
	for _, tt := range tests {
		var buf [2]string // forces the heap fallback for 3 tokens
		got, ok := tokenize(tt.s, buf[:0])
		if ok != (tt.toks != nil) || len(got) != len(tt.toks) {
			t.Errorf("tokenize(%q) = %q, %v; want %q", tt.s, got, ok, tt.toks)
			continue
		}
		for i := range got {
			if got[i] != tt.toks[i] {
				t.Errorf("tokenize(%q) = %q, want %q", tt.s, got, tt.toks)
			}
		}
	}
}

// hasControl reports whether s has a control byte (0x00–0x1f, 0x7f).
func hasControl(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < ' ' || s[i] == 0x7f {
			return true
		}
	}
	return false
}

// ValidPublish refuses everything that could split or extend a protocol line,
// and accepts every ordinary subject the server publishes to.
func TestValidPublish(t *testing.T) {
	for _, s := range []string{
		"foo", "_INBOX.Zx3fA0b9QeLr4Tn2Kp7Ws1.ab", "_STAN.acks.abc.42", "a.b.c.d.e.f.g.h",
		"foo*", "f>o", "ünïcode.主题", "x\x80.\xff", "a-b_c:d/e", "$SYS.REQ.SERVER.PING",
	} {
		if !ValidPublish(s) {
			t.Errorf("ValidPublish(%q) = false, want true", s)
		}
	}
	for _, s := range []string{
		"", ".", "foo.", ".foo", "foo..bar", "*", ">", "foo.*", "foo.>", "*.foo", "foo.*.bar",
		"foo bar", "foo\tbar", "foo\rbar", "foo\nbar", "foo\r\n", "foo\fbar", "foo\vbar",
		"foo\x00", "\x01foo", "foo\x1f.bar", "foo\x7f", "foo.\x7f",
		"orders.x 1 12\r\ncancel-all!!\r\nMSG orders.y",
		"orders.x 12\r\ncancel-all!!\r\nRMSG admin.shutdown 5\r\nHELLO\r\nRMSG orders.y",
	} {
		if ValidPublish(s) {
			t.Errorf("ValidPublish(%q) = true, want false", s)
		}
	}
}

// refPublish is ValidPublish's definition, written independently of its word-at-a-time
// scanner.
func refPublish(s string) bool {
	if s == "" || hasControl(s) || strings.ContainsRune(s, ' ') {
		return false
	}
	for _, tok := range strings.Split(s, ".") {
		if tok == "" || tok == "*" || tok == ">" {
			return false
		}
	}
	return true
}

// Every byte value at every position of subjects long enough for several words, and
// random subjects over an alphabet of the bytes that matter, agree with refPublish.
func TestValidPublishAgainstReference(t *testing.T) {
	for _, base := range []string{"abcdefghij.klmnopqrstu.vwxyz0123456", "a.b.c.d.e.f.g.h.i.j.k", "_INBOX.Zx3fA0b9QeLr4Tn2Kp7Ws1"} {
		for p := range len(base) {
			for v := range 256 {
				s := base[:p] + string([]byte{byte(v)}) + base[p+1:]
				if got, want := ValidPublish(s), refPublish(s); got != want {
					t.Fatalf("ValidPublish(%q) = %v, want %v", s, got, want)
				}
			}
		}
	}
	alphabet := []byte("ab.*>. \t\r\n\x00\x1f\x7f\x80\xc3!-/09~")
	rng := rand.New(rand.NewPCG(1, 2))
	buf := make([]byte, 0, 40)
	for range 200_000 {
		buf = buf[:0]
		for range rng.IntN(40) {
			c := alphabet[rng.IntN(len(alphabet))]
			if rng.IntN(3) > 0 {
				c = 'a' + byte(rng.IntN(3)) // mostly ordinary bytes, so some subjects are valid
			}
			buf = append(buf, c)
		}
		s := string(buf)
		if got, want := ValidPublish(s), refPublish(s); got != want {
			t.Fatalf("ValidPublish(%q) = %v, want %v", s, got, want)
		}
	}
}

// ValidPedantic is nats-server's pedantic PUB check: no empty or wildcard token, and
// whitespace allowed (a PUB subject may hold a CR or a form feed).
func TestValidPedantic(t *testing.T) {
	for s, want := range map[string]bool{
		"foo": true, "foo.bar": true, "foo*.>>": true, "foo\rbar": true, "a\fb": true, "a.\r": true,
		"a. .b": true, "": false, ".": false, "foo..bar": false, ".foo": false, "foo.": false,
		"*": false, ">": false, "foo.*": false, "foo.>": false, "\r.>": false,
	} {
		if got := ValidPedantic([]byte(s)); got != want {
			t.Errorf("ValidPedantic(%q) = %v, want %v", s, got, want)
		}
	}
	b := []byte("foo.bar.baz.qux")
	if a := testing.AllocsPerRun(100, func() { _ = ValidPedantic(b) }); a != 0 {
		t.Fatalf("allocs = %v, want 0", a)
	}
}
