package core

import (
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"time"

	"github.com/starling-io/starling/core/auth"
)

// maxMaxPayload is the largest max_payload a server accepts, and so the largest message a
// peer may route to us.
const maxMaxPayload = 1 << 30

// Defaults, as nats-server's where the concept is the same.
const (
	DefaultPort             = 4222
	DefaultMaxPayload       = 1 << 20
	DefaultMaxControlLine   = 4096
	DefaultMaxConnections   = 64 * 1024
	DefaultMaxPending       = 64 << 20
	DefaultPingInterval     = 2 * time.Minute
	DefaultPingMax          = 2
	DefaultWriteDeadline    = 10 * time.Second
	DefaultAuthTimeout      = 2 * time.Second
	DefaultLameDuckDuration = 2 * time.Minute
	DefaultLameDuckGrace    = 10 * time.Second
	DefaultTLSTimeout       = 2 * time.Second

	// firstPingDelay caps the first server PING after CONNECT: it measures RTT early.
	firstPingDelay = 2 * time.Second
)

// NoClientConnections as MaxConnections accepts no client connection (routes and in-process
// connections still work): nats-server's "max_connections: 0" in a configuration file.
const NoClientConnections = -1

// Options configures a Server. The zero value of every field means "the default";
// use Port -1 to listen on a random free port.
type Options struct {
	Host            string // listen address; "" = 0.0.0.0
	Port            int    // 0 = DefaultPort, -1 = random
	ServerName      string // defaults to the server id
	ClientAdvertise string // host:port given to clients in connect_urls

	MaxPayload       int
	MaxControlLine   int
	MaxConnections   int // 0: DefaultMaxConnections; NoClientConnections: none
	MaxSubscriptions int // per connection; 0 or negative = unlimited
	MaxPending       int64
	PingInterval     time.Duration
	PingMax          int
	WriteDeadline    time.Duration
	AuthTimeout      time.Duration
	NoHeaderSupport  bool

	LameDuckDuration    time.Duration
	LameDuckGracePeriod time.Duration

	// Auth decides who may connect and what they may do; nil lets anyone in.
	Auth *auth.Authenticator
	// TLS, when set, requires every client to upgrade after INFO (tls_required).
	TLS *tls.Config
	// TLSHandshakeFirst runs the TLS handshake before INFO (nats.go's TLSHandshakeFirst
	// option); a client that does not start with TLS is closed. With
	// TLSHandshakeFirstFallback > 0, a client silent for that long gets INFO first and
	// proceeds as without TLSHandshakeFirst.
	TLSHandshakeFirst         bool
	TLSHandshakeFirstFallback time.Duration
	// AllowNonTLS makes TLS optional (INFO says tls_available): after INFO, a client whose
	// first byte starts a TLS record is upgraded, any other stays in plaintext.
	AllowNonTLS bool
	// TLSTimeout bounds the handshake (default 2s); an unset AuthTimeout becomes TLSTimeout+1s.
	TLSTimeout time.Duration
	// TLSMap logs clients in by their certificate (verify_and_map): a subject, e-mail or
	// DNS name of the verified certificate must be a configured user name.
	TLSMap bool

	// HTTPHost/HTTPPort/HTTPBasePath are reported in /varz; the HTTP server itself lives in
	// core/monitor.
	HTTPHost     string
	HTTPPort     int
	HTTPSPort    int
	HTTPBasePath string

	// Accounts are the configured accounts besides the global one ($G), which clients
	// whose user names no account use. They cannot change on reload.
	Accounts []AccountConfig
	// SystemAccount names the system account ("" with accounts: DefaultSystemAccount,
	// created if not configured).
	SystemAccount string
	// NoSystemAccount: no default system account (nats-server's no_system_account); a
	// SystemAccount named still is one.
	NoSystemAccount bool

	// Cluster, when set, opens a route listener and joins the servers it names into a mesh.
	Cluster *ClusterOptions

	Logger *slog.Logger // nil = discard
	// ReloadConfig, when set, serves the system account's $SYS.REQ.SERVER.<id>.RELOAD
	// request (`nats server config reload`): the binary re-reads its configuration file.
	// It runs on a goroutine of its own; a reload keeps it when the new options have none.
	ReloadConfig func() error
}

// ClusterOptions configures routes (spec §16–17).
type ClusterOptions struct {
	Host        string     // route listen address; "" = 0.0.0.0
	Port        int        // 0 = DefaultClusterPort, -1 = random
	Name        string     // routes naming another cluster are refused; "" accepts any
	Advertise   string     // host:port other servers should dial instead of the listen address
	NoAdvertise bool       // do not put other servers' client URLs into connect_urls
	Routes      []*url.URL // seeds; retried forever. Credentials in a URL are sent to it.

	// Username/Password, when set, are required of every server that dials us, and sent
	// when we dial a route whose URL carries none. Password may be a bcrypt hash.
	Username, Password string
	AuthTimeout        time.Duration

	// TLS, when set, secures every route: TLS is the server side, TLSClient the dialing side
	// (both normally verify the peer's certificate).
	TLS, TLSClient *tls.Config

	// MaxLimboAccounts bounds, per route, the accounts this server lacks whose interest the
	// peer announced and a reload may still add (0: DefaultMaxLimboAccounts).
	MaxLimboAccounts int
}

// DefaultClusterPort is the conventional route port.
const DefaultClusterPort = 6222

// ErrInvalidOptions wraps every option validation failure.
var ErrInvalidOptions = errors.New("core: invalid options")

// withDefaults returns a copy with every zero field set to its default, or an error
// naming the first option that cannot work.
func (o Options) withDefaults() (Options, error) {
	if o.Host == "" {
		o.Host = "0.0.0.0"
	}
	if o.Port == 0 {
		o.Port = DefaultPort
	}
	if o.MaxPayload == 0 {
		o.MaxPayload = DefaultMaxPayload
	}
	if o.MaxControlLine == 0 {
		o.MaxControlLine = DefaultMaxControlLine
	}
	if o.MaxConnections == 0 {
		o.MaxConnections = DefaultMaxConnections
	}
	if o.MaxPending == 0 {
		o.MaxPending = DefaultMaxPending
	}
	if o.PingInterval == 0 {
		o.PingInterval = DefaultPingInterval
	}
	if o.PingMax == 0 {
		o.PingMax = DefaultPingMax
	}
	if o.WriteDeadline == 0 {
		o.WriteDeadline = DefaultWriteDeadline
	}
	if o.LameDuckDuration == 0 {
		o.LameDuckDuration = DefaultLameDuckDuration
	}
	if o.TLSTimeout == 0 {
		o.TLSTimeout = DefaultTLSTimeout
	}
	if o.AuthTimeout == 0 {
		// As nats-server: only the default follows TLS; a configured timeout is kept.
		o.AuthTimeout = DefaultAuthTimeout
		if o.TLS != nil {
			o.AuthTimeout = o.TLSTimeout + time.Second
		}
	}
	if o.LameDuckGracePeriod == 0 {
		o.LameDuckGracePeriod = DefaultLameDuckGrace
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Cluster != nil {
		co := *o.Cluster
		if co.Host == "" {
			co.Host = "0.0.0.0"
		}
		if co.Port == 0 {
			co.Port = DefaultClusterPort
		}
		if co.AuthTimeout == 0 {
			co.AuthTimeout = DefaultAuthTimeout
		}
		switch {
		case co.Port < -1 || co.Port > 65535:
			return o, fmt.Errorf("%w: cluster port %d out of range", ErrInvalidOptions, co.Port)
		case (co.TLS == nil) != (co.TLSClient == nil):
			return o, fmt.Errorf("%w: cluster TLS needs both the server and the client configuration", ErrInvalidOptions)
		}
		o.Cluster = &co
	}
	switch {
	case o.Port < -1 || o.Port > 65535:
		return o, fmt.Errorf("%w: port %d out of range", ErrInvalidOptions, o.Port)
	case o.MaxPayload < 0 || o.MaxPayload > maxMaxPayload:
		return o, fmt.Errorf("%w: max_payload %d out of range (0..1GiB)", ErrInvalidOptions, o.MaxPayload)
	case int64(o.MaxPayload) > o.MaxPending:
		return o, fmt.Errorf("%w: max_payload (%d) must not exceed max_pending (%d)", ErrInvalidOptions, o.MaxPayload, o.MaxPending)
	case o.MaxControlLine < 0:
		return o, fmt.Errorf("%w: max_control_line %d is negative", ErrInvalidOptions, o.MaxControlLine)
	case o.MaxConnections < NoClientConnections:
		return o, fmt.Errorf("%w: max_connections %d is negative", ErrInvalidOptions, o.MaxConnections)
	case o.PingMax < 0 || o.PingInterval < 0 || o.WriteDeadline < 0:
		return o, fmt.Errorf("%w: ping and write settings must not be negative", ErrInvalidOptions)
	case o.LameDuckGracePeriod >= o.LameDuckDuration: // as nats-server's validateOptions: strictly lower
		return o, fmt.Errorf("%w: lame_duck_grace_period (%v) is not less than lame_duck_duration (%v)", ErrInvalidOptions, o.LameDuckGracePeriod, o.LameDuckDuration)
	}
	if o.MaxPayload > 8<<20 {
		o.Logger.Warn("max_payload above 8MB is not recommended", "max_payload", o.MaxPayload)
	}
	return o, nil
}
