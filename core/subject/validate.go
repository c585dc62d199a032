package subject

import (
	"encoding/binary"
	"math/bits"
	"strings"
	"unsafe"
)

// text is the set of types subjects arrive as: strings from the API and
// configuration, byte slices from the wire. Generic helpers over it avoid both
// duplicated code and string(b) allocations.
type text interface{ ~string | ~[]byte }

const (
	tsep = '.' // token separator
	pwc  = '*' // partial wildcard: exactly one token
	fwc  = '>' // full wildcard: one or more trailing tokens
)

// maxStackTokens is how many tokens are split into a stack array; longer
// subjects fall back to the heap.
const maxStackTokens = 32

// isSpace reports whether c is whitespace as the protocol defines it.
func isSpace(c byte) bool {
	return c == ' ' || c == '\t' || c == '\r' || c == '\n' || c == '\f'
}

// ValidSubject reports whether s is a valid subscription subject: non-empty,
// no empty token, no whitespace, '>' only as the last token. '*' and '>' are
// wildcards only as whole tokens; "foo*" and "f>o" are ordinary tokens.
func ValidSubject(s string) bool { return validSubject(s, false) }

// ValidSubjectBytes is ValidSubject for a byte slice; it does not allocate.
func ValidSubjectBytes(s []byte) bool { return validSubject(s, false) }

// ValidLiteral reports whether s is a valid publish subject (what a pedantic
// server requires): a valid subject with no '*' or '>' token.
func ValidLiteral(s []byte) bool { return validSubject(s, true) }

// ValidPedantic reports whether s passes nats-server's pedantic check of a PUB subject
// (IsValidLiteralSubject): no empty token and no '*' or '>' token. Unlike ValidLiteral it
// does not look for other whitespace: a PUB subject may hold a form feed (its arguments are
// split at spaces, tabs and CRs), and nats-server routes it without an error even when
// pedantic. It does not allocate.
func ValidPedantic(s []byte) bool {
	start := 0
	for i := 0; i <= len(s); i++ {
		if i < len(s) && s[i] != tsep {
			continue
		}
		if n := i - start; n == 0 || n == 1 && (s[start] == pwc || s[start] == fwc) {
			return false
		}
		start = i + 1
	}
	return true
}

// ValidPublish reports whether s is a subject the server may publish on its own
// behalf (the in-process connection) and write into MSG, HMSG and RMSG frames: a
// valid literal subject (see ValidLiteral) that also has no control byte
// (0x00–0x1f, 0x7f) anywhere. The protocol itself accepts control bytes other
// than whitespace, but no legitimate subject needs them.
//
// It runs on every in-process publish, so it reads eight bytes at a time: a few
// word operations refuse a space, control byte or DEL anywhere in the word and find
// its dots; only the tokens that end at a dot are looked at. It does not allocate.
func ValidPublish(s string) bool {
	if len(s) == 0 {
		return false
	}
	b := unsafe.Slice(unsafe.StringData(s), len(s))
	start, i := 0, 0 // start: first byte of the current token
	for ; i+8 <= len(b); i += 8 {
		w := binary.LittleEndian.Uint64(b[i:])
		del := w ^ (lsb * 0x7f)
		if ((w-lsb*0x21)&^w|(del-lsb)&^del)&msb != 0 {
			return false // a byte below 0x21 (space, control) or 0x7f
		}
		for dots := zeroBytes(w ^ (lsb * tsep)); dots != 0; dots &= dots - 1 {
			end := i + bits.TrailingZeros64(dots)/8
			if !literalToken(s[start:end]) {
				return false
			}
			start = end + 1
		}
	}
	for ; i < len(b); i++ {
		c := b[i]
		if c <= ' ' || c == 0x7f {
			return false
		}
		if c == tsep {
			if !literalToken(s[start:i]) {
				return false
			}
			start = i + 1
		}
	}
	return literalToken(s[start:])
}

// Word-at-a-time constants: every byte 0x01, every byte 0x7f, every byte 0x80.
const (
	lsb = 0x0101010101010101
	low = 0x7f7f7f7f7f7f7f7f
	msb = 0x8080808080808080
)

// zeroBytes returns a mask with the high bit set in exactly the bytes of v that are
// zero (no false positives: nothing carries between bytes).
func zeroBytes(v uint64) uint64 {
	return ^((v & low) + low | v) & msb
}

// literalToken reports whether tok is a non-empty token other than a wildcard.
func literalToken(tok string) bool {
	return len(tok) > 1 || len(tok) == 1 && tok[0] != pwc && tok[0] != fwc
}

// ValidQueue reports whether q is a valid queue group name: non-empty and no
// whitespace. Subject rules do not apply to queue names.
func ValidQueue(q []byte) bool {
	if len(q) == 0 {
		return false
	}
	for _, c := range q {
		if isSpace(c) {
			return false
		}
	}
	return true
}

func validSubject[S text](s S, literal bool) bool {
	if len(s) == 0 {
		return false
	}
	start := 0
	for i := 0; i <= len(s); i++ {
		if i < len(s) && s[i] != tsep {
			if isSpace(s[i]) {
				return false
			}
			continue
		}
		switch i - start {
		case 0:
			return false // empty token
		case 1:
			switch s[start] {
			case fwc:
				if literal || i != len(s) {
					return false
				}
			case pwc:
				if literal {
					return false
				}
			}
		}
		start = i + 1
	}
	return true
}

// IsLiteral reports whether s has no '*' or '>' token. It does not validate s.
func IsLiteral(s string) bool {
	start := 0
	for i := 0; i <= len(s); i++ {
		if i < len(s) && s[i] != tsep {
			continue
		}
		if i-start == 1 && (s[start] == pwc || s[start] == fwc) {
			return false
		}
		start = i + 1
	}
	return true
}

// Matches reports whether the subscription pattern matches subject (§7.2):
// same number of tokens with each pattern token equal or '*'; or the pattern
// ends in '>' and the subject has at least one more token than the pattern
// before it. "foo.>" does not match "foo". Wildcard tokens in subject are
// compared as literal tokens, exactly as Index.Match treats them. A subject
// with an empty token, or a pattern with an empty token or a '>' that is not
// last, matches nothing. Matches does not allocate.
func Matches(pattern, subject string) bool {
	if pattern == "" || subject == "" {
		return false
	}
	for {
		pt, prest, pmore := strings.Cut(pattern, ".")
		st, srest, smore := strings.Cut(subject, ".")
		if st == "" {
			return false
		}
		if pt == ">" {
			return !pmore && noEmptyToken(srest, smore)
		}
		if pt == "" || (pt != "*" && pt != st) {
			return false
		}
		if !pmore || !smore {
			return !pmore && !smore
		}
		pattern, subject = prest, srest
	}
}

// noEmptyToken reports whether the tokens left after a '.' (more) are all
// non-empty.
func noEmptyToken(rest string, more bool) bool {
	if !more {
		return true
	}
	if rest == "" || rest[len(rest)-1] == tsep {
		return false
	}
	return !strings.Contains(rest, "..") && rest[0] != tsep
}

// tokenize splits s at '.' into buf (which it may outgrow) and reports false
// when s is empty or has an empty token: such a subject matches nothing.
func tokenize[S text](s S, buf []S) ([]S, bool) {
	if len(s) == 0 {
		return nil, false
	}
	toks := buf[:0]
	start := 0
	for i := 0; i < len(s); i++ {
		if s[i] == tsep {
			if i == start {
				return nil, false
			}
			toks = append(toks, s[start:i])
			start = i + 1
		}
	}
	if start == len(s) {
		return nil, false
	}
	return append(toks, s[start:]), true
}
