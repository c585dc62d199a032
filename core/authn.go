package core

import (
	"context"
	"crypto/tls"
	"fmt"
	"sync"
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
// timeout (by default the TLS timeout plus a second when TLS is on). The timer also ends
// authCtx, so a CONNECT still waiting for its turn at bcrypt gives up.
func (c *client) startAuthTimer(o *Options) {
	c.mu.Lock()
	c.authCtx, c.authCancel = context.WithCancel(context.Background())
	c.authTimer = time.AfterFunc(o.AuthTimeout, c.authTimeout)
	c.mu.Unlock()
}

func (c *client) authTimeout() {
	c.mu.Lock()
	if c.closed || c.authDone {
		c.mu.Unlock()
		return
	}
	c.out.buf = wire.AppendErr(c.out.buf, wire.ErrAuthTimeout.Text)
	user, checking, cancel := c.authUser, c.authChecking, c.authCancel
	c.mu.Unlock()
	cancel()
	cause := "no CONNECT within the auth timeout"
	if checking {
		cause = "password not checked within the auth timeout (too many checks in progress)"
	}
	c.srv.logRefusedLogin(c, "authentication timeout", user, cause)
	c.closeFlushing(reasonAuthTimeout)
}

// authenticate checks CONNECT's credentials (or the TLS certificate with verify_and_map)
// and returns the identity and the authenticator that vouched for it, for adoptIdentity
// once the CONNECT's other checks pass. The returned error is for the server log only: it
// never carries a secret. One wrapping auth.ErrCheckAborted means the auth timer fired (or
// the client closed) while the check waited for bcrypt: the client has its answer.
func (c *client) authenticate(opts *connectOpts) (*auth.Identity, *auth.Authenticator, error) {
	o := c.srv.o()
	var id *auth.Identity
	if o.Auth != nil {
		var err error
		if o.TLSMap {
			id, err = o.Auth.CheckNames(certNames(c.tlsState))
		} else {
			ctx := context.Background() // no auth timer: auth was off when the client connected
			c.mu.Lock()
			if c.authCtx != nil {
				ctx = c.authCtx
			}
			c.authUser, c.authChecking = loginName(opts), true
			c.mu.Unlock()
			id, err = o.Auth.CheckContext(ctx, auth.Credentials{User: opts.User, Pass: opts.Pass,
				Token: opts.AuthToken, Nkey: opts.Nkey, Sig: opts.Sig, Nonce: c.nonce})
			c.mu.Lock()
			c.authChecking = false
			c.mu.Unlock()
		}
		if err != nil {
			return nil, nil, err
		}
	}
	return id, o.Auth, nil
}

// adoptIdentity installs the identity authenticate returned, with its permissions. An
// error wrapping auth.ErrCheckAborted means a reload since the check refused the client.
func (c *client) adoptIdentity(id *auth.Identity, by *auth.Authenticator) error {
	c.setIdentity(id, by)
	// A reload during the check skipped this client as not yet authenticated: apply it
	// now (after setIdentity, so that one of the two always sees the other).
	if c.srv.o().Auth != by && !c.reauthenticate() {
		return fmt.Errorf("%w: user removed or credentials changed by a reload during the check", auth.ErrCheckAborted)
	}
	return nil
}

// bindAccount puts the client in its user's account, on the read goroutine at CONNECT;
// false if that account no longer exists (a reload removed it while the CONNECT was
// checked). The account never changes afterwards (a reload that would move a user, or
// remove its account, closes it).
func (c *client) bindAccount() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	name := ""
	if c.ident != nil {
		name = c.ident.Account
	}
	acc := c.srv.account(name)
	if acc == nil {
		return false
	}
	if acc != c.acc {
		c.acc = acc
		c.resetL1(0) // the cache belonged to the other index
	}
	return true
}

// loginName is who a CONNECT claims to be, for the log: the user name or the nkey.
func loginName(opts *connectOpts) string {
	if opts.User == "" {
		return opts.Nkey
	}
	return opts.User
}

// Refused logins are logged at most authLogBurst lines per authLogWindow for the whole
// server; the next line let through counts the ones left out.
const (
	authLogBurst  = 10
	authLogWindow = time.Second
)

// logLimiter lets through at most authLogBurst lines per window and counts the rest.
type logLimiter struct {
	mu      sync.Mutex
	window  time.Time // start of the current window
	n       int       // lines let through in it
	dropped int       // lines left out since the last one let through
}

// allow reports whether a line may be logged at now, and how many were left out
// before it.
func (l *logLimiter) allow(now time.Time) (ok bool, dropped int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if now.Sub(l.window) >= authLogWindow {
		l.window, l.n = now, 0
	}
	if l.n >= authLogBurst {
		l.dropped++
		return false, 0
	}
	l.n++
	dropped, l.dropped = l.dropped, 0
	return true, dropped
}

// logRefusedLogin logs one line for a refused login, naming the user and the cause,
// unless a flood of them has used up the log budget.
func (s *Server) logRefusedLogin(c *client, msg, user string, cause any) {
	ok, dropped := s.authLog.allow(time.Now())
	if !ok {
		return
	}
	if dropped > 0 {
		c.log.Info(msg, "user", user, "cause", cause, "suppressed", dropped)
		return
	}
	c.log.Info(msg, "user", user, "cause", cause)
}

// setIdentity installs who the client is and what it may do; safe from any goroutine.
// by is the Authenticator that issued id (nil without auth).
func (c *client) setIdentity(id *auth.Identity, by *auth.Authenticator) {
	var ck *auth.Checker
	if id != nil {
		ck = id.Checker
	}
	c.perms.Store(ck)
	if rp := ck.AllowResponses(); rp != nil {
		// Kept across a reload unless its limits changed (nats-server checks the current ones).
		if !c.responses.Load().Applies(rp) {
			c.responses.Store(auth.NewResponses(rp))
		}
	} else {
		c.responses.Store(nil)
	}
	c.mu.Lock()
	c.ident, c.authBy = id, by
	c.authDone = true
	if c.authTimer != nil {
		c.authTimer.Stop()
	}
	cancel := c.authCancel
	c.mu.Unlock()
	if cancel != nil {
		cancel() // releases the context; nothing waits on it any more
	}
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
