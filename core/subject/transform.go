package subject

import (
	"errors"
	"strings"
)

// Relations between patterns and the subject mapping of account imports (an import's
// `prefix` or `to`). Configuration uses them once; Transform.Apply runs per delivered
// message and does not allocate when dst has room.

// SubsetOf reports whether every subject matching pattern p also matches pattern q.
// Both must be valid subjects (ValidSubject).
func SubsetOf(p, q string) bool {
	for {
		pt, prest, pmore := strings.Cut(p, ".")
		qt, qrest, qmore := strings.Cut(q, ".")
		switch {
		case qt == ">":
			return true // p has at least this token: '>' and '*' both need one
		case pt == ">":
			return false
		case qt != "*" && (pt == "*" || pt != qt):
			return false
		}
		if !pmore || !qmore {
			return pmore == qmore
		}
		p, q = prest, qrest
	}
}

// Overlap reports whether some subject matches both patterns.
func Overlap(p, q string) bool {
	for {
		pt, prest, pmore := strings.Cut(p, ".")
		qt, qrest, qmore := strings.Cut(q, ".")
		if pt == ">" || qt == ">" {
			return true
		}
		if pt != "*" && qt != "*" && pt != qt {
			return false
		}
		if !pmore || !qmore {
			return pmore == qmore
		}
		p, q = prest, qrest
	}
}

// ErrTransform is returned by NewTransform for patterns whose wildcards do not line up.
var ErrTransform = errors.New("subject: the two patterns must have the same wildcards in the same order")

// Transform maps subjects matching one pattern onto another with the same wildcards in
// the same order: "foo.*.>" → "bar.*.baz.>" maps "foo.1.2.3" to "bar.1.baz.2.3". This is
// how an import's `to` (or `prefix`) turns an exporter's subject into the importer's and
// back. Immutable once built; safe for concurrent use.
type Transform struct {
	from, to []string
	fwc      bool // the patterns end in '>'
}

// NewTransform builds the mapping from pattern from onto pattern to; both must be valid.
func NewTransform(from, to string) (*Transform, error) {
	t := &Transform{from: strings.Split(from, "."), to: strings.Split(to, ".")}
	if wildcards(t.from) != wildcards(t.to) {
		return nil, ErrTransform
	}
	t.fwc = t.from[len(t.from)-1] == ">"
	return t, nil
}

// wildcards spells the wildcard tokens of a pattern in order ("*>" for "a.*.b.>").
func wildcards(toks []string) string {
	var b []byte
	for _, t := range toks {
		if t == "*" || t == ">" {
			b = append(b, t[0])
		}
	}
	return string(b)
}

// Apply appends to dst[:0] the mapping of subj, which may itself be a pattern (its
// wildcard tokens are carried over like literal ones), and reports false when subj does
// not match the from pattern.
func (t *Transform) Apply(dst, subj []byte) ([]byte, bool) {
	// The tokens a wildcard captured, as offsets into subj: at most one per '*', and the
	// rest for '>'. A small fixed array keeps this on the stack for usual subjects.
	var capsArr [16][2]int
	caps := capsArr[:0]
	pos := 0
	for i, ft := range t.from {
		if pos > len(subj) {
			return dst, false
		}
		end := pos
		for end < len(subj) && subj[end] != '.' {
			end++
		}
		switch {
		case ft == ">":
			if pos >= len(subj) {
				return dst, false
			}
			caps = append(caps, [2]int{pos, len(subj)})
			pos = len(subj) + 1
		case ft == "*":
			caps = append(caps, [2]int{pos, end})
			pos = end + 1
		default:
			if string(subj[pos:end]) != ft {
				return dst, false
			}
			pos = end + 1
		}
		if i == len(t.from)-1 && ft != ">" && end != len(subj) {
			return dst, false // the subject is longer than the pattern
		}
	}
	if pos <= len(subj) {
		return dst, false // the pattern is longer than the subject
	}
	dst = dst[:0]
	k := 0
	for i, tt := range t.to {
		if i > 0 {
			dst = append(dst, '.')
		}
		if tt == "*" || tt == ">" {
			c := caps[k]
			k++
			dst = append(dst, subj[c[0]:c[1]]...)
			continue
		}
		dst = append(dst, tt...)
	}
	return dst, true
}

// ApplyString is Apply for configuration-time strings.
func (t *Transform) ApplyString(subj string) (string, bool) {
	b, ok := t.Apply(nil, []byte(subj))
	return string(b), ok
}
