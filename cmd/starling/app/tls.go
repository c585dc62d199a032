package app

import (
	"crypto/tls"
	"crypto/x509"
	"os"
	"strings"
	"time"

	"github.com/starling-io/starling/core/conf"
)

// build loads the certificates and returns the server's tls.Config (TLS 1.2 at least), or
// nil when TLS is off.
func (t *tlsSettings) build(p *problems) *tls.Config {
	if !t.on {
		return nil
	}
	cfg := &tls.Config{MinVersion: tls.VersionTLS12, CipherSuites: t.ciphers, CurvePreferences: t.curves}
	switch {
	case t.cert == "" || t.key == "":
		p.add(t.onAt.errorf("TLS needs both a certificate and its key (cert_file and key_file, or --tlscert and --tlskey)"))
	case fileMissing(t.cert, t.certAt, p) || fileMissing(t.key, t.keyAt, p):
	default:
		cert, err := tls.LoadX509KeyPair(t.cert, t.key)
		if err != nil {
			p.add(t.certAt.errorf("loading the certificate and key: %v", err))
			break
		}
		cfg.Certificates = []tls.Certificate{cert}
	}
	if t.ca != "" && !fileMissing(t.ca, t.caAt, p) {
		pem, err := os.ReadFile(t.ca)
		pool := x509.NewCertPool()
		switch {
		case err != nil:
			p.add(t.caAt.errorf("%v", err))
		case !pool.AppendCertsFromPEM(pem):
			p.add(t.caAt.errorf("no PEM certificate in %s", t.ca))
		default:
			cfg.ClientCAs = pool
		}
	}
	if t.verify || t.mapUsers {
		cfg.ClientAuth = tls.RequireAndVerifyClientCert
	}
	return cfg
}

// defaultFirstFallback is handshake_first: auto's wait for the client's first bytes.
const defaultFirstFallback = 50 * time.Millisecond

// handshakeFirst reads tls.handshake_first as nats-server does: a boolean; auto (or
// auto_fallback), which waits 50ms for the client's TLS handshake; or a duration to wait.
func (r *fileReader) handshakeFirst(e *conf.Entry, path string) (bool, time.Duration) {
	if on, err := e.AsBool(); err == nil {
		return on, 0
	}
	v := e.Value
	if v.Kind == conf.KindString {
		switch strings.ToLower(strings.TrimSpace(v.Str)) {
		case "auto", "auto_fallback":
			return true, defaultFirstFallback
		}
	}
	// A number is not taken, even 2m (the size 2000000): nats-server wants a string.
	if v.Kind == conf.KindString || v.Kind == conf.KindDuration {
		if d, err := time.ParseDuration(strings.Trim(v.Raw, `"'`)); err == nil && d >= 0 {
			return true, d
		}
	}
	if v.Kind == conf.KindInt {
		r.p.at(e.KeyPos, path, "%s is a number, not a boolean, auto or a duration (quote it: \"%s\")", v.Raw, v.Raw)
		return false, 0
	}
	r.p.at(e.KeyPos, path, "%s is not a boolean, auto or a duration", v.Raw)
	return false, 0
}

// fileMissing reports (to p) a file that cannot be opened.
func fileMissing(name string, at origin, p *problems) bool {
	f, err := os.Open(name)
	if err != nil {
		p.add(at.errorf("%v", err))
		return true
	}
	_ = f.Close()
	return false
}

// cipherSuite returns the suite with Go's crypto/tls name (e.g.
// TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256), refusing the insecure ones.
func cipherSuite(name string) (uint16, string) {
	for _, c := range tls.CipherSuites() {
		if strings.EqualFold(c.Name, name) {
			return c.ID, ""
		}
	}
	for _, c := range tls.InsecureCipherSuites() {
		if strings.EqualFold(c.Name, name) {
			return 0, "is insecure and not allowed"
		}
	}
	return 0, "is not a cipher suite name of Go's crypto/tls (e.g. TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256)"
}

// curveIDs are the key exchanges curve_preferences may name, by their crypto/tls names.
func curveIDs() []tls.CurveID {
	return []tls.CurveID{tls.X25519MLKEM768, tls.SecP256r1MLKEM768, tls.SecP384r1MLKEM1024,
		tls.X25519, tls.CurveP256, tls.CurveP384, tls.CurveP521}
}

func curve(name string) (tls.CurveID, bool) {
	for _, id := range curveIDs() {
		if strings.EqualFold(id.String(), name) {
			return id, true
		}
	}
	return 0, false
}

func curveNames() string {
	ids := curveIDs()
	names := make([]string, len(ids))
	for i, id := range ids {
		names[i] = id.String()
	}
	return strings.Join(names, ", ")
}

// tlsBlock reads a tls { ... } block.
func (r *fileReader) tlsBlock(e *conf.Entry, path string) (tlsSettings, bool) {
	m, ok := r.mapOf(e, path)
	if !ok {
		return tlsSettings{}, false
	}
	t := tlsSettings{on: true, onAt: fileOrigin(e.KeyPos, path)}
	each(m, path, func(key, kpath string, e *conf.Entry) {
		switch key {
		case "cert_file":
			t.cert, _ = r.str(e, kpath)
			t.certAt = fileOrigin(e.KeyPos, kpath)
		case "key_file":
			t.key, _ = r.str(e, kpath)
			t.keyAt = fileOrigin(e.KeyPos, kpath)
		case "ca_file":
			t.ca, _ = r.str(e, kpath)
			t.caAt = fileOrigin(e.KeyPos, kpath)
		case "verify":
			t.verify, _ = r.boolean(e, kpath)
		case "verify_and_map":
			t.mapUsers, _ = r.boolean(e, kpath)
		case "timeout":
			t.timeout, _ = r.timeout(e, kpath)
		case "handshake_first", "first", "immediate":
			t.first, t.firstFallback = r.handshakeFirst(e, kpath)
		case "cipher_suites":
			t.ciphers = nil
			for _, it := range r.list(e, kpath) {
				id, bad := cipherSuite(it.s)
				if bad != "" {
					r.p.at(it.pos, it.path, "%q %s", it.s, bad)
					continue
				}
				t.ciphers = append(t.ciphers, id)
			}
		case "curve_preferences":
			t.curves = nil
			for _, it := range r.list(e, kpath) {
				id, ok := curve(it.s)
				if !ok {
					r.p.at(it.pos, it.path, "%q is not a curve name of Go's crypto/tls (one of %s)", it.s, curveNames())
					continue
				}
				t.curves = append(t.curves, id)
			}
		default:
			r.unknown(e, kpath)
		}
	})
	return t, true
}
