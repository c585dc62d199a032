package core

import (
	"crypto/tls"
	"time"

	"github.com/starling-io/starling/core/auth"
	"github.com/starling-io/starling/core/wire"
)

// reasonAuth* are the /connz closed reasons of authentication failures.
const (
	reasonAuthFailure = "Authentication Failure"
	reasonAuthTimeout = "Authentication Timeout"
	reasonTLSFailure  = "TLS Handshake Failure"
)

// startAuthTimer closes a client that has not authenticated in time (spec §2.2): the auth
// timeout, or the TLS timeout plus a second when TLS is on.
func (c *client) startAuthTimer(o *Options) {
	d := o.AuthTimeout
	if o.TLS != nil {
		d = o.TLSTimeout + time.Second
	}
	c.mu.Lock()
	c.authTimer = time.AfterFunc(d, c.authTimeout)
	c.mu.Unlock()
}

func (c *client) authTimeout() {
	c.mu.Lock()
	if c.closed || c.authDone {
		c.mu.Unlock()
		return
	}
	c.out.buf = wire.AppendErr(c.out.buf, wire.ErrAuthTimeout.Text)
	c.mu.Unlock()
	c.log.Info("authentication timeout", "cause", "no CONNECT within the auth timeout")
	c.closeFlushing(reasonAuthTimeout)
}

// authenticate checks CONNECT's credentials (or the TLS certificate with verify_and_map)
// and installs the identity's permissions. The returned error is for the server log only:
// it never carries a secret.
func (c *client) authenticate(opts *connectOpts) error {
	o := c.srv.o()
	var id *auth.Identity
	if o.Auth != nil {
		var err error
		if o.TLSMap {
			id, err = o.Auth.CheckNames(certNames(c.tlsState))
		} else {
			id, err = o.Auth.Check(auth.Credentials{User: opts.User, Pass: opts.Pass, Token: opts.AuthToken,
				Nkey: opts.Nkey, Sig: opts.Sig, Nonce: c.nonce})
		}
		if err != nil {
			return err
		}
	}
	c.setIdentity(id)
	return nil
}

// setIdentity installs who the client is and what it may do; safe from any goroutine.
func (c *client) setIdentity(id *auth.Identity) {
	var ck *auth.Checker
	if id != nil {
		ck = id.Checker
	}
	c.perms.Store(ck)
	if rp := ck.AllowResponses(); rp != nil {
		if c.responses.Load() == nil {
			c.responses.Store(auth.NewResponses(rp))
		}
	} else {
		c.responses.Store(nil)
	}
	c.mu.Lock()
	c.ident = id
	c.authDone = true
	if c.authTimer != nil {
		c.authTimer.Stop()
	}
	c.mu.Unlock()
}

// canPublish is the publish permission check on the read goroutine: one atomic load and,
// with permissions, one map lookup in the connection's decision cache.
func (c *client) canPublish(subj []byte) bool {
	ck := c.perms.Load()
	if ck == nil {
		return true
	}
	if c.pubCacheFor != ck {
		c.pubCache, c.pubCacheFor = auth.NewPubCache(ck, pubCacheSize), ck
	}
	if c.pubCache.CanPublish(subj) {
		return true
	}
	r := c.responses.Load()
	return r != nil && r.Use(subj, time.Now())
}

// pubCacheSize bounds each connection's publish decision cache.
const pubCacheSize = 256

// certNames lists the identities a verified client certificate offers for
// verify_and_map: its subject (RFC 2253 form), e-mail addresses and DNS names.
func certNames(st *tls.ConnectionState) []string {
	if st == nil || len(st.PeerCertificates) == 0 {
		return nil
	}
	leaf := st.PeerCertificates[0]
	names := []string{leaf.Subject.String()}
	names = append(names, leaf.EmailAddresses...)
	names = append(names, leaf.DNSNames...)
	if leaf.Subject.CommonName != "" {
		names = append(names, leaf.Subject.CommonName)
	}
	return names
}
