package stores

import (
	"errors"
	"math"
	"strings"
	"testing"
	"time"
)

func TestForWithoutChannels(t *testing.T) {
	ls := &LimitsSet{Global: DefaultLimits()}
	if got := ls.For("foo"); got != DefaultLimits() {
		t.Fatalf("For = %+v, want defaults", got)
	}
	neg := &LimitsSet{Global: Limits{MaxMsgs: -1, MaxBytes: 10}}
	if got := neg.For("foo"); got != (Limits{MaxBytes: 10}) {
		t.Fatalf("negative global not normalized: %+v", got)
	}
}

func TestForInheritance(t *testing.T) {
	g := Limits{MaxChannels: 50, MaxMsgs: 1000, MaxBytes: 1 << 20, MaxSubs: 10, MaxAge: time.Minute}
	ls := &LimitsSet{Global: g, Channels: map[string]Limits{
		">":       {MaxAge: time.Hour},
		"foo.>":   {MaxBytes: 100},
		"foo.*":   {MaxMsgs: 20},
		"foo.bar": {MaxSubs: 5},
		"*.bar":   {MaxInactivity: time.Second},
		"baz.*":   {MaxMsgs: -1},
		"baz.q":   {MaxBytes: -5},
		"x.y":     {MaxMsgs: 7, MaxAge: -1},
	}}
	if err := ls.Validate(); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		channel string
		want    Limits
	}{
		// literal entry → foo.* → foo.> → > → global
		{"foo.bar", Limits{MaxChannels: 50, MaxMsgs: 20, MaxBytes: 100, MaxSubs: 5, MaxAge: time.Hour}},
		// closest wildcard foo.* (beats *.bar: literal first token)
		{"foo.baz", Limits{MaxChannels: 50, MaxMsgs: 20, MaxBytes: 100, MaxSubs: 10, MaxAge: time.Hour}},
		// foo.* does not match three tokens: foo.>
		{"foo.a.b", Limits{MaxChannels: 50, MaxMsgs: 1000, MaxBytes: 100, MaxSubs: 10, MaxAge: time.Hour}},
		// only *.bar (its parent is >, not foo.*)
		{"zed.bar", Limits{MaxChannels: 50, MaxMsgs: 1000, MaxBytes: 1 << 20, MaxSubs: 10,
			MaxAge: time.Hour, MaxInactivity: time.Second}},
		// only >
		{"other", Limits{MaxChannels: 50, MaxMsgs: 1000, MaxBytes: 1 << 20, MaxSubs: 10, MaxAge: time.Hour}},
		// negative = unlimited, and inherited as unlimited
		{"baz.z", Limits{MaxChannels: 50, MaxMsgs: 0, MaxBytes: 1 << 20, MaxSubs: 10, MaxAge: time.Hour}},
		{"baz.q", Limits{MaxChannels: 50, MaxMsgs: 0, MaxBytes: 0, MaxSubs: 10, MaxAge: time.Hour}},
		{"x.y", Limits{MaxChannels: 50, MaxMsgs: 7, MaxBytes: 1 << 20, MaxSubs: 10, MaxAge: 0}},
	}
	for _, c := range cases {
		if got := ls.For(c.channel); got != c.want {
			t.Errorf("For(%q) =\n %+v, want\n %+v", c.channel, got, c.want)
		}
	}
}

func TestForNoWildcardMatch(t *testing.T) {
	ls := &LimitsSet{Global: Limits{MaxMsgs: 3}, Channels: map[string]Limits{"a.*": {MaxMsgs: 9}}}
	if got := ls.For("b.c"); got.MaxMsgs != 3 {
		t.Fatalf("unrelated wildcard applied: %+v", got)
	}
	if got := ls.For("a"); got.MaxMsgs != 3 {
		t.Fatalf("a.* must not match a: %+v", got)
	}
}

func TestCovers(t *testing.T) {
	cases := []struct {
		q, p string
		want bool
	}{
		{">", "a", true}, {">", "a.>", true}, {">", "*", true}, {"a.>", "a", false},
		{"a.>", "a.*", true}, {"a.*", "a.>", false}, {"*.*", "a.*", true}, {"a.*", "*.*", false},
		{"a.b", "a.b", true}, {"a.b", "a.c", false}, {"a.*", "a.b.c", false}, {"*", ">", false},
	}
	for _, c := range cases {
		if got := covers(tokens(c.q), tokens(c.p)); got != c.want {
			t.Errorf("covers(%q, %q) = %v", c.q, c.p, got)
		}
	}
}

func TestValidate(t *testing.T) {
	ok := &LimitsSet{Global: DefaultLimits(), Channels: map[string]Limits{"a": {}, "a.*": {}, "a.>": {MaxMsgs: -1}}}
	if err := ok.Validate(); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"", ".a", "a.", "a..b", "a/b", "a.>.b", "a*", "a.b>", "a b"} {
		ls := &LimitsSet{Channels: map[string]Limits{name: {}}}
		if err := ls.Validate(); !errors.Is(err, ErrInvalidLimits) || !strings.Contains(err.Error(), "invalid channel name") {
			t.Errorf("Validate(%q) = %v", name, err)
		}
	}
	bad := &LimitsSet{
		Global:   Limits{MaxChannels: 1, MaxMsgs: -1, MaxAge: -time.Second},
		Channels: map[string]Limits{"a": {}, "b": {MaxChannels: 3}, "c.*": {}},
	}
	err := bad.Validate()
	if !errors.Is(err, ErrInvalidLimits) {
		t.Fatalf("Validate = %v", err)
	}
	for _, want := range []string{
		"max messages limit cannot be negative (-1)",
		"max age limit cannot be negative (-1000000000)",
		`channel "b": max channels cannot be set per channel`,
		"too many channels defined (2). The max channels limit is set to 1",
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("Validate error lacks %q:\n%v", want, err)
		}
	}
}

func TestClone(t *testing.T) {
	ls := &LimitsSet{Global: DefaultLimits(), Channels: map[string]Limits{"a": {MaxMsgs: 1}}}
	c := ls.Clone()
	c.Channels["a"] = Limits{MaxMsgs: 2}
	if ls.Channels["a"].MaxMsgs != 1 {
		t.Fatal("Clone shares the map")
	}
	if (&LimitsSet{}).Clone().Channels != nil {
		t.Fatal("Clone of nil map")
	}
}

func TestLimitHelpers(t *testing.T) {
	l := Limits{MaxMsgs: 2, MaxBytes: 100, MaxAge: 10}
	for _, c := range []struct {
		msgs, bytes uint64
		want        bool
	}{{2, 100, false}, {3, 10, true}, {1, 101, true}} {
		if got := l.Exceeded(c.msgs, c.bytes); got != c.want {
			t.Errorf("Exceeded(%d, %d) = %v", c.msgs, c.bytes, got)
		}
	}
	if (&Limits{}).Exceeded(math.MaxUint64, math.MaxUint64) {
		t.Error("unlimited exceeded")
	}
	if l.ExpiresAt(5) != 15 || !l.Expired(5, 15) || l.Expired(5, 14) {
		t.Error("ExpiresAt/Expired")
	}
	if (&Limits{}).ExpiresAt(5) != 0 || (&Limits{}).Expired(5, math.MaxInt64) {
		t.Error("no MaxAge must never expire")
	}
	if got := (&Limits{MaxAge: time.Duration(math.MaxInt64)}).ExpiresAt(10); got != math.MaxInt64 {
		t.Errorf("ExpiresAt overflow = %d", got)
	}
}

func TestMsgSize(t *testing.T) {
	// The reference's example: two 2-byte messages on "foo" count 42 bytes.
	m := Msg{Data: []byte("hi")}
	if got := 2 * MsgSize("foo", &m); got != 42 {
		t.Fatalf("MsgSize = %d", got)
	}
	m.Reply = "r"
	if got := MsgSize("foo", &m); got != 22 {
		t.Fatalf("MsgSize with reply = %d", got)
	}
}
