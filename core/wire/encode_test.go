package wire

import (
	"math"
	"strconv"
	"strings"
	"testing"
)

func TestEncoders(t *testing.T) {
	b := func(s string) []byte {
		if s == "" {
			return nil
		}
		return []byte(s)
	}
	for _, c := range []struct{ got, want string }{
		{PingLine, "PING\r\n"},
		{PongLine, "PONG\r\n"},
		{OKLine, "+OK\r\n"},
		{string(AppendInfo(nil, b(`{"proto":1}`))), "INFO {\"proto\":1} \r\n"},
		{string(AppendErr(nil, "Unknown Protocol Operation")), "-ERR 'Unknown Protocol Operation'\r\n"},
		{string(AppendErr(nil, PermPub(b("x")))), "-ERR 'Permissions Violation for Publish to \"x\"'\r\n"},
		{string(AppendMsg(nil, b("foo"), "1", nil, 5)), "MSG foo 1 5\r\n"},
		{string(AppendMsg(nil, b("foo"), "12", b("_INBOX.x"), 0)), "MSG foo 12 _INBOX.x 0\r\n"},
		{string(AppendHMsg(nil, b("_INBOX.abc.x1"), "2", nil, 38, 38)), "HMSG _INBOX.abc.x1 2 38 38\r\n"},
		{string(AppendHMsg(nil, b("foo"), "1", b("r"), 22, 27)), "HMSG foo 1 r 22 27\r\n"},
		{string(AppendPub(nil, b("foo"), nil, 5)), "PUB foo 5\r\n"},
		{string(AppendPub(nil, b("foo"), b("bar"), 1024)), "PUB foo bar 1024\r\n"},
		{string(AppendHPub(nil, b("foo"), nil, 22, 27)), "HPUB foo 22 27\r\n"},
		{string(AppendHPub(nil, b("s"), b("r"), 0, 5)), "HPUB s r 0 5\r\n"},
		{string(AppendSub(nil, b("foo"), nil, "1")), "SUB foo 1\r\n"},
		{string(AppendSub(nil, b("foo"), b("q"), "2")), "SUB foo q 2\r\n"},
		{string(AppendUnsub(nil, "7", -1)), "UNSUB 7\r\n"},
		{string(AppendUnsub(nil, "1", 0)), "UNSUB 1 0\r\n"},
		{string(AppendUnsub(nil, "1", math.MaxInt64)), "UNSUB 1 9223372036854775807\r\n"},
		{string(AppendMsg([]byte("x"), b("a"), "1", nil, 1)), "xMSG a 1 1\r\n"},
	} {
		if c.got != c.want {
			t.Errorf("got %q, want %q", c.got, c.want)
		}
	}
}

func TestAppendInt(t *testing.T) {
	check := func(n int) {
		if got, want := string(AppendInt([]byte("x"), n)), "x"+strconv.Itoa(n); got != want {
			t.Fatalf("AppendInt(%d) = %q, want %q", n, got, want)
		}
	}
	for n := -10000; n <= 100000; n++ {
		check(n)
	}
	for p := 1; p > 0 && p <= math.MaxInt/10; p *= 10 {
		for _, d := range []int{-1, 0, 1} {
			check(p + d)
			check(-p + d)
		}
	}
	check(math.MaxInt)
	check(math.MinInt)
	check(math.MaxInt32)
}

// Encoded ops parse back to the same values.
func TestEncodeParseRoundTrip(t *testing.T) {
	var buf []byte
	buf = AppendPub(buf, []byte("foo"), []byte("bar"), 5)
	buf = append(buf, "hello\r\n"...)
	buf = AppendPub(buf, []byte("foo"), nil, 0)
	buf = append(buf, "\r\n"...)
	buf = AppendHPub(buf, []byte("h"), nil, 12, 14)
	buf = append(buf, "NATS/1.0\r\n\r\nhi\r\n"...)
	buf = AppendSub(buf, []byte("foo.>"), []byte("q"), "9")
	buf = AppendUnsub(buf, "9", 3)
	buf = AppendUnsub(buf, "9", -1)
	buf = append(buf, PingLine+PongLine+OKLine...)
	buf = AppendErr(buf, "x")
	buf = AppendInfo(buf, []byte("{}"))

	p, r := newTestParser(settings{})
	if err := p.Parse(buf); err != nil {
		t.Fatal(err)
	}
	want := []string{`PUB "foo" "bar" "hello"`, `PUB "foo" "" ""`, `HPUB "h" "" 12 "NATS/1.0\r\n\r\nhi"`,
		`SUB "foo.>" "q" "9"`, `UNSUB "9" 3`, `UNSUB "9" -1`, "PING", "PONG", "+OK", `ERR "'x'"`, `INFO "{}"`}
	if got := strings.Join(r.ops, "\n"); got != strings.Join(want, "\n") {
		t.Fatalf("got\n%s", got)
	}
}

func TestEncodersZeroAllocs(t *testing.T) {
	dst := make([]byte, 0, 1024)
	subject, reply, json := []byte("foo.bar"), []byte("_INBOX.abc"), []byte(`{"a":1}`)
	if n := testing.AllocsPerRun(100, func() {
		d := AppendMsg(dst[:0], subject, "123", reply, 1024)
		d = AppendHMsg(d, subject, "123", reply, 22, 1024)
		d = AppendPub(d, subject, reply, 5)
		d = AppendHPub(d, subject, reply, 5, 10)
		d = AppendSub(d, subject, reply, "1")
		d = AppendUnsub(d, "1", 10)
		d = AppendInfo(d, json)
		d = AppendErr(d, "Stale Connection")
		_ = AppendInt(d, -1234567890)
	}); n != 0 {
		t.Errorf("%v allocs", n)
	}
}
