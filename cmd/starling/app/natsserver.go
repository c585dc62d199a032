package app

import (
	"crypto/tls"
	"fmt"
	"net/url"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/starling-io/starling/streaming"
	"github.com/starling-io/starling/streaming/natsbus"
)

// externalNATS is nats-streaming-server's -ns: streaming as a client of an existing NATS
// server (or cluster) instead of in-process on this server's router. Credentials come from
// the URL (nats://user:pass@host:port) or the streaming block's keys (username, password,
// token, nkey_seed_file, credentials, tls), which mean nothing without it.
type externalNATS struct {
	url                     string
	user, pass, token       string
	nkeySeedFile, credsFile string
	tls                     *tlsSettings // client certificate and CA, when the block is given
	serverName              string       // tls.server_name: the name the server's certificate is checked against
	insecure                bool         // tls.insecure: the server's certificate is not checked
}

// on reports whether streaming runs on an external NATS server.
func (x *externalNATS) on() bool { return x.url != "" }

// build checks the external server's settings.
func (x *externalNATS) build(st *streamSettings, p *problems) {
	if !x.on() {
		return
	}
	at := st.origin("nats_server_url", "nats_server")
	u, err := url.Parse(x.url)
	if err != nil || u.Host == "" || (u.Scheme != "nats" && u.Scheme != "tls") {
		p.add(at.errorf("%q is not a NATS server URL (nats://host:port or tls://host:port)", x.url))
	}
	if st.cluster.on {
		p.add(at.errorf("a clustered streaming server runs on this server's own router (its nodes find each other over the routes); an external NATS server is for a standalone one"))
	}
}

// options are nats.go's options for the connection.
func (x *externalNATS) options(clusterID string) ([]nats.Option, error) {
	opts := []nats.Option{
		nats.Name("_STARLING-" + clusterID), nats.MaxReconnects(-1), nats.ReconnectWait(250 * time.Millisecond),
		nats.ReconnectBufSize(64 << 20), nats.Timeout(5 * time.Second),
		// Retry for good through refused credentials too (fixed on the server meanwhile):
		// by default nats.go closes the connection after the same authorization error
		// twice, and streaming would be dead until a restart.
		nats.IgnoreAuthErrorAbort(),
	}
	if x.user != "" {
		opts = append(opts, nats.UserInfo(x.user, x.pass))
	}
	if x.token != "" {
		opts = append(opts, nats.Token(x.token))
	}
	if x.credsFile != "" {
		opts = append(opts, nats.UserCredentials(x.credsFile))
	}
	if x.nkeySeedFile != "" {
		o, err := nats.NkeyOptionFromSeed(x.nkeySeedFile)
		if err != nil {
			return nil, fmt.Errorf("nkey_seed_file: %w", err)
		}
		opts = append(opts, o)
	}
	if t := x.tls; t != nil {
		if x.serverName != "" || x.insecure {
			// First: RootCAs and ClientCert below add to this configuration.
			opts = append(opts, nats.Secure(&tls.Config{MinVersion: tls.VersionTLS12, ServerName: x.serverName,
				InsecureSkipVerify: x.insecure}))
		}
		if t.ca != "" {
			opts = append(opts, nats.RootCAs(t.ca))
		}
		if t.cert != "" || t.key != "" {
			opts = append(opts, nats.ClientCert(t.cert, t.key))
		}
		if t.ca == "" && t.cert == "" && x.serverName == "" && !x.insecure {
			opts = append(opts, nats.Secure())
		}
	}
	return opts, nil
}

// connectExternal connects to the external NATS server and returns the streaming bus over
// that connection, and the connection to close at shutdown.
func (m *Main) connectExternal(st *streamSettings) (streaming.Bus, *nats.Conn, error) {
	opts, err := st.ns.options(st.opts.ClusterID)
	if err != nil {
		return nil, nil, err
	}
	log := m.stanLog
	opts = append(opts,
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) {
			log.Warn("disconnected from the external NATS server", "err", err)
		}),
		nats.ClosedHandler(func(nc *nats.Conn) {
			if err := nc.LastError(); err != nil {
				log.Error("connection to the external NATS server closed: streaming serves no more", "err", err)
			}
		}),
		nats.ReconnectHandler(func(nc *nats.Conn) {
			log.Info("reconnected to the external NATS server", "url", redactURL(nc.ConnectedUrl()))
		}))
	nc, err := nats.Connect(st.ns.url, opts...)
	if err != nil {
		return nil, nil, fmt.Errorf("connecting to the external NATS server %s: %w", redactURL(st.ns.url), err)
	}
	log.Info("streaming runs on an external NATS server", "url", redactURL(nc.ConnectedUrl()))
	return natsbus.New(nc), nc, nil
}

// redactURL hides a password in a URL for the log, and a token (a user name without a
// password, as nats.go reads nats://<token>@host:port). nats.go's ConnectedUrlRedacted
// shows the token.
func redactURL(s string) string {
	u, err := url.Parse(s)
	if err != nil {
		return "(an unparsable URL)"
	}
	if u.User != nil {
		if _, hasPass := u.User.Password(); !hasPass && u.User.Username() != "" {
			u.User = url.User("xxxxx")
		}
	}
	return u.Redacted()
}
