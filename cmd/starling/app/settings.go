package app

import (
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path"
	"slices"
	"strings"
	"time"

	"github.com/starling-io/starling/core"
	"github.com/starling-io/starling/core/auth"
	"github.com/starling-io/starling/core/conf"
)

// settings is everything the flags and the configuration file set. configure fills it from
// defaults, then the file, then the flags given on the command line (which win), and build
// turns it into the components' Options: core.Options with its Authenticator and tls.Config.
type settings struct {
	core core.Options // limits, listen address, names; Auth, TLS and TLSMap are built

	httpHost    string
	profilePort int // --profile: net/http/pprof on this port (0: off)
	httpPort    int // monitoring over HTTP; 0 = off, -1 = random
	httpsPort   int // monitoring over HTTPS with the tls block's certificate
	httpsAt     origin
	basePath    string
	pidFile     string
	portsDir    string // ports_file_dir: where <executable>_<pid>.ports goes
	portsAt     origin
	configFile  string
	configEmpty bool // the file has no values: a warning, as nats-server's

	logFile      string // -l: "" is stderr
	logSizeLimit int64  // rotate the log file past this size (0: never)
	logMaxNum    int    // log files kept with rotation, the current one included (0: all)
	logFormat    string // logText or logJSON
	logTime      bool   // timestamp entries
	logUTC       bool   // in UTC
	debug        bool
	trace        bool

	version bool   // -v: print the version and exit
	check   bool   // -t: check the configuration and exit
	signal  string // --signal CMD[=PID]: signal a running server and exit

	auth authSettings
	tls  tlsSettings

	// limitAt is where max_payload, max_pending, lame_duck_duration and
	// lame_duck_grace_period were written (the flag or file:line:col), for the checks that
	// compare them (checkLimits); a setting left at its default has none.
	limitAt map[string]origin
	// lameDuckRefused: the file's lame_duck_duration was refused (reported there), so
	// checkLimits does not also compare the grace period with a default nobody wrote.
	lameDuckRefused bool

	accounts    []accountEntry // the accounts block
	accountsAt  origin
	accountsBad bool // the accounts have problems (reported): core.New would repeat them
	systemAt    origin
	// noSystemAccount: no_system_account, nats-server's: without system_account, no $SYS.
	noSystemAccount bool

	streaming streamSettings

	// The cluster block as read (see clusterSchema), where it was, its keys accepted but not
	// used, and the cluster flags.
	cluster       map[string]any
	clusterAt     origin
	clusterKeyAt  map[string]origin // each key of the block ("authorization.token"), where written
	clusterUnused []ignoredKey
	clusterFlags  clusterFlags

	warnings     []string     // built: logged at start (and by -t); the streaming layer has its own
	fileWarnings []ignoredKey // the file's keys taken with a warning (a malformed bcrypt hash)

	plain []string // users with plain-text passwords, "token" for a plain token (built)
}

// authSettings is the authorization block and the --user/--pass/--auth flags.
type authSettings struct {
	at         origin // the authorization block, for what auth.New reports
	user, pass string
	userAt     origin
	passAt     origin
	token      string
	tokenAt    origin
	users      []userEntry
	usersAt    origin
	defaults   *auth.Permissions
	noAuthUser string
	noAuthAt   origin
}

// userEntry is one element of authorization.users.
type userEntry struct {
	user    *auth.User
	at      origin
	hasPass bool // a password key was written, even an empty one
}

// tlsSettings is the tls block and the --tls* flags.
type tlsSettings struct {
	on            bool
	onAt          origin
	cert          string
	certAt        origin
	key           string
	keyAt         origin
	ca            string
	caAt          origin
	verify        bool
	mapUsers      bool // verify_and_map
	timeout       time.Duration
	first         bool          // handshake_first
	firstFallback time.Duration // handshake_first: auto or a duration
	ciphers       []uint16
	curves        []tls.CurveID
}

// newSettings returns the defaults; flag definitions also write their defaults into it.
func newSettings() *settings {
	return &settings{streaming: newStreamSettings(), limitAt: make(map[string]origin)}
}

// level is the log level the settings ask for.
func (s *settings) level() slog.Level {
	switch {
	case s.trace:
		return levelTrace
	case s.debug:
		return slog.LevelDebug
	}
	return slog.LevelInfo
}

// build checks what can only be checked once file and flags are merged, loads the TLS
// certificates and builds the Authenticator, and validates the core options. Problems go
// to p.
func (s *settings) build(p *problems) {
	s.core.TLS = s.tls.build(p)
	s.core.TLSMap = s.tls.on && s.tls.mapUsers
	s.core.TLSHandshakeFirst = s.core.TLS != nil && s.tls.first
	s.core.TLSHandshakeFirstFallback = s.tls.firstFallback
	if s.tls.on {
		s.core.TLSTimeout = s.tls.timeout
	}
	s.core.Auth, s.plain = s.auth.build(p, s.core.TLSMap)
	s.buildAccounts(p)
	if s.basePath != "" {
		s.basePath = path.Clean("/" + strings.Trim(s.basePath, "/"))
		if s.basePath == "/" {
			s.basePath = ""
		}
	}
	switch {
	case s.httpPort != 0 && s.httpsPort != 0:
		p.add(s.httpsAt.errorf("monitoring cannot be served over both HTTP (port %d) and HTTPS (port %d)", s.httpPort, s.httpsPort))
	case s.httpsPort != 0 && !s.tls.on:
		p.add(s.httpsAt.errorf("HTTPS monitoring needs a tls block (or --tlscert/--tlskey) with the server certificate"))
	}
	if strings.Contains(s.core.ServerName, " ") { // the file's is refused where it is read
		p.add(flagOrigin("server_name").errorf("%q cannot contain spaces", s.core.ServerName))
	}
	s.core.Cluster = s.buildCluster(p)
	s.warnings = nil
	if s.configEmpty {
		s.warnings = append(s.warnings, s.configFile+": the configuration has no values or is empty")
	}
	warned := slices.Concat(s.clusterUnused, s.fileWarnings)
	if w, bad := malformedHash(s.auth.pass, s.auth.passAt, "its user cannot log in"); bad {
		warned = append(warned, w)
	}
	if w, bad := malformedHash(s.auth.token, s.auth.tokenAt, "no client can log in with the token"); bad {
		warned = append(warned, w)
	}
	for _, k := range warned {
		s.warnings = append(s.warnings, k.at.String()+" "+k.why)
	}
	// The file's port is range-checked where it is read; one out of range here is the
	// flag's, named as such rather than by core's "invalid options".
	portBad := s.core.Port < -1 || s.core.Port > 65535
	if portBad {
		p.add(flagOrigin("port").errorf("%d is out of range (-1..65535)", s.core.Port))
	}
	limitsBad := s.checkLimits(p)
	if s.accountsBad || limitsBad || portBad {
		// already reported where they were written
	} else if _, err := core.New(s.coreOptions(nil)); err != nil {
		p.add(err)
	}
	s.streaming.build(p, s.core.Cluster != nil)
	if a := s.streaming.account; a != "" && a != core.GlobalAccount && !s.streaming.off && !s.streaming.ns.on() {
		known := false
		for _, ac := range s.core.Accounts {
			known = known || ac.Name == a
		}
		switch {
		case !known:
			p.add(s.streaming.origin("account", "account").errorf("streaming serves account %q, which the accounts block does not define", a))
		case s.streaming.ns.on():
			p.add(s.streaming.origin("account", "account").errorf("an account is for streaming on this server's router; on an external NATS server the connection's user decides"))
		}
	}
}

// checkLimits reports, where they were written, the settings that core would refuse
// together (max_payload over max_pending, a lame duck grace period not shorter than the
// lame duck duration); true if there was one, or if the file's lame_duck_duration was
// refused where it was read (nothing to compare then). The one written is blamed; with both
// written, the first named in the message.
func (s *settings) checkLimits(p *problems) bool {
	o := &s.core
	payload, pending := orDefault(o.MaxPayload, core.DefaultMaxPayload), orDefault(o.MaxPending, core.DefaultMaxPending)
	grace, duration := orDefault(o.LameDuckGracePeriod, core.DefaultLameDuckGrace), orDefault(o.LameDuckDuration, core.DefaultLameDuckDuration)
	bad := false
	if int64(payload) > pending {
		bad = true
		if at, ok := s.limitAt["max_pending"]; ok && s.limitAt["max_payload"] == (origin{}) {
			p.add(at.errorf("%d is less than max_payload (%d)", pending, payload))
		} else {
			p.add(s.limitAt["max_payload"].errorf("%d exceeds max_pending (%d)", payload, pending))
		}
	}
	switch {
	case s.lameDuckRefused:
		bad = true // reported where it was written; core would compare the default
	case grace >= duration: // as nats-server: the grace period must be strictly lower
		bad = true
		if at, ok := s.limitAt["lame_duck_duration"]; ok && s.limitAt["lame_duck_grace_period"] == (origin{}) {
			// Only the duration was written (a flag: the file's key is at least 30s): say what
			// else to set.
			p.add(at.errorf("%v is not greater than the default lame_duck_grace_period (%v): set --lame_duck_grace_period lower too", duration, grace))
		} else {
			p.add(s.limitAt["lame_duck_grace_period"].errorf("%v is not less than lame_duck_duration (%v)", grace, duration))
		}
	}
	return bad
}

// orDefault returns v, or def when v is zero (core's "the default").
func orDefault[T int | int64 | time.Duration](v, def T) T {
	if v == 0 {
		return def
	}
	return v
}

// coreOptions returns the core options with the logger and the monitoring address filled.
// As nats-server's, the system account is $SYS when none is named, with or without an
// accounts block, unless no_system_account: a server with no accounts still tells its $G
// users who they are and about their account ($SYS.REQ.USER.INFO, the $SYS.REQ.ACCOUNT
// requests of `nats account info` and `nats account report`).
func (s *settings) coreOptions(log *slog.Logger) core.Options {
	o := s.core
	o.Logger = log
	o.NoSystemAccount = s.noSystemAccount
	if o.SystemAccount == "" && !s.noSystemAccount {
		o.SystemAccount = core.DefaultSystemAccount
	}
	if port := s.monitorPort(); port != 0 {
		o.HTTPHost, o.HTTPBasePath = s.monitorHost(), s.basePath
		if s.httpsPort == 0 {
			o.HTTPPort = s.httpPort
		} else {
			o.HTTPSPort = s.httpsPort
		}
	}
	return o
}

func (s *settings) monitorPort() int {
	if s.httpsPort != 0 {
		return s.httpsPort
	}
	return s.httpPort
}

func (s *settings) monitorHost() string {
	if s.httpHost != "" {
		return s.httpHost
	}
	if s.core.Host != "" {
		return s.core.Host
	}
	return "0.0.0.0"
}

// build returns the Authenticator (nil without authentication) and the users whose
// passwords are plain text. Conflicts are reported where the settings were written; what
// only auth.New finds is reported at the authorization block (or the flags).
func (a *authSettings) build(p *problems, tlsMap bool) (*auth.Authenticator, []string) {
	ok := true
	fail := func(at origin, format string, args ...any) {
		p.add(at.errorf(format, args...))
		ok = false
	}
	single := a.user != "" || a.pass != ""
	if len(a.users) > 0 {
		if a.token != "" {
			fail(a.tokenAt, "a token cannot be combined with a users list (%s)", a.usersAt.name)
		}
		if single {
			at := a.userAt
			if a.user == "" {
				at = a.passAt
			}
			fail(at, "a single user cannot be combined with a users list (%s)", a.usersAt.name)
		}
	} else if single && a.token != "" {
		fail(a.tokenAt, "a token cannot be combined with a user and password")
	}
	if a.pass != "" && a.user == "" {
		fail(a.passAt, "a password needs a user name")
	}
	users := make([]*auth.User, 0, len(a.users))
	names := map[string]origin{} // users of all accounts share one name space
	for _, u := range a.users {
		name := u.user.Username + u.user.Nkey
		if first, dup := names[name]; dup {
			fail(u.at, "duplicate user %q (first defined at %s)", name, first)
			continue
		}
		names[name] = u.at
		if u.user.Nkey == "" && !u.hasPass && !tlsMap {
			fail(u.at, "user %q has neither a password nor an nkey (write password: \"\" to allow an empty one, or map TLS certificates with verify_and_map)", u.user.Username)
		}
		users = append(users, u.user)
	}
	if a.noAuthUser != "" && !hasUser(users, a.noAuthUser) {
		fail(a.noAuthAt, "%q is not a user or nkey of the authorization users list or of an account", a.noAuthUser)
	}
	if !ok {
		return nil, nil
	}
	if len(users) == 0 && !single && a.token == "" {
		if a.defaults != nil {
			if _, err := auth.Compile(a.defaults); err != nil {
				p.add(a.at.errorf("%v", err))
			}
		}
		return nil, nil
	}
	at := a.at
	if at.name == "" {
		at = origin{name: "flags --user/--pass/--auth"}
	}
	au, err := auth.New(auth.Options{
		Users: users, Token: a.token, Username: a.user, Password: a.pass,
		NoAuthUser: a.noAuthUser, DefaultPermissions: a.defaults,
	})
	if err != nil {
		for _, e := range unjoin(err) {
			p.add(at.errorf("%v", e))
		}
		return nil, nil
	}
	return au, au.PlainPasswords()
}

func hasUser(users []*auth.User, name string) bool {
	for _, u := range users {
		if u.Username == name || u.Nkey == name {
			return true
		}
	}
	return false
}

// unjoin splits an errors.Join into its errors.
func unjoin(err error) []error {
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		return j.Unwrap()
	}
	return []error{err}
}

// configure reads the command line and the configuration file it names: defaults, then the
// file, then the flags given (which win), then build. -h writes the help to help and returns
// ErrHelp. A flag that cannot be parsed is returned as the flag package's error (a usage
// error, naming the flag); everything else as a *ConfigError listing every problem.
func configure(args []string, help io.Writer) (*settings, error) {
	return configureFor(args, help, false)
}

// configureFor is configure; starting adds the checks of what only a start uses (a reload
// keeps the running server's ports file where it is).
func configureFor(args []string, help io.Writer, starting bool) (*settings, error) {
	first := newSettings()
	f := newFlags(first)
	if err := f.fs.Parse(args); err != nil {
		if errors.Is(err, ErrHelp) {
			f.writeHelp(help)
		}
		return nil, natsServerFlag(err)
	}
	if f.fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected argument %q (flags start with -)", f.fs.Arg(0))
	}
	s := newSettings()
	f = newFlags(s)
	var p problems
	if first.configFile != "" {
		m, err := conf.ParseFile(first.configFile, conf.Options{})
		var ces conf.Errors
		switch {
		case errors.As(err, &ces):
			p.add(ces)
		case err != nil:
			p.add(fmt.Errorf("flag -c: %w", err))
		default:
			readFile(s, m, &p)
			s.configEmpty = len(m.Keys) == 0
		}
	}
	if err := f.fs.Parse(args); err != nil { // parsed once already: cannot fail
		return nil, err
	}
	s.build(&p)
	if starting {
		s.checkStart(&p)
	}
	if err := p.err(); err != nil {
		return s, err
	}
	return s, nil
}

// natsServerOnlyFlag reports nats-server flags of what Starling does not implement
// (JetStream, syslog, route connect retries, -VV/-DVV trace levels).
func natsServerOnlyFlag(name string) bool {
	switch name {
	case "js", "jetstream", "store_dir", "syslog", "s", "remote_syslog", "r", "connect_retries",
		"max_traced_msg_len", "help_tls", "VV", "DVV":
		return true
	}
	return false
}

// natsServerFlag turns "flag provided but not defined" for a nats-server flag into an
// error saying Starling does not support it, rather than that it does not exist.
func natsServerFlag(err error) error {
	name, ok := strings.CutPrefix(err.Error(), "flag provided but not defined: -")
	if !ok || !natsServerOnlyFlag(name) {
		return err
	}
	dashes := "-"
	if len(name) > 3 { // as the user most likely wrote it (nats-server's help shows --name)
		dashes = "--"
	}
	return fmt.Errorf("flag %s%s: a nats-server flag Starling does not support", dashes, name)
}

// checkStart checks, for a start and -t, what is used only once the server runs: the ports
// file is written once the listeners are up, and a failure then stops the server. Not at a
// reload: ports_file_dir cannot change then, and a directory removed since the start (a
// tmp cleaner) must not refuse every later reload.
func (s *settings) checkStart(p *problems) {
	if s.portsDir == "" {
		return
	}
	if fi, err := os.Stat(s.portsDir); err != nil {
		p.add(s.portsAt.errorf("%v", err))
	} else if !fi.IsDir() {
		p.add(s.portsAt.errorf("%s is not a directory", s.portsDir))
	}
}
