package wire

import (
	"bytes"
	"fmt"
	"strings"
	"testing"
)

// routeRec records route operations as text lines.
type routeRec struct{ ops []string }

func (r *routeRec) RouteInfo(a []byte) error { r.ops = append(r.ops, "INFO "+string(a)); return nil }
func (r *routeRec) RouteConnect(a []byte) error {
	r.ops = append(r.ops, "CONNECT "+string(a))
	return nil
}
func (r *routeRec) RouteSub(a, s, q []byte, w int) error {
	r.ops = append(r.ops, fmt.Sprintf("SUB %s %s %s %d", a, s, q, w))
	return nil
}
func (r *routeRec) RouteUnsub(a, s, q []byte) error {
	r.ops = append(r.ops, fmt.Sprintf("UNSUB %s %s %s", a, s, q))
	return nil
}
func (r *routeRec) RouteMsg(m *RoutedMsg) error {
	r.ops = append(r.ops, fmt.Sprintf("MSG %s %s %s %q %d %q", m.Account, m.Subject, m.Reply, m.Queues, m.HdrLen, m.Msg))
	return nil
}
func (r *routeRec) RoutePing() error        { r.ops = append(r.ops, "PING"); return nil }
func (r *routeRec) RoutePong() error        { r.ops = append(r.ops, "PONG"); return nil }
func (r *routeRec) RouteErr(a []byte) error { r.ops = append(r.ops, "ERR "+string(a)); return nil }

func routeInput() []byte {
	var b []byte
	b = append(b, "INFO {\"server_id\":\"X\"}\r\nCONNECT {}\r\nPING\r\nPONG\r\n+OK\r\n"...)
	b = AppendRouteSub(b, "$G", "foo.*", "", 0)
	b = AppendRouteSub(b, "A", "bar", "q1", 3)
	b = AppendRouteUnsub(b, "$G", "foo.*", "")
	b = AppendRouteUnsub(b, "A", "bar", "q1")
	b = AppendRouteMsg(b, "$G", []byte("a.b"), nil, nil, 0, 5)
	b = append(b, "hello\r\n"...)
	b = AppendRouteMsg(b, "$G", []byte("a.b"), []byte("_INBOX.1"), nil, 0, 0)
	b = append(b, "\r\n"...)
	b = AppendRouteMsg(b, "A", []byte("a.b"), []byte("r"), []string{"q1", "q2"}, 0, 2)
	b = append(b, "hi\r\n"...)
	b = AppendRouteMsg(b, "$G", []byte("x"), nil, []string{"q1"}, 0, 2)
	b = append(b, "hi\r\n"...)
	b = AppendRouteMsg(b, "$G", []byte("h"), []byte("+"), nil, 12, 14)
	b = append(b, "NATS/1.0\r\n\r\nok\r\n"...)
	b = append(b, "-ERR 'boom'\r\n"...)
	return b
}

var routeWant = []string{
	`INFO {"server_id":"X"}`, "CONNECT {}", "PING", "PONG",
	"SUB $G foo.*  0", "SUB A bar q1 3", "UNSUB $G foo.* ", "UNSUB A bar q1",
	`MSG $G a.b  [] 0 "hello"`,
	`MSG $G a.b _INBOX.1 [] 0 ""`,
	`MSG A a.b r ["q1" "q2"] 0 "hi"`,
	`MSG $G x  ["q1"] 0 "hi"`,
	`MSG $G h + [] 12 "NATS/1.0\r\n\r\nok"`,
	"ERR 'boom'",
}

func TestRouteParserSplits(t *testing.T) {
	in := routeInput()
	for step := 1; step <= len(in); step++ {
		r := &routeRec{}
		p := NewRouteParser(r)
		for i := 0; i < len(in); i += step {
			if err := p.Parse(in[i:min(i+step, len(in))]); err != nil {
				t.Fatalf("step %d at %d: %v", step, i, err)
			}
		}
		if got := strings.Join(r.ops, "\n"); got != strings.Join(routeWant, "\n") {
			t.Fatalf("step %d:\n%s\nwant\n%s", step, got, strings.Join(routeWant, "\n"))
		}
	}
}

func TestRouteParserErrors(t *testing.T) {
	for _, in := range []string{
		"BOGUS\r\n", "RS+\r\n", "RS+ a\r\n", "RS+ $G a b\r\n", "RS+ $G a b c\r\n", "RS-\r\n", "RS- a\r\n", "RS- $G a b c\r\n",
		"RMSG\r\n", "RMSG $G a\r\n", "RMSG $G a x\r\n", "RMSG $G a b c d\r\n", "RMSG $G a 2\r\nabcd\r\n",
		"HMSG $G a 5 2\r\nabcd\r\n", "RMSG $G a 99999999999\r\n",
		"RMSG $G a " + strings.Repeat("q", routeLineMax+10) + " 1\r\n",
	} {
		p := NewRouteParser(&routeRec{})
		if err := p.Parse([]byte(in)); err == nil {
			t.Errorf("%q: no error", in)
		}
	}
	p := NewRouteParser(&routeRec{})
	if err := p.Parse(bytes.Repeat([]byte("x"), routeLineMax+10)); err != ErrMaxControlLine {
		t.Errorf("endless line: %v", err)
	}
}

func TestRouteParserZeroAlloc(t *testing.T) {
	var b []byte
	for range 50 {
		b = AppendRouteMsg(b, "$G", []byte("foo.bar"), nil, []string{"q"}, 0, 16)
		b = append(b, "0123456789abcdef\r\n"...)
	}
	p := NewRouteParser(nopRoute{})
	_ = p.Parse(b)
	if a := testing.AllocsPerRun(100, func() {
		_ = p.Parse(b[:len(b)/2+7])
		_ = p.Parse(b[len(b)/2+7:])
	}); a != 0 {
		t.Fatalf("%v allocs per parse", a)
	}
}

type nopRoute struct{}

func (nopRoute) RouteInfo([]byte) error               { return nil }
func (nopRoute) RouteConnect([]byte) error            { return nil }
func (nopRoute) RouteSub(_, _, _ []byte, _ int) error { return nil }
func (nopRoute) RouteUnsub(_, _, _ []byte) error      { return nil }
func (nopRoute) RouteMsg(*RoutedMsg) error            { return nil }
func (nopRoute) RoutePing() error                     { return nil }
func (nopRoute) RoutePong() error                     { return nil }
func (nopRoute) RouteErr([]byte) error                { return nil }

func BenchmarkRouteParse16B(b *testing.B) {
	var in []byte
	for range 1000 {
		in = AppendRouteMsg(in, "$G", []byte("foo.bar"), nil, nil, 0, 16)
		in = append(in, "0123456789abcdef\r\n"...)
	}
	p := NewRouteParser(nopRoute{})
	b.SetBytes(int64(len(in) / 1000))
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		if i%1000 == 0 {
			_ = p.Parse(in)
		}
	}
}

func FuzzRouteParser(f *testing.F) {
	f.Add(routeInput(), 7)
	f.Add([]byte("RMSG $G a + r q 3\r\nabc\r\nRS+ A x q 2\r\n"), 3)
	f.Fuzz(func(t *testing.T, in []byte, step int) {
		if step <= 0 || step > len(in) {
			step = len(in) + 1
		}
		whole := &routeRec{}
		errWhole := NewRouteParser(whole).Parse(in)
		split := &routeRec{}
		p := NewRouteParser(split)
		var errSplit error
		for i := 0; i < len(in) && errSplit == nil; i += step {
			errSplit = p.Parse(in[i:min(i+step, len(in))])
		}
		if (errWhole == nil) != (errSplit == nil) {
			t.Fatalf("whole err %v, split err %v", errWhole, errSplit)
		}
		if errWhole == nil && strings.Join(whole.ops, "\n") != strings.Join(split.ops, "\n") {
			t.Fatalf("whole and split differ")
		}
	})
}
