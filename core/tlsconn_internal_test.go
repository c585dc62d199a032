package core

import (
	"bufio"
	"errors"
	"io"
	"net"
	"os"
	"testing"
	"time"

	"github.com/starling-io/starling/core/auth"
)

// A client whose auth timer fires during its TLS handshake (an auth timeout shorter than
// the TLS timeout) is closed at the timer, and its socket with it when the handshake then
// fails: the timer's close had left the socket to a writer that never started, and the
// handshake's failure found the client already closed, so the socket stayed open.
func TestAuthTimeoutDuringTLSHandshakeClosesSocket(t *testing.T) {
	srvTLS, _ := testRouteTLS(t)
	a, err := auth.New(auth.Options{Username: "u", Password: "p"})
	if err != nil {
		t.Fatal(err)
	}
	s := startMesh(t, 1, func(_ int, o *Options) {
		o.Cluster = nil
		o.TLS, o.Auth = srvTLS, a
		o.AuthTimeout, o.TLSTimeout = 100*time.Millisecond, 400*time.Millisecond
	})[0]
	nc, err := net.Dial("tcp", s.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	r := bufio.NewReader(nc)
	if _, err := r.ReadString('\n'); err != nil { // the plaintext INFO
		t.Fatal(err)
	}
	// Start no handshake; the server must end the connection.
	_ = nc.SetReadDeadline(time.Now().Add(3 * time.Second))
	_, err = io.Copy(io.Discard, r)
	if errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatal("socket still open after the auth and TLS timeouts")
	}
}
