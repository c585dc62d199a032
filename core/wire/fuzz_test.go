package wire

import (
	"strings"
	"testing"
)

// fuzzSettings derives parser settings from a fuzz byte, so the fuzzer also explores small
// limits (where control line and payload limits are easy to hit), disabled headers and the
// CONNECT-first mode.
func fuzzSettings(cfg uint8) settings {
	s := settings{noHeaders: cfg&1 != 0, expectConnect: cfg&2 != 0}
	if cfg&4 != 0 {
		s.maxLine, s.maxPayload = 12, 24
	}
	return s
}

// fuzzResult is what a parse produced: the ops delivered and the error, as text.
type fuzzResult struct {
	ops string
	err string
}

// fuzzParse parses chunks with a fresh parser and checks the properties that hold for any
// input: no panic (the fuzzer reports it), input neither modified nor retained (parseChunks
// scribbles over each chunk after its call), and errors always of type *Error.
func fuzzParse(t *testing.T, set settings, chunks [][]byte) fuzzResult {
	t.Helper()
	p, r := newTestParser(set)
	err := parseChunks(t, p, chunks)
	res := fuzzResult{ops: strings.Join(r.ops, "\n")}
	if err != nil {
		if _, ok := err.(*Error); !ok {
			t.Fatalf("error %T %v is not an *Error", err, err)
		}
		res.err = err.Error()
	}
	return res
}

func fuzzSeeds() []string {
	seeds := []string{
		"",
		"PING\r\n",
		"PUB foo 5\r\nhello\r\nPUB foo bar 5\r\nhello\r\n",
		"PUB foo 5\r\nhelloXY",
		"HPUB foo 22 27\r\nNATS/1.0\r\nBar: Baz\r\n\r\nhello\r\n",
		"CONNECT {\"verbose\":false,\"headers\":true}\r\nPING\r\nSUB foo  1\r\nUNSUB 1 \r\n",
		"SUB foo q 1\r\nUNSUB 1 10\r\npub foo 0\r\n\r\n",
		"PUB foo 99999999999999999999\r\n",
		"HPUB foo 6 5\r\nabcde\r\n",
		"RMSG $G foo 1\r\nx\r\n",
		"INFO {} \r\n-ERR 'x'\r\n+OK\r\nPONG\r\n",
		"PUB \t foo \t 3 \t\r\nabc\r\n",
		"PUB foo 3\nabc\r\n",
		"SUB " + strings.Repeat("x", 40),
	}
	for _, tc := range validCases {
		seeds = append(seeds, tc.in)
	}
	for _, tc := range errorCases {
		seeds = append(seeds, tc.in)
	}
	return seeds
}

// FuzzParser: one Parse call and the same bytes split in two (at several points) yield the
// same ops and the same error.
func FuzzParser(f *testing.F) {
	for _, s := range fuzzSeeds() {
		f.Add([]byte(s), uint8(0))
		f.Add([]byte(s), uint8(4))
	}
	f.Fuzz(func(t *testing.T, data []byte, cfg uint8) {
		set := fuzzSettings(cfg)
		whole := fuzzParse(t, set, [][]byte{data})
		for _, at := range []int{1, len(data) / 2, len(data) - 1, int(cfg) * 7 % (len(data) + 1)} {
			if at < 0 || at > len(data) {
				continue
			}
			split := fuzzParse(t, set, [][]byte{data[:at], data[at:]})
			if split != whole {
				t.Fatalf("split at %d of %q:\n%+v\nwhole:\n%+v", at, data, split, whole)
			}
		}
	})
}

// FuzzParserSplit: the same bytes cut into chunks of fuzzer-chosen sizes yield the same ops
// and error as one call.
func FuzzParserSplit(f *testing.F) {
	for _, s := range fuzzSeeds() {
		f.Add([]byte(s), []byte{1, 2, 3, 5, 8, 13}, uint8(0))
		f.Add([]byte(s), []byte{1}, uint8(4))
	}
	f.Fuzz(func(t *testing.T, data, cuts []byte, cfg uint8) {
		set := fuzzSettings(cfg)
		whole := fuzzParse(t, set, [][]byte{data})
		var chunks [][]byte
		for i, rest := 0, data; len(rest) > 0; i++ {
			n := 1
			if len(cuts) > 0 {
				n = int(cuts[i%len(cuts)])%32 + 1
			}
			n = min(n, len(rest))
			chunks = append(chunks, rest[:n])
			rest = rest[n:]
		}
		if split := fuzzParse(t, set, chunks); split != whole {
			t.Fatalf("chunks %q:\n%+v\nwhole:\n%+v", chunks, split, whole)
		}
	})
}
