package app

import (
	"cmp"
	"errors"
	"fmt"
	"math"
	"net"
	"strconv"
	"strings"
	"time"

	"github.com/starling-io/starling/core"
	"github.com/starling-io/starling/core/auth"
	"github.com/starling-io/starling/core/conf"
)

// readFile maps a parsed configuration file onto s: the same settings the flags set, under
// nats-server's key names and aliases. Unknown keys are errors, except keys that only serve
// as $variables. Every problem goes to p with its file:line:col and the key's dotted path.
func readFile(s *settings, m *conf.Map, p *problems) {
	r := &fileReader{p: p}
	each(m, "", func(key, path string, e *conf.Entry) {
		if r.listenKey(s, key, path, e) || r.limitKey(s, key, path, e) || r.logKey(s, key, path, e) || r.securityKey(s, key, path, e) {
			return
		}
		switch key {
		case "cluster":
			s.cluster = r.reserved(e, path, clusterSchema())
			s.clusterAt = fileOrigin(e.KeyPos, path)
			s.clusterKeyAt = keyOrigins(e, path)
			s.clusterUnused = r.clusterUnused(e, path)
		case "streaming":
			r.streamingBlock(s, e, path)
		default:
			if isStreamingKey(key) && !e.Referenced {
				r.p.at(e.KeyPos, path, "unknown configuration key (streaming settings go inside a streaming { } block)")
				return
			}
			r.unknown(e, path)
		}
	})
	s.fileWarnings = r.warnings
}

// listenKey reads a top-level key of where the server listens and what it is called,
// reporting whether key is one.
func (r *fileReader) listenKey(s *settings, key, path string, e *conf.Entry) bool {
	o := &s.core
	switch key {
	case "listen":
		if host, port, ok := r.hostPort(e, path); ok {
			o.Host, o.Port = orString(host, o.Host), port
		}
	case "host", "net":
		o.Host, _ = r.str(e, path)
	case "port":
		o.Port, _ = r.intIn(e, path, -1, 65535)
	case "http", "http_port", "monitor_port":
		if host, port, ok := r.hostPort(e, path); ok {
			s.httpHost, s.httpPort = orString(host, s.httpHost), port
		}
	case "https", "https_port":
		if host, port, ok := r.hostPort(e, path); ok {
			s.httpHost, s.httpsPort, s.httpsAt = orString(host, s.httpHost), port, fileOrigin(e.KeyPos, path)
		}
	case "http_base_path":
		s.basePath, _ = r.str(e, path)
	case "prof_port", "profile":
		s.profilePort, _ = r.intIn(e, path, -1, 65535)
	case "server_name":
		o.ServerName, _ = r.name(e, path)
	case "client_advertise":
		o.ClientAdvertise, _ = r.str(e, path)
	default:
		return false
	}
	return true
}

// minLameDuckDuration is nats-server's minimum for the lame_duck_duration key (its
// opts.go refuses a shorter one); the Go API and Starling's flag take shorter drains.
const minLameDuckDuration = 30 * time.Second

// limitKey reads a top-level key of the client limits, pings and lame duck mode, reporting
// whether key is one.
func (r *fileReader) limitKey(s *settings, key, path string, e *conf.Entry) bool {
	o := &s.core
	switch key {
	case "max_payload":
		s.limitAt[key] = fileOrigin(e.KeyPos, path)
		o.MaxPayload, _ = r.size(e, path, 1<<30)
	case "max_control_line":
		o.MaxControlLine, _ = r.size(e, path, 1<<30)
	case "max_connections", "max_conn":
		if n, ok := r.intIn(e, path, 0, math.MaxInt32); ok {
			o.MaxConnections = cmp.Or(n, core.NoClientConnections) // 0: none, as nats-server
		}
	case "max_subscriptions", "max_subs":
		o.MaxSubscriptions, _ = r.intIn(e, path, -1, math.MaxInt32) // below 1: unlimited (-1 as nats-server)
	case "max_pending":
		s.limitAt[key] = fileOrigin(e.KeyPos, path)
		n, _ := r.size(e, path, math.MaxInt64)
		o.MaxPending = int64(n)
	case "ping_interval":
		o.PingInterval, _ = r.seconds(e, path)
	case "ping_max":
		o.PingMax, _ = r.intIn(e, path, 0, math.MaxInt32)
	case "write_deadline":
		o.WriteDeadline, _ = r.seconds(e, path)
	case "lame_duck_duration":
		s.limitAt[key] = fileOrigin(e.KeyPos, path)
		d, ok := r.duration(e, path)
		if ok && d < minLameDuckDuration {
			// As nats-server's config parser (opts.go): the key, not the Go API, has a minimum.
			r.p.at(e.KeyPos, path, "invalid lame_duck_duration of %v, minimum is 30 seconds", d)
			ok = false
		}
		if ok {
			o.LameDuckDuration = d
		}
		s.lameDuckRefused = !ok // reported: the grace period is not checked against the default
	case "lame_duck_grace_period":
		s.limitAt[key] = fileOrigin(e.KeyPos, path)
		o.LameDuckGracePeriod, _ = r.duration(e, path)
	case "no_header_support":
		o.NoHeaderSupport, _ = r.boolean(e, path)
	default:
		return false
	}
	return true
}

// logKey reads a top-level key of logging and of the files the process writes (PID,
// ports), reporting whether key is one.
func (r *fileReader) logKey(s *settings, key, path string, e *conf.Entry) bool {
	switch key {
	case "debug":
		s.debug, _ = r.boolean(e, path)
	case "trace":
		s.trace, _ = r.boolean(e, path)
	case "logfile", "log_file":
		s.logFile, _ = r.str(e, path)
	case "logfile_size_limit", "log_size_limit":
		n, _ := r.size(e, path, math.MaxInt64)
		s.logSizeLimit = int64(n)
	case "logfile_max_num", "log_max_num":
		s.logMaxNum, _ = r.intIn(e, path, 0, math.MaxInt32)
	case "log_format":
		if v, ok := r.str(e, path); ok {
			if v != logText && v != logJSON {
				r.p.at(e.KeyPos, path, "%q is not a log format (text or json)", v)
				break
			}
			s.logFormat = v
		}
	case "logtime":
		s.logTime, _ = r.boolean(e, path)
	case "logtime_utc":
		s.logUTC, _ = r.boolean(e, path)
	case "pid_file":
		s.pidFile, _ = r.str(e, path)
	case "ports_file_dir":
		s.portsDir, _ = r.str(e, path)
		s.portsAt = fileOrigin(e.KeyPos, path)
	default:
		return false
	}
	return true
}

// securityKey reads a top-level key of authentication, accounts and TLS, reporting whether
// key is one.
func (r *fileReader) securityKey(s *settings, key, path string, e *conf.Entry) bool {
	switch key {
	case "no_auth_user":
		s.auth.noAuthUser, _ = r.str(e, path)
		s.auth.noAuthAt = fileOrigin(e.KeyPos, path)
	case "authorization":
		r.authorization(s, e, path)
	case "accounts":
		r.accounts(s, e, path)
	case "system_account":
		s.core.SystemAccount, _ = r.str(e, path)
		s.systemAt = fileOrigin(e.KeyPos, path)
	case "no_system_account":
		s.noSystemAccount, _ = r.boolean(e, path)
	case "allow_non_tls":
		s.core.AllowNonTLS, _ = r.boolean(e, path)
	case "tls":
		if t, ok := r.tlsBlock(e, path); ok {
			s.tls = t
		}
	default:
		return false
	}
	return true
}

func orString(s, otherwise string) string {
	if s != "" {
		return s
	}
	return otherwise
}

// fileReader reads typed values out of a configuration tree, reporting problems to p. Every
// getter returns ok=false after reporting. Its many methods (STYLE.md asks a reason past
// ~40) are the typed getters and one reader per block or group of keys: they share p and
// the file's position for every error, and hold no other state.
type fileReader struct {
	p        *problems
	warnings []ignoredKey // taken, but logged at start with their file:line:col
}

// secret reads a user's password: a malformed bcrypt hash is taken, as nats-server takes
// it, with a warning naming its file:line:col (the single user's password and the token,
// which a flag may set instead, are checked in build).
func (r *fileReader) secret(e *conf.Entry, path, who string) (string, bool) {
	v, ok := r.str(e, path)
	if ok {
		if w, bad := malformedHash(v, fileOrigin(e.KeyPos, path), who); bad {
			r.warnings = append(r.warnings, w)
		}
	}
	return v, ok
}

// malformedHash returns the warning for a password or token v, written at at, that looks
// like a bcrypt hash but is not one: nothing matches it (who says what that locks out).
func malformedHash(v string, at origin, who string) (ignoredKey, bool) {
	err := auth.MalformedBcrypt(v)
	if err == nil {
		return ignoredKey{}, false
	}
	return ignoredKey{at, fmt.Sprintf("is a malformed bcrypt hash (%v): nothing matches it, so %s (as in nats-server)", err, who)}, true
}

// each calls fn for every entry of m in file order, with the key lower-cased (nats-server
// reads keys case-insensitively) and its dotted path under parent. Of two spellings of a key
// (Accounts, accounts) only the one set last is read, as a key given twice.
func each(m *conf.Map, parent string, fn func(key, path string, e *conf.Entry)) {
	for _, k := range m.FoldedKeys() {
		fn(strings.ToLower(k), child(parent, k), m.Entries[k])
	}
}

// eachName is each for a block whose keys are names, not options (channels, per-channel
// limits): case-sensitive, so two names that differ only in case are two entries.
func eachName(m *conf.Map, parent string, fn func(path string, e *conf.Entry)) {
	for _, k := range m.Keys {
		fn(child(parent, k), m.Entries[k])
	}
}

// keyOrigins maps each key of block e, lower case and dotted below it
// ("authorization.token"), to where it is written: an error about a key names its line.
func keyOrigins(e *conf.Entry, path string) map[string]origin {
	out := make(map[string]origin)
	var walk func(m *conf.Map, rel, abs string)
	walk = func(m *conf.Map, rel, abs string) {
		each(m, abs, func(key, kpath string, e *conf.Entry) {
			r := child(rel, key)
			out[r] = fileOrigin(e.KeyPos, kpath)
			if e.Value != nil && e.Value.Kind == conf.KindMap {
				walk(e.Value.Map, r, kpath)
			}
		})
	}
	if e.Value != nil && e.Value.Kind == conf.KindMap {
		walk(e.Value.Map, "", path)
	}
	return out
}

func child(parent, key string) string {
	if parent == "" {
		return key
	}
	return parent + "." + key
}

// unknown reports a key nobody reads, unless it is a variable some $reference used. A
// nats-server key Starling does not implement says so: "unknown" would suggest a typo to
// someone migrating a working nats-server file.
func (r *fileReader) unknown(e *conf.Entry, path string) {
	if e.Referenced {
		return
	}
	key := strings.ToLower(path)
	if parts := strings.Split(key, "."); len(parts) == 3 && parts[0] == "accounts" {
		key = "accounts.*." + parts[2]
	}
	if natsServerOnly(key) {
		r.p.at(e.KeyPos, path, "a nats-server setting Starling does not support")
		return
	}
	r.p.at(e.KeyPos, path, "unknown configuration key")
}

// natsServerOnly reports nats-server keys of features Starling does not implement
// (JetStream, leaf nodes, gateways, websocket, MQTT, operator mode, syslog and some tuning
// knobs).
func natsServerOnly(key string) bool {
	switch key {
	case "jetstream", "leafnodes", "leaf", "websocket", "ws", "mqtt",
		"gateway", "operator", "operators", "resolver", "resolver_preload",
		"trusted", "trusted_keys", "syslog", "remote_syslog",
		"connect_error_reports", "reconnect_error_reports", "max_traced_msg_len",
		"disable_sublist_cache", "no_sublist_cache", "max_closed_clients", "ocsp",
		"ocsp_cache", "default_js_domain", "mappings",
		"no_fast_producer_stall", "write_timeout",
		"accounts.*.jetstream", "accounts.*.mappings":
		return true
	}
	return false
}

// fail reports an error from an Entry.As* helper, naming the key by its full path.
func (r *fileReader) fail(err error, e *conf.Entry, path string) {
	var ce *conf.Error
	if errors.As(err, &ce) && path != e.Key {
		ce.Msg = path + strings.TrimPrefix(ce.Msg, e.Key)
	}
	r.p.add(err)
}

func (r *fileReader) str(e *conf.Entry, path string) (string, bool) {
	v, err := e.AsString()
	if err != nil {
		r.fail(err, e, path)
		return "", false
	}
	return v, true
}

// name reads a server or cluster name: nats-server refuses spaces in one (it is sent in
// route INFO and in $SYS subjects), so a configuration it refuses is refused here too.
func (r *fileReader) name(e *conf.Entry, path string) (string, bool) {
	v, ok := r.str(e, path)
	if ok && strings.Contains(v, " ") {
		r.p.at(e.KeyPos, path, "%q cannot contain spaces", v)
		return "", false
	}
	return v, ok
}

func (r *fileReader) boolean(e *conf.Entry, path string) (bool, bool) {
	v, err := e.AsBool()
	if err != nil {
		r.fail(err, e, path)
		return false, false
	}
	return v, true
}

func (r *fileReader) intIn(e *conf.Entry, path string, lo, hi int64) (int, bool) {
	v, err := e.AsInt()
	if err != nil {
		r.fail(err, e, path)
		return 0, false
	}
	if v < lo || v > hi {
		r.p.at(e.KeyPos, path, "%d is out of range (%d..%d)", v, lo, hi)
		return 0, false
	}
	return int(v), true
}

// size reads a byte count (1MB, 64KB, 1048576) in 0..hi.
func (r *fileReader) size(e *conf.Entry, path string, hi int64) (int, bool) {
	v, err := e.AsSize()
	if err != nil {
		r.fail(err, e, path)
		return 0, false
	}
	if v < 0 || v > hi {
		r.p.at(e.KeyPos, path, "size %d is out of range (0..%d)", v, hi)
		return 0, false
	}
	return int(v), true
}

// duration reads a non-negative duration written as one ("2m", 500ms): a number is
// refused, as nats-server and nats-streaming-server refuse it for most durations.
func (r *fileReader) duration(e *conf.Entry, path string) (time.Duration, bool) {
	return r.nonNegative(e, path, e.AsDuration)
}

// seconds reads a non-negative duration or a whole number of seconds, as nats-server reads
// ping_interval and write_deadline (a bare 2m, 2000000 seconds there, is refused here).
func (r *fileReader) seconds(e *conf.Entry, path string) (time.Duration, bool) {
	return r.nonNegative(e, path, e.AsSeconds)
}

// timeout reads a non-negative duration or a number of seconds (0.5), as nats-server reads
// the authorization and tls timeouts.
func (r *fileReader) timeout(e *conf.Entry, path string) (time.Duration, bool) {
	return r.nonNegative(e, path, e.AsTimeout)
}

func (r *fileReader) nonNegative(e *conf.Entry, path string, as func() (time.Duration, error)) (time.Duration, bool) {
	v, err := as()
	if err != nil {
		r.fail(err, e, path)
		return 0, false
	}
	if v < 0 {
		r.p.at(e.KeyPos, path, "duration %v is negative", v)
		return 0, false
	}
	return v, true
}

func (r *fileReader) mapOf(e *conf.Entry, path string) (*conf.Map, bool) {
	m, err := e.AsMap()
	if err != nil {
		r.fail(err, e, path)
		return nil, false
	}
	return m, true
}

// hostPort reads "host:port" or a bare port (host "").
func (r *fileReader) hostPort(e *conf.Entry, path string) (string, int, bool) {
	if e.Value.Kind == conf.KindInt {
		port, ok := r.intIn(e, path, -1, 65535)
		return "", port, ok
	}
	s, ok := r.str(e, path)
	if !ok {
		return "", 0, false
	}
	host, ps, err := net.SplitHostPort(s)
	port, perr := strconv.Atoi(ps)
	if err != nil || perr != nil || port < -1 || port > 65535 {
		r.p.at(e.KeyPos, path, "expected host:port or a port, got %q", s)
		return "", 0, false
	}
	return host, port, true
}

// item is one string of a list, with where it was written.
type item struct {
	s    string
	pos  conf.Pos
	path string
}

// list reads a string or an array of strings, keeping each element's position.
func (r *fileReader) list(e *conf.Entry, path string) []item {
	v := e.Value
	if v.Kind != conf.KindArray {
		s, ok := r.str(e, path)
		if !ok {
			return nil
		}
		return []item{{s, v.Pos, path}}
	}
	out := make([]item, 0, len(v.Array))
	for i, el := range v.Array {
		ipath := fmt.Sprintf("%s[%d]", path, i)
		ee := &conf.Entry{Key: ipath, KeyPos: el.Pos, Value: el}
		s, ok := r.str(ee, ipath)
		if ok {
			out = append(out, item{s, el.Pos, ipath})
		}
	}
	return out
}
