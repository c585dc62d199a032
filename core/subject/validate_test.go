package subject

import "testing"

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
