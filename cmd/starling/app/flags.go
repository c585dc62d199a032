package app

import (
	"flag"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/starling-io/starling/core"
	"github.com/starling-io/starling/core/conf"
	"github.com/starling-io/starling/stores"
	"github.com/starling-io/starling/stores/filestore"
	"github.com/starling-io/starling/streaming"
)

// The option table: every flag is defined once here, with its aliases, its --help section
// and what the configuration reference says of it. --help (help.go) and
// docs/configuration.md (reference.go, go generate) are written from it, so neither can
// forget a flag.

// option is one command-line option.
type option struct {
	names []string // as typed, dashes included, the short ones first: "-a", "--addr", "--net"
	sec   section
	typ   string // the value's type: string, int, bool, duration, size
	arg   string // the value's placeholder in --help ("<host>"); "" for a boolean, else "<typ>"
	def   string // the default as shown; "" for none
	usage string // one line for --help
	doc   string // more for the configuration reference only
}

// flags is the command line: a FlagSet and, in the order of --help, its options.
type flags struct {
	fs   *flag.FlagSet
	opts []*option
}

// value is a flag.Value calling set; a boolean one takes no argument (-D, --tls).
type value struct {
	set    func(string) error
	isBool bool
}

func (v value) String() string     { return "" }
func (v value) Set(s string) error { return v.set(s) }
func (v value) IsBoolFlag() bool   { return v.isBool }

// addNamed defines o under each of its names; set learns which name was typed (an error
// found later names that flag).
func (f *flags) addNamed(o option, set func(name, v string) error) {
	if o.arg == "" && o.typ != "bool" {
		o.arg = "<" + o.typ + ">"
	}
	for _, n := range o.names {
		name := strings.TrimLeft(n, "-")
		f.fs.Var(value{set: func(v string) error { return set(name, v) }, isBool: o.typ == "bool"}, name, o.usage)
	}
	f.opts = append(f.opts, &o)
}

func (f *flags) add(o option, set func(v string) error) {
	f.addNamed(o, func(_, v string) error { return set(v) })
}

// The typed helpers write the default into dst and show it, unless o.def says otherwise.

func (f *flags) str(o option, dst *string, def string) {
	*dst, o.typ = def, "string"
	if o.def == "" {
		o.def = def
	}
	f.add(o, setString(dst))
}

func (f *flags) integer(o option, dst *int, def int) {
	*dst, o.typ = def, "int"
	if o.def == "" && def != 0 {
		o.def = strconv.Itoa(def)
	}
	f.add(o, setInt(dst))
}

func (f *flags) boolean(o option, dst *bool, def bool) {
	*dst, o.typ = def, "bool"
	if o.def == "" && def {
		o.def = "true"
	}
	f.add(o, setBool(dst))
}

func (f *flags) duration(o option, dst *time.Duration, def time.Duration) {
	*dst, o.typ = def, "duration"
	if o.def == "" && def != 0 {
		o.def = def.String()
	}
	f.add(o, setDuration(dst))
}

func setString(dst *string) func(string) error { return func(v string) error { *dst = v; return nil } }

func setInt(dst *int) func(string) error {
	return func(v string) error {
		n, err := strconv.Atoi(v)
		*dst = n
		return err
	}
}

// setMaxConnections reads max_connections as nats-server does: an explicit 0 accepts no
// client connection (unset keeps the default).
func setMaxConnections(dst *int) func(string) error {
	return func(v string) error {
		n, err := strconv.Atoi(v)
		switch {
		case err != nil:
			return err
		case n < 0:
			return fmt.Errorf("%d is negative", n)
		case n == 0:
			n = core.NoClientConnections
		}
		*dst = n
		return nil
	}
}

func setBool(dst *bool) func(string) error {
	return func(v string) error {
		b, err := strconv.ParseBool(v)
		*dst = b
		return err
	}
}

func setDuration(dst *time.Duration) func(string) error {
	return func(v string) error {
		d, err := time.ParseDuration(v)
		*dst = d
		return err
	}
}

// setSize parses "1048576", "1MB", "64KB", "2GB".
func setSize(dst *int) func(string) error {
	return func(v string) error {
		n, err := parseSize(v)
		*dst = n
		return err
	}
}

func setSize64(dst *int64) func(string) error {
	return func(v string) error {
		n, err := parseSize(v)
		*dst = int64(n)
		return err
	}
}

func names(n ...string) []string { return n }

// newFlags defines the command line over s; defining a flag writes its default into s.
// Names follow nats-server and nats-streaming-server where the concept is the same. The
// order is --help's: nats-streaming-server's, streaming first.
func newFlags(s *settings) *flags {
	fs := flag.NewFlagSet("starling", flag.ContinueOnError)
	fs.SetOutput(io.Discard) // ParseFlags prints the help and Execute the errors
	fs.Usage = func() {}
	f := &flags{fs: fs}
	f.streaming(s)
	f.stanCluster(s)
	f.server(s)
	f.logging(s)
	f.security(s)
	f.cluster(s)
	f.boolean(option{names: names("-v", "--version"), sec: secCommon, usage: "print the version and exit"}, &s.version, false)
	return f
}

// streaming defines the streaming layer's flags, with nats-streaming-server's names.
// Limits and the settings build checks record where they were given.
func (f *flags) streaming(s *settings) {
	st := &s.streaming
	f.streamingServer(st)
	f.streamingNATSTLS(st)
	f.streamingStore(st)
	f.streamingLimits(st)
	f.streamingClients(st)
	f.streamingFileStore(st)
	f.streamingLogging(st)
}

// trackFlag records where key was set, for the problems build finds.
func (st *streamSettings) trackFlag(key string, set func(string) error) func(name, v string) error {
	return func(name, v string) error {
		if err := set(v); err != nil {
			return err
		}
		st.setAt(key, flagOrigin(name))
		return nil
	}
}

// streamingServer defines whether streaming runs, its cluster ID and discover prefix, and
// the external NATS server it may run on (-ns).
func (f *flags) streamingServer(st *streamSettings) {
	o := &st.opts
	f.boolean(option{names: names("--no_streaming"), sec: secStreaming, usage: "run the core NATS router only, without the streaming layer"}, &st.off, false)
	o.ClusterID, o.DiscoverPrefix = streaming.DefaultClusterID, streaming.DefaultDiscoverPrefix
	f.addNamed(option{names: names("-cid", "--cluster_id"), sec: secStreaming, typ: "string", def: streaming.DefaultClusterID,
		usage: "cluster ID streaming clients connect with (letters, digits, '-', '_')"}, st.trackFlag("cluster_id", setString(&o.ClusterID)))
	f.addNamed(option{names: names("--discover_prefix"), sec: secStreaming, typ: "string", def: streaming.DefaultDiscoverPrefix,
		usage: "prefix of the subject clients connect on (<prefix>.<cluster_id>)"}, st.trackFlag("discover_prefix", setString(&o.DiscoverPrefix)))
	f.addNamed(option{names: names("-ns", "--nats_server"), sec: secStreaming, typ: "string", arg: "<url>",
		usage: "run streaming as a client of this external NATS server (nats://[user:pass@]host:port) instead of in-process on this server's router",
		doc:   "As nats-streaming-server's `-ns`: clients reach streaming through that server (or its cluster). Credentials: in the URL, or the streaming block's `username`, `password`, `token`, `nkey_seed_file`, `credentials` and `tls`. Streaming requests then carry no connection or user, so clients are bound to neither (as with nats-streaming-server); not with `--clustered`."},
		st.trackFlag("nats_server_url", setString(&st.ns.url)))
}

// nsTLSFlag applies set to the TLS settings for the external NATS server (made by the first
// such flag) and records where it was given.
func (st *streamSettings) nsTLSFlag(set func(t *tlsSettings, v string) error) func(name, v string) error {
	return func(name, v string) error {
		t := st.ns.tls
		if t == nil {
			t = &tlsSettings{on: true, onAt: flagOrigin(name)}
		}
		if err := set(t, v); err != nil {
			return err
		}
		if t.on {
			st.ns.tls = t
		}
		st.nsKeys = append(st.nsKeys, flagOrigin(name))
		return nil
	}
}

// streamingNATSTLS defines nats-streaming-server's flags for TLS to the NATS server: with
// -ns, as the streaming block's secure and tls keys.
func (f *flags) streamingNATSTLS(st *streamSettings) {
	f.addNamed(option{names: names("--secure"), sec: secStreaming, typ: "bool",
		usage: "with -ns: TLS to the external NATS server (with the system's CAs)"},
		st.nsTLSFlag(func(t *tlsSettings, v string) error {
			on, err := strconv.ParseBool(v)
			if !on && st.ns.tls == nil {
				t.on = false // --secure=false alone: no TLS
			}
			return err
		}))
	f.addNamed(option{names: names("--tls_client_cert"), sec: secStreaming, typ: "string", arg: "<file>",
		usage: "with -ns: client certificate (PEM) for the external NATS server"},
		st.nsTLSFlag(func(t *tlsSettings, v string) error { t.cert = v; return nil }))
	f.addNamed(option{names: names("--tls_client_key"), sec: secStreaming, typ: "string", arg: "<file>",
		usage: "with -ns: the client certificate's key"},
		st.nsTLSFlag(func(t *tlsSettings, v string) error { t.key = v; return nil }))
	f.addNamed(option{names: names("--tls_client_cacert"), sec: secStreaming, typ: "string", arg: "<file>",
		usage: "with -ns: CAs (PEM) the external NATS server's certificate is checked against"},
		st.nsTLSFlag(func(t *tlsSettings, v string) error { t.ca = v; return nil }))
}

// streamingStore defines the store type and its directory.
func (f *flags) streamingStore(st *streamSettings) {
	st.store = storeMemory
	f.addNamed(option{names: names("-st", "--store"), sec: secStreaming, typ: "string", def: storeMemory,
		usage: "store type: memory, file or bolt (case-insensitive)",
		doc:   "`memory` keeps nothing across restarts; `file` (segment files of CRC-checked records and an index) and `bolt` (one BoltDB file) keep everything under `--dir` and send a PubAck only once the message is synced. `sql` is not supported."},
		st.trackFlag("store", setString(&st.store)))
	f.addNamed(option{names: names("--dir"), sec: secStreaming, typ: "string", arg: "<dir>", def: defaultDataDir,
		usage: "directory of the file and bolt stores (not used by the memory store)"}, st.trackFlag("dir", setString(&st.dir)))
}

// streamingLimits defines the global channel limits.
func (f *flags) streamingLimits(st *streamSettings) {
	g := &st.limits.Global
	*g = stores.DefaultLimits()
	f.addNamed(option{names: names("-mc", "--max_channels"), sec: secStreaming, typ: "int", def: strconv.Itoa(g.MaxChannels),
		usage: "maximum number of channels (0: unlimited)"}, st.trackFlag("max_channels", setInt(&g.MaxChannels)))
	f.addNamed(option{names: names("-msu", "--max_subs"), sec: secStreaming, typ: "int", def: strconv.Itoa(g.MaxSubs),
		usage: "maximum subscriptions per channel (0: unlimited)"}, st.trackFlag("max_subs", setInt(&g.MaxSubs)))
	f.addNamed(option{names: names("-mm", "--max_msgs"), sec: secStreaming, typ: "int", def: strconv.Itoa(g.MaxMsgs),
		usage: "maximum messages per channel; the oldest are removed beyond (0: unlimited)"}, st.trackFlag("max_msgs", setInt(&g.MaxMsgs)))
	f.addNamed(option{names: names("-mb", "--max_bytes"), sec: secStreaming, typ: "size", def: strconv.FormatInt(g.MaxBytes, 10),
		usage: "maximum bytes of messages per channel, e.g. 1GB; the oldest are removed beyond (0: unlimited)"}, st.trackFlag("max_bytes", setSize64(&g.MaxBytes)))
	f.addNamed(option{names: names("-ma", "--max_age"), sec: secStreaming, typ: "duration",
		usage: "maximum age of a channel's messages, e.g. 24h (0: unlimited)"}, st.trackFlag("max_age", setDuration(&g.MaxAge)))
	f.addNamed(option{names: names("-mi", "--max_inactivity"), sec: secStreaming, typ: "duration",
		usage: "delete a channel with no subscription and no new message for this long, e.g. 1h (0: never)"}, st.trackFlag("max_inactivity", setDuration(&g.MaxInactivity)))
}

// streamingClients defines the heartbeats to clients, the store batch size and the limits
// on clients and durables.
func (f *flags) streamingClients(st *streamSettings) {
	o := &st.opts
	o.HBInterval, o.HBTimeout, o.HBFailCount = streaming.DefaultHBInterval, streaming.DefaultHBTimeout, streaming.DefaultHBFailCount
	f.addNamed(option{names: names("-hbi", "--hb_interval"), sec: secStreaming, typ: "duration", def: o.HBInterval.String(),
		usage: "interval of the heartbeats sent to streaming clients"}, st.trackFlag("hb_interval", setDuration(&o.HBInterval)))
	f.addNamed(option{names: names("-hbt", "--hb_timeout"), sec: secStreaming, typ: "duration", def: o.HBTimeout.String(),
		usage: "how long a client has to answer a heartbeat"}, st.trackFlag("hb_timeout", setDuration(&o.HBTimeout)))
	f.addNamed(option{names: names("-hbf", "--hb_fail_count"), sec: secStreaming, typ: "int", def: strconv.Itoa(o.HBFailCount),
		usage: "unanswered heartbeats before a client is closed"}, st.trackFlag("hb_fail_count", setInt(&o.HBFailCount)))
	o.IOBatchSize = streaming.DefaultIOBatchSize
	f.addNamed(option{names: names("--io_batch_size"), sec: secStreaming, typ: "int", def: strconv.Itoa(o.IOBatchSize),
		usage: "maximum messages stored in one batch"}, st.trackFlag("io_batch_size", setInt(&o.IOBatchSize)))
	f.boolean(option{names: names("--replace_durable"), sec: secStreaming,
		usage: "a subscribe request for a durable that is online replaces it instead of failing"}, &o.ReplaceDurable, false)
	o.MaxClients = streaming.DefaultMaxClients
	f.addNamed(option{names: names("--max_clients"), sec: secStreaming, typ: "int", def: strconv.Itoa(o.MaxClients),
		usage: "maximum registered streaming clients; a connect beyond gets \"stan: too many clients\" (-1: unlimited)"}, st.trackFlag("max_clients", setInt(&o.MaxClients)))
}

// streamingFileStore defines the file store's flags (and --file_sync, which bolt reads too).
func (f *flags) streamingFileStore(st *streamSettings) {
	fo := &st.file
	fo.sync, fo.autoSync, fo.sliceMaxBytes = true, time.Minute, filestore.DefaultSegmentBytes
	f.addNamed(option{names: names("--file_buffer_size"), sec: secStreamingStore, typ: "size", def: "256KB",
		usage: "file store: write buffer per channel"}, st.trackFlag("file.buffer_size", setSize(&fo.bufferSize)))
	f.addNamed(option{names: names("--file_sync"), sec: secStreamingStore, typ: "bool", def: "true",
		usage: "file and bolt stores: fsync before every PubAck and every connect, subscribe, unsubscribe and close response (false: faster, survives a process crash but not a power loss, and with bolt a power loss can leave the whole file unreadable)",
		doc:   "With `--file_sync=false` each batch is still written to the OS before it is acknowledged. A bolt file left unreadable by a power loss makes the server refuse to start with a corrupt-file error."},
		st.trackFlag("file.sync", setBool(&fo.sync)))
	f.addNamed(option{names: names("--file_slice_max_msgs"), sec: secStreamingStore, typ: "int",
		usage: "file store: roll a channel's segment after this many messages (0: no limit)",
		doc:   "Limits remove whole segments."}, st.trackFlag("file.slice_max_msgs", setInt(&fo.sliceMaxMsgs)))
	f.addNamed(option{names: names("--file_slice_max_bytes"), sec: secStreamingStore, typ: "size", def: "64MB",
		usage: "file store: segment size, e.g. 64MB (at most 1GB)"}, st.trackFlag("file.slice_max_bytes", setSize64(&fo.sliceMaxBytes)))
	f.addNamed(option{names: names("--file_slice_max_age"), sec: secStreamingStore, typ: "duration",
		usage: "file store: roll a segment whose first message is older than this, e.g. 1h (0: no limit)"}, st.trackFlag("file.slice_max_age", setDuration(&fo.sliceMaxAge)))
	f.addNamed(option{names: names("--file_fds_limit"), sec: secStreamingStore, typ: "int", def: "256",
		usage: "file store: sealed segments kept open across all channels"}, st.trackFlag("file.file_descriptors_limit", setInt(&fo.fdsLimit)))
	f.addNamed(option{names: names("--file_parallel_recovery"), sec: secStreamingStore, typ: "int", def: "one per core",
		usage: "file store: channels recovered at once at startup"}, st.trackFlag("file.parallel_recovery", setInt(&fo.parallelRecovery)))
	f.addNamed(option{names: names("--file_auto_sync"), sec: secStreamingStore, typ: "duration", def: "1m",
		usage: "with --file_sync=false, fsync what was written at least this often, e.g. 1s (0: never)",
		doc:   "A power loss then takes at most about this much of acknowledged writes."},
		st.trackFlag("file.auto_sync", func(v string) error {
			d, err := time.ParseDuration(v)
			fo.autoSync = max(d, 0)
			return err
		}))
}

// streamingLogging defines the streaming layer's own log levels.
func (f *flags) streamingLogging(st *streamSettings) {
	f.boolean(option{names: names("-SD", "--stan_debug"), sec: secStreamingLog,
		usage: "debug logging of the streaming layer only (-D lowers both layers)"}, &st.debug, false)
	f.boolean(option{names: names("-SV", "--stan_trace"), sec: secStreamingLog,
		usage: "trace logging of the streaming layer only (-V lowers both layers)", doc: "Nothing logs at TRACE yet."}, &st.trace, false)
	f.add(option{names: names("-SDV"), sec: secStreamingLog, typ: "bool", usage: "debug and trace logging of the streaming layer"},
		func(v string) error {
			on, err := strconv.ParseBool(v)
			st.debug, st.trace = on, on
			return err
		})
}

// server defines the core server's flags, what the process does (-c, -t, --signal) and
// monitoring.
func (f *flags) server(s *settings) {
	o := &s.core
	f.str(option{names: names("-a", "--addr", "--net"), sec: secServer, arg: "<host>", usage: "client listen address"}, &o.Host, "0.0.0.0")
	f.integer(option{names: names("-p", "--port"), sec: secServer, arg: "<port>", usage: "client port (-1: random)"}, &o.Port, core.DefaultPort)
	f.str(option{names: names("-n", "--name", "--server_name"), sec: secServer, def: "the server ID", usage: "server name"}, &o.ServerName, "")
	f.str(option{names: names("-P", "--pid"), sec: secServer, arg: "<file>", usage: "PID file"}, &s.pidFile, "")
	f.addNamed(option{names: names("--ports_file_dir"), sec: secServer, typ: "string", arg: "<dir>",
		usage: "write the listeners' URLs as JSON to <dir>/<executable>_<pid>.ports once they listen (removed at exit)",
		doc:   "The directory must exist (`-t` checks it): a ports file that cannot be written stops the server with exit code 1 (nats-server only logs it)."},
		func(name, v string) error {
			s.portsDir, s.portsAt = v, flagOrigin(name)
			return nil
		})
	f.str(option{names: names("-c", "--config"), sec: secServer, arg: "<file>", usage: "configuration file; flags given on the command line override it"}, &s.configFile, "")
	f.boolean(option{names: names("-t"), sec: secServer,
		usage: "check the configuration (file and flags, certificates, users) and exit: 0 if valid, 1 with every error"}, &s.check, false)
	f.add(option{names: names("-sl", "--signal"), sec: secServer, typ: "string", arg: "<signal>[=<pid>]",
		usage: "send a signal to a running server and exit: reload, reopen, stop, quit or ldm; <pid> is a PID or a PID file (default: -P or the configuration's pid_file)",
		doc:   "`reload` is SIGHUP, `reopen` SIGUSR1 (reopen the log file), `stop` SIGTERM, `quit` SIGINT, `ldm` SIGUSR2 (lame duck mode)."},
		func(v string) error {
			cmd, _, _ := strings.Cut(v, "=")
			if _, ok := signalByName(cmd); !ok {
				return fmt.Errorf("unknown signal %q (want reload, reopen, stop, quit or ldm, optionally =PID)", cmd)
			}
			s.signal = v
			return nil
		})
	f.str(option{names: names("--client_advertise"), sec: secServer, arg: "<host:port>", usage: "client URL advertised to other servers' clients (connect_urls)"}, &o.ClientAdvertise, "")
	f.addNamed(option{names: names("--max_payload"), sec: secServer, typ: "size", def: "1MB", usage: "maximum message payload"},
		s.limitFlag("max_payload", setSize(&o.MaxPayload)))
	f.add(option{names: names("--max_control_line"), sec: secServer, typ: "size", def: "4KB", usage: "maximum protocol control line"}, setSize(&o.MaxControlLine))
	f.add(option{names: names("--max_connections"), sec: secServer, typ: "int", def: "65536",
		usage: "maximum client connections (0: accept none)"}, setMaxConnections(&o.MaxConnections))
	f.integer(option{names: names("--max_subscriptions"), sec: secServer, usage: "maximum subscriptions per connection (0: unlimited)"}, &o.MaxSubscriptions, 0)
	f.addNamed(option{names: names("--max_pending"), sec: secServer, typ: "size", def: "64MB",
		usage: "bytes buffered for a client before it is cut off as a slow consumer"}, s.limitFlag("max_pending", setSize64(&o.MaxPending)))
	f.duration(option{names: names("--ping_interval"), sec: secServer, def: "2m", usage: "server PING interval"}, &o.PingInterval, 0)
	f.integer(option{names: names("--ping_max"), sec: secServer, def: "2", usage: "unanswered PINGs before a connection is stale"}, &o.PingMax, 0)
	f.duration(option{names: names("--write_deadline"), sec: secServer, def: "10s", usage: "a write that takes longer makes the client a slow consumer"}, &o.WriteDeadline, 0)
	f.addNamed(option{names: names("--lame_duck_duration"), sec: secServer, typ: "duration", def: "2m", usage: "time lame duck mode spreads client closes over",
		doc: "Must be greater than the grace period, as nats-server requires: `--lame_duck_duration 10s` alone is refused (the default grace period is 10s); set `--lame_duck_grace_period` lower too. The flag takes a duration under the configuration key's 30s minimum (nats-server has no such flag)."},
		s.limitFlag("lame_duck_duration", setDuration(&o.LameDuckDuration)))
	f.addNamed(option{names: names("--lame_duck_grace_period"), sec: secServer, typ: "duration", def: "10s", usage: "wait before lame duck mode starts closing clients",
		doc: "Must be strictly lower than the lame duck duration (refused otherwise, from the file or the flags, as nats-server refuses it)."},
		s.limitFlag("lame_duck_grace_period", setDuration(&o.LameDuckGracePeriod)))

	f.add(option{names: names("-m", "--http_port"), sec: secMonitoring, typ: "int", arg: "<port>",
		usage: "HTTP monitoring port (0: off, -1: random)"}, setInt(&s.httpPort))
	f.addNamed(option{names: names("-ms", "--https_port"), sec: secMonitoring, typ: "int", arg: "<port>",
		usage: "HTTPS monitoring port, with the TLS certificate (0: off, -1: random)"}, func(name, v string) error {
		port, err := strconv.Atoi(v)
		s.httpsPort, s.httpsAt = port, flagOrigin(name)
		return err
	})
	f.str(option{names: names("--http_host"), sec: secMonitoring, arg: "<host>", def: "the client host", usage: "monitoring host"}, &s.httpHost, "")
	f.integer(option{names: names("--profile"), sec: secMonitoring, arg: "<port>",
		usage: "serve Go's profiles (net/http/pprof) on this port of the monitoring host (0: off)",
		doc:   "As nats-server's `--profile`: `go tool pprof http://HOST:PORT/debug/pprof/profile` takes a CPU profile. Keep the port private: profiles reveal internals."},
		&s.profilePort, 0)
	f.str(option{names: names("--http_base_path"), sec: secMonitoring, arg: "<path>", usage: "prefix for monitoring paths"}, &s.basePath, "")
}

// limitFlag records that the flag typed as name set the limit key (settings.limitAt),
// then sets it.
func (s *settings) limitFlag(key string, set func(string) error) func(name, v string) error {
	return func(name, v string) error {
		s.limitAt[key] = flagOrigin(name)
		return set(v)
	}
}

// logging defines where the log goes, its format and levels.
func (f *flags) logging(s *settings) {
	f.str(option{names: names("-l", "--log", "--log_file"), sec: secLogging, arg: "<file>", def: "stderr", usage: "log file"}, &s.logFile, "")
	f.add(option{names: names("--log_size_limit"), sec: secLogging, typ: "size",
		usage: "rotate the log file when it would grow past this size, e.g. 100MB (0: never)",
		doc:   "The file is renamed `<file>.YYYY.MM.DD.hh.mm.ss.nnnnnnnnn` (nats-server's names) and a new one opened. SIGUSR1 (`--signal reopen`) reopens the file for an external logrotate instead."},
		setSize64(&s.logSizeLimit))
	f.add(option{names: names("--log_max_num"), sec: secLogging, typ: "int",
		usage: "with --log_size_limit, the log files kept, the current one included; the oldest rotated ones are removed (0: all)"},
		func(v string) error {
			n, err := strconv.Atoi(v)
			if err == nil && n < 0 {
				err = fmt.Errorf("%d is negative", n)
			}
			s.logMaxNum = n
			return err
		})
	s.logFormat = logText
	f.add(option{names: names("--log_format"), sec: secLogging, typ: "string", arg: "<text|json>", def: logText,
		usage: "log format: text (key=value) or json (one object per line)"},
		func(v string) error {
			if v != logText && v != logJSON {
				return fmt.Errorf("%q is not a log format (text or json)", v)
			}
			s.logFormat = v
			return nil
		})
	f.boolean(option{names: names("-T", "--logtime"), sec: secLogging, usage: "timestamp log entries"}, &s.logTime, true)
	f.boolean(option{names: names("--logtime_utc"), sec: secLogging, usage: "timestamps in UTC instead of the local time zone"}, &s.logUTC, false)
	f.boolean(option{names: names("-D", "--debug"), sec: secLogging, usage: "debug logging"}, &s.debug, false)
	f.boolean(option{names: names("-V", "--trace"), sec: secLogging, usage: "trace logging: the TRACE level, below debug",
		doc: "Nothing logs at TRACE yet: the protocol is not traced, so -V logs what -D does."}, &s.trace, false)
	f.add(option{names: names("-DV"), sec: secLogging, typ: "bool", usage: "debug and trace logging"}, func(v string) error {
		on, err := strconv.ParseBool(v)
		s.debug, s.trace = on, on
		return err
	})
}

// security defines the authentication and TLS flags.
func (f *flags) security(s *settings) {
	a := &s.auth
	f.add(option{names: names("--user"), sec: secAuth, typ: "string", usage: "user required of clients (with --pass)"}, func(v string) error {
		a.user, a.userAt = v, flagOrigin("user")
		return nil
	})
	f.add(option{names: names("--pass"), sec: secAuth, typ: "string", arg: "<password>", usage: "password required of clients (with --user; plain text or a bcrypt hash)"}, func(v string) error {
		a.pass, a.passAt = v, flagOrigin("pass")
		return nil
	})
	f.add(option{names: names("--auth"), sec: secAuth, typ: "string", arg: "<token>", usage: "token required of clients (plain text or a bcrypt hash)"}, func(v string) error {
		a.token, a.tokenAt = v, flagOrigin("auth")
		return nil
	})
	f.add(option{names: names("--no_auth_user"), sec: secAuth, typ: "string", arg: "<user>",
		usage: "user of the configuration's users list that clients sending no credentials log in as"}, func(v string) error {
		a.noAuthUser, a.noAuthAt = v, flagOrigin("no_auth_user")
		return nil
	})

	t := &s.tls
	f.add(option{names: names("--tls"), sec: secTLS, typ: "bool", usage: "require TLS (needs --tlscert and --tlskey, or a tls block)"}, func(v string) error {
		on, err := strconv.ParseBool(v)
		t.on, t.onAt = on, flagOrigin("tls")
		return err
	})
	f.add(option{names: names("--tlscert"), sec: secTLS, typ: "string", arg: "<file>", usage: "server certificate (PEM); turns TLS on"}, func(v string) error {
		t.cert, t.certAt, t.on, t.onAt = v, flagOrigin("tlscert"), true, flagOrigin("tlscert")
		return nil
	})
	f.add(option{names: names("--tlskey"), sec: secTLS, typ: "string", arg: "<file>", usage: "private key of the server certificate (PEM)"}, func(v string) error {
		t.key, t.keyAt = v, flagOrigin("tlskey")
		return nil
	})
	f.add(option{names: names("--tlsverify"), sec: secTLS, typ: "bool", usage: "require a client certificate signed by --tlscacert; turns TLS on"}, func(v string) error {
		on, err := strconv.ParseBool(v)
		t.verify = on
		if on {
			t.on, t.onAt = true, flagOrigin("tlsverify")
		}
		return err
	})
	f.add(option{names: names("--tlscacert"), sec: secTLS, typ: "string", arg: "<file>", usage: "CA certificates (PEM) that client certificates must chain to"}, func(v string) error {
		t.ca, t.caAt = v, flagOrigin("tlscacert")
		return nil
	})
}

// cluster defines nats-server's cluster flags; given, they win over the cluster block.
func (f *flags) cluster(s *settings) {
	c := &s.clusterFlags
	f.str(option{names: names("--routes"), sec: secCluster, arg: "<url>[,<url>...]",
		usage: "routes to dial, comma separated: nats://[user:pass@]HOST:PORT[,...]",
		doc:   "Seeds: the rest of the mesh is learnt from them (gossip). A configured route is retried with backoff until shutdown."}, &c.routes, "")
	f.str(option{names: names("--cluster", "--cluster_listen"), sec: secCluster, arg: "<url>",
		usage: "route listen URL, nats://HOST:PORT (PORT -1: random); turns clustering on"}, &c.listen, "")
	f.str(option{names: names("--cluster_name"), sec: secCluster, usage: "cluster name; routes from another cluster are refused"}, &c.name, "")
	f.add(option{names: names("--no_advertise"), sec: secCluster, typ: "bool",
		usage: "do not tell clients about the other servers of the cluster"}, func(v string) error {
		b, err := strconv.ParseBool(v)
		c.noAdvertise = &b
		return err
	})
	f.str(option{names: names("--cluster_advertise"), sec: secCluster, arg: "<host:port>", def: "the listen address",
		usage: "route address other servers should dial"}, &c.advertise, "")
}

// parseSize reads a size flag as the configuration file reads a size (conf.ParseSize), as
// nats-streaming-server does: 64KB and 1GB are powers of 1024, 1K and 1G of 1000.
// A bare byte count may also end in B (10B).
func parseSize(v string) (int, error) {
	if d := strings.TrimRight(v, "Bb"); len(d) == len(v)-1 && d != "" && strings.Trim(d, "0123456789") == "" {
		v = d
	}
	n, err := conf.ParseSize(v)
	if err != nil || n < 0 {
		return 0, fmt.Errorf("invalid size %q", v)
	}
	return int(n), nil
}
