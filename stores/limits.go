package stores

import (
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"
	"time"
)

// Default limits, as nats-streaming-server has them.
const (
	DefaultMaxChannels = 100
	DefaultMaxSubs     = 1000
	DefaultMaxMsgs     = 1_000_000
	DefaultMaxBytes    = 1_024_000_000 // 1000000 × 1024
)

// Limits bound a channel (and, for MaxChannels, the store). In LimitsSet.Global and in
// what LimitsSet.For returns, 0 means unlimited. In a per-channel entry of a LimitsSet, 0
// means "inherit" and a negative value means unlimited.
type Limits struct {
	MaxChannels   int           // channels in the store (global only)
	MaxMsgs       int           // messages per channel; oldest removed beyond
	MaxBytes      int64         // MsgSize sum per channel; oldest removed beyond
	MaxAge        time.Duration // messages this old are removed by Expire
	MaxSubs       int           // subscriptions per channel; CreateSub fails beyond
	MaxInactivity time.Duration // channel deleted after this long unused (streaming's timer)
}

// DefaultLimits returns the default global limits: 100 channels, 1000 subscriptions,
// 1,000,000 messages and 1,024,000,000 bytes per channel, no age or inactivity limit.
func DefaultLimits() Limits {
	return Limits{
		MaxChannels: DefaultMaxChannels,
		MaxSubs:     DefaultMaxSubs,
		MaxMsgs:     DefaultMaxMsgs,
		MaxBytes:    DefaultMaxBytes,
	}
}

// Exceeded reports whether a channel holding msgs messages of bytes bytes is over MaxMsgs
// or MaxBytes (the caller then removes the oldest while more than one remains).
func (l *Limits) Exceeded(msgs, bytes uint64) bool {
	return (l.MaxMsgs > 0 && msgs > uint64(l.MaxMsgs)) ||
		(l.MaxBytes > 0 && bytes > uint64(l.MaxBytes))
}

// ExpiresAt returns when a message stored at t (unix ns) reaches MaxAge: it is removed by
// Expire(now) once now >= ExpiresAt(t). It returns 0 when MaxAge is not positive, and
// saturates instead of overflowing.
func (l *Limits) ExpiresAt(t int64) int64 {
	if l.MaxAge <= 0 {
		return 0
	}
	if t > math.MaxInt64-int64(l.MaxAge) {
		return math.MaxInt64
	}
	return t + int64(l.MaxAge)
}

// Expired reports whether a message stored at t has reached MaxAge at now.
func (l *Limits) Expired(t, now int64) bool {
	at := l.ExpiresAt(t)
	return at != 0 && at <= now
}

// LimitsSet is the configured limits: global ones and per-channel overrides keyed by
// channel name or by a wildcard pattern ("foo.*", "foo.>"). The zero value means
// "unlimited everything"; the usual start is {Global: DefaultLimits()}.
type LimitsSet struct {
	Global   Limits
	Channels map[string]Limits
}

// Clone returns a deep copy.
func (ls *LimitsSet) Clone() *LimitsSet {
	c := &LimitsSet{Global: ls.Global}
	if ls.Channels != nil {
		c.Channels = make(map[string]Limits, len(ls.Channels))
		for k, v := range ls.Channels {
			c.Channels[k] = v
		}
	}
	return c
}

// For returns the effective limits of a channel, with every value >= 0 and 0 meaning
// unlimited. The channel's own entry applies if there is one, else the closest wildcard
// entry matching it (the most specific: a literal token beats '*', which beats '>', from
// the left), else the global limits. Within an entry, a 0 field inherits from that entry's
// parent — the closest other entry whose pattern covers it, else the global limits — and a
// negative field means unlimited. MaxChannels is always the global one.
func (ls *LimitsSet) For(channel string) Limits {
	global := normalized(ls.Global)
	if len(ls.Channels) == 0 {
		return global
	}
	name := channel
	if _, ok := ls.Channels[channel]; !ok {
		var found bool
		if name, found = ls.closest(tokens(channel), ""); !found {
			return global
		}
	}
	l := ls.resolve(name, global)
	l.MaxChannels = global.MaxChannels
	return l
}

// resolve returns the limits of entry name after inheritance.
func (ls *LimitsSet) resolve(name string, global Limits) Limits {
	parent := global
	if p, ok := ls.closest(tokens(name), name); ok {
		parent = ls.resolve(p, global)
	}
	return inherit(ls.Channels[name], parent)
}

// closest returns the most specific entry other than self whose pattern covers the
// pattern toks (a literal channel name is a pattern without wildcards).
func (ls *LimitsSet) closest(toks []string, self string) (string, bool) {
	var best string
	var bestToks []string
	found := false
	for name := range ls.Channels {
		if name == self {
			continue
		}
		nt := tokens(name)
		if !covers(nt, toks) {
			continue
		}
		if !found || moreSpecific(nt, bestToks) || (!moreSpecific(bestToks, nt) && name < best) {
			best, bestToks, found = name, nt, true
		}
	}
	return best, found
}

func tokens(s string) []string { return strings.Split(s, ".") }

// covers reports whether every subject matched by pattern p is matched by pattern q.
func covers(q, p []string) bool {
	for i, t := range q {
		if t == ">" {
			return len(p) > i
		}
		if i >= len(p) {
			return false
		}
		switch {
		case t == "*":
			if p[i] == ">" {
				return false
			}
		case t != p[i]:
			return false
		}
	}
	return len(q) == len(p)
}

func tokenRank(t string) int {
	switch t {
	case ">":
		return 0
	case "*":
		return 1
	}
	return 2
}

// moreSpecific orders patterns: the first token of different rank decides (literal > '*'
// > '>'); then the longer pattern wins.
func moreSpecific(a, b []string) bool {
	for i := 0; i < len(a) && i < len(b); i++ {
		if ra, rb := tokenRank(a[i]), tokenRank(b[i]); ra != rb {
			return ra > rb
		}
	}
	return len(a) > len(b)
}

func inherit(c, parent Limits) Limits {
	pick := func(v, p int64) int64 {
		switch {
		case v < 0:
			return 0
		case v == 0:
			return p
		}
		return v
	}
	return Limits{
		MaxChannels:   parent.MaxChannels,
		MaxMsgs:       int(pick(int64(c.MaxMsgs), int64(parent.MaxMsgs))),
		MaxBytes:      pick(c.MaxBytes, parent.MaxBytes),
		MaxAge:        time.Duration(pick(int64(c.MaxAge), int64(parent.MaxAge))),
		MaxSubs:       int(pick(int64(c.MaxSubs), int64(parent.MaxSubs))),
		MaxInactivity: time.Duration(pick(int64(c.MaxInactivity), int64(parent.MaxInactivity))),
	}
}

func normalized(l Limits) Limits {
	return inherit(l, Limits{MaxChannels: max(l.MaxChannels, 0)})
}

// Validate reports every problem at once (errors.Join), each wrapping ErrInvalidLimits: a
// negative global limit, a per-channel name that is not a valid channel or wildcard
// pattern, MaxChannels set in a per-channel entry, or more literal per-channel entries
// than the global MaxChannels (they count against it at configuration time).
func (ls *LimitsSet) Validate() error {
	var errs []error
	bad := func(format string, args ...any) {
		errs = append(errs, fmt.Errorf("%w: "+format, append([]any{ErrInvalidLimits}, args...)...))
	}
	g := ls.Global
	for _, c := range []struct {
		what string
		v    int64
	}{
		{"max channels", int64(g.MaxChannels)}, {"max subscriptions", int64(g.MaxSubs)},
		{"max messages", int64(g.MaxMsgs)}, {"max bytes", g.MaxBytes},
		{"max age", int64(g.MaxAge)}, {"max inactivity", int64(g.MaxInactivity)},
	} {
		if c.v < 0 {
			bad("%s limit cannot be negative (%d)", c.what, c.v)
		}
	}
	names := make([]string, 0, len(ls.Channels))
	for name := range ls.Channels {
		names = append(names, name)
	}
	slices.Sort(names)
	literals := 0
	for _, name := range names {
		literal, ok := validPattern(name)
		if !ok {
			bad("invalid channel name %q", name)
			continue
		}
		if ls.Channels[name].MaxChannels != 0 {
			bad("channel %q: max channels cannot be set per channel", name)
		}
		if literal {
			literals++
		}
	}
	if g.MaxChannels > 0 && literals > g.MaxChannels {
		bad("too many channels defined (%d). The max channels limit is set to %d", literals, g.MaxChannels)
	}
	return errors.Join(errs...)
}

// validPattern checks a per-channel limits name: a valid channel name (non-empty tokens,
// no '/') where '*' and '>' may appear as whole tokens, '>' last.
func validPattern(name string) (literal, ok bool) {
	if name == "" || strings.ContainsAny(name, "/ \t\r\n") {
		return false, false
	}
	literal = true
	toks := tokens(name)
	for i, t := range toks {
		switch {
		case t == "":
			return false, false
		case t == ">":
			if i != len(toks)-1 {
				return false, false
			}
			literal = false
		case t == "*":
			literal = false
		case strings.ContainsAny(t, "*>"):
			return false, false
		}
	}
	return literal, true
}
