package core_test

import "testing"

// The pedantic check of a PUB subject is nats-server's: empty tokens and wildcard tokens
// only. A subject holding a form feed is routed without -ERR, as nats-server does; an
// empty token still gets it. (A CR inside PUB arguments separates them, as nats.go splits
// the MSG line: "PUB foo\rbar 1" publishes to foo with reply bar.)
func TestPedanticSubjectWhitespace(t *testing.T) {
	s := startCore(t, nil)
	sub, _ := dial(t, s)
	sub.send("CONNECT {\"verbose\":false}\r\nSUB > 1\r\nPING\r\n")
	sub.expect("PONG\r\n")
	c, _ := dial(t, s)
	c.send("CONNECT {\"verbose\":false,\"pedantic\":true}\r\n" +
		"PUB a\fb 1\r\ny\r\nPUB foo..bar 0\r\n\r\nPUB foo\rbar 1\r\nx\r\nPING\r\n")
	c.expect("-ERR 'Invalid Publish Subject'\r\nPONG\r\n")
	sub.expect("MSG a\fb 1 1\r\ny\r\nMSG foo 1 bar 1\r\nx\r\n")
}
