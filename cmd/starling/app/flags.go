package app

import (
	"flag"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/starling-io/starling/core"
	"github.com/starling-io/starling/stores"
	"github.com/starling-io/starling/stores/filestore"
	"github.com/starling-io/starling/streaming"
)

// newFlagSet defines the command line over s; defining a flag writes its default into s.
// Names follow nats-server where the concept is the same.
func newFlagSet(s *settings, out io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet("starling", flag.ContinueOnError)
	fs.SetOutput(out)
	o := &s.core
	for _, n := range []string{"a", "addr", "net"} {
		fs.StringVar(&o.Host, n, "0.0.0.0", "client listen address")
	}
	for _, n := range []string{"p", "port"} {
		fs.IntVar(&o.Port, n, core.DefaultPort, "client port (-1 = random)")
	}
	for _, n := range []string{"n", "name", "server_name"} {
		fs.StringVar(&o.ServerName, n, "", "server name (default: the server id)")
	}
	fs.StringVar(&o.ClientAdvertise, "client_advertise", "", "client URL advertised to other servers' clients (host:port)")
	for _, n := range []string{"m", "http_port"} {
		fs.Func(n, "HTTP monitoring port (0 = off, -1 = random)", func(v string) error {
			port, err := strconv.Atoi(v)
			s.httpPort = port
			return err
		})
	}
	for _, n := range []string{"ms", "https_port"} {
		fs.Func(n, "HTTPS monitoring port, with the TLS certificate (0 = off, -1 = random)", func(v string) error {
			port, err := strconv.Atoi(v)
			s.httpsPort, s.httpsAt = port, flagOrigin(n)
			return err
		})
	}
	fs.StringVar(&s.httpHost, "http_host", "", "HTTP monitoring host (default: the client host)")
	fs.StringVar(&s.basePath, "http_base_path", "", "prefix for monitoring paths")
	fs.Func("max_payload", "maximum message payload in bytes (default 1MB)", sizeFlag(&o.MaxPayload))
	fs.Func("max_control_line", "maximum protocol control line in bytes (default 4KB)", sizeFlag(&o.MaxControlLine))
	fs.IntVar(&o.MaxConnections, "max_connections", 0, "maximum client connections (default 65536)")
	fs.IntVar(&o.MaxSubscriptions, "max_subscriptions", 0, "maximum subscriptions per connection (0 = unlimited)")
	fs.Func("max_pending", "maximum bytes buffered for a client before it is a slow consumer (default 64MB)", func(v string) error {
		n, err := parseSize(v)
		o.MaxPending = int64(n)
		return err
	})
	fs.DurationVar(&o.PingInterval, "ping_interval", 0, "server PING interval (default 2m)")
	fs.IntVar(&o.PingMax, "ping_max", 0, "unanswered PINGs before a connection is stale (default 2)")
	fs.DurationVar(&o.WriteDeadline, "write_deadline", 0, "write deadline before a client is a slow consumer (default 10s)")
	fs.DurationVar(&o.LameDuckDuration, "lame_duck_duration", 0, "time to spread client closes over in lame duck mode (default 2m)")
	fs.DurationVar(&o.LameDuckGracePeriod, "lame_duck_grace_period", 0, "wait before lame duck starts closing clients (default 10s)")
	defineSecurityFlags(fs, s)
	defineClusterFlags(fs, s)
	defineProcessFlags(fs, s)
	defineStreamingFlags(fs, s)
	return fs
}

// defineSecurityFlags defines the authentication and TLS flags.
func defineSecurityFlags(fs *flag.FlagSet, s *settings) {
	a := &s.auth
	fs.Func("user", "user required of clients (with --pass)", func(v string) error {
		a.user, a.userAt = v, flagOrigin("user")
		return nil
	})
	fs.Func("pass", "password required of clients (with --user; plain text or bcrypt hash)", func(v string) error {
		a.pass, a.passAt = v, flagOrigin("pass")
		return nil
	})
	fs.Func("auth", "token required of clients (plain text or bcrypt hash)", func(v string) error {
		a.token, a.tokenAt = v, flagOrigin("auth")
		return nil
	})
	fs.Func("no_auth_user", "user of the configuration's users list that clients without credentials log in as", func(v string) error {
		a.noAuthUser, a.noAuthAt = v, flagOrigin("no_auth_user")
		return nil
	})

	t := &s.tls
	fs.BoolFunc("tls", "require TLS (needs --tlscert and --tlskey, or a tls block)", func(v string) error {
		on, err := strconv.ParseBool(v)
		t.on, t.onAt = on, flagOrigin("tls")
		return err
	})
	fs.Func("tlscert", "server certificate file (PEM); turns TLS on", func(v string) error {
		t.cert, t.certAt, t.on, t.onAt = v, flagOrigin("tlscert"), true, flagOrigin("tlscert")
		return nil
	})
	fs.Func("tlskey", "private key of the server certificate (PEM)", func(v string) error {
		t.key, t.keyAt = v, flagOrigin("tlskey")
		return nil
	})
	fs.Func("tlscacert", "CA certificates (PEM) that client certificates must chain to", func(v string) error {
		t.ca, t.caAt = v, flagOrigin("tlscacert")
		return nil
	})
	fs.BoolFunc("tlsverify", "require a client certificate signed by --tlscacert; turns TLS on", func(v string) error {
		on, err := strconv.ParseBool(v)
		t.verify = on
		if on {
			t.on, t.onAt = true, flagOrigin("tlsverify")
		}
		return err
	})
}

// defineProcessFlags defines logging, files, and what the process does (-t, --signal, -v).
func defineProcessFlags(fs *flag.FlagSet, s *settings) {
	for _, n := range []string{"D", "debug"} {
		fs.BoolVar(&s.debug, n, false, "debug logging")
	}
	for _, n := range []string{"V", "trace"} {
		fs.BoolVar(&s.trace, n, false, "protocol trace logging")
	}
	fs.Func("DV", "debug and trace logging", func(string) error { s.debug, s.trace = true, true; return nil })
	for _, n := range []string{"l", "log"} {
		fs.StringVar(&s.logFile, n, "", "log file (default: stderr)")
	}
	for _, n := range []string{"P", "pid"} {
		fs.StringVar(&s.pidFile, n, "", "PID file")
	}
	for _, n := range []string{"c", "config"} {
		fs.StringVar(&s.configFile, n, "", "configuration file; flags given on the command line override it")
	}
	fs.BoolVar(&s.check, "t", false, "check the configuration (file and flags) and exit: 0 if valid, 1 with the errors")
	fs.Func("signal", "send a signal to a running server and exit: reload, stop, quit or ldm, as CMD or CMD=PID (PID: a number or a PID file; default: -P or the configuration's pid_file)", func(v string) error {
		cmd, _, _ := strings.Cut(v, "=")
		if _, ok := signalByName(cmd); !ok {
			return fmt.Errorf("unknown signal %q (want reload, stop, quit or ldm, optionally =PID)", cmd)
		}
		s.signal = v
		return nil
	})
	for _, n := range []string{"v", "version"} {
		fs.BoolVar(&s.version, n, false, "print the version and exit")
	}
}

// defineStreamingFlags defines the streaming layer's flags, with nats-streaming-server's
// names (-cid and --cid are the same flag to Go's flag package, so each name is defined
// once). Limits and the settings build checks record where they were given.
func defineStreamingFlags(fs *flag.FlagSet, s *settings) {
	st := &s.streaming
	o := &st.opts
	at := func(key, name string, parse func(string) error) func(string) error {
		return func(v string) error {
			if err := parse(v); err != nil {
				return err
			}
			st.setAt(key, flagOrigin(name))
			return nil
		}
	}
	str := func(dst *string) func(string) error { return func(v string) error { *dst = v; return nil } }
	integer := func(dst *int) func(string) error {
		return func(v string) error {
			n, err := strconv.Atoi(v)
			*dst = n
			return err
		}
	}
	duration := func(dst *time.Duration) func(string) error {
		return func(v string) error {
			d, err := time.ParseDuration(v)
			*dst = d
			return err
		}
	}
	def := func(names []string, key, usage string, parse func(string) error) {
		for _, n := range names {
			fs.Func(n, usage, at(key, n, parse))
		}
	}

	fs.BoolVar(&st.off, "no_streaming", false, "run the core NATS router only, without the streaming layer")
	o.ClusterID, o.DiscoverPrefix = streaming.DefaultClusterID, streaming.DefaultDiscoverPrefix
	def([]string{"cid", "cluster_id"}, "cluster_id", "streaming cluster ID (default "+streaming.DefaultClusterID+")", str(&o.ClusterID))
	def([]string{"discover_prefix"}, "discover_prefix", "prefix of the subject clients connect on (default "+streaming.DefaultDiscoverPrefix+")", str(&o.DiscoverPrefix))
	st.store = storeMemory
	def([]string{"st", "store"}, "store", "streaming store: memory (file and bolt arrive with the durable stores) (default memory)", str(&st.store))
	def([]string{"dir"}, "dir", "streaming store directory (file and bolt stores)", str(&st.dir))

	g := &st.limits.Global
	*g = stores.DefaultLimits()
	def([]string{"mc", "max_channels"}, "max_channels", "maximum channels (0 = unlimited) (default 100)", integer(&g.MaxChannels))
	def([]string{"msu", "max_subs"}, "max_subs", "maximum subscriptions per channel (0 = unlimited) (default 1000)", integer(&g.MaxSubs))
	def([]string{"mm", "max_msgs"}, "max_msgs", "maximum messages per channel (0 = unlimited) (default 1000000)", integer(&g.MaxMsgs))
	def([]string{"mb", "max_bytes"}, "max_bytes", "maximum bytes per channel, e.g. 1GB (0 = unlimited) (default 1024000000)", func(v string) error {
		n, err := parseSize(v)
		g.MaxBytes = int64(n)
		return err
	})
	def([]string{"ma", "max_age"}, "max_age", "maximum age of a channel's messages, e.g. 24h (0 = unlimited)", duration(&g.MaxAge))
	def([]string{"mi", "max_inactivity"}, "max_inactivity", "delete a channel unused this long, e.g. 1h (0 = never)", duration(&g.MaxInactivity))

	o.HBInterval, o.HBTimeout, o.HBFailCount = streaming.DefaultHBInterval, streaming.DefaultHBTimeout, streaming.DefaultHBFailCount
	def([]string{"hbi", "hb_interval"}, "hb_interval", "interval of the heartbeats sent to streaming clients (default 30s)", duration(&o.HBInterval))
	def([]string{"hbt", "hb_timeout"}, "hb_timeout", "how long a client has to answer a heartbeat (default 10s)", duration(&o.HBTimeout))
	def([]string{"hbf", "hb_fail_count"}, "hb_fail_count", "unanswered heartbeats before a client is closed (default 10)", integer(&o.HBFailCount))
	o.IOBatchSize = streaming.DefaultIOBatchSize
	def([]string{"io_batch_size"}, "io_batch_size", "maximum messages stored in one batch (default 1024)", integer(&o.IOBatchSize))
	fs.BoolVar(&o.ReplaceDurable, "replace_durable", false, "a subscribe request for a durable that is online replaces it instead of failing")
	o.MaxClients = streaming.DefaultMaxClients
	def([]string{"max_clients"}, "max_clients", "maximum registered streaming clients (-1 = unlimited) (default 65536)", integer(&o.MaxClients))
	fo := &st.file
	fo.sync, fo.autoSync, fo.sliceMaxBytes = true, time.Minute, filestore.DefaultSegmentBytes
	fs.BoolFunc("file_sync", "file and bolt stores: fsync before every PubAck (false: faster, survives a process crash but not power loss, and with bolt a power loss can leave the whole file unreadable) (default true)",
		at("file.sync", "file_sync", func(v string) error {
			on, err := strconv.ParseBool(v)
			fo.sync = on
			return err
		}))
	def([]string{"file_auto_sync"}, "file.auto_sync", "with --file_sync=false, fsync what was written at least this often, e.g. 1s (0: never) (default 1m)", func(v string) error {
		d, err := time.ParseDuration(v)
		fo.autoSync = max(d, 0)
		return err
	})
	def([]string{"file_slice_max_msgs"}, "file.slice_max_msgs", "file store: roll a channel's segment after this many messages (0: no limit)", integer(&fo.sliceMaxMsgs))
	def([]string{"file_slice_max_bytes"}, "file.slice_max_bytes", "file store: segment size, e.g. 64MB (at most 1GB) (default 64MB)", func(v string) error {
		n, err := parseSize(v)
		fo.sliceMaxBytes = int64(n)
		return err
	})
	def([]string{"file_slice_max_age"}, "file.slice_max_age", "file store: roll a segment whose first message is older than this, e.g. 1h (0: no limit)", duration(&fo.sliceMaxAge))
	def([]string{"file_fds_limit"}, "file.file_descriptors_limit", "file store: sealed segments kept open across channels (0: 256)", integer(&fo.fdsLimit))
	def([]string{"file_parallel_recovery"}, "file.parallel_recovery", "file store: channels recovered at once at startup (0: one per core)", integer(&fo.parallelRecovery))
	def([]string{"file_buffer_size"}, "file.buffer_size", "file store: write buffer per channel, e.g. 2MB (0: 256KB)", sizeFlag(&fo.bufferSize))

	for _, n := range []string{"SD", "stan_debug"} {
		fs.BoolVar(&st.debug, n, false, "debug logging of the streaming layer")
	}
	for _, n := range []string{"SV", "stan_trace"} {
		fs.BoolVar(&st.trace, n, false, "trace logging of the streaming layer")
	}
	fs.BoolFunc("SDV", "debug and trace logging of the streaming layer", func(v string) error {
		on, err := strconv.ParseBool(v)
		st.debug, st.trace = on, on
		return err
	})
}

// sizeFlag parses "1048576", "1MB", "64KB", "2GB".
func sizeFlag(dst *int) func(string) error {
	return func(v string) error {
		n, err := parseSize(v)
		*dst = n
		return err
	}
}

func parseSize(v string) (int, error) {
	mult := 1
	for _, u := range []struct {
		suffix string
		m      int
	}{{"GB", 1 << 30}, {"MB", 1 << 20}, {"KB", 1 << 10}, {"G", 1 << 30}, {"M", 1 << 20}, {"K", 1 << 10}, {"B", 1}} {
		if len(v) > len(u.suffix) && (v[len(v)-len(u.suffix):] == u.suffix) {
			v, mult = v[:len(v)-len(u.suffix)], u.m
			break
		}
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 0 {
		return 0, fmt.Errorf("invalid size %q", v)
	}
	return n * mult, nil
}
