package tests

import (
	"bufio"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
)

// readInfo reads the first line of a plaintext connection and decodes the INFO in it.
func readInfo(t *testing.T, conn net.Conn) map[string]any {
	t.Helper()
	_ = conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	line, err := bufio.NewReader(conn).ReadString('\n')
	must(t, err)
	js, ok := strings.CutPrefix(strings.TrimSpace(line), "INFO ")
	if !ok {
		t.Fatalf("first line %q", line)
	}
	var info map[string]any
	must(t, json.Unmarshal([]byte(js), &info))
	return info
}

// pingPong checks that two clients see each other's messages.
func pingPong(t *testing.T, a, b *nats.Conn) {
	t.Helper()
	ch := make(chan *nats.Msg, 1)
	_, err := b.ChanSubscribe("modes.x", ch)
	must(t, err)
	must(t, b.Flush())
	must(t, a.Publish("modes.x", []byte("hi")))
	recvN(t, ch, 1, 2*time.Second)
}

// tls { handshake_first: true }: nats.go's TLSHandshakeFirst client connects and INFO
// comes over TLS; a client that waits for a plaintext INFO, or speaks plaintext, is closed
// without one.
func TestTLSHandshakeFirst(t *testing.T) {
	pki := newPKI(t)
	m := startServer(t, "-c", writeConfig(t, t.TempDir(), fmt.Sprintf(`tls { cert_file: %q, key_file: %q, handshake_first: true, timeout: 0.5 }`,
		pki.serverCert, pki.serverKey)))
	nc := connect(t, m, nats.RootCAs(pki.caFile), nats.TLSHandshakeFirst())
	if st, err := nc.TLSConnectionState(); err != nil || !st.HandshakeComplete {
		t.Fatalf("TLS state %+v %v", st, err)
	}
	pingPong(t, nc, nc)

	// The usual TLS client waits for INFO, which never comes in plaintext.
	if c, err := nats.Connect(clientURL(m), nats.RootCAs(pki.caFile), nats.NoReconnect(), nats.Timeout(3*time.Second)); err == nil {
		c.Close()
		t.Fatal("a client expecting INFO first connected")
	}
	// Plaintext is closed at once, with nothing sent back.
	conn, err := net.Dial("tcp", m.Server().Addr().String())
	must(t, err)
	defer conn.Close()
	_, err = conn.Write([]byte("CONNECT {}\r\nPING\r\n"))
	must(t, err)
	_ = conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	b, err := io.ReadAll(conn)
	if err != nil || len(b) != 0 {
		t.Fatalf("plaintext client got %q, %v; want the connection closed", b, err)
	}

	// A raw TLS client sees INFO (tls_required) as the first thing inside TLS.
	tc, err := tls.Dial("tcp", m.Server().Addr().String(), &tls.Config{RootCAs: pki.pool, ServerName: "localhost"})
	must(t, err)
	defer tc.Close()
	if info := readInfo(t, tc); info["tls_required"] != true {
		t.Fatalf("INFO over TLS: %v", info)
	}
}

// handshake_first with a fallback delay (nats-server's duration form): a TLS-first client
// and one waiting for INFO both connect.
func TestTLSHandshakeFirstFallback(t *testing.T) {
	pki := newPKI(t)
	m := startServer(t, "-c", writeConfig(t, t.TempDir(), fmt.Sprintf(`tls { cert_file: %q, key_file: %q, handshake_first: "100ms" }`,
		pki.serverCert, pki.serverKey)))
	first := connect(t, m, nats.RootCAs(pki.caFile), nats.TLSHandshakeFirst())
	later := connect(t, m, nats.RootCAs(pki.caFile))
	for _, nc := range []*nats.Conn{first, later} {
		if _, err := nc.TLSConnectionState(); err != nil {
			t.Fatalf("not TLS: %v", err)
		}
	}
	pingPong(t, first, later)
}

// allow_non_tls: INFO says tls_available; a TLS client and a plaintext one share the port.
func TestAllowNonTLS(t *testing.T) {
	pki := newPKI(t)
	m := startServer(t, "-c", writeConfig(t, t.TempDir(), fmt.Sprintf("allow_non_tls: true\ntls { cert_file: %q, key_file: %q }",
		pki.serverCert, pki.serverKey)))
	conn, err := net.Dial("tcp", m.Server().Addr().String())
	must(t, err)
	info := readInfo(t, conn)
	conn.Close()
	if info["tls_available"] != true || info["tls_required"] != nil {
		t.Fatalf("INFO %v: want tls_available and no tls_required", info)
	}
	secure := connect(t, m, nats.RootCAs(pki.caFile))
	if st, err := secure.TLSConnectionState(); err != nil || !st.HandshakeComplete {
		t.Fatalf("TLS client: %+v %v", st, err)
	}
	plain := connect(t, m)
	if _, err := plain.TLSConnectionState(); err == nil {
		t.Fatal("plaintext client is on TLS")
	}
	pingPong(t, secure, plain)
	pingPong(t, plain, secure)
}

// authorization { timeout } set explicitly holds with TLS too (as in nats-server): only
// the default becomes the TLS timeout plus 1s. A TLS client that sends CONNECT after that
// default, but within the configured timeout, is let in.
func TestTLSConfiguredAuthTimeout(t *testing.T) {
	pki := newPKI(t)
	m := startServer(t, "-c", writeConfig(t, t.TempDir(), fmt.Sprintf(`
tls { cert_file: %q, key_file: %q, timeout: 0.5 }
authorization { user: a, password: a, timeout: 5 }`, pki.serverCert, pki.serverKey)))
	conn, err := net.Dial("tcp", m.Server().Addr().String())
	must(t, err)
	defer conn.Close()
	readInfo(t, conn)
	tc := tls.Client(conn, &tls.Config{RootCAs: pki.pool, ServerName: "localhost"})
	must(t, tc.Handshake())
	time.Sleep(2 * time.Second) // past the TLS timeout plus 1s
	_, err = tc.Write([]byte("CONNECT {\"user\":\"a\",\"pass\":\"a\",\"verbose\":false}\r\nPING\r\n"))
	must(t, err)
	_ = tc.SetReadDeadline(time.Now().Add(5 * time.Second))
	line, err := bufio.NewReader(tc).ReadString('\n')
	if err != nil || line != "PONG\r\n" {
		t.Fatalf("after CONNECT within the configured auth timeout: %q, %v; want PONG", line, err)
	}
}

// /connz names a TLS connection's version as nats-server does ("1.3", not Go's "TLS 1.3"),
// and its cipher suite by the Go name nats-server uses.
func TestConnzTLSVersion(t *testing.T) {
	pki := newPKI(t)
	m := startServer(t, "-c", writeConfig(t, t.TempDir(), fmt.Sprintf(`tls { cert_file: %q, key_file: %q }`,
		pki.serverCert, pki.serverKey)))
	nc := connect(t, m, nats.RootCAs(pki.caFile))
	st, err := nc.TLSConnectionState()
	must(t, err)
	var connz struct {
		Conns []struct {
			TLSVersion string `json:"tls_version"`
			TLSCipher  string `json:"tls_cipher_suite"`
		} `json:"connections"`
	}
	getJSON(t, m, "/connz", &connz)
	if len(connz.Conns) != 1 || connz.Conns[0].TLSVersion != "1.3" || connz.Conns[0].TLSCipher != tls.CipherSuiteName(st.CipherSuite) {
		t.Fatalf("connz %+v", connz.Conns)
	}
}
