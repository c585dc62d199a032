package core_test

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/starling-io/starling/core"
)

// These tests replay the spec's captured transcripts (core-protocol.md appendix A) over a
// raw socket and compare the server's answers byte for byte.

func startCore(t *testing.T, mod func(*core.Options)) *core.Server {
	t.Helper()
	o := core.Options{Host: "127.0.0.1", Port: -1}
	if mod != nil {
		mod(&o)
	}
	s, err := core.New(o)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = s.Shutdown(ctx)
	})
	return s
}

type rawConn struct {
	t  *testing.T
	nc net.Conn
	r  *bufio.Reader
	// keepalive: the test reads the server's PINGs itself. Otherwise the helpers answer
	// them as any client does: the first comes 2 s after CONNECT whatever ping_interval
	// is, which a loaded machine reaches within one test.
	keepalive bool
}

// dial connects and consumes the INFO line, returning it decoded.
func dial(t *testing.T, s *core.Server) (*rawConn, map[string]any) {
	t.Helper()
	nc, err := net.Dial("tcp", s.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nc.Close() })
	c := &rawConn{t: t, nc: nc, r: bufio.NewReader(nc)}
	line := c.line()
	if !strings.HasPrefix(line, "INFO {") {
		t.Fatalf("first line %q", line)
	}
	var info map[string]any
	if err := json.Unmarshal([]byte(strings.TrimSpace(line[5:])), &info); err != nil {
		t.Fatalf("INFO json: %v", err)
	}
	return c, info
}

func (c *rawConn) send(s string) {
	c.t.Helper()
	if _, err := c.nc.Write([]byte(s)); err != nil {
		c.t.Fatalf("write: %v", err)
	}
}

func (c *rawConn) line() string {
	c.t.Helper()
	_ = c.nc.SetReadDeadline(time.Now().Add(3 * time.Second))
	for {
		l, err := c.r.ReadString('\n')
		if err != nil {
			c.t.Fatalf("read: %v (partial %q)", err, l)
		}
		if c.keepalive || l != "PING\r\n" {
			return l
		}
		_, _ = c.nc.Write([]byte("PONG\r\n"))
	}
}

// answerPings consumes and answers the server PINGs next in the stream, unless the test
// reads them itself; the read deadline must be set.
func (c *rawConn) answerPings() {
	for !c.keepalive {
		// Every server line is at least two bytes, and only a PING starts with "PI".
		if b, err := c.r.Peek(2); err != nil || string(b) != "PI" {
			return
		}
		if l, err := c.r.ReadString('\n'); err != nil || l != "PING\r\n" {
			c.t.Fatalf("read %q, %v: want a PING", l, err)
		}
		_, _ = c.nc.Write([]byte("PONG\r\n"))
	}
}

// expect reads exactly len(want) bytes and compares them.
func (c *rawConn) expect(want string) {
	c.t.Helper()
	_ = c.nc.SetReadDeadline(time.Now().Add(3 * time.Second))
	if !strings.HasPrefix(want, "PI") {
		c.answerPings()
	}
	got := make([]byte, len(want))
	if _, err := io.ReadFull(c.r, got); err != nil {
		c.t.Fatalf("read: %v (got %q, want %q)", err, got, want)
	}
	if string(got) != want {
		c.t.Fatalf("got  %q\nwant %q", got, want)
	}
}

// expectClosed asserts the server closes the connection without sending more.
func (c *rawConn) expectClosed() {
	c.t.Helper()
	_ = c.nc.SetReadDeadline(time.Now().Add(3 * time.Second))
	c.answerPings()
	b, err := c.r.ReadByte()
	if err == nil {
		rest, _ := c.r.ReadString('\n')
		c.t.Fatalf("expected close, got %q", string(b)+rest)
	}
	if ne, ok := err.(net.Error); ok && ne.Timeout() {
		c.t.Fatal("expected close, connection still open")
	}
}

const natsGoConnect = `CONNECT {"verbose":false,"pedantic":false,"tls_required":false,"name":"t","lang":"go","version":"1.55.0","protocol":1,"echo":true,"headers":true,"no_responders":true}` + "\r\n"

func TestTranscriptHandshakeNoRespondersHeaders(t *testing.T) {
	s := startCore(t, nil)
	c, info := dial(t, s)
	for _, k := range []string{"server_id", "server_name", "version", "proto", "go", "host", "port", "headers", "max_payload", "client_id", "client_ip"} {
		if _, ok := info[k]; !ok {
			t.Errorf("INFO lacks %q", k)
		}
	}
	if info["headers"] != true || info["proto"].(float64) != 1 || info["max_payload"].(float64) != 1<<20 {
		t.Fatalf("INFO %v", info)
	}
	c.send(natsGoConnect + "PING\r\n")
	c.expect("PONG\r\n")
	l := c.line()
	if !strings.HasPrefix(l, "INFO ") || !strings.Contains(l, `"connect_info":true`) || !strings.Contains(l, `"remote_account":"$G"`) {
		t.Fatalf("connect-info INFO: %q", l)
	}
	c.send("SUB foo  1\r\nSUB _INBOX.abc.* 2\r\nPUB foo 5\r\nhello\r\nPUB nobody _INBOX.abc.x1 2\r\nhi\r\nHPUB foo 22 27\r\nNATS/1.0\r\nBar: Baz\r\n\r\nhello\r\n")
	c.expect("MSG foo 1 5\r\nhello\r\n")
	c.expect("HMSG _INBOX.abc.x1 2 38 38\r\nNATS/1.0 503\r\nNats-Subject: nobody\r\n\r\n\r\n")
	c.expect("HMSG foo 1 22 27\r\nNATS/1.0\r\nBar: Baz\r\n\r\nhello\r\n")
	c.send("UNSUB 1 \r\nUNSUB 99\r\nPING\r\n")
	c.expect("PONG\r\n")
	c.send("FOO bar\r\n")
	c.expect("-ERR 'Unknown Protocol Operation'\r\n")
	c.expectClosed()
}

func TestTranscriptDefaultsAutoUnsubscribe(t *testing.T) {
	s := startCore(t, nil)
	c, _ := dial(t, s)
	c.send("CONNECT {}\r\nPING\r\n")
	c.expect("+OK\r\nPONG\r\n")
	c.send("SUB foo 1\r\nPUB foo 2\r\nhi\r\nUNSUB 1 2\r\npub foo 0\r\n\r\n")
	c.expect("+OK\r\n+OK\r\nMSG foo 1 2\r\nhi\r\n+OK\r\n+OK\r\nMSG foo 1 0\r\n\r\n")
	c.send("PUB foo 1\r\nx\r\nPING\r\n")
	c.expect("+OK\r\nPONG\r\n") // the subscription is gone after its 2nd message
	c.send("SUB foo..bar 3\r\nPUB foo.* 0\r\n\r\n")
	c.expect("-ERR 'Invalid Subject'\r\n-ERR 'Invalid Publish Subject'\r\n+OK\r\n")
}

func TestTranscriptConnectRejections(t *testing.T) {
	s := startCore(t, nil)
	c, _ := dial(t, s)
	c.send(`CONNECT {"verbose":false,"protocol":2}` + "\r\n")
	c.expect("-ERR 'invalid client protocol'\r\n")
	c.expectClosed()

	c, _ = dial(t, s)
	c.send(`CONNECT {"verbose":false,"no_responders":true}` + "\r\n")
	c.expect("-ERR 'no responders requires headers support'\r\n")
	c.expectClosed()

	c, _ = dial(t, s)
	c.send(`CONNECT {"verbose":false}` + "\r\nHPUB foo 12 12\r\nNATS/1.0\r\n\r\n\r\n")
	c.expectClosed()

	c, _ = dial(t, s)
	c.send("CONNECT {not json\r\n")
	c.expectClosed()
}

func TestTranscriptLimits(t *testing.T) {
	s := startCore(t, func(o *core.Options) {
		o.MaxPayload = 100
		o.MaxControlLine = 64
		o.MaxConnections = 3
	})
	c, _ := dial(t, s)
	c.send(`CONNECT {"verbose":false,"protocol":1}` + "\r\nPING\r\n") // within the 64 bytes
	c.expect("PONG\r\n")
	c.line() // connect-info INFO
	c.send("PUB pub.a 101\r\n")
	c.expect("-ERR 'Maximum Payload Violation'\r\n")
	c.expectClosed()

	c, _ = dial(t, s)
	c.send(`CONNECT {"verbose":false,"user":"bob"}` + "\r\n")
	c.send("SUB " + strings.Repeat("a", 79) + " 1\r\n")
	c.expect("-ERR 'maximum control line exceeded'\r\n")
	c.expectClosed()

	// The limit applies to CONNECT too, as in nats-server.
	c, _ = dial(t, s)
	c.send(`CONNECT {"verbose":false,"user":"bob","pass":"a password longer than the limit"}` + "\r\n")
	c.expect("-ERR 'maximum control line exceeded'\r\n")
	c.expectClosed()

	// A long line without a newline is refused as soon as it passes the limit.
	c, _ = dial(t, s)
	c.send(`CONNECT {"verbose":false}` + "\r\n")
	c.send("PUB " + strings.Repeat("b", 200))
	c.expect("-ERR 'maximum control line exceeded'\r\n")
	c.expectClosed()

	var keep []*rawConn
	for range 3 {
		k, _ := dial(t, s)
		keep = append(keep, k)
	}
	// Wait until the closed ones above are gone from the count.
	deadline := time.Now().Add(3 * time.Second)
	for s.NumClients() != 3 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	c, _ = dial(t, s)
	c.expect("-ERR 'maximum connections exceeded'\r\n")
	c.expectClosed()
	_ = keep
}

func TestStaleConnection(t *testing.T) {
	s := startCore(t, func(o *core.Options) {
		o.PingInterval = 100 * time.Millisecond
		o.PingMax = 2
	})
	c, _ := dial(t, s)
	c.keepalive = true
	c.send(`CONNECT {"verbose":false}` + "\r\n")
	c.expect("PING\r\n")
	c.expect("PING\r\n")
	c.expect("-ERR 'Stale Connection'\r\n")
	c.expectClosed()
	if v := s.Varz(); v.StaleConnections != 1 {
		t.Fatalf("stale_connections = %d", v.StaleConnections)
	}
}

// A client that keeps publishing is not pinged again after the first (RTT) PING, and so is
// not closed as stale even if it never answers, as in nats-server: its RTT is estimated at
// CONNECT, and activity within ping_interval makes a tick skip its PING.
func TestActiveClientNotStale(t *testing.T) {
	s := startCore(t, func(o *core.Options) {
		o.PingInterval = 300 * time.Millisecond
		o.PingMax = 2
	})
	c, _ := dial(t, s)
	c.keepalive = true
	c.send(`CONNECT {"verbose":false}` + "\r\n")
	for end := time.Now().Add(1500 * time.Millisecond); time.Now().Before(end); {
		c.send("PUB x 0\r\n\r\n")
		time.Sleep(10 * time.Millisecond)
	}
	c.send("PING\r\n")
	pings := 0
	for {
		l := c.line()
		if l == "PONG\r\n" {
			break
		}
		if l != "PING\r\n" {
			t.Fatalf("got %q", l)
		}
		pings++
	}
	if pings != 1 {
		t.Fatalf("%d PINGs to an active client, want 1 (the RTT one)", pings)
	}
	if v := s.Varz(); v.StaleConnections != 0 {
		t.Fatalf("stale_connections = %d", v.StaleConnections)
	}
}

func TestPongKeepsConnectionAlive(t *testing.T) {
	s := startCore(t, func(o *core.Options) {
		o.PingInterval = 50 * time.Millisecond
		o.PingMax = 1
	})
	c, _ := dial(t, s)
	c.keepalive = true
	c.send(`CONNECT {"verbose":false}` + "\r\n")
	for range 6 {
		c.expect("PING\r\n")
		c.send("PONG\r\n")
	}
}

func TestProtocolErrorsCloseSilently(t *testing.T) {
	s := startCore(t, nil)
	for _, in := range []string{
		"PUB foo\r\n",           // too few args
		"PUB foo bar baz 1\r\n", // too many
		"PUB foo x\r\n",         // bad size
		"SUB foo\r\n",           // missing sid
		"UNSUB 1 x\r\n",         // bad max
		"HPUB foo 10 5\r\n",     // header larger than total
		"PUB foo 99999999999999999999\r\n",
	} {
		c, _ := dial(t, s)
		c.send(`CONNECT {"verbose":false,"headers":true}` + "\r\n" + in)
		c.expectClosed()
	}
	// A bad payload terminator, or an op with no space before its arguments, is an
	// unknown operation, as in the reference's state machine.
	for _, in := range []string{"PUB foo 2\r\nhiXX", "UNSUB\r\n"} {
		c, _ := dial(t, s)
		c.send(`CONNECT {"verbose":false}` + "\r\n" + in)
		c.expect("-ERR 'Unknown Protocol Operation'\r\n")
		c.expectClosed()
	}
	// A server that is still up after all that.
	c, _ := dial(t, s)
	c.send("PING\r\n")
	c.expect("PONG\r\n")
}

func TestHeadersStrippedForPlainClient(t *testing.T) {
	s := startCore(t, nil)
	sub, _ := dial(t, s)
	sub.send(`CONNECT {"verbose":false}` + "\r\nSUB h 1\r\nPING\r\n")
	sub.expect("PONG\r\n")
	pub, _ := dial(t, s)
	pub.send(`CONNECT {"verbose":false,"headers":true}` + "\r\nHPUB h 12 14\r\nNATS/1.0\r\n\r\nhi\r\nHPUB h 0 2\r\nyo\r\nPING\r\n")
	pub.expect("PONG\r\n")
	sub.expect("MSG h 1 2\r\nhi\r\nMSG h 1 2\r\nyo\r\n")
}

func TestQueueNameSysRejected(t *testing.T) {
	s := startCore(t, nil)
	c, _ := dial(t, s)
	c.send(`CONNECT {"verbose":false}` + "\r\nSUB foo _sys_ 1\r\nPING\r\n")
	c.expect("-ERR 'Permissions Violation for Subscription to \"foo\" using queue \"_sys_\"'\r\nPONG\r\n")
}

func TestMaxSubscriptions(t *testing.T) {
	s := startCore(t, func(o *core.Options) { o.MaxSubscriptions = 1 })
	c, _ := dial(t, s)
	c.send(`CONNECT {"verbose":false}` + "\r\nSUB a 1\r\nSUB b 2\r\nPING\r\n")
	c.expect("-ERR 'maximum subscriptions exceeded'\r\nPONG\r\n")
}

func TestClientSendingErrIsClosed(t *testing.T) {
	s := startCore(t, nil)
	c, _ := dial(t, s)
	c.send("-ERR 'oops'\r\n")
	c.expectClosed()

	// What it asked for before the -ERR is answered first, as in nats-server.
	c, _ = dial(t, s)
	c.send("CONNECT {}\r\nSUB foo 1\r\n-ERR 'oops'\r\n")
	c.expect("+OK\r\n+OK\r\n")
	c.expectClosed()
}

func TestReservedReplyAndSubjects(t *testing.T) {
	s := startCore(t, nil)
	c, _ := dial(t, s)
	c.send(`CONNECT {"verbose":false}` + "\r\nSUB > 1\r\nPUB pub.a _R_.abc 1\r\nx\r\nPUB $NRG.x 1\r\nx\r\nPUB ok 1\r\nx\r\nPING\r\n")
	c.expect("-ERR 'Permissions Violation for Publish with Reply of \"_R_.abc\"'\r\n")
	c.expect("-ERR 'Permissions Violation for Publish to \"$NRG.x\"'\r\n")
	c.expect("MSG ok 1 1\r\nx\r\nPONG\r\n")
}

// max_connections counts client sockets, not the server's in-process connections (the
// streaming layer's): as in nats-server, whose internal clients do not count. With
// streaming on, max_connections 2 admitted one client.
func TestMaxConnectionsCountsSocketsOnly(t *testing.T) {
	s := startCore(t, func(o *core.Options) { o.MaxConnections = 2 })
	for i := range 3 {
		nc, err := s.Connect("internal-" + strconv.Itoa(i))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { nc.Close() })
	}
	for range 2 {
		c, _ := dial(t, s)
		c.send("PING\r\n")
		c.expect("PONG\r\n")
	}
	c, _ := dial(t, s)
	c.expect("-ERR 'maximum connections exceeded'\r\n")
}

// NoClientConnections (a configuration's "max_connections: 0") refuses every client socket,
// as nats-server does, while in-process connections still work. Before, a negative limit
// was refused as invalid options and 0 meant the default.
func TestNoClientConnections(t *testing.T) {
	s := startCore(t, func(o *core.Options) { o.MaxConnections = core.NoClientConnections })
	nc, err := s.Connect("internal")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nc.Close() })
	c, _ := dial(t, s)
	c.expect("-ERR 'maximum connections exceeded'\r\n")
	if v := s.Varz().MaxConn; v != -1 {
		t.Errorf("varz max_connections %d, want -1 as nats-server shows", v)
	}
}

// A PUB's checks run in nats-server's order: the pedantic subject check first (nats-server
// makes it on the control line), then permissions, reserved subjects, reserved replies.
func TestPubChecksOrder(t *testing.T) {
	s := startCore(t, nil)
	c, _ := dial(t, s)
	c.send(`CONNECT {"verbose":false,"pedantic":true}` + "\r\nPUB .foo _R_.abc 0\r\n\r\nPUB $NRG.x _R_.abc 0\r\n\r\nPING\r\n")
	c.expect("-ERR 'Invalid Publish Subject'\r\n")
	c.expect("-ERR 'Permissions Violation for Publish with Reply of \"_R_.abc\"'\r\n")
	c.expect("-ERR 'Permissions Violation for Publish to \"$NRG.x\"'\r\nPONG\r\n")
}

// The connect-info INFO follows the first PONG of the connection only, as in nats-server:
// not again after a second CONNECT.
func TestConnectInfoOncePerConnection(t *testing.T) {
	s := startCore(t, nil)
	c, _ := dial(t, s)
	c.send(`CONNECT {"verbose":false,"protocol":1}` + "\r\nPING\r\n")
	c.expect("PONG\r\n")
	if l := c.line(); !strings.Contains(l, `"connect_info":true`) {
		t.Fatalf("got %q, want the connect-info INFO", l)
	}
	c.send(`CONNECT {"verbose":false,"protocol":1}` + "\r\nPING\r\nPING\r\n")
	c.expect("PONG\r\nPONG\r\n")
}
