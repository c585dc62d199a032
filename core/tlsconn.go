package core

import (
	"crypto/tls"
	"errors"
	"io"
	"net"
	"os"
	"time"

	"github.com/starling-io/starling/core/wire"
)

// tlsRecordHandshake is the first byte of a TLS ClientHello record.
const tlsRecordHandshake = 0x16

// upgradeAndRun sets up a client on a TLS-enabled port, as nats-server does:
//   - by default it sends the plaintext INFO (tls_required), then runs the TLS handshake;
//   - with TLSHandshakeFirst the handshake comes first and INFO follows over TLS; with a
//     fallback delay, a client silent for that long gets INFO first instead;
//   - with AllowNonTLS (INFO says tls_available), after INFO a client whose first byte
//     starts a TLS record is upgraded, any other stays plain.
//
// The handshake is bounded by the TLS timeout. A handshake that times out after a
// plaintext INFO gets the reference's -ERR; any other failure closes silently.
func (c *client) upgradeAndRun(o *Options) {
	defer c.srv.wg.Done()
	raw := c.nc
	first := o.TLSHandshakeFirst
	var pre []byte
	if first && o.TLSHandshakeFirstFallback > 0 {
		if pre = peek(raw, 4, o.TLSHandshakeFirstFallback); len(pre) == 0 {
			first = false // nothing came: the client waits for INFO
			c.tlsFirst.Store(false)
		}
	}
	secure := true
	if !first {
		_ = raw.SetWriteDeadline(time.Now().Add(o.TLSTimeout))
		if _, err := raw.Write(wire.AppendInfo(nil, c.srv.infoJSON(c, infoPlain))); err != nil {
			c.closeConnection(reasonWriteError)
			_ = raw.Close()
			return
		}
		if o.AllowNonTLS {
			pre = peek(raw, 6, o.TLSTimeout)
			secure = len(pre) > 0 && pre[0] == tlsRecordHandshake
		}
	}
	conn := raw
	if len(pre) > 0 {
		conn = &prefixConn{Conn: raw, pre: pre}
	}
	if !secure {
		_ = raw.SetDeadline(time.Time{})
		c.mu.Lock()
		c.nc = conn // reads replay the peeked bytes; in-place writes still go to the socket
		c.mu.Unlock()
		c.run()
		return
	}
	_ = raw.SetDeadline(time.Now().Add(o.TLSTimeout))
	tc := tls.Server(conn, o.TLS)
	if err := tc.Handshake(); err != nil {
		if !first && (errors.Is(err, os.ErrDeadlineExceeded) || isTimeout(err)) {
			_, _ = raw.Write(wire.AppendErr(nil, wire.ErrTLSRequired.Text))
		}
		c.log.Info("TLS handshake failed", "cause", err)
		c.closeConnection(reasonTLSFailure)
		// Closed already if the auth timer fired meanwhile: that close left the socket to
		// a writer, which never started.
		_ = raw.Close()
		return
	}
	_ = raw.SetDeadline(time.Time{})
	st := tc.ConnectionState()
	c.mu.Lock()
	c.nc = tc
	c.raw = nil // in-place raw writes would bypass TLS
	c.tlsState = &st
	if first {
		c.out.buf = wire.AppendInfo(c.out.buf, c.srv.infoJSON(c, infoPlain))
	}
	c.mu.Unlock()
	c.run()
}

// peek reads up to n bytes, waiting at most d; what it returns must be read again first.
func peek(nc net.Conn, n int, d time.Duration) []byte {
	b := make([]byte, n)
	_ = nc.SetReadDeadline(time.Now().Add(d))
	got, _ := io.ReadFull(nc, b)
	_ = nc.SetReadDeadline(time.Time{})
	return b[:got]
}

// prefixConn is a connection whose first reads return bytes already taken from it.
type prefixConn struct {
	net.Conn
	pre []byte
}

func (p *prefixConn) Read(b []byte) (int, error) {
	if len(p.pre) > 0 {
		n := copy(b, p.pre)
		p.pre = p.pre[n:]
		return n, nil
	}
	return p.Conn.Read(b)
}
