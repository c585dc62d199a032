package app

import (
	"flag"
	"fmt"
	"io"
	"strconv"
	"strings"

	"github.com/starling-io/starling/core"
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
	defineProcessFlags(fs, s)
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
