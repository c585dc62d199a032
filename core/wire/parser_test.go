package wire

import (
	"bytes"
	"errors"
	"fmt"
	"math/rand"
	"strings"
	"testing"
)

var _ Handler = (*recorder)(nil)

// recorder is a Handler that records every op as a string, copying all bytes.
type recorder struct {
	ops       []string
	onConnect func() // called from ProcessConnect, e.g. to change parser settings
	fail      string // op name whose Process call returns errHandler
}

var errHandler = errors.New("handler error")

func (r *recorder) add(name, s string) error {
	r.ops = append(r.ops, s)
	if r.fail == name {
		return errHandler
	}
	return nil
}

func (r *recorder) ProcessConnect(arg []byte) error {
	if r.onConnect != nil {
		r.onConnect()
	}
	return r.add("CONNECT", fmt.Sprintf("CONNECT %q", arg))
}
func (r *recorder) ProcessInfo(arg []byte) error { return r.add("INFO", fmt.Sprintf("INFO %q", arg)) }
func (r *recorder) ProcessPub(subject, reply, payload []byte) error {
	return r.add("PUB", fmt.Sprintf("PUB %q %q %q", subject, reply, payload))
}
func (r *recorder) ProcessHPub(subject, reply []byte, hdrLen int, msg []byte) error {
	return r.add("HPUB", fmt.Sprintf("HPUB %q %q %d %q", subject, reply, hdrLen, msg))
}
func (r *recorder) ProcessSub(subject, queue, sid []byte) error {
	return r.add("SUB", fmt.Sprintf("SUB %q %q %q", subject, queue, sid))
}
func (r *recorder) ProcessUnsub(sid []byte, max int64) error {
	return r.add("UNSUB", fmt.Sprintf("UNSUB %q %d", sid, max))
}
func (r *recorder) ProcessPing() error          { return r.add("PING", "PING") }
func (r *recorder) ProcessPong() error          { return r.add("PONG", "PONG") }
func (r *recorder) ProcessOK() error            { return r.add("OK", "+OK") }
func (r *recorder) ProcessErr(arg []byte) error { return r.add("ERR", fmt.Sprintf("ERR %q", arg)) }

// settings configures a parser for one test case.
type settings struct {
	maxLine, maxPayload int
	noHeaders           bool
	expectConnect       bool
}

func newTestParser(s settings) (*Parser, *recorder) {
	r := &recorder{}
	p := NewParser(r)
	p.MaxControlLine, p.MaxPayload = s.maxLine, s.maxPayload
	p.Headers, p.ExpectConnect = !s.noHeaders, s.expectConnect
	return p, r
}

// parseChunks feeds chunks one Parse call at a time, each from a fresh buffer that is
// scribbled over after the call, so a parser that retained its input would misreport. It
// stops at the first error, and fails the test if the parser modified its input.
func parseChunks(t testing.TB, p *Parser, chunks [][]byte) error {
	t.Helper()
	for _, c := range chunks {
		buf := append([]byte(nil), c...)
		err := p.Parse(buf)
		if !bytes.Equal(buf, c) {
			t.Fatalf("Parse modified its input: %q -> %q", c, buf)
		}
		for i := range buf {
			buf[i] = '#'
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// splits returns the ways one test feeds in: whole, byte by byte, at every split point in
// two, and in random chunks.
func splits(in []byte) map[string][][]byte {
	m := map[string][][]byte{"whole": {in}}
	var bytewise [][]byte
	for i := range in {
		bytewise = append(bytewise, in[i:i+1])
	}
	m["bytewise"] = bytewise
	for i := 1; i < len(in); i++ {
		m[fmt.Sprintf("split@%d", i)] = [][]byte{in[:i], in[i:]}
	}
	for seed := int64(1); seed <= 8; seed++ {
		rng := rand.New(rand.NewSource(seed))
		var chunks [][]byte
		for rest := in; len(rest) > 0; {
			n := 1 + rng.Intn(min(len(rest), 1+rng.Intn(16)))
			chunks = append(chunks, rest[:n])
			rest = rest[n:]
		}
		m[fmt.Sprintf("random%d", seed)] = chunks
	}
	return m
}

type parseCase struct {
	name string
	in   string
	set  settings
	want []string // ops delivered
	err  error    // error from Parse
}

// runCase checks a case fed in every way of splits.
func runCase(t *testing.T, tc parseCase) {
	t.Helper()
	for how, chunks := range splits([]byte(tc.in)) {
		p, r := newTestParser(tc.set)
		err := parseChunks(t, p, chunks)
		if err != tc.err {
			t.Fatalf("%s: %s: error %v, want %v", tc.name, how, err, tc.err)
		}
		if strings.Join(r.ops, "\n") != strings.Join(tc.want, "\n") {
			t.Fatalf("%s: %s: ops\n%s\nwant\n%s", tc.name, how,
				strings.Join(r.ops, "\n"), strings.Join(tc.want, "\n"))
		}
	}
}

var validCases = []parseCase{
	{name: "ping", in: "PING\r\n", want: []string{"PING"}},
	{name: "ping lower", in: "ping\r\n", want: []string{"PING"}},
	{name: "ping mixed bare lf", in: "PiNg\n", want: []string{"PING"}},
	{name: "ping trailing junk", in: "PINGxyz \t\r\n", want: []string{"PING"}},
	{name: "pong", in: "PONG\r\npong\n", want: []string{"PONG", "PONG"}},
	{name: "ok", in: "+OK\r\n+ok\n", want: []string{"+OK", "+OK"}},
	{name: "err", in: "-ERR 'Unknown Protocol Operation'\r\n",
		want: []string{`ERR "'Unknown Protocol Operation'"`}},
	{name: "err bare", in: "-err\r\n", want: []string{`ERR ""`}},
	{name: "connect", in: "CONNECT {\"verbose\":false}\r\n",
		want: []string{`CONNECT "{\"verbose\":false}"`}},
	{name: "connect no space", in: "CONNECT{}\r\n", want: []string{`CONNECT "{}"`}},
	{name: "connect trimmed", in: "connect \t {} \t\r\n", want: []string{`CONNECT "{}"`}},
	{name: "connect empty", in: "CONNECT\r\n", want: []string{`CONNECT ""`}},
	{name: "connect empty bare", in: "CONNECT\n", want: []string{`CONNECT ""`}},
	{name: "info", in: "INFO {\"server_id\":\"x\"} \r\n", want: []string{`INFO "{\"server_id\":\"x\"}"`}},
	{name: "pub", in: "PUB foo 5\r\nhello\r\n", want: []string{`PUB "foo" "" "hello"`}},
	{name: "pub reply", in: "PUB foo bar 5\r\nhello\r\n", want: []string{`PUB "foo" "bar" "hello"`}},
	{name: "pub lower bare lf", in: "pub foo 5\nhello\r\n", want: []string{`PUB "foo" "" "hello"`}},
	{name: "pub tabs", in: "PUB\tfoo\t\tbar \t5\t\r\nhello\r\n", want: []string{`PUB "foo" "bar" "hello"`}},
	{name: "pub spaces", in: "PUB   foo  5  \r\nhello\r\n", want: []string{`PUB "foo" "" "hello"`}},
	{name: "pub cr inside line", in: "PUB foo\rbar 1\r\nx\r\n", want: []string{`PUB "foo" "bar" "x"`}},
	{name: "pub zero", in: "PUB foo 0\r\n\r\n", want: []string{`PUB "foo" "" ""`}},
	{name: "pub crlf in payload", in: "PUB foo 6\r\n\r\n\r\n\r\n\r\n",
		want: []string{`PUB "foo" "" "\r\n\r\n\r\n"`}},
	{name: "pub leading zeros", in: "PUB foo 00000000000002\r\nhi\r\n", want: []string{`PUB "foo" "" "hi"`}},
	{name: "pub at max payload", in: "PUB foo 4\r\nabcd\r\n", set: settings{maxPayload: 4},
		want: []string{`PUB "foo" "" "abcd"`}},
	{name: "hpub", in: "HPUB foo 22 27\r\nNATS/1.0\r\nBar: Baz\r\n\r\nhello\r\n",
		want: []string{`HPUB "foo" "" 22 "NATS/1.0\r\nBar: Baz\r\n\r\nhello"`}},
	{name: "hpub reply", in: "hpub foo r 12 14\r\nNATS/1.0\r\n\r\nhi\r\n",
		want: []string{`HPUB "foo" "r" 12 "NATS/1.0\r\n\r\nhi"`}},
	{name: "hpub zero header (nats.go)", in: "HPUB s r 0 5\r\nhello\r\n",
		want: []string{`HPUB "s" "r" 0 "hello"`}},
	{name: "hpub headers only", in: "HPUB foo 12 12\r\nNATS/1.0\r\n\r\n\r\n",
		want: []string{`HPUB "foo" "" 12 "NATS/1.0\r\n\r\n"`}},
	{name: "hpub empty", in: "HPUB foo 0 0\r\n\r\n", want: []string{`HPUB "foo" "" 0 ""`}},
	{name: "sub (nats.go double space)", in: "SUB foo  1\r\n", want: []string{`SUB "foo" "" "1"`}},
	{name: "sub queue", in: "SUB foo q 1\r\n", want: []string{`SUB "foo" "q" "1"`}},
	{name: "sub lower tabs", in: "sub\tfoo.*\t\t22\t\n", want: []string{`SUB "foo.*" "" "22"`}},
	{name: "unsub (nats.go trailing space)", in: "UNSUB 7 \r\n", want: []string{`UNSUB "7" -1`}},
	{name: "unsub max", in: "UNSUB 1 2\r\n", want: []string{`UNSUB "1" 2`}},
	{name: "unsub max zero", in: "unsub 1 0\n", want: []string{`UNSUB "1" 0`}},
	{name: "unsub max int64", in: "UNSUB 1 9223372036854775807\r\n",
		want: []string{`UNSUB "1" 9223372036854775807`}},
	{name: "control line at limit", in: "SUB 1234 678\r\nSUB 1234 678\n", set: settings{maxLine: 8},
		want: []string{`SUB "1234" "" "678"`, `SUB "1234" "" "678"`}},
	{name: "separators not counted", in: "SUB    1234 678\r\n", set: settings{maxLine: 8},
		want: []string{`SUB "1234" "" "678"`}},
	{name: "connect at limit", in: "CONNECT {\"a\":1}\r\n", set: settings{maxLine: 7},
		want: []string{`CONNECT "{\"a\":1}"`}},
	{name: "A1 client", in: "CONNECT {\"verbose\":false,\"pedantic\":false,\"tls_required\":false," +
		"\"name\":\"t\",\"lang\":\"go\",\"version\":\"1.55.0\",\"protocol\":1,\"echo\":true," +
		"\"headers\":true,\"no_responders\":true}\r\nPING\r\n" +
		"SUB foo  1\r\nSUB _INBOX.abc.* 2\r\nPUB foo 5\r\nhello\r\nPUB nobody _INBOX.abc.x1 2\r\nhi\r\n" +
		"HPUB foo 22 27\r\nNATS/1.0\r\nBar: Baz\r\n\r\nhello\r\n" +
		"UNSUB 1 \r\nUNSUB 99\r\nPING\r\n",
		want: []string{
			`CONNECT "{\"verbose\":false,\"pedantic\":false,\"tls_required\":false,\"name\":\"t\",` +
				`\"lang\":\"go\",\"version\":\"1.55.0\",\"protocol\":1,\"echo\":true,\"headers\":true,` +
				`\"no_responders\":true}"`,
			"PING", `SUB "foo" "" "1"`, `SUB "_INBOX.abc.*" "" "2"`, `PUB "foo" "" "hello"`,
			`PUB "nobody" "_INBOX.abc.x1" "hi"`, `HPUB "foo" "" 22 "NATS/1.0\r\nBar: Baz\r\n\r\nhello"`,
			`UNSUB "1" -1`, `UNSUB "99" -1`, "PING",
		}},
	{name: "A2 client", in: "CONNECT {}\r\nPING\r\nSUB foo 1\r\nPUB foo 2\r\nhi\r\nUNSUB 1 2\r\n" +
		"pub foo 0\r\n\r\nSUB foo..bar 3\r\nPUB foo.* 0\r\n\r\n",
		want: []string{`CONNECT "{}"`, "PING", `SUB "foo" "" "1"`, `PUB "foo" "" "hi"`, `UNSUB "1" 2`,
			`PUB "foo" "" ""`, `SUB "foo..bar" "" "3"`, `PUB "foo.*" "" ""`}},
	{name: "A4 client", in: "PUB pub.secret 1\r\nx\r\nPUB other 1\r\nx\r\nSUB sub.bad 1\r\n" +
		"SUB q.foo grp 3\r\nPUB pub.a _R_.abc 1\r\nx\r\nPING\r\n",
		want: []string{`PUB "pub.secret" "" "x"`, `PUB "other" "" "x"`, `SUB "sub.bad" "" "1"`,
			`SUB "q.foo" "grp" "3"`, `PUB "pub.a" "_R_.abc" "x"`, "PING"}},
}

func TestParseValid(t *testing.T) {
	for _, tc := range validCases {
		runCase(t, tc)
	}
}

var long79 = strings.Repeat("a", 79)

var errorCases = []parseCase{
	{name: "unknown op", in: "FOO bar\r\n", err: ErrUnknownOp},
	{name: "empty line", in: "\r\n", err: ErrUnknownOp},
	{name: "bare lf", in: "\n", err: ErrUnknownOp},
	{name: "space first", in: " PING\r\n", err: ErrUnknownOp},
	{name: "after valid op", in: "PING\r\nFOO bar\r\n", want: []string{"PING"}, err: ErrUnknownOp},
	{name: "route RS+", in: "RS+ $G foo\r\n", err: ErrUnknownOp},
	{name: "route RMSG", in: "RMSG $G foo 1\r\nx\r\n", err: ErrUnknownOp},
	{name: "leaf LS+", in: "LS+ $G foo\r\n", err: ErrUnknownOp},
	{name: "MSG from client", in: "MSG foo 1 1\r\nx\r\n", err: ErrUnknownOp},
	{name: "truncated op", in: "PIN\r\n", err: ErrUnknownOp},
	{name: "P junk", in: "PX\r\n", err: ErrUnknownOp},
	{name: "PUB glued", in: "PUBfoo 1\r\nx\r\n", err: ErrUnknownOp},
	{name: "PUB no args", in: "PUB\r\n", err: ErrUnknownOp},
	{name: "SUB no args", in: "SUB\r\n", err: ErrUnknownOp},
	{name: "UNSUB no args", in: "UNSUB\r\n", err: ErrUnknownOp},
	{name: "+ junk", in: "+OX\r\n", err: ErrUnknownOp},
	{name: "- junk", in: "-EXR\r\n", err: ErrUnknownOp},
	{name: "vertical tab is not +", in: "\vOK\r\n", err: ErrUnknownOp},
	{name: "CONNECT typo", in: "CONECT {}\r\n", err: ErrUnknownOp},
	{name: "PUB bad terminator", in: "PUB foo 5\r\nhelloXY", err: ErrUnknownOp},
	{name: "PUB lf terminator", in: "PUB foo 5\r\nhello\nPING\r\n", err: ErrUnknownOp},
	{name: "PUB cr only", in: "PUB foo 5\r\nhello\rPING\r\n", err: ErrUnknownOp},
	{name: "PUB short payload", in: "PUB foo 2\r\nhi\r\nPUB foo 3\r\nabcd\r\n",
		want: []string{`PUB "foo" "" "hi"`}, err: ErrUnknownOp},
	{name: "HPUB bad terminator", in: "HPUB foo 2 3\r\nabcde", err: ErrUnknownOp},
	{name: "PUB blank args", in: "PUB \r\n", err: ErrProtocol},
	{name: "PUB one arg", in: "PUB foo\r\n", err: ErrProtocol},
	{name: "PUB four args", in: "PUB a b c 1\r\nx\r\n", err: ErrProtocol},
	{name: "PUB bad size", in: "PUB foo x\r\n", err: ErrProtocol},
	{name: "PUB size with sign", in: "PUB foo +1\r\nx\r\n", err: ErrProtocol},
	{name: "PUB negative size", in: "PUB foo -1\r\n", err: ErrProtocol},
	{name: "PUB size 2^31", in: "PUB foo 2147483648\r\n", err: ErrProtocol},
	{name: "PUB size overflow", in: "PUB foo 99999999999999999999999\r\n", err: ErrProtocol},
	{name: "PUB size over limit", in: "PUB foo 2147483647\r\n", err: ErrMaxPayload},
	{name: "PUB over max payload", in: "PUB pub.a 101\r\n", set: settings{maxPayload: 100},
		err: ErrMaxPayload},
	{name: "PUB default max payload", in: "PUB foo 1048577\r\n", err: ErrMaxPayload},
	{name: "HPUB two args", in: "HPUB foo 5\r\n", err: ErrProtocol},
	{name: "HPUB five args", in: "HPUB a b c 1 2\r\n", err: ErrProtocol},
	{name: "HPUB hdr > total", in: "HPUB foo 6 5\r\n", err: ErrProtocol},
	{name: "HPUB bad hdr", in: "HPUB foo x 5\r\n", err: ErrProtocol},
	{name: "HPUB bad total", in: "HPUB foo 1 x\r\n", err: ErrProtocol},
	{name: "HPUB total overflow", in: "HPUB foo 1 99999999999\r\n", err: ErrProtocol},
	{name: "HPUB over max payload", in: "HPUB foo 1 101\r\n", set: settings{maxPayload: 100},
		err: ErrMaxPayload},
	{name: "HPUB without headers", in: "HPUB foo 12 12\r\n", set: settings{noHeaders: true},
		err: ErrHeadersRequired},
	{name: "A3 HPUB without headers", in: "CONNECT {\"verbose\":false}\r\nHPUB foo 12 12\r\n",
		set: settings{noHeaders: true}, want: []string{`CONNECT "{\"verbose\":false}"`},
		err: ErrHeadersRequired},
	{name: "SUB one arg", in: "SUB foo\r\n", err: ErrProtocol},
	{name: "SUB blank", in: "SUB  \r\n", err: ErrProtocol},
	{name: "SUB four args", in: "SUB a b c d\r\n", err: ErrProtocol},
	{name: "UNSUB blank", in: "UNSUB \r\n", err: ErrProtocol},
	{name: "UNSUB three args", in: "UNSUB 1 2 3\r\n", err: ErrProtocol},
	{name: "UNSUB bad max", in: "UNSUB 1 x\r\n", err: ErrProtocol},
	{name: "UNSUB negative max", in: "UNSUB 1 -2\r\n", err: ErrProtocol},
	{name: "UNSUB max overflow", in: "UNSUB 1 9223372036854775808\r\n", err: ErrProtocol},
	{name: "UNSUB max overflow long", in: "UNSUB 1 99999999999999999999999\r\n", err: ErrProtocol},
	{name: "control line over limit", in: "SUB 123456789\r\n", set: settings{maxLine: 8},
		err: ErrMaxControlLine},
	{name: "control line over limit bare lf", in: "SUB 123456789\n", set: settings{maxLine: 8},
		err: ErrMaxControlLine},
	{name: "control line over limit by cr", in: "SUB 12345678\r\r\n", set: settings{maxLine: 8},
		err: ErrMaxControlLine},
	{name: "control line no newline", in: "SUB " + long79, set: settings{maxLine: 64},
		err: ErrMaxControlLine},
	{name: "A4 long subject", in: "SUB " + long79 + " 1\r\n", set: settings{maxLine: 64},
		err: ErrMaxControlLine},
	{name: "connect over limit", in: "CONNECT {\"ab\":1}\r\n", set: settings{maxLine: 7},
		err: ErrMaxControlLine},
	{name: "pub over limit", in: "PUB foo 1\r\nx\r\nPUB foo.bar.baz 1\r\nx\r\n",
		set: settings{maxLine: 8}, want: []string{`PUB "foo" "" "x"`}, err: ErrMaxControlLine},
	{name: "auth PING", in: "PING\r\n", set: settings{expectConnect: true}, err: ErrAuthorization},
	{name: "auth PUB", in: "PUB foo 1\r\nx\r\n", set: settings{expectConnect: true},
		err: ErrAuthorization},
	{name: "auth junk", in: "xyz", set: settings{expectConnect: true}, err: ErrAuthorization},
	{name: "auth still expected", in: "CONNECT {}\r\nPING\r\n", set: settings{expectConnect: true},
		want: []string{`CONNECT "{}"`}, err: ErrAuthorization},
	{name: "auth C but not CONNECT", in: "CLOSE\r\n", set: settings{expectConnect: true},
		err: ErrUnknownOp},
}

func TestParseErrors(t *testing.T) {
	for _, tc := range errorCases {
		runCase(t, tc)
	}
}

// A megabyte without newline fails as soon as the limit is passed, without buffering it.
func TestMaxControlLineWithoutNewline(t *testing.T) {
	for _, op := range []string{"PUB ", "SUB ", "UNSUB ", "HPUB ", "CONNECT ", "INFO ", "-ERR "} {
		p, _ := newTestParser(settings{})
		junk := bytes.Repeat([]byte("x"), 1<<20)
		if err := p.Parse(append([]byte(op), junk...)); err != ErrMaxControlLine {
			t.Fatalf("%s in one call: %v", op, err)
		}
		if err := p.Parse([]byte(op)); err != nil {
			t.Fatal(err)
		}
		var err error
		for i := 0; i < 1<<20 && err == nil; i += 1000 {
			err = p.Parse(junk[i : i+1000])
			if c := cap(p.scratch); c > DefaultMaxControlLine+1 {
				t.Fatalf("scratch grew to %d", c)
			}
		}
		if err != ErrMaxControlLine {
			t.Fatalf("%s in chunks: %v", op, err)
		}
	}
}

// The handler may change settings inside a callback, effective for the next op in the same
// buffer: CONNECT then PING, or CONNECT {"headers":true} then HPUB, arrive together.
func TestSettingsFromHandler(t *testing.T) {
	in := "CONNECT {\"headers\":true}\r\nPING\r\nHPUB foo 2 3\r\nhdx\r\n"
	for how, chunks := range splits([]byte(in)) {
		p, r := newTestParser(settings{expectConnect: true, noHeaders: true})
		r.onConnect = func() { p.ExpectConnect, p.Headers = false, true }
		if err := parseChunks(t, p, chunks); err != nil {
			t.Fatalf("%s: %v", how, err)
		}
		want := `CONNECT "{\"headers\":true}"|PING|HPUB "foo" "" 2 "hdx"`
		if got := strings.Join(r.ops, "|"); got != want {
			t.Fatalf("%s: %s", how, got)
		}
	}
}

// Settings changed between calls apply to a control line in progress.
func TestMaxControlLineChangedMidLine(t *testing.T) {
	p, r := newTestParser(settings{maxLine: 4})
	if err := p.Parse([]byte("SUB 1 2")); err != nil {
		t.Fatal(err)
	}
	p.MaxControlLine = 100 // grows the scratch array, keeping the partial line
	if err := p.Parse([]byte("34567\r\n")); err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(r.ops, "|"); got != `SUB "1" "" "234567"` {
		t.Fatal(got)
	}
	if err := p.Parse([]byte("SUB 1234567")); err != nil {
		t.Fatal(err)
	}
	p.MaxControlLine = 4
	if err := p.Parse([]byte("\r\n")); err != ErrMaxControlLine {
		t.Fatal(err)
	}
}

func TestHandlerErrorStopsParsing(t *testing.T) {
	for _, name := range []string{"CONNECT", "INFO", "PUB", "HPUB", "SUB", "UNSUB", "PING", "PONG", "OK", "ERR"} {
		in := "CONNECT {}\r\nINFO {}\r\nPUB a 1\r\nx\r\nHPUB a 1 1\r\nx\r\nSUB a 1\r\nUNSUB 1\r\n" +
			"PING\r\nPONG\r\n+OK\r\n-ERR x\r\n"
		for how, chunks := range splits([]byte(in)) {
			p, r := newTestParser(settings{})
			r.fail = name
			err := parseChunks(t, p, chunks)
			if err != errHandler {
				t.Fatalf("%s %s: %v", name, how, err)
			}
			last := r.ops[len(r.ops)-1]
			if !strings.HasPrefix(last, strings.Replace(name, "OK", "+OK", 1)) {
				t.Fatalf("%s %s: last op %s", name, how, last)
			}
			// After the error the parser is back at the start of an op.
			r.fail, r.ops = "", nil
			if err := p.Parse([]byte("PING\r\n")); err != nil || len(r.ops) != 1 {
				t.Fatalf("%s %s: after error: %v %v", name, how, err, r.ops)
			}
		}
	}
}

func TestReset(t *testing.T) {
	for _, partial := range []string{"P", "PU", "PUB", "PUB ", "PUB foo", "PUB foo 5\r\nhel", "SUB foo", "PING", "CONN"} {
		p, r := newTestParser(settings{})
		if err := p.Parse([]byte(partial)); err != nil {
			t.Fatal(err)
		}
		p.Reset()
		if err := p.Parse([]byte("PUB a 1\r\nx\r\n")); err != nil {
			t.Fatalf("%q: %v", partial, err)
		}
		if got := strings.Join(r.ops, "|"); got != `PUB "a" "" "x"` {
			t.Fatalf("%q: %s", partial, got)
		}
	}
}

// nilCheck records whether optional arguments are nil when absent.
type nilCheck struct {
	recorder
	nonNil int
}

func (n *nilCheck) ProcessPub(subject, reply, payload []byte) error {
	if reply != nil || payload == nil {
		n.nonNil++
	}
	return nil
}
func (n *nilCheck) ProcessHPub(subject, reply []byte, hdrLen int, msg []byte) error {
	if reply != nil || msg == nil {
		n.nonNil++
	}
	return nil
}
func (n *nilCheck) ProcessSub(subject, queue, sid []byte) error {
	if queue != nil {
		n.nonNil++
	}
	return nil
}

func TestAbsentArgsAreNil(t *testing.T) {
	in := []byte("PUB foo 5\r\nhello\r\nPUB foo 0\r\n\r\nHPUB foo 0 2\r\nhi\r\nSUB foo  1\r\n")
	for how, chunks := range splits(in) {
		h := &nilCheck{}
		p := NewParser(h)
		p.Headers = true
		if err := parseChunks(t, p, chunks); err != nil {
			t.Fatal(err)
		}
		if h.nonNil != 0 {
			t.Fatalf("%s: %d absent arguments not nil (or payload nil)", how, h.nonNil)
		}
	}
}

// appender appends to every slice it gets, which must not write into the parser's input.
type appender struct{ recorder }

func (a *appender) ProcessPub(subject, reply, payload []byte) error {
	_ = append(subject, 'X')
	_ = append(reply, 'X')
	_ = append(payload, 'X')
	return nil
}
func (a *appender) ProcessSub(subject, queue, sid []byte) error {
	_ = append(subject, 'X')
	_ = append(queue, 'X')
	_ = append(sid, 'X')
	return nil
}

func TestHandlerCannotWriteInput(t *testing.T) {
	in := []byte("PUB foo bar 5\r\nhello\r\nSUB foo q 1\r\nPING\r\n")
	p := NewParser(&appender{})
	if err := parseChunks(t, p, [][]byte{in}); err != nil {
		t.Fatal(err)
	}
}

// A large split payload grows the message buffer for that message only.
func TestLargeSplitPayloadReleased(t *testing.T) {
	p, r := newTestParser(settings{})
	size := msgKeep * 2
	payload := bytes.Repeat([]byte("z"), size)
	in := append(append([]byte(fmt.Sprintf("PUB big %d\r\n", size)), payload...), "\r\n"...)
	if err := parseChunks(t, p, [][]byte{in[:100], in[100:]}); err != nil {
		t.Fatal(err)
	}
	if len(r.ops) != 1 || cap(p.msg) > msgKeep {
		t.Fatalf("ops %d, msg cap %d", len(r.ops), cap(p.msg))
	}
	// A small one keeps its buffer.
	if err := parseChunks(t, p, [][]byte{[]byte("PUB a 3\r\nab"), []byte("c\r\n")}); err != nil {
		t.Fatal(err)
	}
	if cap(p.msg) == 0 {
		t.Fatal("small message buffer not kept")
	}
}

func TestErrorTexts(t *testing.T) {
	for _, c := range []struct {
		err         *Error
		text, rsn   string
		close, sent bool
	}{
		{ErrUnknownOp, "Unknown Protocol Operation", "Parse Error", true, true},
		{ErrProtocol, "", "Protocol Violation", true, false},
		{ErrMaxControlLine, "maximum control line exceeded", "Maximum Control Line Exceeded", true, true},
		{ErrMaxPayload, "Maximum Payload Violation", "Maximum Message Payload Exceeded", true, true},
		{ErrAuthorization, "Authorization Violation", "Authentication Failure", true, true},
		{ErrHeadersRequired, "", "Message Header Violation", true, false},
		{ErrAuthTimeout, "Authentication Timeout", "Authentication Timeout", true, true},
		{ErrStale, "Stale Connection", "Stale Connection", true, true},
		{ErrMaxConnections, "maximum connections exceeded", "Maximum Connections Exceeded", true, true},
		{ErrBadProtocol, "invalid client protocol", "Bad Client Protocol Version", true, true},
		{ErrNoRespondersNeedsHeaders, "no responders requires headers support",
			"No Responders Requires Headers", true, true},
		{ErrInvalidSubject, "Invalid Subject", "", false, true},
		{ErrInvalidPubSubject, "Invalid Publish Subject", "", false, true},
		{ErrMaxSubscriptions, "maximum subscriptions exceeded", "", false, true},
		{ErrBadConnect, "", "Protocol Violation", true, false},
	} {
		if c.err.Text != c.text || c.err.Reason != c.rsn || c.err.Close != c.close {
			t.Errorf("%+v", *c.err)
		}
		if c.err.Error() == "" {
			t.Errorf("%+v: empty Error()", *c.err)
		}
	}
	var target *Error
	if !errors.As(fmt.Errorf("wrapped: %w", ErrProtocol), &target) || target != ErrProtocol {
		t.Error("errors.As")
	}
	if got := PermPub([]byte("pub.secret")); got != `Permissions Violation for Publish to "pub.secret"` {
		t.Error(got)
	}
	if got := PermPubReply([]byte("_R_.abc")); got != `Permissions Violation for Publish with Reply of "_R_.abc"` {
		t.Error(got)
	}
	if got := PermSub([]byte("q.foo"), nil); got != `Permissions Violation for Subscription to "q.foo"` {
		t.Error(got)
	}
	if got := PermSub([]byte("q.foo"), []byte("other")); got !=
		`Permissions Violation for Subscription to "q.foo" using queue "other"` {
		t.Error(got)
	}
}

// nopHandler ignores everything; for allocation tests and benchmarks.
type nopHandler struct{ n int }

func (h *nopHandler) ProcessConnect(arg []byte) error                 { return nil }
func (h *nopHandler) ProcessInfo(arg []byte) error                    { return nil }
func (h *nopHandler) ProcessPub(subject, reply, payload []byte) error { h.n++; return nil }
func (h *nopHandler) ProcessHPub(subject, reply []byte, hdrLen int, msg []byte) error {
	h.n++
	return nil
}
func (h *nopHandler) ProcessSub(subject, queue, sid []byte) error { h.n++; return nil }
func (h *nopHandler) ProcessUnsub(sid []byte, max int64) error    { h.n++; return nil }
func (h *nopHandler) ProcessPing() error                          { h.n++; return nil }
func (h *nopHandler) ProcessPong() error                          { return nil }
func (h *nopHandler) ProcessOK() error                            { return nil }
func (h *nopHandler) ProcessErr(arg []byte) error                 { return nil }

func TestZeroAllocs(t *testing.T) {
	h := &nopHandler{}
	p := NewParser(h)
	p.Headers = true
	pubs := repeatOp(pubOp(16))
	mixed := []byte("PUB foo.bar 16\r\n0123456789abcdef\r\nPUB foo reply 2\r\nhi\r\n" +
		"HPUB foo 12 14\r\nNATS/1.0\r\n\r\nhi\r\nSUB foo 1\r\nSUB foo q 2\r\nUNSUB 1 5\r\nPING\r\n" +
		"pub  foo\t2 \r\nhi\r\nPONG\r\n+OK\r\n")
	for name, buf := range map[string][]byte{"pub": pubs, "mixed": mixed} {
		if n := testing.AllocsPerRun(100, func() {
			if err := p.Parse(buf); err != nil {
				t.Fatal(err)
			}
		}); n != 0 {
			t.Errorf("%s in one buffer: %v allocs", name, n)
		}
		// Split everywhere: control lines and payloads cross calls. The warm-up run
		// allocates the scratch array and the message buffer, once.
		for _, step := range []int{1, 5, 16} {
			run := func() {
				for i := 0; i < len(buf); i += step {
					if err := p.Parse(buf[i:min(i+step, len(buf))]); err != nil {
						t.Fatal(err)
					}
				}
			}
			run()
			if n := testing.AllocsPerRun(20, run); n != 0 {
				t.Errorf("%s split every %d bytes: %v allocs", name, step, n)
			}
		}
	}
}
