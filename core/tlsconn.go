package core

import (
	"crypto/tls"
	"errors"
	"os"
	"time"

	"github.com/starling-io/starling/core/wire"
)

// upgradeAndRun sends the plaintext INFO (tls_required), runs the TLS handshake within the
// TLS timeout, then starts the client on the encrypted connection. A handshake that times
// out gets the reference's -ERR; any other failure closes silently.
func (c *client) upgradeAndRun(o *Options, info []byte) {
	defer c.srv.wg.Done()
	raw := c.nc
	_ = raw.SetDeadline(time.Now().Add(o.TLSTimeout))
	if _, err := raw.Write(wire.AppendInfo(nil, info)); err != nil {
		c.closeConnection(reasonWriteError)
		return
	}
	tc := tls.Server(raw, o.TLS)
	err := tc.Handshake()
	if err != nil {
		if errors.Is(err, os.ErrDeadlineExceeded) || isTimeout(err) {
			_, _ = raw.Write(wire.AppendErr(nil, wire.ErrTLSRequired.Text))
		}
		c.log.Info("TLS handshake failed", "cause", err)
		c.closeConnection(reasonTLSFailure)
		return
	}
	_ = raw.SetDeadline(time.Time{})
	st := tc.ConnectionState()
	c.mu.Lock()
	c.nc = tc
	c.raw = nil // in-place raw writes would bypass TLS
	c.tlsState = &st
	c.mu.Unlock()
	c.run()
}
